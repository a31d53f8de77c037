import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown, unitwatchCommand } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const STORM_SIZE = 200;

function header(mail: ReceivedMail, name: string): string | undefined {
  const value = mail.parsed.headers.get(name);
  return typeof value === 'string' ? value : undefined;
}

/** Every storm-N unit a mail names, in its unit header or in a digest's `● unit:` lines. */
function stormUnitsNamed(mails: readonly ReceivedMail[]): Set<string> {
  const named = new Set<string>();
  for (const mail of mails) {
    const unit = header(mail, 'x-unitwatch-unit');
    if (unit?.startsWith('storm-')) named.add(unit);
    for (const match of (mail.parsed.text ?? '').matchAll(/^● (storm-\d+\.service):/gm)) {
      if (match[1] !== undefined) named.add(match[1]);
    }
  }
  return named;
}

describe.skipIf(skip !== undefined)('notification policy in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  async function check(): Promise<{ code: number | null; line: string }> {
    const result = await unitwatchCommand(instance, 'check');
    return { code: result.code, line: result.stdout.trim() };
  }

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'policyhost',
        UNITWATCH_CRITICAL: 'vital.service',
        UNITWATCH_EXCLUDE: 'ignored-*.service',
        UNITWATCH_STORM_THRESHOLD: '3',
        UNITWATCH_DIGEST_DELAY: '5s',
        UNITWATCH_RECOVERY_GRACE: '2s',
        UNITWATCH_MAX_MAILS_PER_HOUR: '100',
      },
      prepare: (booted) =>
        booted.run(['systemd-run', '--unit=vital.service', '/bin/sleep', 'infinity']).then(() => undefined),
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('unitwatch check says OK while nothing watched has failed', async () => {
    const result = await check();
    expect(result.line).toMatch(/^UNITWATCH OK - \d+ units watched, none failed \| failed=0;1;;0 /);
    expect(result.code).toBe(0);
  });

  it('ignores excluded units, and check does not count them', async () => {
    await instance.run(['systemd-run', '--unit=ignored-probe.service', '/bin/false']);
    await sleep(1500);
    expect(smtp.mailsAbout('ignored-probe.service')).toHaveLength(0);
    expect((await check()).code).toBe(0);
    await instance.run(['systemctl', 'reset-failed', 'ignored-probe.service']);
  });

  it('threads the recovery of a failed unit under its failure, and check warns meanwhile', async () => {
    await instance.writeFile(
      '/etc/systemd/system/api.service',
      '[Service]\nExecStart=/bin/sh -c "test -e /run/api-fixed && exec sleep infinity; echo config broken; exit 1"\n',
    );
    await instance.systemctl('daemon-reload');
    await instance.exec(['systemctl', 'start', 'api.service']);
    await smtp.waitForMailAbout('api.service', 15_000);
    const warning = await check();
    expect(warning.code).toBe(1);
    expect(warning.line).toContain('UNITWATCH WARNING - failed: api.service');

    await instance.writeFile('/run/api-fixed', '');
    await instance.systemctl('start', 'api.service');
    await smtp.waitFor(
      (mails) =>
        mails.some(
          (m) =>
            header(m, 'x-unitwatch-unit') === 'api.service' && header(m, 'x-unitwatch-event') === 'recovery',
        ),
      15_000,
      'api recovery',
    );
    const [failure, recovery] = smtp.mailsAbout('api.service');
    expect(failure?.parsed.subject).toBe('[unitwatch] api.service failed on policyhost (exit-code)');
    expect(recovery?.parsed.subject).toBe('[unitwatch] api.service recovered on policyhost');
    expect(recovery?.parsed.inReplyTo).toBe(failure?.parsed.messageId);
    expect(recovery?.parsed.references).toContain(failure?.parsed.messageId);
  });

  it('reports a critical unit that was stopped cleanly, at high priority, and check says CRITICAL', async () => {
    await instance.systemctl('stop', 'vital.service');
    await smtp.waitForMailAbout('vital.service', 15_000);
    const [mail] = smtp.mailsAbout('vital.service');
    expect(mail?.parsed.subject).toBe('[unitwatch] vital.service is not active on policyhost (inactive)');
    const headerBlock = mail?.raw.split(/\r?\n\r?\n/)[0] ?? '';
    expect(headerBlock).toMatch(/^Importance: high$/im);
    expect(headerBlock).toMatch(/^X-Priority: 1/im);
    const critical = await check();
    expect(critical.code).toBe(2);
    expect(critical.line).toContain('critical not active: vital.service');
  });

  it(`names every one of ${STORM_SIZE} units failing together in a handful of mails`, async () => {
    const before = smtp.mails.length;
    await instance.run([
      'sh',
      '-c',
      `i=1; while [ $i -le ${STORM_SIZE} ]; do systemd-run --no-block --quiet --unit=storm-$i.service /bin/false; i=$((i+1)); done`,
    ]);
    await smtp.waitFor(
      (mails) => stormUnitsNamed(mails).size === STORM_SIZE,
      60_000,
      `all ${STORM_SIZE} storm units named`,
    );
    const stormMails = smtp.mails.slice(before).filter((mail) => stormUnitsNamed([mail]).size > 0);
    expect(stormMails.length).toBeLessThanOrEqual(10);
    const digests = stormMails.filter((mail) => header(mail, 'x-unitwatch-event') === 'digest');
    expect(digests.length).toBeGreaterThanOrEqual(1);
    // The Subject names units, most important first, and counts the rest.
    expect(digests[0]?.parsed.subject).toMatch(
      /^\[unitwatch\] (\S+\.service, )+\S+\.service and \d+ more failed on policyhost$/,
    );
    expect(digests[0]?.parsed.text).toContain('Active: failed (Result: exit-code)');
    process.stdout.write(`storm of ${STORM_SIZE}: ${stormMails.length} mails, ${digests.length} digests\n`);
  });
});
