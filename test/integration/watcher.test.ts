import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const MAIL_WAIT_MS = 15_000;

function bodyOf(mail: ReceivedMail | undefined): string {
  return mail?.parsed.text ?? '';
}

describe.skipIf(skip !== undefined)('unitwatch in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, {
      env: {
        UNITWATCH_HOSTNAME: 'testhost',
        UNITWATCH_STATUS_LINES: '50',
        UNITWATCH_LOG_LEVEL: 'debug',
        // This file checks one mail per failure; storms and backoff are policy.test.ts's subject.
        UNITWATCH_STORM_THRESHOLD: '100',
      },
    });
  });

  afterAll(() => shutDown(instance, smtp));

  it('mails a failed unit once, with its status and its own last output lines', async () => {
    await instance.run([
      'systemd-run',
      '--unit=payments.service',
      '--description=Payments API',
      '/bin/sh',
      '-c',
      'echo "payments: cannot bind 0.0.0.0:8443 marker-7f3a"; exit 3',
    ]);
    await smtp.waitForMailAbout('payments.service', MAIL_WAIT_MS);
    const failedAtUs = Number(await instance.property('payments.service', 'InactiveEnterTimestampMonotonic'));
    expect(failedAtUs).toBeGreaterThan(0);
    // Repeated signals for the same invocation must not produce a second mail.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const mails = smtp.mailsAbout('payments.service');
    expect(mails).toHaveLength(1);
    const [mail] = mails;
    expect(mail?.parsed.subject).toBe('[unitwatch] payments.service failed on testhost (exit-code)');
    expect(mail?.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail?.parsed.headers.get('x-unitwatch-host')).toBe('testhost');
    expect(mail?.parsed.messageId).toMatch(/^<[0-9a-f-]{36}@testhost>$/);
    expect(mail?.envelopeTo).toEqual(['ops@example.org']);
    const body = bodyOf(mail);
    expect(body).toContain('Exit:       exited with status 3');
    expect(body).toContain('Payments API');
    expect(body).toContain('── status: systemctl status --full -- payments.service');
    expect(body).toContain('Active: failed (Result: exit-code)');
    expect(body).toContain('cannot bind 0.0.0.0:8443 marker-7f3a');
  });

  it('shows, under the headline, the one line a unit wrote to stderr before dying at once', async () => {
    // journald may store such a line after systemd's own "Failed with result": the mail must wait for it.
    await instance.run([
      'systemd-run',
      '--unit=nginx-bind.service',
      '/bin/sh',
      '-c',
      'echo "nginx: [emerg] bind() to 0.0.0.0:443 failed (98: Address already in use)" >&2; exit 1',
    ]);
    await smtp.waitForMailAbout('nginx-bind.service', MAIL_WAIT_MS);
    const body = bodyOf(smtp.mailsAbout('nginx-bind.service')[0]);
    expect(body).toContain(
      'It said: nginx: [emerg] bind() to 0.0.0.0:443 failed (98: Address already in use)',
    );
    expect(body).toMatch(/sh\[\d+\]: nginx: \[emerg\] bind\(\)/);
  });

  it('reports a crash that Restart= hides behind an automatic restart', async () => {
    await instance.run([
      'systemd-run',
      '--unit=flaky-worker.service',
      '-p',
      'Restart=on-failure',
      '-p',
      'RestartSec=1h',
      '/bin/sh',
      '-c',
      'echo "worker: segfault marker-91c2"; kill -11 $$$$',
    ]);
    await smtp.waitForMailAbout('flaky-worker.service', MAIL_WAIT_MS);
    expect(await instance.property('flaky-worker.service', 'SubState')).toBe('auto-restart');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // systemd passes the unit through `failed` on its way to auto-restart: still one crash, one mail.
    expect(smtp.mailsAbout('flaky-worker.service')).toHaveLength(1);
    const [mail] = smtp.mailsAbout('flaky-worker.service');
    expect(mail?.parsed.subject).toBe(
      '[unitwatch] flaky-worker.service crashed on testhost (signal), restarting',
    );
    expect(mail?.parsed.headers.get('x-unitwatch-event')).toBe('crash-restart');
    expect(bodyOf(mail)).toContain('killed, signal 11 (SIGSEGV)');
    expect(bodyOf(mail)).toContain('marker-91c2');
  });

  it('watches template instances and oneshots loaded after start-up', async () => {
    await instance.writeFile(
      '/etc/systemd/system/backup@.service',
      '[Unit]\nDescription=Backup of %i\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "echo backup of %i failed: disk full marker-b4ck; exit 1"\n',
    );
    await instance.systemctl('daemon-reload');
    await instance.exec(['systemctl', 'start', 'backup@home.service']);
    await smtp.waitForMailAbout('backup@home.service', MAIL_WAIT_MS);
    const [mail] = smtp.mailsAbout('backup@home.service');
    expect(mail?.parsed.subject).toBe('[unitwatch] backup@home.service failed on testhost (exit-code)');
    expect(bodyOf(mail)).toContain('Backup of home');
    expect(bodyOf(mail)).toContain('/etc/systemd/system/backup@.service');
    expect(bodyOf(mail)).toContain('marker-b4ck');
  });

  it('reads the result of a unit that is not a service from its own interface', async () => {
    await instance.writeFile(
      '/etc/systemd/system/intake.socket',
      '[Unit]\nDescription=Intake socket\n[Socket]\nListenStream=/run/intake.sock\nExecStartPre=/bin/sh -c "echo intake: port table corrupt marker-50ck; exit 4"\n',
    );
    // systemd refuses to start a socket whose service does not exist, before it could fail.
    await instance.writeFile('/etc/systemd/system/intake.service', '[Service]\nExecStart=/bin/true\n');
    await instance.systemctl('daemon-reload');
    await instance.exec(['systemctl', 'start', 'intake.socket']);
    await smtp.waitForMailAbout('intake.socket', MAIL_WAIT_MS);
    const [mail] = smtp.mailsAbout('intake.socket');
    expect(mail?.parsed.subject).toBe('[unitwatch] intake.socket failed on testhost (exit-code)');
    expect(bodyOf(mail)).toContain('Intake socket');
    expect(bodyOf(mail)).toContain('marker-50ck');
  });
  it('handles a unit whose name starts with a dash', async () => {
    await instance.run(['systemd-run', '--unit=-dash.service', '/bin/false']);
    await smtp.waitForMailAbout('-dash.service', MAIL_WAIT_MS);
    const [mail] = smtp.mailsAbout('-dash.service');
    expect(bodyOf(mail)).toContain('Active: failed (Result: exit-code)');
    expect(bodyOf(mail)).toContain("systemctl status --full -- '-dash.service'");
  });

  it('keeps a description carrying CR/LF and header text out of the headers', async () => {
    const evil = 'innocent\r\nBcc: victim@example.com\r\nSubject: pwned\r\n\r\nforged body';
    await instance.run(['systemd-run', '--unit=evil.service', `--description=${evil}`, '/bin/false']);
    await smtp.waitForMailAbout('evil.service', MAIL_WAIT_MS);
    const [mail] = smtp.mailsAbout('evil.service');
    expect(mail?.envelopeTo).toEqual(['ops@example.org']);
    expect(mail?.parsed.headers.has('bcc')).toBe(false);
    expect(mail?.parsed.subject).toBe('[unitwatch] evil.service failed on testhost (exit-code)');
    // The status output in the body may show those lines; the header block must not.
    const headerBlock = mail?.raw.split(/\r?\n\r?\n/)[0] ?? '';
    expect(headerBlock).toContain('X-Unitwatch-Unit: evil.service');
    expect(headerBlock).not.toMatch(/^Bcc:/im);
    expect(headerBlock).not.toMatch(/^Subject: pwned/im);
    expect(bodyOf(mail)).toContain('innocent Bcc: victim@example.com Subject: pwned forged body');
  });

  it('caps the journal output of a chatty unit and says so', async () => {
    // 50 journal lines of 3,000 characters (under journald's 4,096-byte field display limit): some
    // 150 KB of journal for the invocation, against the 64K of UNITWATCH_OUTPUT_LIMIT.
    await instance.run([
      'systemd-run',
      '--unit=chatty.service',
      '/bin/sh',
      '-c',
      'i=0; while [ $i -lt 50 ]; do head -c 3000 /dev/zero | tr "\\0" x; echo; i=$((i+1)); done; exit 2',
    ]);
    await smtp.waitForMailAbout('chatty.service', MAIL_WAIT_MS);
    const [mail] = smtp.mailsAbout('chatty.service');
    expect(mail?.raw.length).toBeLessThan(400_000);
    expect(bodyOf(mail)).toMatch(/\[… \d+ more bytes cut by UNITWATCH_OUTPUT_LIMIT\]/);
    expect(bodyOf(mail)).toContain('exited with status 2');
  });

  it('runs as the hardened unit of nix/service.json, with an exposure at or below 1.5', async () => {
    expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');
    expect(await instance.property('unitwatch.service', 'User')).toBe('unitwatch');
    expect(await instance.property('unitwatch.service', 'DynamicUser')).toBe('yes');
    const analysis = await instance.exec(['systemd-analyze', 'security', '--no-pager', 'unitwatch.service']);
    const exposure = Number(
      /Overall exposure level for unitwatch\.service: (\d+\.\d)/.exec(analysis.stdout)?.[1],
    );
    process.stdout.write(`systemd-analyze security: exposure ${exposure}\n`);
    expect(exposure).toBeGreaterThan(0);
    expect(exposure).toBeLessThanOrEqual(1.5);
    // Under that hardening it still wrote its state: the reported failures survive restarts.
    const state = await instance.run(['ls', '/var/lib/private/unitwatch']);
    expect(state).toMatch(/^state\.\d+\.log$/m);
  });

  it('logs one line per notification to the journal, and only problems at warning and above', async () => {
    const info = await instance.journal('-u', 'unitwatch.service', '-o', 'cat');
    const sent = info
      .split('\n')
      .filter((line) => line.includes('mail sent') && line.includes('payments.service'));
    expect(sent).toHaveLength(1);
    // Text, not JSON: the message first, then the facts as key=value.
    expect(sent[0]).toMatch(
      /^mail sent: .*payments\.service.* \(250 after 1 attempt\) unit=payments\.service/,
    );
    expect(sent[0]).toContain('to=ops@example.org');
    expect(sent[0]).not.toContain('{');
    const warnings = await instance.journal('-u', 'unitwatch.service', '-o', 'cat', '-p', 'warning');
    expect(warnings).toContain('unit=payments.service');
    expect(warnings).not.toContain('mail sent');
  });
});
