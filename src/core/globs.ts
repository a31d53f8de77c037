/** Unit-name globs as operators write them: `*` any run of characters, `?` one, `[…]` a class. */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] ?? '';
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else if (char === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end === -1) source += '\\[';
      else {
        const body = glob
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\');
        source += `[${body}]`;
        i = end;
      }
    } else source += char.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Characters systemd allows in unit names, plus the glob ones. */
export const UNIT_GLOB = /^[A-Za-z0-9:_.\\@\-*?[\]!]+$/;

/** The unit types systemd knows, as the suffix of a unit name. */
export const UNIT_TYPES = [
  'service',
  'socket',
  'device',
  'mount',
  'automount',
  'swap',
  'target',
  'path',
  'timer',
  'slice',
  'scope',
] as const;

const TYPE_SUFFIX = new RegExp(`\\.(?:${UNIT_TYPES.join('|')})$`);

/**
 * systemctl's convention: a name without a unit type suffix means a service (`nginx` is
 * `nginx.service`). A glob that ends in a wildcard (`*`, `backup-*`, `foo.servic?`) can match the
 * suffix itself and is kept as written, so `*` still means every unit.
 */
export function withUnitSuffix(glob: string): string {
  if (TYPE_SUFFIX.test(glob) || /[*?\]]$/.test(glob)) return glob;
  return `${glob}.service`;
}

export function matchesAny(unit: string, globs: readonly RegExp[]): boolean {
  return globs.some((glob) => glob.test(unit));
}

export interface UnitFilter {
  readonly include: readonly RegExp[];
  readonly exclude: readonly RegExp[];
  readonly critical: readonly RegExp[];
}

/** The filter the configured globs describe (UNITWATCH_INCLUDE, _EXCLUDE, _CRITICAL). */
export function unitFilter(globs: {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly critical: readonly string[];
}): UnitFilter {
  return {
    include: globs.include.map(globToRegExp),
    exclude: globs.exclude.map(globToRegExp),
    critical: globs.critical.map(globToRegExp),
  };
}

/** Critical units are always watched: excluding one by a broad glob must not silence it. */
export function isWatched(unit: string, filter: UnitFilter): boolean {
  if (matchesAny(unit, filter.critical)) return true;
  return matchesAny(unit, filter.include) && !matchesAny(unit, filter.exclude);
}

export function isCritical(unit: string, filter: UnitFilter): boolean {
  return matchesAny(unit, filter.critical);
}
