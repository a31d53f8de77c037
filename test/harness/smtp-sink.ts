import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface ReceivedMail {
  readonly parsed: ParsedMail;
  readonly raw: string;
  readonly envelopeTo: readonly string[];
  readonly receivedAtMs: number;
}

/**
 * A real SMTP server on loopback that keeps every accepted message, parsed. The systemd instance
 * shares the host's network, so unitwatch inside reaches it at 127.0.0.1.
 */
export class SmtpSink {
  readonly mails: ReceivedMail[] = [];
  /** When set, every message is answered with this SMTP code instead of accepted (fault injection). */
  refuseWith: number | undefined;
  /** Messages answered with `refuseWith`. */
  refused = 0;
  #server: SMTPServer | undefined;
  #port = 0;

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.#port}`;
  }

  /** Listens on `port` (0 picks one); starting again after stop() on the old port models an outage. */
  async start(options: Partial<SMTPServerOptions> = {}, port = 0): Promise<void> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      size: 50 * 1024 * 1024,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          if (this.refuseWith !== undefined) {
            this.refused++;
            callback(Object.assign(new Error('refused by the test'), { responseCode: this.refuseWith }));
            return;
          }
          const raw = Buffer.concat(chunks).toString('utf8');
          const envelopeTo = session.envelope.rcptTo.map((rcpt) => rcpt.address);
          simpleParser(raw).then(
            (parsed) => {
              this.mails.push({ parsed, raw, envelopeTo, receivedAtMs: Date.now() });
              callback();
            },
            (error: Error) => callback(error),
          );
        });
      },
      ...options,
    });
    server.on('error', () => {
      // client resets during fault tests are expected
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.#port = (server.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  mailsAbout(unit: string): ReceivedMail[] {
    return this.mails.filter((mail) => mail.parsed.headers.get('x-unitwatch-unit') === unit);
  }

  /** Waits until at least one mail about `unit` has arrived. */
  waitForMailAbout(unit: string, timeoutMs: number): Promise<void> {
    return this.waitFor(() => this.mailsAbout(unit).length > 0, timeoutMs, `a mail about ${unit}`);
  }

  /** Waits until `predicate` holds for the mails received so far; throws with what did arrive. */
  async waitFor(
    predicate: (mails: readonly ReceivedMail[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.mails)) {
      if (Date.now() > deadline) {
        const subjects = this.mails.map((mail) => mail.parsed.subject).join('\n  ');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received:\n  ${subjects}`);
      }
      await sleep(25);
    }
  }
}

export interface SelfSignedCertificate {
  readonly key: string;
  readonly cert: string;
  /** The certificate as a PEM file, to name in UNITWATCH_SMTP_CA_FILE. */
  readonly certFile: string;
}

/**
 * A fresh self-signed certificate for 127.0.0.1 (key and PEM written into `directory`), made by
 * openssl, for a sink started with `{ disabledCommands: [], key, cert }` (STARTTLS) or `secure: true`.
 */
export function selfSignedCertificate(directory: string): SelfSignedCertificate {
  const keyFile = join(directory, 'relay-key.pem');
  const certFile = join(directory, 'relay-cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}
