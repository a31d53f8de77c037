import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const LOOP_MS = 60_000;

describe.skipIf(skip !== undefined)('a crash loop in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: { UNITWATCH_HOSTNAME: 'loophost', UNITWATCH_REPEAT_INTERVALS: '5s,10s,20s' },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('crash-looping for a minute yields a bounded number of mails that account for every failure', {
    timeout: 180_000,
  }, async () => {
    await instance.run([
      'systemd-run',
      '--unit=crashloop.service',
      '-p',
      'Restart=always',
      '-p',
      'RestartSec=500ms',
      '-p',
      'StartLimitIntervalSec=0',
      '/bin/sh',
      '-c',
      'sleep 0.5; echo crashing; exit 7',
    ]);
    await new Promise((resolve) => setTimeout(resolve, LOOP_MS));
    // Stop between crashes; a stop is not a failure.
    await instance.systemctl('stop', 'crashloop.service');
    const journal = await instance.journal('-u', 'crashloop.service', '-o', 'cat');
    const crashes = journal
      .split('\n')
      .filter((line) => line.includes("Failed with result 'exit-code'")).length;
    expect(crashes).toBeGreaterThan(20);

    const accounted = () =>
      smtp
        .mailsAbout('crashloop.service')
        .reduce((sum, mail) => sum + Number(mail.parsed.headers.get('x-unitwatch-failures') ?? 0), 0);
    // The last held-back window closes at most one interval (20 s) after the last mail.
    await smtp.waitFor(() => accounted() >= crashes, 45_000, `mails accounting for ${crashes} crashes`);
    const mails = smtp.mailsAbout('crashloop.service');
    process.stdout.write(`crash loop: ${crashes} crashes in ${LOOP_MS / 1000} s → ${mails.length} mails\n`);
    expect(accounted()).toBe(crashes);
    // 0 s, then 5 s, 10 s and 20 s apart: at most 1 + 1 + 1 + ceil((60 + 20 - 15) / 20) mails.
    expect(mails.length).toBeLessThanOrEqual(8);
    const [first, ...repeats] = mails;
    expect(first?.parsed.headers.get('x-unitwatch-failures')).toBe('1');
    expect(repeats.every((mail) => mail.parsed.inReplyTo !== undefined)).toBe(true);
    expect(repeats.some((mail) => /, \d+ times, restarting$/.test(mail.parsed.subject ?? ''))).toBe(true);
  });
});
