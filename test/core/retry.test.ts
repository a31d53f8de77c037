import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, nextAttemptDelayMs } from '../../src/core/retry.js';

describe('nextAttemptDelayMs', () => {
  it('waits at least the base delay, even when random() returns 0', () => {
    expect(nextAttemptDelayMs(1, () => 0)).toBe(DEFAULT_RETRY.baseMs);
    expect(nextAttemptDelayMs(12, () => 0)).toBe(DEFAULT_RETRY.baseMs);
  });

  it('doubles the ceiling with each failure in a row: 4 s, 8 s, 16 s, …', () => {
    const ceilings = [1, 2, 3, 4, 5].map((attempt) => nextAttemptDelayMs(attempt, () => 1));
    expect(ceilings).toEqual([4_000, 8_000, 16_000, 32_000, 64_000]);
  });

  it('never waits longer than the cap, however many attempts failed', () => {
    expect(nextAttemptDelayMs(9, () => 1)).toBe(600_000);
    expect(nextAttemptDelayMs(10_000, () => 0.999)).toBeLessThanOrEqual(600_000);
    expect(nextAttemptDelayMs(Number.POSITIVE_INFINITY, () => 1)).toBe(600_000);
  });

  it('spreads the delay uniformly between the base and the ceiling', () => {
    expect(nextAttemptDelayMs(3, () => 0.5)).toBe(9_000);
    expect(nextAttemptDelayMs(3, () => 0.25)).toBe(5_500);
  });

  it('grows on average: the expected delay rises with each failure until the cap', () => {
    const draws = Array.from({ length: 101 }, (_, index) => index / 101);
    const mean = (attempt: number) =>
      draws.reduce((sum, draw) => sum + nextAttemptDelayMs(attempt, () => draw), 0) / draws.length;
    const means = [1, 2, 3, 4, 5, 6, 7, 8].map(mean);
    for (let index = 1; index < means.length; index++) {
      expect(means[index]).toBeGreaterThan(means[index - 1] ?? Number.POSITIVE_INFINITY);
    }
  });

  it('treats a first call (attempt 0, below, or NaN) like the first failure', () => {
    expect(nextAttemptDelayMs(0, () => 1)).toBe(4_000);
    expect(nextAttemptDelayMs(Number.NaN, () => 1)).toBe(4_000);
    expect(nextAttemptDelayMs(-3, () => 1)).toBe(4_000);
  });

  it('tolerates a random source outside [0, 1)', () => {
    expect(nextAttemptDelayMs(2, () => 7)).toBe(8_000);
    expect(nextAttemptDelayMs(2, () => -1)).toBe(2_000);
    expect(nextAttemptDelayMs(2, () => Number.NaN)).toBe(2_000);
  });

  it('takes its base and cap from the options', () => {
    expect(nextAttemptDelayMs(1, () => 1, { baseMs: 100, capMs: 150 })).toBe(150);
    expect(nextAttemptDelayMs(1, () => 1, { baseMs: 100, capMs: 50 })).toBe(100);
  });
});
