import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SMTPServerOptions } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type MailConfig,
  MailTransport,
  readSmtpCaFile,
  readSmtpPassword,
} from '../../src/adapters/mail-transport.js';
import { checkStateDirectory } from '../../src/adapters/state-directory.js';
import { type ConfigContext, parseConfigFor, type StatelessConfig } from '../../src/core/config.js';
import type { ComposedMail } from '../../src/core/message.js';
import { explainSmtpError } from '../../src/core/smtp-errors.js';
import { ConfigError } from '../../src/errors/config-error.js';
import { MailDeliveryError } from '../../src/errors/mail-error.js';
import { type SelfSignedCertificate, SmtpSink, selfSignedCertificate } from '../harness/smtp-sink.js';

const context: ConfigContext = {
  hostname: 'web1',
  systemdStateDirectory: undefined,
  credentialsDirectory: undefined,
};

const MAIL: ComposedMail = {
  subject: '[unitwatch] test',
  text: 'body\n',
  headers: { 'Auto-Submitted': 'auto-generated' },
  messageId: '<tls-test@web1>',
};

let folder: string;
let passwordFile: string;
/** A self-signed certificate for 127.0.0.1, made with openssl for this run. */
let cert: SelfSignedCertificate;

/** A configuration with mail as its channel, as MailTransport takes it. */
type MailStatelessConfig = StatelessConfig & MailConfig;

function configFor(env: Record<string, string>): MailStatelessConfig {
  const config = parseConfigFor('test-email', { UNITWATCH_TO: 'ops@example.org', ...env }, context);
  if (config.transport === undefined) throw new Error('mail is not configured');
  return { ...config, transport: config.transport };
}

/** Sends one mail through a real MailTransport and returns the error it failed with, if any. */
async function sendThrough(
  config: MailStatelessConfig,
  password?: string,
): Promise<MailDeliveryError | undefined> {
  const transport = new MailTransport(config, password);
  transport.start();
  try {
    await transport.send(MAIL);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(MailDeliveryError);
    return error as MailDeliveryError;
  } finally {
    transport.stop();
  }
}

interface AuthAttempt {
  readonly username: string | undefined;
  readonly secure: boolean;
}

/** A real smtp-server on loopback that records every AUTH attempt and whether it came over TLS. */
async function sinkRecordingAuth(options: Partial<SMTPServerOptions>): Promise<{
  sink: SmtpSink;
  attempts: AuthAttempt[];
}> {
  const sink = new SmtpSink();
  const attempts: AuthAttempt[] = [];
  await sink.start({
    onAuth: (auth, session, callback) => {
      attempts.push({ username: auth.username, secure: session.secure });
      callback(null, { user: auth.username });
    },
    ...options,
  });
  sinks.push(sink);
  return { sink, attempts };
}

const sinks: SmtpSink[] = [];

beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'unitwatch-transport-'));
  passwordFile = join(folder, 'password');
  writeFileSync(passwordFile, 'sesame-7f3a\n', { mode: 0o600 });
  cert = selfSignedCertificate(folder);
});

afterEach(async () => {
  await Promise.all(sinks.splice(0).map((sink) => sink.stop()));
});

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

describe('MailTransport against a relay that offers AUTH but not STARTTLS (issue 10, item 4)', () => {
  // hideSTARTTLS: not advertised in EHLO; the sink also refuses the command itself.
  const plainRelay = { hideSTARTTLS: true, allowInsecureAuth: true, authOptional: true };

  it('never sends AUTH when the URL names a user, and says STARTTLS is always required then', async () => {
    const { sink, attempts } = await sinkRecordingAuth(plainRelay);
    const config = configFor({
      UNITWATCH_SMTP_URL: `smtp://alerts@127.0.0.1:${sink.port}`,
      UNITWATCH_SMTP_PASSWORD_FILE: passwordFile,
    });
    const password = await readSmtpPassword(config.transport);
    const error = await sendThrough(config, password);
    expect(attempts).toEqual([]);
    expect(sink.mails).toHaveLength(0);
    expect(error?.message).toContain(`the server at 127.0.0.1:${sink.port} does not offer STARTTLS`);
    expect(error?.message).toContain('UNITWATCH_SMTP_URL names a user');
    expect(error?.message).toContain('UNITWATCH_SMTP_STARTTLS');
    expect(error?.message).not.toContain('sesame');
    // A relay fixed to offer STARTTLS cures it without touching the mail: not a permanent failure.
    expect(error?.permanent).toBe(false);
  }, 15_000);

  it('sends nothing with UNITWATCH_SMTP_STARTTLS=require and no user, naming the setting', async () => {
    const { sink } = await sinkRecordingAuth(plainRelay);
    const error = await sendThrough(
      configFor({ UNITWATCH_SMTP_URL: `smtp://127.0.0.1:${sink.port}`, UNITWATCH_SMTP_STARTTLS: 'require' }),
    );
    expect(sink.mails).toHaveLength(0);
    expect(error?.message).toContain('does not offer STARTTLS and UNITWATCH_SMTP_STARTTLS=require');
    expect(error?.message).toContain('UNITWATCH_SMTP_STARTTLS=opportunistic');
  }, 15_000);

  it('sends in the clear to a relay on loopback by default (opportunistic), without AUTH', async () => {
    const { sink, attempts } = await sinkRecordingAuth(plainRelay);
    const error = await sendThrough(configFor({ UNITWATCH_SMTP_URL: `smtp://127.0.0.1:${sink.port}` }));
    expect(error).toBeUndefined();
    expect(sink.mails).toHaveLength(1);
    expect(attempts).toEqual([]);
  }, 15_000);
});

describe('MailTransport and certificates', () => {
  const tlsRelay = () => ({ disabledCommands: [], key: cert.key, cert: cert.cert, authOptional: true });

  it('logs in over STARTTLS and delivers when UNITWATCH_SMTP_CA_FILE names the CA of a self-signed relay', async () => {
    const { sink, attempts } = await sinkRecordingAuth(tlsRelay());
    const config = configFor({
      UNITWATCH_SMTP_URL: `smtp://alerts@127.0.0.1:${sink.port}`,
      UNITWATCH_SMTP_PASSWORD_FILE: passwordFile,
      UNITWATCH_SMTP_CA_FILE: cert.certFile,
    });
    const error = await sendThrough(config, await readSmtpPassword(config.transport));
    expect(error).toBeUndefined();
    expect(attempts).toEqual([{ username: 'alerts', secure: true }]);
    expect(sink.mails).toHaveLength(1);
  }, 15_000);

  it('refuses the same relay without the CA file, saying so in words and sending no password', async () => {
    const { sink, attempts } = await sinkRecordingAuth(tlsRelay());
    const config = configFor({
      UNITWATCH_SMTP_URL: `smtp://alerts@127.0.0.1:${sink.port}`,
      UNITWATCH_SMTP_PASSWORD_FILE: passwordFile,
    });
    const error = await sendThrough(config, await readSmtpPassword(config.transport));
    expect(attempts).toEqual([]);
    expect(sink.mails).toHaveLength(0);
    expect(error?.message).toContain(
      `the certificate of 127.0.0.1:${sink.port} is not signed by a CA this machine trusts`,
    );
    expect(error?.message).toContain('UNITWATCH_SMTP_CA_FILE');
  }, 15_000);

  it('trusts the CA file over smtps:// too', async () => {
    const { sink } = await sinkRecordingAuth({ secure: true, key: cert.key, cert: cert.cert });
    const error = await sendThrough(
      configFor({
        UNITWATCH_SMTP_URL: `smtps://127.0.0.1:${sink.port}`,
        UNITWATCH_SMTP_CA_FILE: cert.certFile,
      }),
    );
    expect(error).toBeUndefined();
    expect(sink.mails).toHaveLength(1);
  }, 15_000);

  it('says a plain server does not speak TLS on connect when smtps:// is used against it', async () => {
    const { sink } = await sinkRecordingAuth({});
    const error = await sendThrough(configFor({ UNITWATCH_SMTP_URL: `smtps://127.0.0.1:${sink.port}` }));
    expect(error?.message).toContain(
      `the server at 127.0.0.1:${sink.port} does not speak TLS on connect; use smtp:// (STARTTLS) for port 587/25`,
    );
  }, 15_000);

  it('refuses to start with an unreadable or non-PEM CA file, naming UNITWATCH_SMTP_CA_FILE', () => {
    const absent = configFor({
      UNITWATCH_SMTP_URL: 'smtps://127.0.0.1:465',
      UNITWATCH_SMTP_CA_FILE: join(folder, 'absent.pem'),
    });
    expect(() => new MailTransport(absent, undefined).start()).toThrow(ConfigError);
    expect(() => readSmtpCaFile(absent.transport)).toThrow(
      `UNITWATCH_SMTP_CA_FILE: cannot read ${join(folder, 'absent.pem')} (ENOENT)`,
    );
    expect(() =>
      readSmtpCaFile(
        configFor({ UNITWATCH_SMTP_URL: 'smtps://127.0.0.1:465', UNITWATCH_SMTP_CA_FILE: passwordFile })
          .transport,
      ),
    ).toThrow('holds no PEM certificate');
  });
});

describe('explainSmtpError', () => {
  const smtp = configFor({ UNITWATCH_SMTP_URL: 'smtp://mail.example.org:465' }).transport;

  it('leaves errors it has nothing to add to alone, and sendmail entirely', () => {
    expect(explainSmtpError(new Error('550 mailbox unavailable'), smtp)).toBeUndefined();
    const sendmail = parseConfigFor(
      'test-email',
      { UNITWATCH_TO: 'root', UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' },
      context,
    );
    expect(explainSmtpError(new Error('wrong version number'), sendmail.transport)).toBeUndefined();
  });

  it('says port 465 wants smtps:// when a plain client waited for a greeting there', () => {
    expect(
      explainSmtpError(Object.assign(new Error('Greeting never received'), { code: 'ETIMEDOUT' }), smtp),
    ).toBe(
      'the server at mail.example.org:465 sent no SMTP greeting: port 465 expects TLS on connect, use smtps://',
    );
  });

  it('reads the codes along the cause chain', () => {
    const cause = Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' });
    expect(explainSmtpError(new Error('Error initiating TLS', { cause }), smtp)).toContain('has expired');
  });
});

describe('readSmtpPassword', () => {
  it('names the credential and how to load it when the credential file is missing', async () => {
    const config = parseConfigFor(
      'test-email',
      { UNITWATCH_TO: 'ops@example.org', UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587' },
      { ...context, credentialsDirectory: folder },
    );
    await expect(readSmtpPassword(config.transport)).rejects.toThrow(
      /the systemd credential smtp-password cannot be read .*ENOENT.*LoadCredential=smtp-password:/,
    );
  });

  it('refuses an empty password file', async () => {
    const empty = join(folder, 'empty');
    writeFileSync(empty, '\n');
    const config = configFor({
      UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
      UNITWATCH_SMTP_PASSWORD_FILE: empty,
    });
    await expect(readSmtpPassword(config.transport)).rejects.toThrow(`${empty} is empty`);
  });
});

describe('checkStateDirectory', () => {
  it('creates a missing directory and leaves no probe behind', async () => {
    const state = join(folder, 'state', 'nested');
    await checkStateDirectory(state);
    expect(existsSync(state)).toBe(true);
    expect(readdirSync(state)).toEqual([]);
  });

  it('names UNITWATCH_STATE_DIRECTORY when the path is a file', async () => {
    const file = join(folder, 'not-a-directory');
    writeFileSync(file, '');
    await expect(checkStateDirectory(file)).rejects.toThrow(
      `UNITWATCH_STATE_DIRECTORY: ${file} is a file, not a directory`,
    );
    await expect(checkStateDirectory(join(file, 'below'))).rejects.toThrow(
      `UNITWATCH_STATE_DIRECTORY: ${join(file, 'below')} is a file (or lies under one), not a directory`,
    );
  });
});
