import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseSize } from '../../src/core/units-of-measure.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['10sec', 10_000],
    ['5min', 300_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h 30min', 5_400_000],
    ['  2s  ', 2000],
    ['1.5s', 1500],
    ['0', 0],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('reads a bare number as seconds, as systemd does', () => {
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration('0.25')).toBe(250);
  });

  it.each(['', 'soon', '10 s', '-1s', '10S', '5 parsecs', '1h30'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [250, '250ms'],
    [0, '0s'],
    [10_000, '10s'],
    [90_000, '90s'],
    [300_000, '5min'],
    [7_200_000, '2h'],
  ])('writes %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('writes what parseDuration reads back to the same value', () => {
    for (const ms of [1, 250, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

describe('parseSize', () => {
  it.each([
    ['65536', 65_536],
    ['64K', 65_536],
    ['1M', 1_048_576],
    [' 2K ', 2048],
    ['0', 0],
  ])('reads %j as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', '1G', '64k', '1.5M', '-1', '64 K', 'lots'])('rejects %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});
