import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The HMAC-SHA256 signature of one webhook request, over the exact bytes sent: `TIMESTAMP.BODY`,
 * where TIMESTAMP is the `X-Unitwatch-Timestamp` header (Unix seconds). The timestamp is signed so
 * a receiver can refuse a replayed request (docs/channels.md: reject one older than 5 minutes).
 * Pure: the secret and the clock are passed in.
 */

export const SIGNATURE_HEADER = 'X-Unitwatch-Signature';
export const TIMESTAMP_HEADER = 'X-Unitwatch-Timestamp';

export function signatureHeaders(secret: string, body: string, nowMs: number): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `sha256=${sign(secret, timestamp, body)}` };
}

export function sign(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/** What a receiver does: recompute, compare in constant time. For the docs' example and the specs. */
export function verifySignature(secret: string, timestamp: string, body: string, header: string): boolean {
  const expected = Buffer.from(`sha256=${sign(secret, timestamp, body)}`);
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
