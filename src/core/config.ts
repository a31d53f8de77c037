import { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors/config-error.js';
import { UNIT_GLOB } from './globs.js';
import type { PolicySettings } from './policy.js';
import { cleanLine } from './text.js';
import { formatDuration, parseDuration, parseSize } from './units-of-measure.js';

/**
 * The one schema of unitwatch's configuration. Validation, defaults, `check-config` output and
 * docs/configuration.md are all derived from `VARIABLES`, so they cannot drift apart.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface SmtpTransportConfig {
  readonly kind: 'smtp';
  /** The URL without credentials, safe to print. */
  readonly url: string;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  /** Where the password is read from at start-up; the password itself never enters Config. */
  readonly passwordFile: string | undefined;
}

export interface SendmailTransportConfig {
  readonly kind: 'sendmail';
  readonly path: string;
}

export interface Config {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly critical: readonly string[];
  readonly policy: PolicySettings;
  readonly to: readonly string[];
  readonly from: string;
  readonly hostname: string;
  readonly transport: SmtpTransportConfig | SendmailTransportConfig;
  readonly stateDirectory: string;
  readonly logLevel: LogLevel;
  readonly statusLines: number;
  readonly commandTimeoutMs: number;
  readonly outputLimitBytes: number;
  readonly journalSettleMs: number;
}

/** What the environment around the process supplies beyond the UNITWATCH_* variables. */
export interface ConfigContext {
  readonly hostname: string;
  /** `$STATE_DIRECTORY`, set by systemd's StateDirectory=. */
  readonly systemdStateDirectory: string | undefined;
  /** `$CREDENTIALS_DIRECTORY`, set by systemd's LoadCredential=. */
  readonly credentialsDirectory: string | undefined;
}

interface VariableSpec {
  readonly name: string;
  readonly description: string;
  /** Shown in docs and check-config; `undefined` means required or unset by default. */
  readonly defaultText: string | undefined;
  readonly example: string;
  readonly schema: z.ZodType<unknown, string>;
}

/**
 * Local part @ host name. Looser than zod's z.email(), which wants a dotted domain: `root@localhost`
 * and `ops@mailhub` are real recipients on servers.
 */
const ADDRESS = z
  .string()
  .regex(
    /^[^\s@<>(),;:"\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
  );

const addressList = z.string().transform((value, ctx) => {
  const addresses = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (addresses.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'needs at least one address' });
    return z.NEVER;
  }
  for (const address of addresses) {
    if (!ADDRESS.safeParse(address).success) {
      ctx.addIssue({ code: 'custom', message: `"${printable(address)}" is not a mail address` });
    }
  }
  return addresses;
});

const singleAddress = z.string().transform((value, ctx) => {
  const address = value.trim();
  if (!ADDRESS.safeParse(address).success) {
    ctx.addIssue({ code: 'custom', message: `"${printable(address)}" is not a mail address` });
    return z.NEVER;
  }
  return address;
});

const absolutePath = z.string().refine((value) => value.startsWith('/') && !value.includes('\0'), {
  message: 'must be an absolute path',
});

function duration(minMs: number, maxMs: number) {
  return z.string().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `"${printable(value)}" is not a duration (e.g. 500ms, 10s, 5min, 1h)`,
      });
      return z.NEVER;
    }
    if (ms < minMs || ms > maxMs) {
      ctx.addIssue({
        code: 'custom',
        message: `must be between ${formatDuration(minMs)} and ${formatDuration(maxMs)}`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

function integer(min: number, max: number) {
  return z.string().transform((value, ctx) => {
    if (!/^\d+$/.test(value.trim())) {
      ctx.addIssue({ code: 'custom', message: `"${printable(value)}" is not a whole number` });
      return z.NEVER;
    }
    const number = Number(value.trim());
    if (number < min || number > max) {
      ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max}` });
      return z.NEVER;
    }
    return number;
  });
}

function size(min: number, max: number) {
  return z.string().transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${printable(value)}" is not a size (e.g. 65536, 64K, 1M)` });
      return z.NEVER;
    }
    if (bytes < min || bytes > max) {
      ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max} bytes` });
      return z.NEVER;
    }
    return bytes;
  });
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

const globList = z.string().transform((value, ctx) => {
  const globs = list(value);
  for (const glob of globs) {
    if (!UNIT_GLOB.test(glob)) {
      ctx.addIssue({ code: 'custom', message: `"${printable(glob)}" is not a unit name or glob` });
    }
  }
  return globs;
});

const durationList = z.string().transform((value, ctx) => {
  const parts = list(value);
  const durations = parts.map((part) => parseDuration(part));
  if (parts.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one duration' });
  for (const [index, ms] of durations.entries()) {
    if (ms === undefined || ms < 1000) {
      ctx.addIssue({
        code: 'custom',
        message: `"${printable(parts[index] ?? '')}" is not a duration of at least 1s (e.g. 5min, 1h)`,
      });
    }
  }
  return durations.filter((ms): ms is number => ms !== undefined);
});

const boolean = z.string().transform((value, ctx) => {
  const normalized = value.trim().toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(normalized)) return true;
  if (['0', 'no', 'false', 'off'].includes(normalized)) return false;
  ctx.addIssue({ code: 'custom', message: `"${printable(value)}" is not yes or no` });
  return z.NEVER;
});

const smtpUrl = z.string().transform((value, ctx): Omit<SmtpTransportConfig, 'passwordFile'> => {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `"${printable(value)}" is not a URL (e.g. smtp://mail.example.org:587)`,
    });
    return z.NEVER;
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    ctx.addIssue({
      code: 'custom',
      message: `scheme must be smtp:// (STARTTLS when offered) or smtps:// (TLS)`,
    });
    return z.NEVER;
  }
  if (url.password !== '') {
    // A password in the URL would sit in the clear environment, readable in /proc and `systemctl show`.
    ctx.addIssue({
      code: 'custom',
      message: 'must not contain a password: put it in a file named by UNITWATCH_SMTP_PASSWORD_FILE',
    });
    return z.NEVER;
  }
  if (url.hostname === '') {
    ctx.addIssue({ code: 'custom', message: 'has no host' });
    return z.NEVER;
  }
  const secure = url.protocol === 'smtps:';
  const port = url.port === '' ? (secure ? 465 : 25) : Number(url.port);
  const user = url.username === '' ? undefined : decodeURIComponent(url.username);
  return {
    kind: 'smtp',
    url: `${url.protocol}//${user === undefined ? '' : `${url.username}@`}${url.host}`,
    secure,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    user,
  };
});

function variables(context: ConfigContext): readonly VariableSpec[] {
  return [
    {
      name: 'UNITWATCH_TO',
      description: 'Where notifications go: one or more addresses, comma-separated. Required.',
      defaultText: undefined,
      example: 'ops@example.org, oncall@example.org',
      schema: addressList,
    },
    {
      name: 'UNITWATCH_FROM',
      description: 'Sender address of every mail.',
      defaultText: `unitwatch@${context.hostname}`,
      example: 'unitwatch@web1.example.org',
      schema: singleAddress,
    },
    {
      name: 'UNITWATCH_SMTP_URL',
      description:
        'SMTP server to send through. `smtp://host:port` upgrades with STARTTLS when the server offers it, ' +
        '`smtps://host:port` speaks TLS from the start. A user name goes in the URL (`smtp://alerts@host:587`), ' +
        'the password never does. Exactly one of this and `UNITWATCH_SENDMAIL` must be set.',
      defaultText: undefined,
      example: 'smtp://alerts@mail.example.org:587',
      schema: smtpUrl,
    },
    {
      name: 'UNITWATCH_SMTP_PASSWORD_FILE',
      description:
        'File holding the SMTP password (trailing newline ignored). When unset, the systemd credential ' +
        '`smtp-password` is used if present (`LoadCredential=smtp-password:/path`).',
      defaultText: '`$CREDENTIALS_DIRECTORY/smtp-password` if it exists',
      example: '/run/secrets/unitwatch-smtp',
      schema: absolutePath,
    },
    {
      name: 'UNITWATCH_SENDMAIL',
      description:
        'Send through this sendmail-compatible binary instead of SMTP, as the old `email@` template did. ' +
        'The message is piped to it with `-i -f FROM -- RECIPIENTS`.',
      defaultText: undefined,
      example: '/run/wrappers/bin/sendmail',
      schema: absolutePath,
    },
    {
      name: 'UNITWATCH_STATE_DIRECTORY',
      description: 'Where unitwatch keeps what must survive a restart. Must be writable.',
      defaultText: '`$STATE_DIRECTORY` (set by `StateDirectory=unitwatch`)',
      example: '/var/lib/unitwatch',
      schema: absolutePath,
    },
    {
      name: 'UNITWATCH_HOSTNAME',
      description: 'Host name used in subjects, bodies and headers.',
      defaultText: context.hostname,
      example: 'web1',
      schema: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/, 'must be a host name (letters, digits, dots, dashes)'),
    },
    {
      name: 'UNITWATCH_LOG_LEVEL',
      description: `Lowest level logged: ${LOG_LEVELS.join(', ')}.`,
      defaultText: 'info',
      example: 'debug',
      schema: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }),
    },
    {
      name: 'UNITWATCH_STATUS_LINES',
      description: 'Journal lines that `systemctl status --lines=N` shows in each mail.',
      defaultText: '20',
      example: '50',
      schema: integer(0, 1000),
    },
    {
      name: 'UNITWATCH_COMMAND_TIMEOUT',
      description: 'How long `systemctl status` and `journalctl` may run before they are killed.',
      defaultText: '10s',
      example: '30s',
      schema: duration(100, 300_000),
    },
    {
      name: 'UNITWATCH_OUTPUT_LIMIT',
      description: 'Largest command output kept for one mail; the rest is cut and the cut is said.',
      defaultText: '64K',
      example: '256K',
      schema: size(1024, 16 * 1024 * 1024),
    },
    {
      name: 'UNITWATCH_JOURNAL_SETTLE',
      description:
        "When the first `systemctl status` of a failed unit does not yet show systemd's own " +
        '"Failed with result" line, journald may not have stored the last lines the unit wrote: wait this ' +
        'long and gather again.',
      defaultText: '250ms',
      example: '1s',
      schema: duration(0, 10_000),
    },
    {
      name: 'UNITWATCH_INCLUDE',
      description:
        'Units to watch: comma-separated names or globs (`*`, `?`, `[…]`), such as `*.service`, `backup-*.service`, `user@*.service`.',
      defaultText: '`*` (every unit)',
      example: '*.service,*.mount',
      schema: globList,
    },
    {
      name: 'UNITWATCH_EXCLUDE',
      description:
        'Units never to mail about, even when included: units that fail on purpose, such as automounts of absent disks.',
      defaultText: 'none',
      example: 'media-*.automount,systemd-networkd-wait-online.service',
      schema: globList,
    },
    {
      name: 'UNITWATCH_CRITICAL',
      description:
        'Units that must stay active. Leaving `active` for any reason (stopped, dead, failed) is mailed at high ' +
        'priority, and so is their recovery. Always watched, whatever UNITWATCH_EXCLUDE says.',
      defaultText: 'none',
      example: 'nginx.service,postgresql.service',
      schema: globList,
    },
    {
      name: 'UNITWATCH_REPEAT_INTERVALS',
      description:
        'Backoff for repeats of one unit. The first failure is mailed at once; after each mail about the unit, ' +
        'the next may follow only after the next interval (the last one repeats). Failures in between are ' +
        'counted and summed up in that next mail. A unit quiet for the longest interval starts afresh.',
      defaultText: '5min,15min,1h',
      example: '1min,10min,1h,6h',
      schema: durationList,
    },
    {
      name: 'UNITWATCH_STORM_THRESHOLD',
      description:
        'First failures of different units mailed one by one within UNITWATCH_STORM_WINDOW; beyond that, the ' +
        'others are gathered into one digest mail (a reboot, a full disk, a network outage).',
      defaultText: '3',
      example: '5',
      schema: integer(1, 1000),
    },
    {
      name: 'UNITWATCH_STORM_WINDOW',
      description: 'The window UNITWATCH_STORM_THRESHOLD counts in.',
      defaultText: '1min',
      example: '5min',
      schema: duration(1000, 86_400_000),
    },
    {
      name: 'UNITWATCH_DIGEST_DELAY',
      description: 'How long a storm digest collects failures before it is sent.',
      defaultText: '10s',
      example: '30s',
      schema: duration(0, 3_600_000),
    },
    {
      name: 'UNITWATCH_MAX_MAILS_PER_HOUR',
      description:
        'Hard cap on mails per hour, all kinds but recoveries. The mail that reaches it says so; past it, ' +
        'notifications are collected into one summary sent when the hour allows.',
      defaultText: '30',
      example: '60',
      schema: integer(1, 100_000),
    },
    {
      name: 'UNITWATCH_RECOVERY',
      description:
        'Send a short, threaded mail when a reported unit is up again (critical units always get one).',
      defaultText: 'yes',
      example: 'no',
      schema: boolean,
    },
    {
      name: 'UNITWATCH_RECOVERY_GRACE',
      description:
        'How long a unit must stay up (or how long after its successful run) before its recovery is mailed, so ' +
        'a crash loop does not read as recoveries.',
      defaultText: '30s',
      example: '2min',
      schema: duration(0, 86_400_000),
    },
  ];
}

export interface VariableDoc {
  readonly name: string;
  readonly description: string;
  readonly defaultText: string | undefined;
  readonly example: string;
}

/** The documented variables, for docs/configuration.md. */
export function describeVariables(context: ConfigContext): readonly VariableDoc[] {
  return variables(context).map(({ name, description, defaultText, example }) => ({
    name,
    description,
    defaultText,
    example,
  }));
}

/**
 * Parses the environment into a Config. Throws ConfigError listing every problem, never the first only.
 */
export function parseConfig(
  env: Readonly<Record<string, string | undefined>>,
  context: ConfigContext,
): Config {
  const specs = variables(context);
  const known = new Set(specs.map((spec) => spec.name));
  const problems: ConfigProblem[] = [];
  const values = new Map<string, unknown>();

  for (const name of Object.keys(env).sort()) {
    if (name.startsWith('UNITWATCH_') && !known.has(name)) {
      const suggestion = closestName(name, [...known]);
      problems.push({
        key: name,
        message: `is not a unitwatch variable${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`,
      });
    }
  }

  for (const spec of specs) {
    const raw = env[spec.name];
    if (raw === undefined || raw.trim() === '') continue;
    const result = spec.schema.safeParse(raw);
    if (result.success) {
      values.set(spec.name, result.data);
    } else {
      for (const issue of result.error.issues) problems.push({ key: spec.name, message: issue.message });
    }
  }

  const failed = new Set(problems.map((p) => p.key));
  const pick = <T>(name: string, fallback: T): T => (values.has(name) ? (values.get(name) as T) : fallback);
  const isSet = (name: string) => values.has(name) || failed.has(name);

  if (!isSet('UNITWATCH_TO'))
    problems.push({ key: 'UNITWATCH_TO', message: 'is required: who gets the mail?' });

  const smtp = values.get('UNITWATCH_SMTP_URL') as Omit<SmtpTransportConfig, 'passwordFile'> | undefined;
  const sendmail = values.get('UNITWATCH_SENDMAIL') as string | undefined;
  if (isSet('UNITWATCH_SMTP_URL') && isSet('UNITWATCH_SENDMAIL')) {
    problems.push({
      key: 'UNITWATCH_SENDMAIL',
      message: 'cannot be combined with UNITWATCH_SMTP_URL: pick one',
    });
  } else if (!isSet('UNITWATCH_SMTP_URL') && !isSet('UNITWATCH_SENDMAIL')) {
    problems.push({ key: 'UNITWATCH_SMTP_URL', message: 'is required unless UNITWATCH_SENDMAIL is set' });
  }

  const explicitPasswordFile = values.get('UNITWATCH_SMTP_PASSWORD_FILE') as string | undefined;
  if (explicitPasswordFile !== undefined && smtp !== undefined && smtp.user === undefined) {
    problems.push({
      key: 'UNITWATCH_SMTP_PASSWORD_FILE',
      message: 'is set but UNITWATCH_SMTP_URL names no user (smtp://USER@host:port)',
    });
  }
  if (explicitPasswordFile !== undefined && sendmail !== undefined) {
    problems.push({ key: 'UNITWATCH_SMTP_PASSWORD_FILE', message: 'has no use with UNITWATCH_SENDMAIL' });
  }

  const stateDirectory =
    (values.get('UNITWATCH_STATE_DIRECTORY') as string | undefined) ??
    // systemd joins several StateDirectory= entries with ':'; ours is the first.
    context.systemdStateDirectory?.split(':')[0];
  if (stateDirectory === undefined && !isSet('UNITWATCH_STATE_DIRECTORY')) {
    problems.push({
      key: 'UNITWATCH_STATE_DIRECTORY',
      message: 'is required outside systemd (under systemd, StateDirectory=unitwatch sets $STATE_DIRECTORY)',
    });
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const hostname = pick('UNITWATCH_HOSTNAME', context.hostname);
  const credentialPassword =
    context.credentialsDirectory === undefined ? undefined : `${context.credentialsDirectory}/smtp-password`;
  return {
    to: pick<string[]>('UNITWATCH_TO', []),
    from: pick('UNITWATCH_FROM', `unitwatch@${hostname}`),
    hostname,
    transport:
      smtp !== undefined
        ? {
            ...smtp,
            passwordFile: explicitPasswordFile ?? (smtp.user === undefined ? undefined : credentialPassword),
          }
        : { kind: 'sendmail', path: sendmail ?? '' },
    stateDirectory: stateDirectory ?? '',
    logLevel: pick<LogLevel>('UNITWATCH_LOG_LEVEL', 'info'),
    statusLines: pick('UNITWATCH_STATUS_LINES', 20),
    commandTimeoutMs: pick('UNITWATCH_COMMAND_TIMEOUT', 10_000),
    outputLimitBytes: pick('UNITWATCH_OUTPUT_LIMIT', 64 * 1024),
    journalSettleMs: pick('UNITWATCH_JOURNAL_SETTLE', 250),
    include: pick<string[]>('UNITWATCH_INCLUDE', ['*']),
    exclude: pick<string[]>('UNITWATCH_EXCLUDE', []),
    critical: pick<string[]>('UNITWATCH_CRITICAL', []),
    policy: {
      repeatIntervalsMs: pick<number[]>('UNITWATCH_REPEAT_INTERVALS', [300_000, 900_000, 3_600_000]),
      stormThreshold: pick('UNITWATCH_STORM_THRESHOLD', 3),
      stormWindowMs: pick('UNITWATCH_STORM_WINDOW', 60_000),
      digestDelayMs: pick('UNITWATCH_DIGEST_DELAY', 10_000),
      maxMailsPerHour: pick('UNITWATCH_MAX_MAILS_PER_HOUR', 30),
      recoveryMails: pick('UNITWATCH_RECOVERY', true),
      recoveryGraceMs: pick('UNITWATCH_RECOVERY_GRACE', 30_000),
    },
  };
}

/** The effective configuration as an environment file, for `unitwatch check-config`. Holds no secret. */
export function renderEffectiveConfig(config: Config): string {
  const transport = config.transport;
  const lines = [
    `UNITWATCH_TO=${config.to.join(',')}`,
    `UNITWATCH_FROM=${config.from}`,
    transport.kind === 'smtp'
      ? `UNITWATCH_SMTP_URL=${transport.url}`
      : `UNITWATCH_SENDMAIL=${transport.path}`,
  ];
  if (transport.kind === 'smtp') {
    lines.push(
      transport.passwordFile === undefined
        ? '# UNITWATCH_SMTP_PASSWORD_FILE unset: no SMTP authentication'
        : `UNITWATCH_SMTP_PASSWORD_FILE=${transport.passwordFile}  # contents not shown`,
    );
  }
  lines.push(
    `UNITWATCH_STATE_DIRECTORY=${config.stateDirectory}`,
    `UNITWATCH_HOSTNAME=${config.hostname}`,
    `UNITWATCH_LOG_LEVEL=${config.logLevel}`,
    `UNITWATCH_STATUS_LINES=${config.statusLines}`,
    `UNITWATCH_COMMAND_TIMEOUT=${formatDuration(config.commandTimeoutMs)}`,
    `UNITWATCH_OUTPUT_LIMIT=${config.outputLimitBytes}`,
    `UNITWATCH_JOURNAL_SETTLE=${formatDuration(config.journalSettleMs)}`,
    `UNITWATCH_INCLUDE=${config.include.join(',')}`,
    `UNITWATCH_EXCLUDE=${config.exclude.join(',')}`,
    `UNITWATCH_CRITICAL=${config.critical.join(',')}`,
    `UNITWATCH_REPEAT_INTERVALS=${config.policy.repeatIntervalsMs.map(formatDuration).join(',')}`,
    `UNITWATCH_STORM_THRESHOLD=${config.policy.stormThreshold}`,
    `UNITWATCH_STORM_WINDOW=${formatDuration(config.policy.stormWindowMs)}`,
    `UNITWATCH_DIGEST_DELAY=${formatDuration(config.policy.digestDelayMs)}`,
    `UNITWATCH_MAX_MAILS_PER_HOUR=${config.policy.maxMailsPerHour}`,
    `UNITWATCH_RECOVERY=${config.policy.recoveryMails ? 'yes' : 'no'}`,
    `UNITWATCH_RECOVERY_GRACE=${formatDuration(config.policy.recoveryGraceMs)}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Makes untrusted input safe to quote in a one-line error message. */
function printable(value: string): string {
  return cleanLine(value, 80);
}

function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
