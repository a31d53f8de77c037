import { type ComposedMail, formatTimestamp } from './message.js';
import { cleanLine } from './text.js';

/** What one refused notification was, as listed in a later report. */
export interface RejectedNotification {
  readonly createdMs: number;
  readonly unit: string;
  readonly event: string;
  readonly subject: string;
  /** The transport's answer, e.g. `550 5.1.1 no such user` or `Sendmail exited with code 67`. */
  readonly answer: string;
}

/** One line per refused notification: when, which unit, which mail, and what the transport said. */
export function rejectedSummary(rejected: RejectedNotification): string {
  const answer = cleanLine(rejected.answer, 160);
  return cleanLine(
    `${formatTimestamp(rejected.createdMs)}  ${rejected.unit} (${rejected.event}): "${rejected.subject}" → ${answer}`,
    400,
  );
}

/**
 * Tells the operator, in a mail that did get through, which earlier notifications the transport
 * refused for good. Placed before the signature: mail clients fold away what follows `-- `. Pure.
 */
export function appendRejectedReport(
  mail: ComposedMail,
  summaries: readonly string[],
  total: number,
  directory: string,
): ComposedMail {
  const lines = [
    `── ${total} earlier notification${total === 1 ? ' was' : 's were'} refused for good (a 5xx answer, or an address sendmail refused) and not retried:`,
    ...summaries.map((summary) => `  ${summary}`),
  ];
  if (total > summaries.length) lines.push(`  … and ${total - summaries.length} more`);
  lines.push(`Kept in ${directory} (files with a "rejected" field).`);
  const report = lines.join('\n');
  const signature = mail.text.lastIndexOf('\n-- \n');
  const text =
    signature === -1
      ? `${mail.text.replace(/\n*$/, '\n\n')}${report}\n`
      : `${mail.text.slice(0, signature).replace(/\n*$/, '')}\n\n${report}\n${mail.text.slice(signature)}`;
  return {
    ...mail,
    text,
    headers: { ...mail.headers, 'X-Unitwatch-Rejected-Earlier': String(total) },
  };
}
