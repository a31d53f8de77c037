import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SYSTEM_BUS,
  escapeAddressValue,
  scopeArguments,
  systemManager,
  unescapeAddressValue,
  userManager,
  userStateDirectory,
  userStateDirectoryCandidates,
} from '../../src/core/service-manager.js';

const nothingExists = () => false;
const exists =
  (...paths: string[]) =>
  (path: string) =>
    paths.includes(path);

describe('systemManager', () => {
  it('is PID 1 on the standard system bus, or on DBUS_SYSTEM_BUS_ADDRESS', () => {
    expect(systemManager({})).toEqual({
      scope: 'system',
      busAddress: DEFAULT_SYSTEM_BUS,
      busName: 'system bus',
    });
    expect(systemManager({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/run/other' }).busAddress).toBe(
      'unix:path=/run/other',
    );
  });
});

describe('userManager: which session bus', () => {
  it('takes DBUS_SESSION_BUS_ADDRESS as written, before anything else', () => {
    const manager = userManager(
      {
        DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus,guid=abc',
        XDG_RUNTIME_DIR: '/run/user/1000',
      },
      nothingExists,
    );
    expect(manager).toEqual({
      scope: 'user',
      busAddress: 'unix:path=/run/user/1000/bus,guid=abc',
      busName: 'session bus',
    });
  });

  it('falls back to $XDG_RUNTIME_DIR/bus when that socket exists', () => {
    const manager = userManager({ XDG_RUNTIME_DIR: '/run/user/1000/' }, exists('/run/user/1000/bus'));
    expect(manager).toMatchObject({ scope: 'user', busAddress: 'unix:path=/run/user/1000/bus' });
  });

  it('ignores an empty DBUS_SESSION_BUS_ADDRESS', () => {
    const manager = userManager(
      { DBUS_SESSION_BUS_ADDRESS: ' ', XDG_RUNTIME_DIR: '/run/user/1000' },
      exists('/run/user/1000/bus'),
    );
    expect(manager).toMatchObject({ busAddress: 'unix:path=/run/user/1000/bus' });
  });

  it('escapes a runtime directory that would otherwise split the address', () => {
    const manager = userManager({ XDG_RUNTIME_DIR: '/run/a,b=c d' }, exists('/run/a,b=c d/bus'));
    expect(manager).toMatchObject({ busAddress: 'unix:path=/run/a%2cb%3dc%20d/bus' });
  });

  it('names both places when neither is there', () => {
    const unset = userManager({}, nothingExists);
    expect(unset).toEqual(expect.stringContaining('DBUS_SESSION_BUS_ADDRESS is not set'));
    expect(unset).toEqual(expect.stringContaining('neither is XDG_RUNTIME_DIR'));
    const missing = userManager({ XDG_RUNTIME_DIR: '/run/user/1000' }, nothingExists);
    expect(missing).toEqual(
      expect.stringMatching(
        /^no session bus: DBUS_SESSION_BUS_ADDRESS is not set, and \/run\/user\/1000\/bus \(from XDG_RUNTIME_DIR\) does not exist\. .*dbus-user-session/,
      ),
    );
    expect(userManager({ XDG_RUNTIME_DIR: 'relative' }, () => true)).toEqual(
      expect.stringContaining('XDG_RUNTIME_DIR (relative) is not an absolute path'),
    );
  });
});

describe('escapeAddressValue', () => {
  it('leaves the optionally-escaped bytes alone and escapes the rest as %xx, UTF-8 bytewise', () => {
    expect(escapeAddressValue('/run/user/1000/bus')).toBe('/run/user/1000/bus');
    expect(escapeAddressValue('/home/é;')).toBe('/home/%c3%a9%3b');
  });

  it('is undone by unescapeAddressValue, which also takes upper-case hex and unescaped UTF-8', () => {
    for (const path of ['/run/user/1000/bus', '/home/é;,=x y/bus']) {
      expect(unescapeAddressValue(escapeAddressValue(path))).toBe(path);
    }
    expect(unescapeAddressValue('/run/b%2Cus/é')).toBe('/run/b,us/é');
  });
});

describe('userStateDirectory', () => {
  it('is $XDG_STATE_HOME/unitwatch, else ~/.local/state/unitwatch', () => {
    expect(userStateDirectory({ XDG_STATE_HOME: '/srv/state/', HOME: '/home/a' })).toBe(
      '/srv/state/unitwatch',
    );
    expect(userStateDirectory({ HOME: '/home/a' })).toBe('/home/a/.local/state/unitwatch');
  });

  it('ignores a relative $XDG_STATE_HOME, as the XDG spec says, and has none without a home', () => {
    expect(userStateDirectory({ XDG_STATE_HOME: 'state', HOME: '/home/a' })).toBe(
      '/home/a/.local/state/unitwatch',
    );
    expect(userStateDirectory({})).toBeUndefined();
  });

  it("also looks where systemd 252's StateDirectory= puts a user unit's state ($XDG_CONFIG_HOME)", () => {
    expect(userStateDirectoryCandidates({ HOME: '/home/a' })).toEqual([
      '/home/a/.local/state/unitwatch',
      '/home/a/.config/unitwatch',
    ]);
    expect(userStateDirectoryCandidates({ HOME: '/home/a', XDG_CONFIG_HOME: '/cfg' })).toEqual([
      '/home/a/.local/state/unitwatch',
      '/cfg/unitwatch',
    ]);
  });
});

describe('scopeArguments', () => {
  it('adds --user for a user manager only', () => {
    expect(scopeArguments('user')).toEqual(['--user']);
    expect(scopeArguments('system')).toEqual([]);
  });
});
