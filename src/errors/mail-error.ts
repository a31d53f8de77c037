/** The mail transport refused or failed a message; `permanent` is true for SMTP 5xx answers. */
export class MailDeliveryError extends Error {
  override readonly name = 'MailDeliveryError';
  readonly transport: string;
  readonly responseCode: number | undefined;
  readonly permanent: boolean;

  constructor(transport: string, cause: unknown) {
    const responseCode =
      typeof cause === 'object' &&
      cause !== null &&
      'responseCode' in cause &&
      typeof cause.responseCode === 'number'
        ? cause.responseCode
        : undefined;
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`mail delivery through ${transport} failed: ${detail}`, { cause });
    this.transport = transport;
    this.responseCode = responseCode;
    this.permanent = responseCode !== undefined && responseCode >= 500;
  }
}
