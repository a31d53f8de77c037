import type { WebhookFormat, WebhookUrl } from '../core/config.js';
import type { ComposedMail } from '../core/message.js';
import type { Notification } from '../core/notification.js';
import { cleanLine } from '../core/text.js';
import { renderWebhookRequest } from '../core/webhook-format.js';
import { signatureHeaders } from '../core/webhook-signature.js';
import { parseRetryAfter, WebhookDeliveryError } from '../errors/webhook-error.js';
import type { DeliveryChannel, DeliveryFailure } from './delivery-channel.js';
import type { DeliveryReceipt } from './mail-transport.js';

export interface WebhookSenderOptions {
  readonly target: WebhookUrl;
  readonly format: WebhookFormat;
  /** Signs every request (X-Unitwatch-Signature) when set. */
  readonly secret: string | undefined;
  /** ntfy's access token, sent as `Authorization: Bearer`. */
  readonly token: string | undefined;
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Injected for specs; Node's built-in fetch otherwise. */
  readonly fetch?: typeof fetch;
}

/** Characters of a refusing answer's body kept in the error: enough for `{"error":"invalid_payload"}`. */
const ANSWER_CHARS = 300;

/**
 * One webhook URL as a delivery channel: POSTs the structured notification in the configured
 * format, signed when a secret is configured, and turns every outcome that is not a 2xx into a
 * WebhookDeliveryError that says whether retrying can help. Redirects are not followed: a 3xx is
 * a permanent refusal, so a notification (and its token) never goes to a host nobody configured.
 */
export class WebhookSender implements DeliveryChannel {
  readonly #options: WebhookSenderOptions;
  readonly usesNotification = true;

  constructor(options: WebhookSenderOptions) {
    this.#options = options;
  }

  get label(): string {
    return `webhook ${this.#options.target.display}`;
  }

  async send(item: ComposedMail): Promise<DeliveryReceipt> {
    const { target, format, secret, token, timeoutMs, now } = this.#options;
    const request = renderWebhookRequest(item.notification ?? fallbackNotification(item, now()), format);
    const headers: Record<string, string> = {
      ...request.headers,
      'User-Agent': 'unitwatch',
      ...(secret === undefined ? {} : signatureHeaders(secret, request.body, now())),
      ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
    };
    let response: Response;
    try {
      response = await (this.#options.fetch ?? fetch)(target.url, {
        method: 'POST',
        headers,
        body: request.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new WebhookDeliveryError(target.display, networkProblem(error, timeoutMs), { cause: error });
    }
    const answer = await response.text().catch(() => '');
    const status = `${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`;
    if (response.status >= 200 && response.status < 300) {
      return { accepted: [target.display], response: status };
    }
    const said = cleanLine(answer, ANSWER_CHARS);
    throw new WebhookDeliveryError(target.display, `answered ${status}${said === '' ? '' : `: ${said}`}`, {
      status: response.status,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), now()),
    });
  }

  classify(error: unknown): DeliveryFailure {
    const refusedBy = `the ${this.label}`;
    if (!(error instanceof WebhookDeliveryError)) return { kind: 'transient', refusedBy };
    return {
      kind: error.kind,
      responseCode: error.status,
      retryAfterMs: error.retryAfterMs,
      refusedBy,
      ...(error.kind === 'operator'
        ? {
            fix: `${refusedBy} refused unitwatch's credentials (${error.status}); fix ${
              this.#options.format === 'ntfy'
                ? 'UNITWATCH_NTFY_TOKEN_FILE'
                : 'the URL or UNITWATCH_WEBHOOK_SECRET_FILE'
            }`,
          }
        : {}),
    };
  }

  /** The earlier refusals ride along in the notification's `rejected_earlier`. */
  withRejectedReport(item: ComposedMail, summaries: readonly string[]): ComposedMail {
    const notification = item.notification ?? fallbackNotification(item, this.#options.now());
    return { ...item, notification: { ...notification, rejected_earlier: summaries } };
  }
}

/** For a mail that was queued without its structured form: the facts the headers carry. */
function fallbackNotification(item: ComposedMail, nowMs: number): Notification {
  const event = item.headers['X-Unitwatch-Event'];
  const unit = item.headers['X-Unitwatch-Unit'];
  return {
    schema: 1,
    event: event === 'recovery' || event === 'digest' || event === 'stopped-by-hand' ? event : 'failed',
    host: item.headers['X-Unitwatch-Host'] ?? '',
    time: new Date(nowMs).toISOString(),
    title: item.subject.replace(/^\[unitwatch\] /, ''),
    ...(unit === undefined ? {} : { unit }),
    units: [],
    critical: item.headers.Importance === 'high',
    failures: Number(item.headers['X-Unitwatch-Failures'] ?? '0') || 0,
    id: item.messageId,
    incident_id: item.headers.References?.split(' ')[0] ?? item.messageId,
    notes: [],
  };
}

function networkProblem(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  const cause = error instanceof Error ? (error.cause as NodeJS.ErrnoException | undefined) : undefined;
  const detail = cause?.code ?? (cause instanceof Error ? cause.message : undefined);
  const message = error instanceof Error ? error.message : String(error);
  return cleanLine(detail === undefined ? message : `${message} (${detail})`, 300);
}
