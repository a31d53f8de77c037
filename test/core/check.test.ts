import { describe, expect, it } from 'vitest';
import {
  CHECK_CRITICAL,
  CHECK_OK,
  CHECK_UNKNOWN,
  CHECK_WARNING,
  type CheckUnit,
  evaluateCheck,
  unknownCheck,
} from '../../src/core/check.js';
import { unitFilter } from '../../src/core/globs.js';

function unit(name: string, activeState: string): CheckUnit {
  return { unit: name, activeState };
}

interface Globs {
  readonly include?: string[];
  readonly exclude?: string[];
  readonly critical?: string[];
}

/** evaluateCheck as `unitwatch check` calls it: the filter and the raw critical patterns from one config. */
function check(units: readonly CheckUnit[], globs: Globs = {}) {
  const critical = globs.critical ?? [];
  const filter = unitFilter({ include: globs.include ?? ['*'], exclude: globs.exclude ?? [], critical });
  return evaluateCheck(units, filter, critical);
}

const healthy = [
  unit('nginx.service', 'active'),
  unit('sshd.service', 'active'),
  unit('backup.service', 'inactive'),
  unit('home.mount', 'active'),
];

describe('exit codes', () => {
  it('are the monitoring-plugin ones: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN', () => {
    expect([CHECK_OK, CHECK_WARNING, CHECK_CRITICAL, CHECK_UNKNOWN]).toEqual([0, 1, 2, 3]);
  });
});

describe('evaluateCheck', () => {
  it('is OK when no watched unit failed, with perfdata', () => {
    expect(check(healthy)).toEqual({
      exitCode: CHECK_OK,
      line: 'UNITWATCH OK - 4 units watched, none failed | failed=0;1;;0 critical_not_active=0;;1;0 watched=4;;;0',
    });
  });

  it('is OK with no units at all', () => {
    expect(check([])).toEqual({
      exitCode: CHECK_OK,
      line: 'UNITWATCH OK - 0 units watched, none failed | failed=0;1;;0 critical_not_active=0;;1;0 watched=0;;;0',
    });
  });

  it('counts inactive, activating and reloading units as not failed', () => {
    const result = check([
      unit('a.service', 'inactive'),
      unit('b.service', 'activating'),
      unit('c.service', 'reloading'),
      unit('d.service', 'deactivating'),
    ]);
    expect(result.exitCode).toBe(CHECK_OK);
  });

  it('is WARNING listing the failed units, in the order systemd gave them', () => {
    const result = check([...healthy, unit('zeta.service', 'failed'), unit('alpha.service', 'failed')]);
    expect(result).toEqual({
      exitCode: CHECK_WARNING,
      line:
        'UNITWATCH WARNING - failed: zeta.service, alpha.service | ' +
        'failed=2;1;;0 critical_not_active=0;;1;0 watched=6;;;0',
    });
  });

  it('does not count failed units that are excluded, nor watch them', () => {
    const result = check([...healthy, unit('mnt-usb.automount', 'failed')], { exclude: ['*.automount'] });
    expect(result).toEqual({
      exitCode: CHECK_OK,
      line: 'UNITWATCH OK - 4 units watched, none failed | failed=0;1;;0 critical_not_active=0;;1;0 watched=4;;;0',
    });
  });

  it('does not count failed units left out of the include list', () => {
    const result = check([...healthy, unit('nginx-old.service', 'failed')], { include: ['*.mount'] });
    expect(result.exitCode).toBe(CHECK_OK);
    expect(result.line).toContain('watched=1;;;0');
  });

  it('is CRITICAL when a critical unit is not active, whatever the reason', () => {
    for (const state of ['inactive', 'failed', 'activating', 'deactivating']) {
      const result = check([unit('nginx.service', 'active'), unit('sshd.service', state)], {
        critical: ['sshd.service'],
      });
      expect(result.exitCode).toBe(CHECK_CRITICAL);
      expect(result.line).toMatch(/^UNITWATCH CRITICAL - critical not active: sshd\.service[;| ]/);
      expect(result.line).toContain('critical_not_active=1;;1;0');
    }
  });

  it('counts a reloading critical unit as active', () => {
    const result = check([unit('sshd.service', 'reloading')], { critical: ['sshd.service'] });
    expect(result.exitCode).toBe(CHECK_OK);
  });

  it('names a failed critical unit both as not active and as failed', () => {
    const result = check([unit('sshd.service', 'failed'), unit('nginx.service', 'failed')], {
      critical: ['sshd.service'],
    });
    expect(result).toEqual({
      exitCode: CHECK_CRITICAL,
      line:
        'UNITWATCH CRITICAL - critical not active: sshd.service; failed: sshd.service, nginx.service | ' +
        'failed=2;1;;0 critical_not_active=1;;1;0 watched=2;;;0',
    });
  });

  it('is CRITICAL when a critical unit named literally is not loaded at all', () => {
    const result = check(healthy, { critical: ['postgresql.service'] });
    expect(result).toEqual({
      exitCode: CHECK_CRITICAL,
      line:
        'UNITWATCH CRITICAL - critical not active: postgresql.service | ' +
        'failed=0;1;;0 critical_not_active=1;;1;0 watched=4;;;0',
    });
  });

  it('does not miss a literal critical unit with a systemd-escaped name', () => {
    const name = String.raw`systemd-fsck@dev-disk-by\x2duuid-1234.service`;
    expect(check([unit(name, 'active')], { critical: [name] }).exitCode).toBe(CHECK_OK);
    expect(check([unit(name, 'inactive')], { critical: [name] }).exitCode).toBe(CHECK_CRITICAL);
    expect(check([], { critical: [name] }).exitCode).toBe(CHECK_CRITICAL);
  });

  it('does not ask a critical glob to match something: only the units it matches must be active', () => {
    expect(check(healthy, { critical: ['postgresql@*.service'] }).exitCode).toBe(CHECK_OK);
    const result = check([...healthy, unit('postgresql@16-main.service', 'inactive')], {
      critical: ['postgresql@*.service'],
    });
    expect(result.exitCode).toBe(CHECK_CRITICAL);
    expect(result.line).toContain('critical not active: postgresql@16-main.service');
  });

  it('holds a critical unit to account even when an exclude glob matches it', () => {
    const result = check([unit('sshd.service', 'failed')], {
      exclude: ['*.service'],
      critical: ['sshd.service'],
    });
    expect(result.exitCode).toBe(CHECK_CRITICAL);
    expect(result.line).toContain('watched=1;;;0');
  });

  it('prefers CRITICAL over WARNING', () => {
    const result = check([unit('nginx.service', 'failed'), unit('sshd.service', 'inactive')], {
      critical: ['sshd.service'],
    });
    expect(result.exitCode).toBe(CHECK_CRITICAL);
    expect(result.line).toContain('failed: nginx.service');
  });

  it('shortens a long list to the first 20 names and how many more', () => {
    const failed = Array.from({ length: 25 }, (_, index) => unit(`f${index}.service`, 'failed'));
    const result = check(failed);
    const names = failed.slice(0, 20).map((item) => item.unit);
    expect(result.line).toBe(
      `UNITWATCH WARNING - failed: ${names.join(', ')} and 5 more | ` +
        'failed=25;1;;0 critical_not_active=0;;1;0 watched=25;;;0',
    );
    expect(result.line).not.toContain('f20.service');
  });

  it('lists 20 names in full', () => {
    const failed = Array.from({ length: 20 }, (_, index) => unit(`f${index}.service`, 'failed'));
    const line = check(failed).line;
    expect(line).toContain('f19.service |');
    expect(line).not.toContain('more');
  });

  it('shortens a long list of critical units too', () => {
    const critical = Array.from({ length: 22 }, (_, index) => `c${index}.service`);
    const line = check([], { critical }).line;
    expect(line).toContain('c19.service and 2 more |');
    expect(line).toContain('critical_not_active=22;;1;0');
  });

  it('keeps the output to one line', () => {
    const failed = Array.from({ length: 100 }, (_, index) => unit(`f${index}.service`, 'failed'));
    expect(check(failed, { critical: ['x.service'] }).line).not.toMatch(/[\r\n]/);
  });
});

describe('unknownCheck', () => {
  it('is UNKNOWN with the reason on one line', () => {
    expect(unknownCheck('cannot connect to the system bus:\n  ENOENT /run/dbus\tsocket')).toEqual({
      exitCode: CHECK_UNKNOWN,
      line: 'UNITWATCH UNKNOWN - cannot connect to the system bus: ENOENT /run/dbus socket',
    });
  });
});
