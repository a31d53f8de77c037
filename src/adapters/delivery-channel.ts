import type { ComposedMail } from '../core/message.js';
import { appendRejectedReport } from '../core/rejection-report.js';
import { cleanLine } from '../core/text.js';
import { MailDeliveryError } from '../errors/mail-error.js';
import type { DeliveryReceipt, MailSender } from './mail-transport.js';

/**
 * What the Outbox needs from one channel (mail, a webhook): send one queued notification, and say
 * of a failure whether retrying can help. The queue, its files, the backoff and the report of
 * permanent refusals are the Outbox's, the same for every channel.
 */
export interface DeliveryChannel {
  /** First word of the log lines: `mail sent: …`, `webhook https://hooks.example.org/… sent: …`. */
  readonly label: string;
  /** Whether it sends the structured notification; only then is it stored in the queue with the mail. */
  readonly usesNotification: boolean;
  send(notification: ComposedMail): Promise<DeliveryReceipt>;
  classify(error: unknown): DeliveryFailure;
  /**
   * The notification carrying the list of earlier permanent refusals of this channel; absent when
   * the channel cannot carry one (they are then only logged and kept on disk).
   */
  withRejectedReport?(
    notification: ComposedMail,
    summaries: readonly string[],
    pending: number,
    directory: string,
  ): ComposedMail;
}

export interface DeliveryFailure {
  /**
   * `permanent`: this notification will never pass; kept on disk, reported, not retried.
   * `operator`: unitwatch's own setup is wrong (a refused login); retried, logged at error.
   * `transient`: the far end is busy or unreachable; retried with backoff.
   */
  readonly kind: 'permanent' | 'operator' | 'transient';
  /** SMTP reply code or HTTP status, for the log and the rejected entry. */
  readonly responseCode?: number | undefined;
  /** How long the far end asked us to wait (HTTP Retry-After); the backoff is never shorter. */
  readonly retryAfterMs?: number | undefined;
  /** Who refused, for the REJECTED line: `the mail server`, `sendmail`, `the webhook`. */
  readonly refusedBy: string;
  /** For `operator`: the sentence that says what to fix. */
  readonly fix?: string;
}

/** Mail as a channel: the MailTransport, with SMTP's and sendmail's classification. */
export function mailChannel(sender: MailSender): DeliveryChannel {
  return {
    label: 'mail',
    // The mail's text says it all; storing the structured copy would double each entry on disk.
    usesNotification: false,
    send: (mail) => sender.send(mail),
    classify: classifyMailDelivery,
    withRejectedReport: (mail, summaries, pending, directory) =>
      appendRejectedReport(mail, summaries, pending, directory),
  };
}

function classifyMailDelivery(error: unknown): DeliveryFailure {
  if (!(error instanceof MailDeliveryError)) return { kind: 'transient', refusedBy: 'the mail server' };
  const bySendmail = error.exitStatus !== undefined;
  return {
    kind: error.kind,
    responseCode: error.responseCode,
    refusedBy: bySendmail ? 'sendmail' : 'the mail server',
    ...(error.kind === 'operator'
      ? {
          fix: bySendmail
            ? `the sendmail command failed because of its setup (${cleanLine(error.message, 500)}); fix UNITWATCH_SENDMAIL`
            : "the mail server refused unitwatch's login; fix the SMTP credentials",
        }
      : {}),
  };
}
