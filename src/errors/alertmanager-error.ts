/**
 * A post to one Alertmanager that did not land. `transient` (unreachable, timed out, 5xx, 429) is
 * retried with backoff; otherwise (another 4xx) Alertmanager refused the alerts themselves, and only
 * the next regular re-post tries again.
 */
export class AlertmanagerError extends Error {
  override readonly name = 'AlertmanagerError';
  readonly url: string;
  /** The HTTP status, undefined when no answer came (refused, reset, timed out). */
  readonly status: number | undefined;
  readonly transient: boolean;
  /** What went wrong, without the URL: `503 Service Unavailable`, `no answer within 10000 ms`. */
  readonly reason: string;

  constructor(
    url: string,
    reason: string,
    options: { status?: number; transient: boolean; cause?: unknown },
  ) {
    super(`${url}: ${reason}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.url = url;
    this.reason = reason;
    this.status = options.status;
    this.transient = options.transient;
  }
}
