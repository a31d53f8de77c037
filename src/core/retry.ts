/**
 * When to try a mail again after the server refused it, timed out or answered 4xx.
 *
 * Exponential, because an outage that lasted one minute will probably last a few more and each
 * attempt costs the relay a connection; capped, because once the relay is back a notification that
 * waits longer than ~10 minutes has lost most of its value. Jittered ("full jitter" over
 * [base, ceiling]), because a fleet of hosts running unitwatch usually shares one relay: when it
 * comes back, hosts whose backoff grew in lockstep would all reconnect in the same second and knock it
 * over again. The floor at `baseMs` keeps an unlucky `random()` near 0 from turning into a hot loop.
 */
export interface RetryOptions {
  /** The shortest delay, and the scale of the exponential. */
  readonly baseMs: number;
  /** No delay is longer than this, however many attempts failed. */
  readonly capMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { baseMs: 2_000, capMs: 10 * 60_000 };

/**
 * The delay before the next attempt, given how many attempts in a row have failed so far (1 after
 * the first failure). The ceiling doubles with each failure: 4 s, 8 s, 16 s, … up to `capMs`; the
 * delay is drawn uniformly between `baseMs` and that ceiling. Pure: `random` is injected and returns
 * a number in [0, 1), like Math.random.
 */
export function nextAttemptDelayMs(
  attempt: number,
  random: () => number,
  options: RetryOptions = DEFAULT_RETRY,
): number {
  const { baseMs, capMs } = options;
  const failures = Number.isNaN(attempt) ? 1 : Math.max(1, Math.floor(attempt));
  // 2 ** failures overflows to Infinity for huge counts, which Math.min turns back into the cap.
  const ceiling = Math.max(baseMs, Math.min(capMs, baseMs * 2 ** failures));
  const draw = random();
  const unit = Number.isFinite(draw) ? Math.min(Math.max(draw, 0), 1) : 0;
  return Math.round(baseMs + unit * (ceiling - baseMs));
}
