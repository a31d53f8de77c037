import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ConfigContext, describeVariables, type VariableDoc } from '../core/config.js';

/**
 * Generates docs/configuration.md from the schema that validates the configuration, so the
 * documentation cannot drift from what `unitwatch check-config` accepts. Run `npm run build && npm run docs`.
 */

export const configurationDocPath = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));

/** Placeholders instead of this machine's values, so the generated file is the same everywhere. */
const DOC_CONTEXT: ConfigContext = {
  hostname: '<hostname>',
  systemdStateDirectory: undefined,
  credentialsDirectory: undefined,
};

const INTRO = `# Configuration

<!-- Generated from src/core/config.ts by \`npm run build && npm run docs\`: edit the schema there, not this file. -->

unitwatch is configured through \`UNITWATCH_*\` environment variables only; it has no configuration
file format of its own. This page is generated from the schema the validator uses, so every
variable the validator accepts is listed here, with the same defaults.

## Where the variables come from

- **Under systemd**, put them in an environment file and point the unit at it with
  \`EnvironmentFile=\`. The unit in [unitwatch.service](unitwatch.service) reads
  \`/etc/unitwatch/unitwatch.env\`; the NixOS module writes its \`settings\` into the unit's
  environment (see [nixos.md](nixos.md)).
- **Outside systemd**, \`unitwatch run --env-file FILE\` reads the same file. Variables from the
  file override those of the environment.

The file has systemd's \`EnvironmentFile=\` syntax: one \`KEY=VALUE\` a line; lines starting with
\`#\` or \`;\` are comments; a value may be put in single quotes (taken literally) or double quotes
(where \`\\"\`, \`\\\\\`, \`\\$\` and \`\` \\\` \`\` are unescaped); an \`export \` prefix copied from a shell
file is ignored. A \`#\` after a value is part of the value. An empty value counts as unset.

\`\`\`sh
# /etc/unitwatch/unitwatch.env
UNITWATCH_TO=ops@example.org, oncall@example.org
UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587
UNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/unitwatch-smtp
\`\`\`

## Validation

Every variable is checked at start-up, and every problem is reported at once, each naming the
variable and what is wrong with it, so that one edit fixes them all. A variable that starts with
\`UNITWATCH_\` but is not one of those below is an error too, with the closest known name
suggested: a typo must not silently fall back to a default.

A bad configuration makes unitwatch exit with status **78** (\`EX_CONFIG\` of sysexits.h). The unit
sets \`RestartPreventExitStatus=78\`, so systemd does not restart-loop on a configuration that a
restart cannot fix.

To check a configuration before you use it:

\`\`\`sh
unitwatch check-config --env-file /etc/unitwatch/unitwatch.env
\`\`\`

It prints the effective configuration, defaults filled in, as an environment file, or the
problems and exit status 78. \`unitwatch test-email\` then sends one mail through the configured
transport and exits non-zero with the server's answer if that fails.

## Secrets

The SMTP password never goes into the environment in the clear: the environment of a service can
be read in \`/proc/PID/environ\` and through \`systemctl show\`, and what a NixOS module puts in
\`settings\` lands in the world-readable Nix store. A \`UNITWATCH_SMTP_URL\` that holds a password is rejected. The
password is read once at start-up, when the URL names a user, from

1. the file named by \`UNITWATCH_SMTP_PASSWORD_FILE\` (a trailing newline is ignored), or else
2. the systemd credential \`smtp-password\`: \`LoadCredential=smtp-password:/path/to/file\` in the
   unit, which unitwatch finds in \`$CREDENTIALS_DIRECTORY/smtp-password\`.

A password file that cannot be read is a configuration error (exit status 78). The password never
appears in \`check-config\` output or in a log line; only the file it comes from is shown.

## Variables
`;

function codeOr(text: string): string {
  // Default texts that already carry Markdown (backticks) or are prose are kept; bare values are code.
  if (text.includes('`') || text === 'none') return text;
  return `\`${text}\``;
}

function defaultOf(variable: VariableDoc): string {
  return variable.defaultText === undefined ? 'unset' : codeOr(variable.defaultText);
}

function tableCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** A Markdown table with padded columns, as the formatter (biome) lays tables out. */
function summaryTable(variables: readonly VariableDoc[]): string {
  const rows = [
    ['Variable', 'Default'],
    ...variables.map((variable) => [
      `[\`${variable.name}\`](#${variable.name.toLowerCase()})`,
      tableCell(defaultOf(variable)),
    ]),
  ];
  const widths = [0, 1].map((column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  const [header = [], ...body] = rows;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)].join('\n');
}

function section(variable: VariableDoc): string {
  return [
    `### ${variable.name}`,
    '',
    variable.description,
    '',
    `- Default: ${defaultOf(variable)}`,
    `- Example: \`${variable.name}=${variable.example}\``,
  ].join('\n');
}

/** The whole of docs/configuration.md; pure, so the test can compare it with the committed file. */
export function renderConfigurationDoc(): string {
  const variables = describeVariables(DOC_CONTEXT);
  return `${[INTRO.trimEnd(), summaryTable(variables), ...variables.map(section)].join('\n\n')}\n`;
}

// Only write when run as a script, so the test can import renderConfigurationDoc without touching docs/.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(configurationDocPath, renderConfigurationDoc());
  process.stdout.write(`wrote ${configurationDocPath}\n`);
}
