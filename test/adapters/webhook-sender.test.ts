import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebhookSender, type WebhookSenderOptions } from '../../src/adapters/webhook-sender.js';
import type { WebhookFormat } from '../../src/core/config.js';
import type { ComposedMail } from '../../src/core/message.js';
import type { Notification } from '../../src/core/notification.js';
import { verifySignature } from '../../src/core/webhook-signature.js';
import { WebhookDeliveryError } from '../../src/errors/webhook-error.js';
import { HttpSink } from '../harness/http-sink.js';

const NOW = Date.UTC(2026, 11, 2, 1, 0, 0);

const notification: Notification = {
  schema: 1,
  event: 'failed',
  host: 'web1',
  time: '2026-12-02T01:00:00.000Z',
  title: 'nginx.service failed on web1 (exit-code)',
  unit: 'nginx.service',
  units: [],
  critical: true,
  failures: 1,
  id: '<id@web1>',
  incident_id: '<id@web1>',
  notes: [],
};

const item: ComposedMail = {
  subject: '[unitwatch] nginx.service failed on web1 (exit-code)',
  text: 'nginx.service failed on web1.\n',
  headers: { 'X-Unitwatch-Event': 'failed' },
  messageId: '<id@web1>',
  notification,
};

describe('WebhookSender against a real HTTP server on loopback', () => {
  let sink: HttpSink;

  beforeEach(() => {
    sink = new HttpSink();
    return sink.start();
  });
  afterEach(() => sink.stop());

  function sender(
    overrides: Partial<WebhookSenderOptions> = {},
    format: WebhookFormat = 'json',
  ): WebhookSender {
    return new WebhookSender({
      target: { url: sink.url('/hook/t0ken'), display: `http://127.0.0.1:${sink.port}/…` },
      format,
      secret: undefined,
      token: undefined,
      timeoutMs: 2000,
      now: () => NOW,
      ...overrides,
    });
  }

  async function failureOf(send: Promise<unknown>): Promise<WebhookDeliveryError> {
    const error = await send.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(WebhookDeliveryError);
    return error as WebhookDeliveryError;
  }

  it('POSTs the notification as JSON, signed over the exact body bytes', async () => {
    const receipt = await sender({ secret: 'hook-secret' }).send(item);
    expect(receipt.response).toBe('200 OK');
    const [request] = sink.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/hook/t0ken');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request?.body ?? '')).toEqual(notification);
    const timestamp = String(request?.headers['x-unitwatch-timestamp']);
    expect(timestamp).toBe(String(NOW / 1000));
    const signature = String(request?.headers['x-unitwatch-signature']);
    expect(verifySignature('hook-secret', timestamp, request?.body ?? '', signature)).toBe(true);
    expect(verifySignature('wrong', timestamp, request?.body ?? '', signature)).toBe(false);
  });

  it('sends no signature without a secret, and the ntfy token as a bearer with ntfy headers', async () => {
    await sender({ token: 'tk_abc' }, 'ntfy').send(item);
    const [request] = sink.requests;
    expect(request?.headers['x-unitwatch-signature']).toBeUndefined();
    expect(request?.headers.authorization).toBe('Bearer tk_abc');
    expect(request?.headers.title).toBe('nginx.service failed on web1 (exit-code)');
    expect(request?.headers.priority).toBe('urgent');
    expect(request?.headers.markdown).toBe('yes');
  });

  it('takes a 503 as transient, with the Retry-After it asked for', async () => {
    sink.script.push({ status: 503, headers: { 'Retry-After': '7' }, body: 'maintenance' });
    const error = await failureOf(sender().send(item));
    expect(error.kind).toBe('transient');
    expect(error.retryAfterMs).toBe(7000);
    expect(error.message).toBe(
      `webhook http://127.0.0.1:${sink.port}/… failed: answered 503 Service Unavailable: maintenance`,
    );
    expect(sender().classify(error)).toMatchObject({
      kind: 'transient',
      responseCode: 503,
      retryAfterMs: 7000,
    });
  });

  it('takes a 429 as transient and a 400 or 404 as permanent, a 401 as the operator’s to fix', async () => {
    sink.script.push(
      { status: 429 },
      { status: 400, body: '{"error":"invalid_payload"}' },
      { status: 404 },
      { status: 401 },
    );
    expect((await failureOf(sender().send(item))).kind).toBe('transient');
    const bad = await failureOf(sender().send(item));
    expect(bad.kind).toBe('permanent');
    expect(bad.message).toContain('answered 400 Bad Request: {"error":"invalid_payload"}');
    expect((await failureOf(sender().send(item))).kind).toBe('permanent');
    const login = await failureOf(sender({}, 'ntfy').send(item));
    expect(sender({}, 'ntfy').classify(login)).toMatchObject({ kind: 'operator' });
    expect(sender({}, 'ntfy').classify(login).fix).toContain('UNITWATCH_NTFY_TOKEN_FILE');
  });

  it('does not follow a redirect: the token stays with the configured host', async () => {
    sink.script.push({ status: 302, headers: { Location: 'http://127.0.0.2:1/elsewhere' } });
    const error = await failureOf(sender().send(item));
    expect(error.kind).toBe('permanent');
    expect(sink.requests).toHaveLength(1);
  });

  it('takes a closed port and a receiver that never answers as transient', async () => {
    const port = sink.port;
    sink.script.push({ status: 200, hang: true });
    const hung = await failureOf(sender({ timeoutMs: 300 }).send(item));
    expect(hung.kind).toBe('transient');
    expect(hung.message).toContain('no answer within 300 ms');
    await sink.stop();
    const refused = await failureOf(sender().send(item));
    expect(refused.kind).toBe('transient');
    expect(refused.message).toContain('ECONNREFUSED');
    await sink.start(port);
  });
});
