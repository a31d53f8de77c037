import { isCritical, isWatched, type UnitFilter } from './globs.js';

/** Monitoring-plugin exit codes (Nagios, Icinga, Sensu). */
export const CHECK_OK = 0;
export const CHECK_WARNING = 1;
export const CHECK_CRITICAL = 2;
export const CHECK_UNKNOWN = 3;

export interface CheckUnit {
  readonly unit: string;
  readonly activeState: string;
}

export interface CheckResult {
  readonly exitCode: number;
  readonly line: string;
}

const LABELS = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'];

function hasGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

function listed(names: readonly string[]): string {
  const shown = names.slice(0, 20).join(', ');
  return names.length > 20 ? `${shown} and ${names.length - 20} more` : shown;
}

/**
 * One-line plugin output with perfdata: OK when no watched unit failed, WARNING naming the failed
 * ones, CRITICAL when a critical unit is not active. A critical unit named literally but not loaded
 * at all counts as not active: systemd lists only loaded units.
 */
export function evaluateCheck(
  units: readonly CheckUnit[],
  filter: UnitFilter,
  criticalPatterns: readonly string[],
): CheckResult {
  const watched = units.filter((unit) => isWatched(unit.unit, filter));
  const failed = watched.filter((unit) => unit.activeState === 'failed').map((unit) => unit.unit);
  const criticalDown = watched
    .filter(
      (unit) =>
        isCritical(unit.unit, filter) && unit.activeState !== 'active' && unit.activeState !== 'reloading',
    )
    .map((unit) => unit.unit);
  const loaded = new Set(units.map((unit) => unit.unit));
  for (const pattern of criticalPatterns) {
    if (!hasGlob(pattern) && !loaded.has(pattern)) criticalDown.push(pattern);
  }
  const exitCode = criticalDown.length > 0 ? CHECK_CRITICAL : failed.length > 0 ? CHECK_WARNING : CHECK_OK;
  const parts: string[] = [];
  if (criticalDown.length > 0) parts.push(`critical not active: ${listed(criticalDown)}`);
  if (failed.length > 0) parts.push(`failed: ${listed(failed)}`);
  if (parts.length === 0) parts.push(`${watched.length} units watched, none failed`);
  const perfdata = `failed=${failed.length};1;;0 critical_not_active=${criticalDown.length};;1;0 watched=${watched.length};;;0`;
  return { exitCode, line: `UNITWATCH ${LABELS[exitCode]} - ${parts.join('; ')} | ${perfdata}` };
}

export function unknownCheck(reason: string): CheckResult {
  return { exitCode: CHECK_UNKNOWN, line: `UNITWATCH UNKNOWN - ${reason.replace(/\s+/g, ' ')}` };
}
