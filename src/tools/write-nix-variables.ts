import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeVariables, parseConfig } from '../core/config.js';
import { ConfigError } from '../errors/config-error.js';

/**
 * How the NixOS module may write a variable in `settings`, beyond a string (always allowed, passed
 * through as written): `list` (a list of strings, joined with commas), `int`, `bool` (true/false).
 */
export type NixKind = 'string' | 'list' | 'int' | 'bool';

export const nixVariablesPath = fileURLToPath(new URL('../../nix/variables.json', import.meta.url));

const CONTEXT = { hostname: 'probe', systemdStateDirectory: '/probe', credentialsDirectory: undefined };
/** A configuration the validator accepts, so a probe's problems can only be the probed variable's. */
const BASE = {
  UNITWATCH_TO: 'probe@example.org',
  UNITWATCH_SMTP_URL: 'smtp://probe@probe.example.org',
  // A user in the URL needs a password source; the file is only named here, never read.
  UNITWATCH_SMTP_PASSWORD_FILE: '/probe/password',
  // A webhook for the webhook settings to apply to; ntfy, so that the token file applies too.
  UNITWATCH_WEBHOOK_URL: 'https://probe.example.org/hook',
  UNITWATCH_WEBHOOK_FORMAT: 'ntfy',
};

/** The validator's problems with `value` for `name`, with everything else valid. */
function problemsWith(name: string, value: string): string[] {
  const env: Record<string, string> = { ...BASE, [name]: value };
  if (name === 'UNITWATCH_SENDMAIL') delete env.UNITWATCH_SMTP_URL;
  try {
    parseConfig(env, CONTEXT);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems.filter((problem) => problem.key === name).map((problem) => problem.message);
  }
}

/**
 * Each variable's kind, read from the validator itself: `bool` when it takes `true` and `false` but not `maybe`,
 * `list` when its documented example is a comma-separated list it accepts, `int` when its example is
 * a whole number it accepts. A documented example the validator rejects is a bug, so it throws.
 */
export function nixVariables(): Record<string, NixKind> {
  const kinds: Record<string, NixKind> = {};
  for (const variable of describeVariables(CONTEXT)) {
    const { name, example } = variable;
    const problems = problemsWith(name, example);
    if (problems.length > 0)
      throw new Error(`${name}: its example "${example}" is rejected: ${problems.join('; ')}`);
    const takes = (value: string) => problemsWith(name, value).length === 0;
    // A host name or a glob takes `true` too; only a yes/no switch also refuses `maybe`.
    if (takes('true') && takes('false') && !takes('maybe')) kinds[name] = 'bool';
    else if (example.includes(',')) kinds[name] = 'list';
    else if (/^\d+$/.test(example)) kinds[name] = 'int';
    else kinds[name] = 'string';
  }
  return kinds;
}

export function renderNixVariables(): string {
  const document = {
    $comment:
      'Generated from src/core/config.ts by `npm run nix-variables`: the UNITWATCH_* names nix/module.nix accepts in settings, and how each may be written.',
    variables: nixVariables(),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(nixVariablesPath, renderNixVariables());
  process.stdout.write(`wrote ${nixVariablesPath}\n`);
}
