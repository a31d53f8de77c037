import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown, unitwatchCommand } from '../harness/unitwatch-service.js';
import { waitUntil } from '../harness/wait.js';

const skip = integrationSkipReason();
const WAIT_MS = 40_000;

/** The units a mail names: a unit mail's header, or each `● unit:` line of a digest. */
function unitsNamedIn(mail: ReceivedMail): string[] {
  const header = mail.parsed.headers.get('x-unitwatch-unit');
  if (typeof header === 'string') return [header];
  return [...(mail.parsed.text ?? '').matchAll(/^● ([^\s:]+):/gm)].map((match) => match[1] ?? '');
}

function failureMails(smtp: SmtpSink): ReceivedMail[] {
  return smtp.mails.filter((mail) => mail.parsed.headers.get('x-unitwatch-event') !== 'recovery');
}

async function killAndWaitForRestart(instance: SystemdInstance): Promise<void> {
  const before = await instance.property('unitwatch.service', 'MainPID');
  await instance.systemctl('kill', '--signal=KILL', 'unitwatch.service');
  await waitUntil(
    'unitwatch running again after kill -9',
    async () => {
      const pid = await instance.property('unitwatch.service', 'MainPID');
      const state = await instance.property('unitwatch.service', 'ActiveState');
      return state === 'active' && pid !== before && pid !== '0';
    },
    30_000,
  );
}

async function heldLines(instance: SystemdInstance): Promise<number> {
  const log = await journalOf(instance);
  return log.split('\n').filter((line) => line.includes('mail held back by the rate limit')).length;
}

function waitForHeld(instance: SystemdInstance, count: number): Promise<void> {
  return waitUntil(`${count} failures held back`, async () => (await heldLines(instance)) >= count, WAIT_MS);
}

function journalOf(instance: SystemdInstance): Promise<string> {
  return instance.journal('-u', 'unitwatch.service', '-o', 'cat');
}

/**
 * Issue 11: what the policy holds back (a digest being gathered, a repeat waiting out its spacing,
 * mails beyond the hourly cap) survives a kill -9: the restarted daemon names each failure once.
 */
describe.skipIf(skip !== undefined)('held failures across a kill -9 in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  async function fail(unit: string): Promise<void> {
    await instance.run(['systemd-run', '--quiet', `--unit=${unit}`, '/bin/sh', '-c', `echo ${unit}; exit 1`]);
  }

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'heldhost',
        UNITWATCH_STORM_THRESHOLD: '2',
        UNITWATCH_STORM_WINDOW: '5min',
        UNITWATCH_DIGEST_DELAY: '8s',
        UNITWATCH_REPEAT_INTERVALS: '10s',
        UNITWATCH_RECOVERY_GRACE: '1s',
        UNITWATCH_LOG_LEVEL: 'debug',
        // Critical, so that the storm the first test leaves behind does not put it into a digest.
        UNITWATCH_CRITICAL: 'flappy.service,barrier.service',
      },
      prepare: async (booted) => {
        await booted.writeFile(
          '/etc/systemd/system/flappy.service',
          "[Service]\nExecStart=/bin/sh -c 'test ! -e /run/flappy-fails || exit 4; exec sleep infinity'\n",
        );
        // A unit file, not a transient unit: a failed transient unit is unloaded by reset-failed.
        await booted.writeFile(
          '/etc/systemd/system/loop.service',
          "[Service]\nExecStart=/bin/sh -c 'exit 1'\n",
        );
        await booted.systemctl('daemon-reload');
      },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('sends the digest and the held repeat it was gathering, each failure named once', {
    timeout: 120_000,
  }, async () => {
    // The first failure of each of two units goes out at once, which reaches the storm threshold.
    await instance.exec(['systemctl', 'start', 'loop.service']);
    await smtp.waitForMailAbout('loop.service', WAIT_MS);
    await fail('other.service');
    await smtp.waitForMailAbout('other.service', WAIT_MS);
    // Repeats of loop.service wait out its 10 s spacing; eight more units wait for the digest.
    await instance.exec(['systemctl', 'start', 'loop.service']);
    await instance.exec(['systemctl', 'start', 'loop.service']);
    const storm = Array.from({ length: 8 }, (_, i) => `storm${i + 1}.service`);
    for (const unit of storm) await fail(unit);
    await waitForHeld(instance, 10);

    await killAndWaitForRestart(instance);

    await smtp.waitFor(
      () => smtp.mails.some((mail) => mail.parsed.headers.get('x-unitwatch-event') === 'digest'),
      WAIT_MS,
      'the digest after the restart',
    );
    await smtp.waitFor(() => smtp.mailsAbout('loop.service').length >= 2, WAIT_MS, 'the held repeat');
    // The barrier: a critical unit's failure, mailed at once, after which no late duplicate can come.
    await fail('barrier.service');
    await smtp.waitForMailAbout('barrier.service', WAIT_MS);
    const named = failureMails(smtp).flatMap(unitsNamedIn);
    for (const unit of [...storm, 'other.service']) expect(named.filter((n) => n === unit)).toHaveLength(1);
    const [first, repeat, ...more] = smtp.mailsAbout('loop.service');
    expect(more).toEqual([]);
    expect(first?.parsed.headers.get('x-unitwatch-failures')).toBe('1');
    expect(repeat?.parsed.headers.get('x-unitwatch-failures')).toBe('2');
    // The repeat continues the thread the first mail opened before the crash.
    expect(repeat?.parsed.inReplyTo).toBe(first?.parsed.messageId);
    const log = await instance.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(log).toMatch(/resumed \d+ open incidents? with 10 failures held back/);
  });

  it('mails the recovery of an incident opened before a kill -9 in that incident’s thread', {
    timeout: 90_000,
  }, async () => {
    await instance.run(['touch', '/run/flappy-fails']);
    await instance.exec(['systemctl', 'start', 'flappy.service']);
    await smtp.waitForMailAbout('flappy.service', WAIT_MS);
    await killAndWaitForRestart(instance);
    await instance.run(['rm', '/run/flappy-fails']);
    await instance.systemctl('start', 'flappy.service');
    await smtp.waitFor(
      () =>
        smtp
          .mailsAbout('flappy.service')
          .some((m) => m.parsed.headers.get('x-unitwatch-event') === 'recovery'),
      WAIT_MS,
      'the recovery of flappy.service',
    );
    const [failure, recovery] = smtp.mailsAbout('flappy.service');
    expect(recovery?.parsed.headers.get('x-unitwatch-event')).toBe('recovery');
    expect(recovery?.parsed.inReplyTo).toBe(failure?.parsed.messageId);
  });
});

describe.skipIf(skip !== undefined)('failures held by the hourly cap across a kill -9', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'caphost',
        UNITWATCH_MAX_MAILS_PER_HOUR: '2',
        UNITWATCH_STORM_THRESHOLD: '100',
      },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('keeps the failures beyond the cap held, counted and due, through the restart', {
    timeout: 90_000,
  }, async () => {
    for (const unit of ['cap1.service', 'cap2.service']) {
      await instance.run(['systemd-run', '--quiet', `--unit=${unit}`, '/bin/false']);
      await smtp.waitForMailAbout(unit, WAIT_MS);
    }
    for (const unit of ['over1.service', 'over2.service', 'over3.service']) {
      await instance.run(['systemd-run', '--quiet', `--unit=${unit}`, '/bin/false']);
    }
    await waitForHeld(instance, 3);
    await killAndWaitForRestart(instance);
    await waitUntil(
      'the resume line',
      async () => /resumed \d+ open incidents? with 3 failures held back/.test(await journalOf(instance)),
      WAIT_MS,
    );
    const log = await journalOf(instance);
    // The catch-up after the restart found the three still failed and did not count them again.
    const after = log.slice(log.lastIndexOf('resumed'));
    expect(after).not.toMatch(/over\d\.service.*(due now|held back)/);
    expect(smtp.mails).toHaveLength(2);

    // What an operator asks when nothing arrives: `unitwatch status`, as root, while it runs.
    const status = await unitwatchCommand(instance, 'status');
    process.stdout.write(`unitwatch status (exit ${status.code}):\n${status.stdout}${status.stderr}`);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^unitwatch is running since /);
    expect(status.stdout).toMatch(/^ {2}says: {5}on the system bus since \d\d:\d\d:\d\d; watching /m);
    expect(status.stdout).toContain(
      'Failed now: cap1.service, cap2.service, over1.service, over2.service, over3.service',
    );
    // The three over the cap, and unitwatch's own restart after the kill -9, wait for the summary.
    expect(status.stdout).toContain('Open incidents: 6, 4 failures held for a later mail');
    expect(status.stdout).toMatch(/over1\.service: 1 failure since .*, in digest \(1 held\), next mail /);
    expect(status.stdout).toContain('Hourly cap: 2 of 2 mails used in the last hour');
    expect(status.stdout).toMatch(/Last delivery: mail sent: .* \(250 after 1 attempt\)/);
    const json = await unitwatchCommand(instance, 'status', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ exitCode: 1, heldFailures: 4, cap: { used: 2, max: 2 } });

    // SIGHUP with failures held: not a reload, not a stop; nothing held is lost.
    const pid = await instance.property('unitwatch.service', 'MainPID');
    await instance.systemctl('kill', '--signal=HUP', 'unitwatch.service');
    await waitUntil(
      'the SIGHUP line',
      async () => (await journalOf(instance)).includes('SIGHUP received'),
      WAIT_MS,
    );
    expect(await instance.property('unitwatch.service', 'MainPID')).toBe(pid);
    const afterHup = await unitwatchCommand(instance, 'status');
    expect(afterHup.stdout).toContain('Open incidents: 6, 4 failures held for a later mail');
  });
});
