import { readFile } from 'node:fs/promises';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config, SendmailTransportConfig, SmtpTransportConfig } from '../core/config.js';
import type { ComposedMail } from '../core/message.js';
import { ConfigError } from '../errors/config-error.js';
import { MailDeliveryError } from '../errors/mail-error.js';

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
  transport: SmtpTransportConfig | SendmailTransportConfig,
): Promise<string | undefined> {
  if (transport.kind !== 'smtp' || transport.passwordFile === undefined) return undefined;
  try {
    return (await readFile(transport.passwordFile, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError([
      {
        key: 'UNITWATCH_SMTP_PASSWORD_FILE',
        message: `cannot read ${transport.passwordFile} (${code ?? String(error)})`,
      },
    ]);
  }
}

/**
 * Sends composed mail over SMTP (pooled, so a storm reuses one warm connection) or through a
 * sendmail binary. Every failure becomes a MailDeliveryError that says whether retrying can help.
 */
export class MailTransport implements MailSender {
  readonly #config: Config;
  readonly #password: string | undefined;
  #transporter: Transporter | undefined;

  constructor(config: Config, password: string | undefined) {
    this.#config = config;
    this.#password = password;
  }

  get description(): string {
    const transport = this.#config.transport;
    return transport.kind === 'smtp' ? transport.url : `sendmail ${transport.path}`;
  }

  start(): void {
    const transport = this.#config.transport;
    this.#transporter =
      transport.kind === 'smtp'
        ? nodemailer.createTransport({
            host: transport.host,
            port: transport.port,
            secure: transport.secure,
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
  }

  stop(): void {
    this.#transporter?.close();
    this.#transporter = undefined;
  }

  async send(mail: ComposedMail): Promise<DeliveryReceipt> {
    const transporter = this.#transporter;
    if (transporter === undefined)
      throw new MailDeliveryError(this.description, new Error('transport not started'));
    try {
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
      throw new MailDeliveryError(this.description, error);
    }
  }
}
