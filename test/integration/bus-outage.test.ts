import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown } from '../harness/unitwatch-service.js';
import { waitUntil } from '../harness/wait.js';

const skip = integrationSkipReason();
const WAIT_MS = 45_000;

function eventsAbout(smtp: SmtpSink, unit: string): string[] {
  return smtp.mailsAbout(unit).map((mail) => String(mail.parsed.headers.get('x-unitwatch-event') ?? ''));
}

/**
 * Issue 11: transitions while the system bus is down reach unitwatch as nothing at all. The
 * catch-up after the reconnect must find them: a recovery, and a crash that Restart= hid.
 */
describe.skipIf(skip !== undefined)('transitions during a bus outage in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'outagehost',
        UNITWATCH_RECOVERY_GRACE: '1s',
        UNITWATCH_STORM_THRESHOLD: '100',
      },
      prepare: async (booted) => {
        await booted.writeFile(
          '/etc/systemd/system/crasher.service',
          "[Service]\nRestart=always\nRestartSec=1\nExecStart=/bin/sh -c 'while [ ! -e /run/crash-now ]; do sleep 0.1; done; rm /run/crash-now; exit 3'\n",
        );
        await booted.writeFile(
          '/etc/systemd/system/comeback.service',
          "[Service]\nExecStart=/bin/sh -c 'test ! -e /run/comeback-fails || exit 5; exec sleep infinity'\n",
        );
        await booted.run(['touch', '/run/comeback-fails']);
        await booted.systemctl('daemon-reload');
        await booted.systemctl('start', 'crasher.service');
      },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('mails the recovery and the hidden crash that happened while the bus was down', {
    timeout: 150_000,
  }, async () => {
    await instance.exec(['systemctl', 'start', 'comeback.service']);
    await smtp.waitForMailAbout('comeback.service', WAIT_MS);
    // Everything unitwatch has to learn about crasher.service before the outage: its restart count.
    await waitUntil(
      'unitwatch to log the failure of comeback.service',
      async () =>
        (await instance.journal('-u', 'unitwatch.service', '-o', 'cat')).includes('comeback.service'),
      WAIT_MS,
    );

    await instance.systemctl('stop', 'dbus.socket', 'dbus.service');
    await instance.run(['touch', '/run/crash-now']);
    await waitUntil(
      'crasher.service to be restarted',
      async () => {
        const restarts = Number(await instance.property('crasher.service', 'NRestarts'));
        return restarts >= 1 && (await instance.property('crasher.service', 'ActiveState')) === 'active';
      },
      WAIT_MS,
    );
    await instance.run(['rm', '/run/comeback-fails']);
    await instance.systemctl('start', 'comeback.service');
    await instance.systemctl('start', 'dbus.socket', 'dbus.service');

    await smtp.waitForMailAbout('crasher.service', WAIT_MS);
    await smtp.waitFor(
      () => eventsAbout(smtp, 'comeback.service').includes('recovery'),
      WAIT_MS,
      'the recovery of comeback.service',
    );
    expect(eventsAbout(smtp, 'crasher.service')).toEqual(['crash-restart']);
    expect(eventsAbout(smtp, 'comeback.service')).toEqual(['failed', 'recovery']);
    expect(smtp.mailsAbout('crasher.service')[0]?.parsed.subject).toContain('crasher.service crashed');
  });
});
