import { describe, expect, it } from 'vitest';
import { ReportedFailures } from '../../src/core/reported-failures.js';

const key = (unit: string, invocation: string) => `${unit}\u0000${invocation}\u0000failed\u0000exit-code`;

describe('ReportedFailures', () => {
  it('remembers a key once', () => {
    const reported = new ReportedFailures(10);
    expect(reported.add(key('a.service', '1'))).toEqual([]);
    expect(reported.add(key('a.service', '1'))).toEqual([]);
    expect(reported.has(key('a.service', '1'))).toBe(true);
    expect(reported.size).toBe(1);
  });

  it('pushes out the oldest keys beyond its bound and says which', () => {
    const reported = new ReportedFailures(2);
    reported.add(key('a.service', '1'));
    reported.add(key('b.service', '1'));
    expect(reported.add(key('c.service', '1'))).toEqual([key('a.service', '1')]);
    expect(reported.has(key('a.service', '1'))).toBe(false);
    expect([...reported.units()].sort()).toEqual(['b.service', 'c.service']);
  });

  it('forgets every key of one unit and only those', () => {
    const reported = new ReportedFailures(10);
    reported.add(key('a.service', '1'));
    reported.add(key('a.service', '2'));
    reported.add(key('ab.service', '1'));
    expect(reported.forgetUnit('a.service').sort()).toEqual([key('a.service', '1'), key('a.service', '2')]);
    expect(reported.size).toBe(1);
    expect(reported.has(key('ab.service', '1'))).toBe(true);
    expect([...reported.units()]).toEqual(['ab.service']);
    expect(reported.forgetUnit('a.service')).toEqual([]);
  });
});
