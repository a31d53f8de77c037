import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeVariables } from '../../src/core/config.js';
import { nixVariables, nixVariablesPath, renderNixVariables } from '../../src/tools/write-nix-variables.js';

describe('nix/variables.json', () => {
  it('is what the validator says today (run `npm run nix-variables` if this fails)', () => {
    expect(readFileSync(nixVariablesPath, 'utf8')).toBe(renderNixVariables());
  });

  it('names every documented variable, and nothing else', () => {
    const context = { hostname: 'h', systemdStateDirectory: undefined, credentialsDirectory: undefined };
    expect(Object.keys(nixVariables()).sort()).toEqual(
      describeVariables(context)
        .map((v) => v.name)
        .sort(),
    );
  });

  it('reads each kind from the validator: lists, whole numbers, yes/no switches, and strings', () => {
    const kinds = nixVariables();
    expect(kinds.UNITWATCH_TO).toBe('list');
    expect(kinds.UNITWATCH_EXCLUDE).toBe('list');
    expect(kinds.UNITWATCH_STATUS_LINES).toBe('int');
    expect(kinds.UNITWATCH_RECOVERY).toBe('bool');
    // Takes `true` as a host name, but is no switch.
    expect(kinds.UNITWATCH_HOSTNAME).toBe('string');
    expect(kinds.UNITWATCH_SMTP_URL).toBe('string');
  });
});
