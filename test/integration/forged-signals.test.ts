import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, repoRoot, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown } from '../harness/unitwatch-service.js';
import { waitUntil } from '../harness/wait.js';

const skip = integrationSkipReason();
const MAIL_WAIT_MS = 20_000;
const FORGER = 'mallory';
const FLOOD = 5000;

function eventOf(mail: ReceivedMail): string {
  return String(mail.parsed.headers.get('x-unitwatch-event') ?? '');
}

/**
 * Issue 10: any local user can send a signal straight to unitwatch's unique name, which no match
 * rule filters. Here an unprivileged user of the booted system forges every kind of change unitwatch
 * acts on; only what systemd itself says may reach the mailbox.
 */
describe.skipIf(skip !== undefined)('forged D-Bus signals from an unprivileged local user', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();
  let unitwatchName = '';

  async function forge(destination: string, unit: string, active: string, sub: string, count = 1) {
    const out = await instance.run([
      'runuser',
      '-u',
      FORGER,
      '--',
      process.execPath,
      `${repoRoot}test/fixtures/forge-signals.mjs`,
      destination,
      unit,
      active,
      sub,
      String(count),
    ]);
    expect(out).toContain(`sent ${count} forged signal`);
  }

  async function failForReal(unit: string, delaySeconds = 0): Promise<void> {
    await instance.run([
      'systemd-run',
      '--no-block',
      '--quiet',
      `--unit=${unit}`,
      '/bin/sh',
      '-c',
      `sleep ${delaySeconds}; echo "${unit} really failed"; exit 1`,
    ]);
  }

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'sharedhost',
        UNITWATCH_CRITICAL: 'critical-db.service',
        UNITWATCH_STORM_THRESHOLD: '100',
        UNITWATCH_RECOVERY_GRACE: '1s',
        UNITWATCH_LOG_LEVEL: 'debug',
      },
      prepare: async (booted) => {
        await booted.run(['useradd', '--no-create-home', '--shell', '/bin/sh', FORGER]);
        for (const name of ['healthy-web.service', 'critical-db.service']) {
          await booted.writeFile(
            `/etc/systemd/system/${name}`,
            `[Unit]\nDescription=${name}\n[Service]\nExecStart=/bin/sleep infinity\n`,
          );
        }
        await booted.systemctl('daemon-reload');
        await booted.systemctl('start', 'healthy-web.service', 'critical-db.service');
      },
    });
    const pid = await instance.property('unitwatch.service', 'MainPID');
    const listing = await instance.run(['busctl', '--system', 'list', '--unique', '--no-legend']);
    unitwatchName =
      listing
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .find((columns) => columns[1] === pid)?.[0] ?? '';
    expect(unitwatchName).toMatch(/^:1\.\d+$/);
  });

  afterAll(() => shutDown(instance, smtp));

  it('mails no forged failure, recovery or critical stop, and still mails every real one', {
    timeout: 150_000,
  }, async () => {
    // A real failure first: it must be mailed, and a forged recovery must not close it.
    await failForReal('real-before.service');
    await smtp.waitForMailAbout('real-before.service', MAIL_WAIT_MS);

    for (const destination of [unitwatchName, '-']) {
      await forge(destination, 'ghost.service', 'failed', 'failed');
      await forge(destination, 'healthy-web.service', 'failed', 'failed');
      await forge(destination, 'healthy-web.service', 'activating', 'auto-restart');
      await forge(destination, 'real-before.service', 'active', 'running');
      await forge(destination, 'critical-db.service', 'inactive', 'dead');
    }
    // A flood of distinct names, and one name far beyond systemd's 255 characters.
    await forge(unitwatchName, 'flood.service', 'failed', 'failed', FLOOD);
    await forge(unitwatchName, 'long:200000', 'failed', 'failed');

    // The barrier: a real failure that ends after the recovery grace a forged recovery would need.
    await failForReal('real-after.service', 2);
    await smtp.waitForMailAbout('real-after.service', MAIL_WAIT_MS);

    const forgedUnits = smtp.mails
      .map((mail) => String(mail.parsed.headers.get('x-unitwatch-unit') ?? ''))
      .filter((unit) => !unit.startsWith('real-'));
    expect(forgedUnits).toEqual([]);
    expect(smtp.mailsAbout('real-before.service').map(eventOf)).toEqual(['failed']);
    expect(smtp.mailsAbout('real-after.service').map(eventOf)).toEqual(['failed']);
    expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');

    // A real stop of the critical unit is still news.
    await instance.systemctl('stop', 'critical-db.service');
    await smtp.waitForMailAbout('critical-db.service', MAIL_WAIT_MS);
    expect(smtp.mailsAbout('critical-db.service').map(eventOf)).toEqual(['stopped']);

    // The flood is summed up, not logged line by line: its end is reported within the 10 s window.
    const totals = async () =>
      [
        ...(await instance.journal('-u', 'unitwatch.service', '-o', 'cat')).matchAll(
          /not sent by systemd.* total=(\d+)/g,
        ),
      ].map((match) => Number(match[1]));
    await waitUntil(
      'the flood counted in the journal',
      async () => Math.max(0, ...(await totals())) >= FLOOD,
      20_000,
    );
    expect((await totals()).length).toBeLessThan(10);
    const status = await instance.property('unitwatch.service', 'StatusText');
    process.stdout.write(`after ${FLOOD + 11} forged signals: ${status}\n`);
  });
});
