import { mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../harness/smtp-sink.js';
import { integrationSkipReason, SystemdInstance } from '../harness/systemd-instance.js';
import { ENV_FILE, installUnitwatch, startUnitwatch } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const USER = 'alerts';
const PASSWORD = 'correct horse battery staple';
const CREDENTIAL_SOURCE = '/etc/unitwatch/smtp-password';
const RELAY_CA = '/etc/unitwatch/relay-ca.pem';

interface AuthedMail {
  readonly user: string | undefined;
  readonly raw: string;
}

/**
 * A loopback SMTP server that offers STARTTLS with a throw-away certificate (a user in the URL makes
 * unitwatch require it), takes mail only after AUTH with the one right password, and keeps who sent
 * each message.
 */
class AuthSink {
  readonly mails: AuthedMail[] = [];
  readonly attempts: { user: string; passwordMatched: boolean }[] = [];
  readonly certificate = selfSignedCertificate(mkdtempSync(join(tmpdir(), 'unitwatch-relay-')));
  readonly #server = new SMTPServer({
    authOptional: false,
    key: this.certificate.key,
    cert: this.certificate.cert,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth: (auth, _session, callback) => {
      const passwordMatched = auth.username === USER && auth.password === PASSWORD;
      this.attempts.push({ user: auth.username ?? '', passwordMatched });
      if (passwordMatched) callback(null, { user: USER });
      else callback(Object.assign(new Error('bad credentials'), { responseCode: 535 }));
    },
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        this.mails.push({ user: session.user as string | undefined, raw: Buffer.concat(chunks).toString() });
        callback();
      });
    },
  });
  port = 0;

  async start(): Promise<void> {
    this.#server.on('error', () => {
      // resets from the client side are not the test's concern
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async waitForMailAbout(unit: string, timeoutMs: number): Promise<AuthedMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const mail = this.mails.find((candidate) => candidate.raw.includes(`X-Unitwatch-Unit: ${unit}`));
      if (mail !== undefined) return mail;
      if (Date.now() > deadline) {
        throw new Error(
          `no mail about ${unit} within ${timeoutMs} ms; AUTH attempts: ${JSON.stringify(this.attempts)}`,
        );
      }
      await sleep(50);
    }
  }
}

describe('docs/install-debian.md', () => {
  it('tells users the same LoadCredential= line this file tests', () => {
    const doc = readFileSync(new URL('../../docs/install-debian.md', import.meta.url), 'utf8');
    expect(doc).toContain(`LoadCredential=smtp-password:${CREDENTIAL_SOURCE}`);
  });
});

describe.skipIf(skip !== undefined)('the SMTP password as a systemd credential (LoadCredential=)', () => {
  let instance: SystemdInstance | undefined;
  const smtp = new AuthSink();

  beforeAll(async () => {
    await smtp.start();
    instance = await SystemdInstance.boot();
    await instance.writeFile(CREDENTIAL_SOURCE, `${PASSWORD}\n`, '0600');
    await instance.writeFile(RELAY_CA, smtp.certificate.cert, '0644');
    await installUnitwatch(
      instance,
      {
        UNITWATCH_TO: 'ops@example.org',
        UNITWATCH_SMTP_URL: `smtp://${USER}@127.0.0.1:${smtp.port}`,
        UNITWATCH_SMTP_CA_FILE: RELAY_CA,
      },
      { LoadCredential: [`smtp-password:${CREDENTIAL_SOURCE}`] },
    );
    await startUnitwatch(instance);
  });

  afterAll(async () => {
    await instance?.poweroff();
    await smtp.stop();
  });

  it('reaches the hardened service on a ramfs under /run/credentials, readable though the source is root-only', async () => {
    const box = instance as SystemdInstance;
    // Without a shared / in the test boot, (sd-mkdcreds)'s mount never reached PID 1: an empty directory.
    expect(
      (await box.run(['findmnt', '-n', '-o', 'FSTYPE', '/run/credentials/unitwatch.service'])).trim(),
    ).toBe('ramfs');
    expect((await box.run(['ls', '/run/credentials/unitwatch.service'])).trim()).toBe('smtp-password');
    expect((await box.run(['stat', '-c', '%a %U', CREDENTIAL_SOURCE])).trim()).toBe('600 root');
  });

  it('authenticates with the password from the credential and delivers the failure mail', {
    timeout: 60_000,
  }, async () => {
    const box = instance as SystemdInstance;
    await box.run(['systemd-run', '--unit=cred-demo.service', '--property=Restart=no', 'false']);
    const mail = await smtp.waitForMailAbout('cred-demo.service', 30_000);
    expect(mail.user).toBe(USER);
    expect(smtp.attempts.length).toBeGreaterThan(0);
    expect(smtp.attempts.every((attempt) => attempt.passwordMatched)).toBe(true);
  });

  it('keeps the password out of the unit environment, the env file and the journal', async () => {
    const box = instance as SystemdInstance;
    const shown = await box.run(['systemctl', 'show', 'unitwatch.service']);
    const envFile = await box.run(['cat', ENV_FILE]);
    const journal = await box.journal('-u', 'unitwatch.service', '-o', 'cat');
    for (const text of [shown, envFile, journal]) expect(text).not.toContain(PASSWORD);
  });
});
