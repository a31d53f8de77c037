import { describe, expect, it } from 'vitest';
import { parseArguments } from '../../src/core/cli-arguments.js';

describe('parseArguments', () => {
  it('watches the system manager unless --user is given', () => {
    expect(parseArguments(['run'])).toEqual({ command: 'run', envFile: undefined, json: false, user: false });
  });

  it('takes --user before or after the command, with the other options', () => {
    expect(parseArguments(['--user', 'run', '--env-file', '/e'])).toEqual({
      command: 'run',
      envFile: '/e',
      json: false,
      user: true,
    });
    expect(parseArguments(['status', '--json', '--user'])).toMatchObject({
      command: 'status',
      json: true,
      user: true,
    });
    expect(parseArguments(['check', '--env-file=/e', '--user'])).toMatchObject({ envFile: '/e', user: true });
  });

  it('refuses what it does not know, naming it', () => {
    expect(parseArguments(['run', '--users'])).toBe('unknown option --users');
    expect(parseArguments(['run', 'extra'])).toBe('unexpected argument extra');
    expect(parseArguments(['run', '--json'])).toBe('--json goes with status only');
    expect(parseArguments(['run', '--env-file'])).toBe('--env-file needs a file name');
  });

  it('defaults to help', () => {
    expect(parseArguments([])).toMatchObject({ command: 'help', user: false });
  });
});
