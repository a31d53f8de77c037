import { describe, expect, it } from 'vitest';
import {
  mayNotifyAboutSelf,
  ownUnitFromCgroup,
  SELF_NOTIFICATION_INTERVAL_MS,
} from '../../src/core/own-unit.js';

describe('ownUnitFromCgroup', () => {
  it('finds the service on the unified hierarchy', () => {
    expect(ownUnitFromCgroup('0::/system.slice/unitwatch.service\n')).toBe('unitwatch.service');
  });

  it('finds a template instance', () => {
    expect(ownUnitFromCgroup('0::/system.slice/system-unitwatch.slice/unitwatch@main.service\n')).toBe(
      'unitwatch@main.service',
    );
  });

  it('finds the service from a sub-cgroup of it', () => {
    expect(ownUnitFromCgroup('0::/system.slice/unitwatch.service/worker\n')).toBe('unitwatch.service');
  });

  it('finds the service on a hybrid hierarchy through the name=systemd line', () => {
    const cgroup = ['12:memory:/', '1:name=systemd:/system.slice/unitwatch.service', '0::/', ''].join('\n');
    expect(ownUnitFromCgroup(cgroup)).toBe('unitwatch.service');
  });

  it('is undefined in a login session or a terminal', () => {
    expect(ownUnitFromCgroup('0::/user.slice/user-1000.slice/session-3.scope\n')).toBeUndefined();
  });

  it('is undefined at the root cgroup and for empty input', () => {
    expect(ownUnitFromCgroup('0::/\n')).toBeUndefined();
    expect(ownUnitFromCgroup('')).toBeUndefined();
  });
});

describe('mayNotifyAboutSelf', () => {
  const lastMailMs = 1_700_000_000_000;

  it('allows the first mail about itself', () => {
    expect(mayNotifyAboutSelf(undefined, lastMailMs)).toBe(true);
  });

  it('holds back a second mail within the hour', () => {
    const state = { restartsSeen: 4, lastMailMs };
    expect(mayNotifyAboutSelf(state, lastMailMs + 1)).toBe(false);
    expect(mayNotifyAboutSelf(state, lastMailMs + SELF_NOTIFICATION_INTERVAL_MS - 1)).toBe(false);
  });

  it('allows the next mail once the hour has passed', () => {
    expect(SELF_NOTIFICATION_INTERVAL_MS).toBe(3_600_000);
    expect(
      mayNotifyAboutSelf({ restartsSeen: 4, lastMailMs }, lastMailMs + SELF_NOTIFICATION_INTERVAL_MS),
    ).toBe(true);
  });
});
