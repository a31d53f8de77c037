import { describe, expect, it } from 'vitest';
import { unitNameFromPath } from '../../src/adapters/systemd-bus.js';

const PREFIX = '/org/freedesktop/systemd1/unit/';

describe('unitNameFromPath (systemd escapes every byte outside [A-Za-z0-9] as _xx)', () => {
  it.each([
    ['nginx_2eservice', 'nginx.service'],
    ['getty_40tty1_2eservice', 'getty@tty1.service'],
    ['_2dfoo_2eservice', '-foo.service'],
    ['dev_2ddisk_2dby_5cx2duuid_2eswap', 'dev-disk-by\\x2duuid.swap'],
    ['caf_c3_a9_2eservice', 'café.service'],
  ])('decodes %s to %s', (label, unit) => {
    expect(unitNameFromPath(`${PREFIX}${label}`)).toBe(unit);
  });

  it.each([
    ['another object', '/org/freedesktop/systemd1/job/42'],
    ['the manager itself', '/org/freedesktop/systemd1'],
    ['a dangling escape', `${PREFIX}nginx_2`],
    ['an escape that is not hex', `${PREFIX}nginx_zzservice`],
    ['upper-case hex, which systemd never writes', `${PREFIX}nginx_2Eservice`],
  ])('gives nothing for %s', (_what, path) => {
    expect(unitNameFromPath(path)).toBeUndefined();
  });
});
