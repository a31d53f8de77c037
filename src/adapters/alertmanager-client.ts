import type { PostableAlert } from '../core/alert.js';
import { inlineText } from '../core/text.js';
import { AlertmanagerError } from '../errors/alertmanager-error.js';
import { rootMessage } from '../errors/bus-unreachable-error.js';

export type Fetch = typeof fetch;

/** How much of a refusal's body goes into the error: Alertmanager says what it disliked in one line. */
const BODY_SHOWN_CHARS = 300;

/**
 * Posts alerts to one Alertmanager's `/api/v2/alerts` with Node's fetch, bounded by `timeoutMs`
 * (a peer that accepts the connection and never answers must not hold the feed). Resolves on 2xx;
 * otherwise rejects with an AlertmanagerError saying whether a retry can help.
 */
export async function postAlerts(
  endpoint: string,
  alerts: readonly PostableAlert[],
  options: { readonly fetch: Fetch; readonly timeoutMs: number; readonly signal: AbortSignal },
): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([timeout, options.signal]);
  let response: Response;
  try {
    response = await options.fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(alerts),
      signal,
      // Alertmanager answers the API itself; a redirect would be a proxy's login page.
      redirect: 'error',
    });
  } catch (error) {
    const reason = timeout.aborted ? `no answer within ${options.timeoutMs} ms` : rootMessage(error);
    throw new AlertmanagerError(endpoint, reason, { transient: true, cause: error });
  }
  if (response.ok) {
    // Read the (empty) body so the connection goes back to the pool.
    await response.arrayBuffer().catch(() => undefined);
    return;
  }
  const body = await response.text().catch(() => '');
  const status = response.status;
  throw new AlertmanagerError(
    endpoint,
    `${status} ${response.statusText}${body.trim() === '' ? '' : `: ${inlineText(body, BODY_SHOWN_CHARS)}`}`,
    { status, transient: status >= 500 || status === 429 || status === 408 },
  );
}
