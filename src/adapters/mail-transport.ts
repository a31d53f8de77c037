import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Transporter } from 'nodemailer';
import {
  isLoopback,
  type SendmailTransportConfig,
  type SmtpTransportConfig,
  type StartTlsPolicy,
  type StatelessConfig,
} from '../core/config.js';
import type { ComposedMail } from '../core/message.js';
import { explainSmtpError } from '../core/smtp-errors.js';
import { ConfigError } from '../errors/config-error.js';
import { MailDeliveryError } from '../errors/mail-error.js';
import { readSecretFile } from './secret-file.js';

export interface DeliveryReceipt {
  readonly accepted: readonly string[];
  /** The server's final answer, e.g. `250 OK: queued as …`. */
  readonly response: string;
}

export interface MailSender {
  send(mail: ComposedMail): Promise<DeliveryReceipt>;
}

/** Reads the SMTP password once at start-up, from the configured file or the systemd credential. */
export async function readSmtpPassword(
  transport: SmtpTransportConfig | SendmailTransportConfig | undefined,
): Promise<string | undefined> {
  if (transport === undefined || transport.kind !== 'smtp' || transport.passwordFile === undefined)
    return undefined;
  return readSecretFile({
    file: transport.passwordFile,
    source: transport.passwordSource,
    variable: 'UNITWATCH_SMTP_PASSWORD_FILE',
    credential: 'smtp-password',
    nixosOption: 'services.unitwatch.smtpPasswordFile',
    credentialRequired: true,
  });
}

/**
 * Reads UNITWATCH_SMTP_CA_FILE (PEM) at start-up; the CAs in it are trusted besides Node's
 * defaults. Synchronous: one small file, read once before the first connection.
 */
export function readSmtpCaFile(
  transport: SmtpTransportConfig | SendmailTransportConfig | undefined,
): string | undefined {
  if (transport === undefined || transport.kind !== 'smtp' || transport.caFile === undefined)
    return undefined;
  let pem: string;
  try {
    pem = readFileSync(transport.caFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError([
      { key: 'UNITWATCH_SMTP_CA_FILE', message: `cannot read ${transport.caFile} (${code})` },
    ]);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError([
      {
        key: 'UNITWATCH_SMTP_CA_FILE',
        message: `${transport.caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
      },
    ]);
  }
  return pem;
}

/** The configuration MailTransport reads: who, from where, and how. */
export type MailConfig = Pick<StatelessConfig, 'from' | 'to' | 'hostname'> & {
  readonly transport: SmtpTransportConfig | SendmailTransportConfig;
};

/**
 * Sends composed mail over SMTP (pooled, so a storm reuses one warm connection) or through a
 * sendmail binary. Every failure becomes a MailDeliveryError that says whether retrying can help.
 * nodemailer is imported at the first send, not at start: its import cost some 40 ms of the
 * daemon's start-up, which a start that mails nothing need not pay (docs/benchmarks.md).
 */
export class MailTransport implements MailSender {
  readonly #config: MailConfig;
  readonly #password: string | undefined;
  /** What start() read (UNITWATCH_SMTP_CA_FILE): set once started, until stop(). */
  #started: { readonly ca: string | undefined } | undefined;
  /** nodemailer imported and the transporter made, at the first send after start(). */
  #transporter: Promise<Transporter> | undefined;

  constructor(config: MailConfig, password: string | undefined) {
    this.#config = config;
    this.#password = password;
  }

  get description(): string {
    const transport = this.#config.transport;
    return transport.kind === 'smtp' ? transport.url : `sendmail ${transport.path}`;
  }

  /** Throws ConfigError when UNITWATCH_SMTP_CA_FILE cannot be read: that is a start-up error still. */
  start(): void {
    this.#started = { ca: readSmtpCaFile(this.#config.transport) };
  }

  stop(): void {
    const transporter = this.#transporter;
    this.#started = undefined;
    this.#transporter = undefined;
    // Closed once made when a first send is still importing nodemailer, as a made one is at once.
    void transporter?.then(
      (made) => made.close(),
      () => undefined,
    );
  }

  async send(mail: ComposedMail): Promise<DeliveryReceipt> {
    if (this.#started === undefined)
      throw new MailDeliveryError(this.description, new Error('transport not started'));
    try {
      const transporter = await this.#open();
      const info = await transporter.sendMail({
        from: this.#config.from,
        to: [...this.#config.to],
        subject: mail.subject,
        text: mail.text,
        messageId: mail.messageId,
        headers: mail.headers,
        textEncoding: 'quoted-printable',
      });
      return { accepted: (info.accepted ?? []).map(String), response: String(info.response ?? '') };
    } catch (error) {
      throw new MailDeliveryError(
        this.description,
        explained(error, explainSmtpError(error, this.#config.transport)),
      );
    }
  }

  /** The one transporter of this start, made at the first send; concurrent sends share it. */
  #open(): Promise<Transporter> {
    const started = this.#started;
    if (started === undefined) return Promise.reject(new Error('transport stopped'));
    this.#transporter ??= import('nodemailer').then(({ default: nodemailer }) => {
      const transport = this.#config.transport;
      return transport.kind === 'smtp'
        ? nodemailer.createTransport({
            host: transport.host,
            port: transport.port,
            secure: transport.secure,
            // Credentials never cross an unencrypted connection; parseConfig makes startTls
            // `require` whenever there is a user, and this holds even for a Config built by hand.
            requireTLS:
              !transport.secure && (transport.user !== undefined || startTlsOf(transport) === 'require'),
            tls: {
              rejectUnauthorized: true,
              minVersion: 'TLSv1.2',
              ...(started.ca === undefined ? {} : { ca: [...rootCertificates, started.ca] }),
            },
            ...(transport.user === undefined
              ? {}
              : { auth: { user: transport.user, pass: this.#password ?? '' } }),
            pool: true,
            maxConnections: 2,
            connectionTimeout: 15_000,
            greetingTimeout: 15_000,
            socketTimeout: 30_000,
            name: this.#config.hostname,
          })
        : nodemailer.createTransport({ sendmail: true, path: transport.path, newline: 'unix' });
    });
    const opening = this.#transporter;
    // A failed import is not kept: the next send, a retry, tries again.
    opening.catch(() => {
      if (this.#transporter === opening) this.#transporter = undefined;
    });
    return opening;
  }
}

/**
 * A Config built by hand without the field (test/fixtures/outbox-writer.mjs predates it) gets the
 * default parseConfig would give it: required unless the relay is on loopback.
 */
function startTlsOf(transport: SmtpTransportConfig): StartTlsPolicy {
  const policy: StartTlsPolicy | undefined = transport.startTls;
  return policy ?? (isLoopback(transport.host) ? 'opportunistic' : 'require');
}

/**
 * The cause MailDeliveryError is built from, with the explanation in front of the transport's own
 * words. Keeps `code`, `command` and `response`; keeps `responseCode` only when the answer is about
 * the message: a refused STARTTLS (ETLS) is a connection problem that a fixed relay or setting
 * cures without touching the mail, so it must not read as a permanent 5xx for that mail.
 */
function explained(error: unknown, explanation: string | undefined): unknown {
  if (explanation === undefined) return error;
  const original = error instanceof Error ? error.message : String(error);
  const wrapped = new Error(`${explanation} (${original})`, { cause: error });
  if (typeof error === 'object' && error !== null) {
    const fields = error as Record<string, unknown>;
    for (const key of ['code', 'command', 'response'] as const) {
      if (fields[key] !== undefined) Object.assign(wrapped, { [key]: fields[key] });
    }
    if (fields.code !== 'ETLS' && typeof fields.responseCode === 'number') {
      Object.assign(wrapped, { responseCode: fields.responseCode });
    }
  }
  return wrapped;
}
