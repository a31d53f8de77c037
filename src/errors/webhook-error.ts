/**
 * A webhook request that did not end in a 2xx. `kind` says whether retrying can help:
 * - `transient`: a network error, a timeout, a 5xx, 408 or 429 (the far end is down or busy);
 * - `operator`: 401 or 403, unitwatch's own setup (the token, the secret) is wrong: retried, logged
 *   at error, so fixing the token delivers what waited;
 * - `permanent`: any other 4xx or a 3xx (redirects are not followed), this request will never be accepted (a bad URL path, a payload the
 *   receiver refuses); kept, reported, not retried.
 */
export type WebhookFailureKind = 'permanent' | 'operator' | 'transient';

const OPERATOR_STATUSES = new Set([401, 403]);
const TRANSIENT_4XX = new Set([408, 425, 429]);

/** Pure: the failure kind of an HTTP status, or of no status at all (the request never got an answer). */
export function classifyHttpStatus(status: number | undefined): WebhookFailureKind {
  if (status === undefined || status >= 500 || TRANSIENT_4XX.has(status)) return 'transient';
  if (OPERATOR_STATUSES.has(status)) return 'operator';
  // A redirect is not followed (the token would go to a host nobody configured): fix the URL.
  return status >= 300 ? 'permanent' : 'transient';
}

/**
 * Retry-After as milliseconds from `nowMs`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export class WebhookDeliveryError extends Error {
  override readonly name = 'WebhookDeliveryError';
  /** Scheme and host only: the path may hold a token. */
  readonly target: string;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly kind: WebhookFailureKind;

  constructor(
    target: string,
    problem: string,
    options: { status?: number; retryAfterMs?: number | undefined; cause?: unknown } = {},
  ) {
    super(
      `webhook ${target} failed: ${problem}`,
      options.cause === undefined ? {} : { cause: options.cause },
    );
    this.target = target;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.kind = classifyHttpStatus(options.status);
  }
}
