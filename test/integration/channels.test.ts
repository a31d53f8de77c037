import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '../../src/core/notification.js';
import { verifySignature } from '../../src/core/webhook-signature.js';
import { HttpSink, type ReceivedRequest } from '../harness/http-sink.js';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, SystemdInstance } from '../harness/systemd-instance.js';
import {
  bootWithUnitwatch,
  installUnitwatch,
  shutDown,
  startUnitwatch,
  unitwatchCommand,
} from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const SECRET = 'webhook secret from a systemd credential';
const SECRET_SOURCE = '/etc/unitwatch/webhook-secret';
const MAIL_WAIT_MS = 20_000;
/** The webhook's retries back off from 2 s; after an outage of a few seconds it is tried again within ~20 s. */
const CATCH_UP_WAIT_MS = 45_000;

function aboutUnit(unit: string): (request: ReceivedRequest) => boolean {
  return (request) => request.status === 200 && (JSON.parse(request.body) as Notification).unit === unit;
}

describe.skipIf(skip !== undefined)('mail and a webhook from the hardened service in a real systemd', () => {
  let instance: SystemdInstance | undefined;
  const smtp = new SmtpSink();
  const http = new HttpSink();

  beforeAll(async () => {
    await http.start();
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'testhost',
        UNITWATCH_STORM_THRESHOLD: '100',
        // Loopback: plain http is allowed without UNITWATCH_WEBHOOK_ALLOW_HTTP.
        UNITWATCH_WEBHOOK_URL: http.url('/hooks/unitwatch'),
      },
      extraService: { LoadCredential: [`webhook-secret:${SECRET_SOURCE}`] },
      prepare: (box) => box.writeFile(SECRET_SOURCE, `${SECRET}\n`, '0600'),
    });
  });

  afterAll(async () => {
    await shutDown(instance, smtp);
    await http.stop();
  });

  it('sends a failed unit to the SMTP server and, signed, to the webhook', { timeout: 60_000 }, async () => {
    const box = instance as SystemdInstance;
    await box.run([
      'systemd-run',
      '--unit=both-channels.service',
      '/bin/sh',
      '-c',
      'echo "both: gave up"; exit 4',
    ]);
    await smtp.waitForMailAbout('both-channels.service', MAIL_WAIT_MS);
    await http.waitFor(
      (requests) => requests.some(aboutUnit('both-channels.service')),
      MAIL_WAIT_MS,
      'the webhook',
    );
    const request = http.requests.find(aboutUnit('both-channels.service'));
    const timestamp = String(request?.headers['x-unitwatch-timestamp']);
    const signature = String(request?.headers['x-unitwatch-signature']);
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature(SECRET, timestamp, request?.body ?? '', signature)).toBe(true);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(120);

    const notification = JSON.parse(request?.body ?? '{}') as Notification;
    const [mail] = smtp.mailsAbout('both-channels.service');
    expect(notification).toMatchObject({
      schema: 1,
      event: 'failed',
      host: 'testhost',
      unit: 'both-channels.service',
      critical: false,
      failures: 1,
      title: 'both-channels.service failed on testhost (exit-code)',
    });
    // The same notification on both channels: one id, one invocation.
    expect(notification.id).toBe(mail?.parsed.messageId);
    const [unit] = notification.units;
    expect(unit?.invocation_id).toBe(mail?.parsed.headers.get('x-unitwatch-invocation'));
    expect(unit?.exit).toEqual({ code: 'exited', status: 4, text: 'exited with status 4' });
    expect(unit?.journal?.join('\n')).toContain('both: gave up');
    expect(Date.parse(unit?.failed_at ?? '')).not.toBeNaN();
  });

  it('mails at once while the webhook receiver is down, and the webhook catches up when it is back', {
    timeout: 90_000,
  }, async () => {
    const box = instance as SystemdInstance;
    const port = http.port;
    await http.stop();
    await box.run(['systemd-run', '--unit=hook-down.service', '/bin/sh', '-c', 'exit 5']);
    // The barrier: the mail arrives while nothing listens on the webhook's port.
    await smtp.waitForMailAbout('hook-down.service', MAIL_WAIT_MS);
    expect(http.requests.some(aboutUnit('hook-down.service'))).toBe(false);
    // `unitwatch status` names the queue that waits: the webhook's, not mail's.
    const status = await unitwatchCommand(box, 'status', '--json');
    const channels = (
      JSON.parse(status.stdout) as { outbox: { channels: { channel: string; pending: number }[] } }
    ).outbox.channels;
    expect(channels.find((channel) => channel.channel === 'mail')?.pending).toBe(0);
    expect(channels.find((channel) => channel.channel.startsWith('webhook http://127.0.0.1'))?.pending).toBe(
      1,
    );
    await http.start(port);
    await http.waitFor(
      (requests) => requests.some(aboutUnit('hook-down.service')),
      CATCH_UP_WAIT_MS,
      'the webhook to catch up',
    );
    const request = http.requests.find(aboutUnit('hook-down.service'));
    const timestamp = String(request?.headers['x-unitwatch-timestamp']);
    expect(
      verifySignature(
        SECRET,
        timestamp,
        request?.body ?? '',
        String(request?.headers['x-unitwatch-signature']),
      ),
    ).toBe(true);
    expect(smtp.mailsAbout('hook-down.service')).toHaveLength(1);
    const journal = await box.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(journal).toContain(`notification not sent yet to webhook http://127.0.0.1:${port}/…`);
    expect(journal).not.toContain('/hooks/unitwatch');
    expect(journal).not.toContain(SECRET);
  });
});

describe.skipIf(skip !== undefined)('ntfy only, no mail at all, from the hardened service', () => {
  let instance: SystemdInstance | undefined;
  const http = new HttpSink();
  const TOKEN = 'tk_integration_token';
  const TOKEN_SOURCE = '/etc/unitwatch/ntfy-token';

  beforeAll(async () => {
    await http.start();
    instance = await SystemdInstance.boot();
    await instance.writeFile(TOKEN_SOURCE, `${TOKEN}\n`, '0600');
    await installUnitwatch(
      instance,
      {
        UNITWATCH_HOSTNAME: 'testhost',
        UNITWATCH_WEBHOOK_URL: http.url('/unitwatch-topic'),
        UNITWATCH_WEBHOOK_FORMAT: 'ntfy',
        UNITWATCH_CRITICAL: 'ntfy-critical.service',
      },
      { LoadCredential: [`ntfy-token:${TOKEN_SOURCE}`] },
    );
    await startUnitwatch(instance);
  });

  afterAll(async () => {
    await instance?.poweroff();
    await http.stop();
  });

  it('publishes a critical unit’s failure as urgent Markdown with the token from the credential', {
    timeout: 60_000,
  }, async () => {
    const box = instance as SystemdInstance;
    await box.run([
      'systemd-run',
      '--unit=ntfy-critical.service',
      '/bin/sh',
      '-c',
      'echo "@channel down"; exit 2',
    ]);
    await http.waitFor(
      (requests) =>
        requests.some((request) => String(request.headers.title).startsWith('ntfy-critical.service failed')),
      MAIL_WAIT_MS,
      'the ntfy publish',
    );
    const request = http.requests.find((candidate) =>
      String(candidate.headers.title).startsWith('ntfy-critical.service'),
    );
    expect(request?.path).toBe('/unitwatch-topic');
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request?.headers.priority).toBe('urgent');
    expect(request?.headers.markdown).toBe('yes');
    expect(request?.headers.tags).toBe('rotating_light,failed,testhost');
    expect(request?.body).toContain('• `ntfy-critical.service` failed: `exit-code`');
    // The unit's own line, defused: it pings nobody.
    expect(request?.body).toContain('@\u200bchannel down');
    const journal = await box.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(journal).toContain(
      `webhook http://127.0.0.1:${http.port}/… sent: [unitwatch] ntfy-critical.service failed on testhost`,
    );
    expect(journal).not.toContain(TOKEN);
  });
});
