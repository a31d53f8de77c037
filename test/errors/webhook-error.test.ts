import { describe, expect, it } from 'vitest';
import { classifyHttpStatus, parseRetryAfter, WebhookDeliveryError } from '../../src/errors/webhook-error.js';

describe('webhook failure classification', () => {
  it.each([
    [undefined, 'transient'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
    [429, 'transient'],
    [408, 'transient'],
    [401, 'operator'],
    [403, 'operator'],
    [400, 'permanent'],
    [404, 'permanent'],
    [410, 'permanent'],
    [413, 'permanent'],
    [301, 'permanent'],
  ] as const)('status %s is %s', (status, kind) => {
    expect(classifyHttpStatus(status)).toBe(kind);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.UTC(2026, 11, 2, 1, 0, 0);
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 01:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('names the target, never its path, and carries the status', () => {
    const error = new WebhookDeliveryError('https://hooks.example.org/…', 'answered 503', { status: 503 });
    expect(error.message).toBe('webhook https://hooks.example.org/… failed: answered 503');
    expect(error.kind).toBe('transient');
    expect(error.name).toBe('WebhookDeliveryError');
  });
});
