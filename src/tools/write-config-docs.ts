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

It prints the effective configuration, defaults filled in and names normalised, as an environment
file that reads back to the same configuration (comments stand on lines of their own), or the
problems and exit status 78. \`unitwatch test-email\` then sends one mail through the configured
transport and exits non-zero with the server's answer, put in words where it can be acted on, if
that fails.

Each command checks what it uses. Only \`run\` keeps state, so only \`run\` needs a state
directory, and it checks at start-up that it can create the directory and write in it (exit 78
naming \`UNITWATCH_STATE_DIRECTORY\` if not). \`check-config\` runs outside the service, where the
systemd credential holding the password is not visible, so it does not ask for one (a password
file or CA file it is given is still read, to check it can be); \`run\` and \`test-email\` do.

## Encryption

Credentials never cross an unencrypted connection. With a user in \`UNITWATCH_SMTP_URL\`,
\`smtp://\` must upgrade with STARTTLS, and a server that does not offer it gets neither the
password nor the mail; the error says so and names the setting. Without a user, STARTTLS is still
required for a relay on the network (\`UNITWATCH_SMTP_STARTTLS=require\`, the default), and
taken when offered from a relay on loopback (127.0.0.0/8, ::1, localhost), which is
\`opportunistic\`. \`smtps://\` is TLS from the start, usually on port 465; \`smtp://\` is for ports
587 and 25.

Certificates are always verified, against Node.js's built-in CAs and those in
\`UNITWATCH_SMTP_CA_FILE\`. The URL takes no query parameters: a \`?tls=…\` or \`?secure=…\` that
another tool would read is an error naming the variable to use instead, never silently ignored.

## Names and addresses

A unit name without a type suffix is a service, as systemctl reads it: \`UNITWATCH_CRITICAL=myapp\`
watches \`myapp.service\`. A glob that ends in a wildcard (\`*\`, \`backup-*\`) is kept as written.
Lists are separated by commas; a \`;\` or a space between names or addresses is an error with that
hint. Recipients may carry a display name (\`Ops <ops@example.org>\`); a bare local name such as
\`root\` is accepted with \`UNITWATCH_SENDMAIL\` only, since an SMTP relay would refuse it or deliver
it to its own \`root\`. An address starting with \`-\` is refused: sendmail would read it as an
option.

## Secrets

The SMTP password never goes into the environment in the clear: the environment of a service can
be read in \`/proc/PID/environ\` and through \`systemctl show\`, and what a NixOS module puts in
\`settings\` lands in the world-readable Nix store. A \`UNITWATCH_SMTP_URL\` that holds a password is rejected. The
password is read once at start-up, when the URL names a user, from

1. the file named by \`UNITWATCH_SMTP_PASSWORD_FILE\` (a trailing newline is ignored), or else
2. the systemd credential \`smtp-password\`: \`LoadCredential=smtp-password:/path/to/file\` in the
   unit, which unitwatch finds in \`$CREDENTIALS_DIRECTORY/smtp-password\`.

A user in the URL with neither is a configuration error naming both ways. A password file that
cannot be read is a configuration error (exit status 78); when the service user (\`DynamicUser=\`)
may not read it, the error says to hand it over with \`LoadCredential=smtp-password:/path\` (NixOS:
\`services.unitwatch.smtpPasswordFile\`) instead, since systemd reads credentials as root. The password
never appears in \`check-config\` output or in a log line; only the file it comes from is shown.

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
