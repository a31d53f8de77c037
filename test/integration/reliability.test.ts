import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown, startUnitwatch } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();

function unitOf(mail: ReceivedMail): string | undefined {
  const unit = mail.parsed.headers.get('x-unitwatch-unit');
  return typeof unit === 'string' ? unit : undefined;
}

/** How often each unit with `prefix` was mailed about as a failure. */
function failureMailCounts(mails: readonly ReceivedMail[], prefix: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const mail of mails) {
    const unit = unitOf(mail);
    if (unit?.startsWith(prefix) && mail.parsed.headers.get('x-unitwatch-event') !== 'recovery') {
      counts.set(unit, (counts.get(unit) ?? 0) + 1);
    }
  }
  return counts;
}

describe.skipIf(skip !== undefined)('delivery guarantees in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  /**
   * Starts `count` units that fail. A systemd-run refused while systemd re-executes (its private
   * socket is briefly gone) is tried again, up to 20 times; before, the loop went on without that
   * unit, and the test then waited for a failure that never happened (the stream test's one
   * diagnostic-free timeout). Every retry is printed.
   */
  async function failUnits(prefix: string, count: number, gapSeconds = 0): Promise<void> {
    const output = await instance.run([
      'sh',
      '-c',
      // A refusal whose unit exists anyway (the reply was lost, not the request) is not retried.
      `i=1; while [ $i -le ${count} ]; do n=0; u=${prefix}$i.service; until systemd-run --no-block --quiet --unit=$u /bin/false || [ "$(systemctl show --property=LoadState --value -- $u)" = loaded ]; do n=$((n+1)); echo "systemd-run of $u refused (try $n)"; [ $n -ge 20 ] && exit 1; sleep 0.25; done; sleep ${gapSeconds}; i=$((i+1)); done`,
    ]);
    if (output.trim() !== '') process.stdout.write(`${output.trim()}\n`);
  }

  /** What systemd and unitwatch say about units not mailed yet: printed when a wait times out. */
  async function diagnose(prefix: string, count: number): Promise<string> {
    const mailed = failureMailCounts(smtp.mails, prefix);
    const missing = Array.from({ length: count }, (_, i) => `${prefix}${i + 1}.service`).filter(
      (unit) => !mailed.has(unit),
    );
    const states = await Promise.all(
      missing.map(async (unit) => {
        const show = await instance.exec([
          'systemctl',
          'show',
          '--property=LoadState,ActiveState,Result,InvocationID',
          '--',
          unit,
        ]);
        return `  ${unit}: ${show.stdout.trim().replace(/\n/g, ' ')}`;
      }),
    );
    const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'cat', '-n', '40');
    const status = await instance.property('unitwatch.service', 'StatusText');
    return `not mailed: ${missing.length}\n${states.join('\n')}\nunitwatch status: ${status}\nlast unitwatch lines:\n${journal}`;
  }

  /** Waits at most `timeoutMs` + 1.5 s (+ a diagnosis on timeout): callers' test timeouts exceed that. */
  async function expectEachMailedOnce(prefix: string, count: number, timeoutMs: number): Promise<void> {
    try {
      await smtp.waitFor(
        (mails) => failureMailCounts(mails, prefix).size === count,
        timeoutMs,
        `${count} ${prefix}* mails`,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await diagnose(prefix, count)}`);
    }
    await sleep(1500);
    const counts = failureMailCounts(smtp.mails, prefix);
    const duplicates = [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
    process.stdout.write(`${prefix}: expected ${count}, mailed ${counts.size}, duplicates ${duplicates}\n`);
    for (const [unit, n] of counts) {
      if (n < 2) continue;
      // Say which mails repeated, so a failure in CI can be told apart: outbox resend or second report.
      for (const mail of smtp.mails.filter((m) => unitOf(m) === unit)) {
        process.stdout.write(
          `  duplicate ${unit}: ${mail.parsed.messageId} invocation ${String(mail.parsed.headers.get('x-unitwatch-invocation'))} at ${mail.receivedAtMs}\n`,
        );
      }
    }
    expect(counts.size).toBe(count);
    expect(duplicates).toBe(0);
  }

  async function waitUntilRunningAgain(previousPid: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pid = await instance.property('unitwatch.service', 'MainPID');
      const state = await instance.property('unitwatch.service', 'ActiveState');
      if (state === 'active' && pid !== previousPid && pid !== '0') return;
      if (Date.now() > deadline) throw new Error(`unitwatch not active again: ${state}, MainPID ${pid}`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'reliablehost',
        // One mail per failure, so every failure is counted on its own.
        UNITWATCH_STORM_THRESHOLD: '1000',
        UNITWATCH_MAX_MAILS_PER_HOUR: '10000',
      },
      // Every test here runs under the watchdog: a stuck daemon would be killed and counted below.
      extraService: { WatchdogSec: '4s' },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('delivers every failure once after the SMTP server refused them with 451 for a while', {
    timeout: 150_000,
  }, async () => {
    smtp.refuseWith = 451;
    await failUnits('refused-', 3);
    await smtp.waitFor(() => smtp.refused >= 3, 20_000, 'three refusals');
    smtp.refuseWith = undefined;
    await expectEachMailedOnce('refused-', 3, 90_000); // + 20 s above
  });

  it('delivers every failure once after the SMTP server was down', { timeout: 150_000 }, async () => {
    const port = smtp.port;
    await smtp.stop();
    await failUnits('smtpdown-', 3);
    await sleep(3000);
    await smtp.start({}, port);
    await expectEachMailedOnce('smtpdown-', 3, 90_000);
  });

  it('mails nothing again when restarted with failed units already reported', {
    timeout: 90_000,
  }, async () => {
    const before = smtp.mails.length;
    await instance.systemctl('restart', 'unitwatch.service');
    // The barrier: a new failure's mail arrives after any repeat of the old ones would have.
    await failUnits('afterrestart-', 1);
    await expectEachMailedOnce('afterrestart-', 1, 30_000);
    expect(
      smtp.mails
        .slice(before)
        .map((mail) => mail.parsed.subject)
        .filter((subject) => !subject?.includes('afterrestart-')),
    ).toEqual([]);
  });

  it('reports once, on start, a unit that failed while unitwatch was stopped', {
    timeout: 90_000,
  }, async () => {
    await instance.systemctl('stop', 'unitwatch.service');
    await failUnits('whilestopped-', 1);
    await sleep(500);
    await startUnitwatch(instance);
    await expectEachMailedOnce('whilestopped-', 1, 20_000);
  });

  it('reports every failure of a stream through a D-Bus restart and a systemd re-exec', {
    timeout: 150_000,
  }, async () => {
    const stream = failUnits('stream-', 20, 0.3);
    await sleep(1500);
    await instance.systemctl('restart', 'dbus.service');
    await sleep(2000);
    await instance.systemctl('daemon-reexec');
    await stream;
    await expectEachMailedOnce('stream-', 20, 90_000);
    expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');
    // The bus really went away under the daemon, and it came back without exiting.
    const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(journal).toContain('lost the system bus; reconnecting');
    expect(journal).toContain('reconnected to the system bus');
  });

  it('after kill -9 with 50 mails queued, the restarted daemon delivers all 50, none twice', {
    timeout: 300_000,
  }, async () => {
    smtp.refuseWith = 451;
    await failUnits('queued-', 50);
    await smtp.waitFor(() => smtp.refused >= 1, 20_000, 'the first refusal');
    // Wait for the daemon to say, in its STATUS=, that all 50 are queued on disk.
    const deadline = Date.now() + 30_000;
    while (!/outbox (5\d|[6-9]\d)\b/.test(await instance.property('unitwatch.service', 'StatusText'))) {
      if (Date.now() > deadline)
        throw new Error(
          `outbox never reached 50: ${await instance.property('unitwatch.service', 'StatusText')}`,
        );
      await sleep(250);
    }
    const killedPid = await instance.property('unitwatch.service', 'MainPID');
    await instance.systemctl('kill', '--signal=SIGKILL', 'unitwatch.service');
    // Keep refusing until the new process runs: a DATA the killed one had finished sending must be
    // refused too, or it would be a legitimate at-least-once duplicate and the count would not be exact.
    await waitUntilRunningAgain(killedPid);
    smtp.refuseWith = undefined;
    await expectEachMailedOnce('queued-', 50, 120_000);
  });

  it('ran the whole file under WatchdogSec= without a watchdog kill', async () => {
    const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(await instance.property('unitwatch.service', 'WatchdogUSec')).toBe('4s');
    expect(journal).not.toContain('Watchdog timeout');
    expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');
  });
});
