import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();

/**
 * What the NixOS module's `notify = false` renders, as a drop-in over the tested unit: Type=exec,
 * NotifyAccess= back to its default (none) and no watchdog. The daemon runs without $NOTIFY_SOCKET and still mails.
 */
const NOTIFY_OFF = ['[Service]', 'Type=exec', 'NotifyAccess=none', 'WatchdogSec=0', ''].join('\n');

describe.skipIf(skip !== undefined)(
  'unitwatch as Type=exec (NixOS notify = false), in a real systemd',
  () => {
    let instance: SystemdInstance;
    const smtp = new SmtpSink();

    beforeAll(async () => {
      instance = await bootWithUnitwatch(smtp, {
        env: { UNITWATCH_HOSTNAME: 'exechost' },
        prepare: async (booted) => {
          await booted.writeFile('/etc/systemd/system/unitwatch.service.d/50-notify-off.conf', NOTIFY_OFF);
          await booted.systemctl('daemon-reload');
        },
      });
    }, 120_000);

    afterAll(async () => {
      await shutDown(instance, smtp);
    });

    it('starts without notifications and mails a failure', { timeout: 60_000 }, async () => {
      expect(await instance.property('unitwatch.service', 'Type')).toBe('exec');
      expect(await instance.property('unitwatch.service', 'NotifyAccess')).toBe('none');
      await instance.run(['systemd-run', '--unit=exec-mode.service', '/bin/sh', '-c', 'echo broken; exit 2']);
      await smtp.waitForMailAbout('exec-mode.service', 30_000);
      expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');
      expect(await instance.property('unitwatch.service', 'NRestarts')).toBe('0');
      // No $NOTIFY_SOCKET, so no status line: the daemon says nothing about it and does not complain.
      expect(await instance.property('unitwatch.service', 'StatusText')).toBe('');
      const journal = await instance.journal('-u', 'unitwatch.service', '-p', 'warning', '-o', 'cat');
      expect(journal).not.toMatch(/notify/i);
    });
  },
);
