import { describe, expect, it } from 'vitest';
import {
  globToRegExp,
  isCritical,
  isWatched,
  matchesAny,
  UNIT_GLOB,
  type UnitFilter,
  unitFilter,
} from '../../src/core/globs.js';

function matches(glob: string, unit: string): boolean {
  return globToRegExp(glob).test(unit);
}

function filterOf(globs: { include?: string[]; exclude?: string[]; critical?: string[] }): UnitFilter {
  return unitFilter({
    include: globs.include ?? ['*'],
    exclude: globs.exclude ?? [],
    critical: globs.critical ?? [],
  });
}

const FSCK_UNIT = String.raw`systemd-fsck@dev-disk-by\x2duuid-1234.service`;

describe('globToRegExp', () => {
  it('matches a unit name without glob characters only literally', () => {
    expect(matches('nginx.service', 'nginx.service')).toBe(true);
    expect(matches('nginx.service', 'nginx.services')).toBe(false);
    expect(matches('nginx.service', 'my-nginx.service')).toBe(false);
  });

  it('takes a dot as a dot, not as any character', () => {
    expect(matches('nginx.service', 'nginxXservice')).toBe(false);
    expect(matches('*.mount', 'homeXmount')).toBe(false);
  });

  it('lets * stand for any run of characters, also none: *.mount (and not *.automount)', () => {
    expect(matches('*.mount', 'home.mount')).toBe(true);
    expect(matches('*.mount', 'mnt-backup\\x2ddisk.mount')).toBe(true);
    expect(matches('*.mount', '.mount')).toBe(true);
    expect(matches('*.mount', 'home.automount')).toBe(false);
    expect(matches('*.mount', 'home.mount.service')).toBe(false);
    expect(matches('*.mount', 'home.service')).toBe(false);
  });

  it('anchors * in the middle at both ends: backup-*.service', () => {
    expect(matches('backup-*.service', 'backup-daily.service')).toBe(true);
    expect(matches('backup-*.service', 'backup-.service')).toBe(true);
    expect(matches('backup-*.service', 'offsite-backup-daily.service')).toBe(false);
    expect(matches('backup-*.service', 'backup-daily.timer')).toBe(false);
  });

  it('matches template instances: user@*.service', () => {
    expect(matches('user@*.service', 'user@1000.service')).toBe(true);
    expect(matches('user@*.service', 'user@.service')).toBe(true);
    expect(matches('user@*.service', 'user-runtime-dir@1000.service')).toBe(false);
  });

  it('lets ? stand for exactly one character', () => {
    expect(matches('tty?.service', 'tty1.service')).toBe(true);
    expect(matches('tty?.service', 'tty.service')).toBe(false);
    expect(matches('tty?.service', 'tty12.service')).toBe(false);
  });

  it('matches one character of a class: […]', () => {
    expect(matches('getty@tty[1-3].service', 'getty@tty2.service')).toBe(true);
    expect(matches('getty@tty[1-3].service', 'getty@tty4.service')).toBe(false);
    expect(matches('node-[ab].service', 'node-a.service')).toBe(true);
    expect(matches('node-[ab].service', 'node-ab.service')).toBe(false);
  });

  it('matches one character outside a negated class: [!…]', () => {
    expect(matches('getty@tty[!1].service', 'getty@tty2.service')).toBe(true);
    expect(matches('getty@tty[!1].service', 'getty@tty1.service')).toBe(false);
    expect(matches('getty@tty[!1].service', 'getty@tty.service')).toBe(false);
  });

  it('takes ! outside a class literally', () => {
    expect(matches('a!.service', 'a!.service')).toBe(true);
    expect(matches('a!.service', 'a.service')).toBe(false);
  });

  it('takes an unclosed [ literally', () => {
    expect(matches('odd[.service', 'odd[.service')).toBe(true);
    expect(matches('odd[.service', 'oddx.service')).toBe(false);
  });

  it('takes backslashes of systemd-escaped names literally', () => {
    expect(matches(FSCK_UNIT, FSCK_UNIT)).toBe(true);
    expect(matches(String.raw`systemd-fsck@dev-disk-by\x2d*.service`, FSCK_UNIT)).toBe(true);
    expect(matches(FSCK_UNIT, 'systemd-fsck@dev-disk-byx2duuid-1234.service')).toBe(false);
    expect(matches(FSCK_UNIT, String.raw`systemd-fsck@dev-disk-by\\x2duuid-1234.service`)).toBe(false);
  });

  it('takes a backslash inside a class literally', () => {
    expect(matches(String.raw`a[\x]b`, String.raw`a\b`)).toBe(true);
    expect(matches(String.raw`a[\x]b`, 'axb')).toBe(true);
    expect(matches(String.raw`a[\x]b`, 'ayb')).toBe(false);
  });

  it('takes regular-expression characters literally', () => {
    expect(matches('a+b.service', 'a+b.service')).toBe(true);
    expect(matches('a+b.service', 'aab.service')).toBe(false);
    expect(matches('a$b', 'a$b')).toBe(true);
    expect(matches('(a|b)', '(a|b)')).toBe(true);
    expect(matches('(a|b)', 'a')).toBe(false);
  });

  it('matches every unit with a lone *', () => {
    for (const unit of ['a.service', FSCK_UNIT, 'user@1000.service', '-.mount']) {
      expect(matches('*', unit)).toBe(true);
    }
  });
});

describe('UNIT_GLOB', () => {
  it('accepts the globs and names an operator writes', () => {
    for (const glob of [
      '*.mount',
      'backup-*.service',
      'user@*.service',
      'tty[!1].service',
      'a?',
      FSCK_UNIT,
    ]) {
      expect(UNIT_GLOB.test(glob)).toBe(true);
    }
  });

  it('refuses spaces, commas and slashes', () => {
    for (const glob of ['a b.service', 'a,b', '/etc/x.service', '']) {
      expect(UNIT_GLOB.test(glob)).toBe(false);
    }
  });
});

describe('matchesAny', () => {
  it('is false for no globs at all', () => {
    expect(matchesAny('a.service', [])).toBe(false);
  });

  it('is true when one of several globs matches', () => {
    expect(matchesAny('home.mount', ['*.service', '*.mount'].map(globToRegExp))).toBe(true);
  });
});

describe('isWatched', () => {
  it('watches every unit by default', () => {
    const filter = filterOf({});
    expect(isWatched('nginx.service', filter)).toBe(true);
    expect(isWatched(FSCK_UNIT, filter)).toBe(true);
  });

  it('watches only included units when an include list is given', () => {
    const filter = filterOf({ include: ['backup-*.service', '*.mount'] });
    expect(isWatched('backup-daily.service', filter)).toBe(true);
    expect(isWatched('home.mount', filter)).toBe(true);
    expect(isWatched('nginx.service', filter)).toBe(false);
  });

  it('does not watch an excluded unit, even when it is included', () => {
    const filter = filterOf({ include: ['*.mount'], exclude: ['mnt-usb*.mount'] });
    expect(isWatched('mnt-usb1.mount', filter)).toBe(false);
    expect(isWatched('home.mount', filter)).toBe(true);
  });

  it('excludes units that fail on purpose with one line', () => {
    const filter = filterOf({ exclude: ['*.automount'] });
    expect(isWatched('mnt-backup.automount', filter)).toBe(false);
    expect(isWatched('mnt-backup.mount', filter)).toBe(true);
  });

  it('watches nothing with an empty include list, except the critical units', () => {
    const filter = filterOf({ include: [], critical: ['sshd.service'] });
    expect(isWatched('nginx.service', filter)).toBe(false);
    expect(isWatched('sshd.service', filter)).toBe(true);
  });

  it('always watches a critical unit, even when an exclude glob matches it', () => {
    const filter = filterOf({ exclude: ['*.service'], critical: ['sshd.service'] });
    expect(isWatched('sshd.service', filter)).toBe(true);
    expect(isWatched('nginx.service', filter)).toBe(false);
  });

  it('always watches a critical unit, even when the include list leaves it out', () => {
    const filter = filterOf({ include: ['*.mount'], critical: ['postgresql@*.service'] });
    expect(isWatched('postgresql@16-main.service', filter)).toBe(true);
  });
});

describe('isCritical', () => {
  it('is true for units matching a critical glob, literal or not', () => {
    const filter = filterOf({ critical: ['sshd.service', 'postgresql@*.service'] });
    expect(isCritical('sshd.service', filter)).toBe(true);
    expect(isCritical('postgresql@16-main.service', filter)).toBe(true);
    expect(isCritical('nginx.service', filter)).toBe(false);
  });

  it('is false for every unit when no unit is critical', () => {
    expect(isCritical('sshd.service', filterOf({}))).toBe(false);
  });
});
