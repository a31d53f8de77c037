import { describe, expect, it } from 'vitest';
import { isValidUnitName, UNIT_NAME_MAX_LENGTH } from '../../src/core/unit-name.js';

describe('isValidUnitName (systemd rules)', () => {
  it.each([
    'nginx.service',
    'getty@tty1.service',
    'getty@.service',
    'run-r0a1b2.scope',
    'dev-disk-by\\x2duuid-1234.device',
    'var-lib-docker.mount',
    'a:b_c-d.timer',
    'user-1000.slice',
  ])('accepts %s', (name) => {
    expect(isValidUnitName(name)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['no suffix', 'nginx'],
    ['unknown suffix', 'nginx.exe'],
    ['only a suffix', '.service'],
    ['a leading @', '@tty1.service'],
    ['two @', 'a@b@c.service'],
    ['a space', 'my unit.service'],
    ['a newline', 'a\nb.service'],
    ['an escape character', 'a\u001b[31m.service'],
    ['a bidi override', 'a\u202eb.service'],
    ['a slash', 'a/b.service'],
    ['too long', `${'a'.repeat(UNIT_NAME_MAX_LENGTH - 7)}.service`],
  ])('rejects %s', (_what, name) => {
    expect(isValidUnitName(name)).toBe(false);
  });

  it('accepts the longest name systemd allows', () => {
    expect(isValidUnitName(`${'a'.repeat(UNIT_NAME_MAX_LENGTH - 8)}.service`)).toBe(true);
  });
});
