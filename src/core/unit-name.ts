/**
 * systemd's own rules for a unit name (src/basic/unit-name.c: UNIT_NAME_MAX, VALID_CHARS, the type
 * suffixes, one `@` between a non-empty prefix and the instance). A name that breaks them cannot be
 * a unit systemd loaded, so whatever carried it is dropped before any work is done for it.
 */

/** UNIT_NAME_MAX is 256 with the terminating NUL. */
export const UNIT_NAME_MAX_LENGTH = 255;

export const UNIT_TYPES = [
  'service',
  'mount',
  'swap',
  'socket',
  'target',
  'device',
  'automount',
  'timer',
  'path',
  'slice',
  'scope',
] as const;

const TYPES: ReadonlySet<string> = new Set(UNIT_TYPES);
const VALID_CHARS = /^[A-Za-z0-9:_.\\-]*$/;

export function isValidUnitName(name: string): boolean {
  if (name.length === 0 || name.length > UNIT_NAME_MAX_LENGTH) return false;
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || !TYPES.has(name.slice(dot + 1))) return false;
  const stem = name.slice(0, dot);
  const at = stem.indexOf('@');
  if (at === 0 || stem.indexOf('@', at + 1) !== -1) return false;
  const [prefix, instance] = at === -1 ? [stem, ''] : [stem.slice(0, at), stem.slice(at + 1)];
  return VALID_CHARS.test(prefix) && VALID_CHARS.test(instance);
}
