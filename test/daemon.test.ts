import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from '../src/daemon.js';

describe('reconnect delays', () => {
  it('grow from 250 ms to 10 s without a watchdog', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((attempt) => reconnectDelayMs(attempt, undefined))).toEqual([
      250, 500, 1000, 2000, 5000, 10_000, 10_000, 10_000,
    ]);
  });

  it('stay within a quarter of WatchdogSec=, so several attempts fit before systemd restarts us', () => {
    expect([1, 2, 3, 4, 5].map((attempt) => reconnectDelayMs(attempt, 4000))).toEqual([
      250, 500, 1000, 1000, 1000,
    ]);
    expect(reconnectDelayMs(6, 60_000)).toBe(10_000);
    expect(reconnectDelayMs(1, 100)).toBe(100);
  });
});
