/**
 * What retrying a failed delivery can do:
 * - `permanent`: this message will never pass (SMTP 5xx, an address sendmail refuses, a malformed
 *   envelope); reported once and not retried.
 * - `operator`: nothing is wrong with the message, but unitwatch's own setup is (a refused login,
 *   a sendmail binary that is missing or misconfigured); retried, logged at error, so one mistake
 *   does not reject every mail.
 * - `transient`: the relay is busy or unreachable (4xx, connection errors, timeouts); retried.
 */
export type MailFailureKind = 'permanent' | 'operator' | 'transient';

/** sysexits.h statuses a sendmail uses to refuse the message itself. */
const SENDMAIL_PERMANENT = new Map([
  [64, 'EX_USAGE'],
  [65, 'EX_DATAERR'],
  [66, 'EX_NOINPUT'],
  [67, 'EX_NOUSER'],
  [68, 'EX_NOHOST'],
  [77, 'EX_NOPERM'],
]);

/** sysexits.h statuses that say the sendmail setup is wrong; 127 is the shell's "not found". */
const SENDMAIL_OPERATOR = new Map([
  [78, 'EX_CONFIG'],
  [126, 'not executable'],
  [127, 'not found'],
]);

/** nodemailer error codes that say the message or its envelope can never be sent as it is. */
const PERMANENT_CODES = new Set(['EENVELOPE', 'EMESSAGE', 'EMAXRECIPIENTS']);
const OPERATOR_CODES = new Set(['EAUTH', 'ENOAUTH', 'EOAUTH2', 'ECONFIG', 'EREQUIRETLS']);

/** The facts a transport's error carries, read without trusting its type. */
export interface MailFailureFacts {
  readonly responseCode: number | undefined;
  readonly code: string | undefined;
  /** A sendmail's exit status, when it exited with one. */
  readonly exitStatus: number | undefined;
  readonly message: string;
}

export function mailFailureFacts(cause: unknown): MailFailureFacts {
  const record = typeof cause === 'object' && cause !== null ? (cause as Record<string, unknown>) : {};
  const message = cause instanceof Error ? cause.message : String(cause);
  const exit = /Sendmail (?:exited with|command not found, process exited with) code (\d+)/.exec(message);
  return {
    responseCode: typeof record.responseCode === 'number' ? record.responseCode : undefined,
    code: typeof record.code === 'string' ? record.code : undefined,
    exitStatus: exit?.[1] === undefined ? undefined : Number(exit[1]),
    message,
  };
}

/** Pure: decides from the error's facts alone. Anything not known to be final is transient. */
export function classifyMailFailure(facts: MailFailureFacts): MailFailureKind {
  if (facts.code !== undefined && OPERATOR_CODES.has(facts.code)) return 'operator';
  if (facts.responseCode === 535 || facts.responseCode === 530) return 'operator';
  if (facts.responseCode !== undefined) return facts.responseCode >= 500 ? 'permanent' : 'transient';
  if (facts.exitStatus !== undefined) {
    if (SENDMAIL_PERMANENT.has(facts.exitStatus)) return 'permanent';
    if (SENDMAIL_OPERATOR.has(facts.exitStatus)) return 'operator';
    return 'transient';
  }
  if (facts.code !== undefined && PERMANENT_CODES.has(facts.code)) return 'permanent';
  // nodemailer's guard against an address sendmail would read as an option.
  if (facts.code === 'ESENDMAIL' && /Invalid envelope addresses/.test(facts.message)) return 'permanent';
  return 'transient';
}

/** The name of a sendmail exit status, e.g. `67 (EX_NOUSER)`. */
export function describeExitStatus(status: number): string {
  const name = SENDMAIL_PERMANENT.get(status) ?? SENDMAIL_OPERATOR.get(status);
  return name === undefined ? String(status) : `${status} (${name})`;
}

/** The mail transport refused or failed a message; `kind` says whether retrying can help. */
export class MailDeliveryError extends Error {
  override readonly name = 'MailDeliveryError';
  readonly transport: string;
  readonly responseCode: number | undefined;
  readonly exitStatus: number | undefined;
  readonly kind: MailFailureKind;

  constructor(transport: string, cause: unknown) {
    const facts = mailFailureFacts(cause);
    const status =
      facts.exitStatus === undefined ? '' : ` (exit status ${describeExitStatus(facts.exitStatus)})`;
    super(`mail delivery through ${transport} failed: ${facts.message}${status}`, { cause });
    this.transport = transport;
    this.responseCode = facts.responseCode;
    this.exitStatus = facts.exitStatus;
    this.kind = classifyMailFailure(facts);
  }

  /** True when this message will never pass: not retried, reported once. */
  get permanent(): boolean {
    return this.kind === 'permanent';
  }
}
