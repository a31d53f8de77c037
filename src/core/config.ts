import { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors/config-error.js';
import {
  type AlertmanagerSettings,
  parseAlertmanagerUrls,
  parseStaticLabels,
} from './alertmanager-settings.js';
import { UNIT_GLOB, withUnitSuffix } from './globs.js';
import type { PolicySettings } from './policy.js';
import { cleanLine } from './text.js';
import { formatDuration, formatSize, parseDuration, parseSize } from './units-of-measure.js';

/**
 * The one schema of unitwatch's configuration. Validation, defaults, `check-config` output and
 * docs/configuration.md are all derived from `VARIABLES`, so they cannot drift apart.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const STARTTLS_POLICIES = ['require', 'opportunistic'] as const;
/** `require`: no mail without STARTTLS; `opportunistic`: upgrade when offered, else plain (no AUTH). */
export type StartTlsPolicy = (typeof STARTTLS_POLICIES)[number];

export interface SmtpTransportConfig {
  readonly kind: 'smtp';
  /** The URL without credentials, safe to print. */
  readonly url: string;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly user: string | undefined;
  /** For smtp://. Always `require` when there is a user; irrelevant (and `require`) for smtps://. */
  readonly startTls: StartTlsPolicy;
  /** A PEM file of CAs trusted besides the system's, read at start-up. */
  readonly caFile: string | undefined;
  /** Where the password is read from at start-up; the password itself never enters Config. */
  readonly passwordFile: string | undefined;
  /** Whether passwordFile was named (UNITWATCH_SMTP_PASSWORD_FILE) or is the systemd credential. */
  readonly passwordSource: 'file' | 'credential' | undefined;
}

export interface SendmailTransportConfig {
  readonly kind: 'sendmail';
  readonly path: string;
}

export const WEBHOOK_FORMATS = ['json', 'slack', 'ntfy'] as const;
/** `json`: unitwatch's own schema (docs/channels.md); `slack`: incoming-webhook JSON; `ntfy`: ntfy publish. */
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

export interface WebhookUrl {
  /** The whole URL, as sent to; may hold a token in its path (Slack, Discord), so never logged whole. */
  readonly url: string;
  /** Scheme, host and port only, safe to log and print: `https://hooks.slack.com/…`. */
  readonly display: string;
}

export interface WebhookConfig {
  readonly urls: readonly WebhookUrl[];
  readonly format: WebhookFormat;
  /** Where the HMAC secret is read from at start-up; the secret itself never enters Config. */
  readonly secretFile: string | undefined;
  /** A named file must be readable; the credential is used only if it exists. */
  readonly secretSource: 'file' | 'credential' | undefined;
  /** ntfy only: where the access token is read from at start-up. */
  readonly tokenFile: string | undefined;
  readonly tokenSource: 'file' | 'credential' | undefined;
  /** Plain http:// to hosts that are not loopback was allowed (UNITWATCH_WEBHOOK_ALLOW_HTTP). */
  readonly allowHttp: boolean;
  readonly timeoutMs: number;
}

/** Every kind of channel a notification can go to. */
export type ChannelKind = 'mail' | 'webhook' | 'alertmanager';

export interface Config {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly critical: readonly string[];
  readonly policy: PolicySettings;
  /** Empty when mail is not one of the channels. */
  readonly to: readonly string[];
  readonly from: string;
  readonly hostname: string;
  /** Undefined when mail is not one of the channels (another channel is configured instead). */
  readonly transport: SmtpTransportConfig | SendmailTransportConfig | undefined;
  /** Undefined when no UNITWATCH_WEBHOOK_URL is set. */
  readonly webhook: WebhookConfig | undefined;
  /** The channels every notification goes to, mail first; never empty. */
  readonly channels: readonly ChannelKind[];
  readonly stateDirectory: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly statusLines: number;
  readonly commandTimeoutMs: number;
  readonly outputLimitBytes: number;
  readonly journalSettleMs: number;
  /** Set when UNITWATCH_ALERTMANAGER_URL is: the incidents are also posted to Alertmanager. */
  readonly alertmanager?: AlertmanagerSettings | undefined;
}

/**
 * The configuration of a command that keeps no state (`check-config`, `test-email`, `check`):
 * the state directory may be unknown there.
 */
export type StatelessConfig = Omit<Config, 'stateDirectory'> & {
  readonly stateDirectory: string | undefined;
};

/** What the environment around the process supplies beyond the UNITWATCH_* variables. */
export interface ConfigContext {
  readonly hostname: string;
  /** `$STATE_DIRECTORY`, set by systemd's StateDirectory=. */
  readonly systemdStateDirectory: string | undefined;
  /** Used when neither of those is set: `--user` puts it under `$XDG_STATE_HOME`. */
  readonly defaultStateDirectory?: string | undefined;
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

const DOMAIN = String.raw`[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*`;
const LOCAL_PART = String.raw`[^\s@<>(),;:"\\[\]]+`;
/**
 * Local part @ host name. Looser than zod's z.email(), which wants a dotted domain: `root@localhost`
 * and `ops@mailhub` are real recipients on servers. A bare local part (`root`) is a local name.
 */
const ADDRESS = new RegExp(`^${LOCAL_PART}(?:@${DOMAIN})?$`);
/** `Ops <ops@example.org>` or `"Ops, Team" <ops@example.org>`. */
const DISPLAY_FORM = /^("(?:[^"\\\r\n]|\\[^\r\n])*"|[^"<>@,;:\\[\]\r\n]*?)\s*<([^<>]*)>$/;

export interface Mailbox {
  /** As it goes into the header: `ops@example.org` or `Ops <ops@example.org>`. */
  readonly text: string;
  /** The envelope address. */
  readonly address: string;
  /** True for a bare local name such as `root`, which only sendmail can qualify. */
  readonly local: boolean;
}

/** One mailbox as written, or the problem with it. */
export function parseMailbox(written: string): Mailbox | string {
  const value = written.trim();
  // Control characters (CR, LF, ESC, NUL…) would let a value open a header line or a terminal escape.
  if (/\p{Cc}/u.test(value)) return `"${printable(value)}" is not a mail address`;
  const display = DISPLAY_FORM.exec(value);
  const name = display?.[1]?.trim() ?? '';
  const address = (display === null ? value : (display[2] ?? '')).trim();
  if (address.startsWith('-')) {
    return `"${printable(address)}" starts with "-", which sendmail would take as an option: remove the dash`;
  }
  if (!ADDRESS.test(address)) {
    const hint = /[;\s]/.test(value) ? '; separate addresses with commas' : '';
    return `"${printable(value)}" is not a mail address${hint}`;
  }
  return { text: name === '' ? address : `${name} <${address}>`, address, local: !address.includes('@') };
}

/** Splits at commas outside double quotes, so `"Ops, Team" <ops@example.org>` stays one. */
function splitAddressList(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i] ?? '';
    if (char === '\\' && quoted) {
      current += char + (value[++i] ?? '');
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === ',' && !quoted) {
      parts.push(current);
      current = '';
    } else current += char;
  }
  parts.push(current);
  return parts.map((part) => part.trim()).filter((part) => part !== '');
}

const addressList = z.string().transform((value, ctx) => {
  const parts = splitAddressList(value);
  if (parts.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'needs at least one address' });
    return z.NEVER;
  }
  const mailboxes: Mailbox[] = [];
  for (const part of parts) {
    const mailbox = parseMailbox(part);
    if (typeof mailbox === 'string') ctx.addIssue({ code: 'custom', message: mailbox });
    else mailboxes.push(mailbox);
  }
  return mailboxes;
});

const singleAddress = z.string().transform((value, ctx) => {
  const mailbox = parseMailbox(value);
  if (typeof mailbox === 'string') {
    const several = splitAddressList(value).length > 1;
    ctx.addIssue({
      code: 'custom',
      message: several ? `"${printable(value.trim())}" is not one mail address` : mailbox,
    });
    return z.NEVER;
  }
  return mailbox;
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
      ctx.addIssue({ code: 'custom', message: `must be between ${formatSize(min)} and ${formatSize(max)}` });
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

/** Unit names and globs; a name without a type suffix means a service, as in systemctl. */
const globList = z.string().transform((value, ctx) => {
  const globs = list(value);
  for (const glob of globs) {
    if (!UNIT_GLOB.test(glob)) {
      const hint = /[;\s]/.test(glob) ? '; separate units with commas' : '';
      ctx.addIssue({ code: 'custom', message: `"${printable(glob)}" is not a unit name or glob${hint}` });
    }
  }
  return globs.map(withUnitSuffix);
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

const alertmanagerUrls = z.string().transform((value, ctx) => {
  const parsed = parseAlertmanagerUrls(value);
  if (parsed.ok) return parsed.value;
  for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
});

const staticLabels = z.string().transform((value, ctx) => {
  const parsed = parseStaticLabels(value);
  if (parsed.ok) return parsed.value;
  for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
});

const boolean = z.string().transform((value, ctx) => {
  const normalized = value.trim().toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(normalized)) return true;
  if (['0', 'no', 'false', 'off'].includes(normalized)) return false;
  ctx.addIssue({ code: 'custom', message: `"${printable(value)}" is not yes or no` });
  return z.NEVER;
});

type ParsedSmtpUrl = Pick<SmtpTransportConfig, 'kind' | 'url' | 'secure' | 'host' | 'port' | 'user'>;

/** What to do instead of a query parameter that other tools read from an SMTP URL. */
const QUERY_PARAMETER_FIXES: Record<string, string> = {
  secure: 'use smtps:// for TLS from the start, or smtp:// with UNITWATCH_SMTP_STARTTLS',
  ssl: 'use smtps:// for TLS from the start, or smtp:// with UNITWATCH_SMTP_STARTTLS',
  tls: 'use smtps:// for TLS from the start, or smtp:// with UNITWATCH_SMTP_STARTTLS',
  starttls: 'set UNITWATCH_SMTP_STARTTLS=require or opportunistic instead',
  requiretls: 'set UNITWATCH_SMTP_STARTTLS=require instead',
  ignoretls: 'set UNITWATCH_SMTP_STARTTLS=opportunistic instead (TLS is never skipped when offered)',
  opportunistictls: 'set UNITWATCH_SMTP_STARTTLS=opportunistic instead',
  rejectunauthorized:
    'certificates are always verified; for a private CA, set UNITWATCH_SMTP_CA_FILE to its certificate',
  ca: 'set UNITWATCH_SMTP_CA_FILE to the CA certificate instead',
  password: 'put the password in a file named by UNITWATCH_SMTP_PASSWORD_FILE instead',
  pass: 'put the password in a file named by UNITWATCH_SMTP_PASSWORD_FILE instead',
};

const smtpUrl = z.string().transform((value, ctx): ParsedSmtpUrl => {
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  const trimmed = value.trim();
  // WHATWG URL refuses a port above 65535 outright; say that rather than "is not a URL".
  const writtenPort = /^smtps?:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)(?:[/?#]|$)/i.exec(
    trimmed,
  )?.[1];
  if (writtenPort !== undefined && (Number(writtenPort) < 1 || Number(writtenPort) > 65535)) {
    return fail(`port ${printable(writtenPort)} is out of range (1-65535)`);
  }
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return fail(`"${printable(value)}" is not a URL (e.g. smtp://mail.example.org:587)`);
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    return fail('scheme must be smtp:// (STARTTLS) or smtps:// (TLS from the start)');
  }
  if (url.password !== '') {
    // A password in the URL would sit in the clear environment, readable in /proc and `systemctl show`.
    return fail('must not contain a password: put it in a file named by UNITWATCH_SMTP_PASSWORD_FILE');
  }
  if (url.hostname === '') return fail('has no host');
  let rejected = false;
  for (const name of new Set(url.searchParams.keys())) {
    rejected = true;
    const fix =
      QUERY_PARAMETER_FIXES[name.toLowerCase()] ??
      'remove it: unitwatch reads its settings from UNITWATCH_* variables, not from the URL';
    ctx.addIssue({
      code: 'custom',
      message: `query parameter "${printable(name)}" is not supported: ${fix}`,
    });
  }
  if (!rejected && url.search !== '') {
    return fail('must not have a query (?…): unitwatch reads its settings from UNITWATCH_* variables');
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.hash !== '') {
    return fail(`must be just scheme, user, host and port: remove "${printable(url.pathname + url.hash)}"`);
  }
  if (rejected) return z.NEVER;
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

/** 127.0.0.0/8, ::1 and localhost: a relay on this machine, reached without crossing a network. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Space- or comma-separated, like the other list variables. */
function urlList(value: string): string[] {
  return value
    .split(/[\s,]+/)
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

interface ParsedWebhookUrl extends WebhookUrl {
  /** Plain http:// to a host that is not loopback: allowed only with UNITWATCH_WEBHOOK_ALLOW_HTTP. */
  readonly plainRemote: boolean;
}

/** What is wrong with one webhook URL, or the URL itself. */
export function parseWebhookUrl(written: string): ParsedWebhookUrl | string {
  let url: URL;
  try {
    url = new URL(written);
  } catch {
    return `"${printable(written)}" is not a URL (e.g. https://hooks.example.org/unitwatch)`;
  }
  const display = `${url.protocol}//${url.host}/…`;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return `${display}: scheme must be https:// (or http:// to loopback)`;
  }
  if (url.username !== '' || url.password !== '') {
    // A secret in the URL would sit in the clear environment, readable in /proc and `systemctl show`.
    return (
      `${display}: must not contain credentials (user:password@): sign with ` +
      'UNITWATCH_WEBHOOK_SECRET_FILE, or for ntfy put the access token in UNITWATCH_NTFY_TOKEN_FILE'
    );
  }
  if (url.hash !== '') return `${display}: must not have a #fragment, which is never sent`;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { url: url.href, display, plainRemote: url.protocol === 'http:' && !isLoopback(host) };
}

const webhookUrls = z.string().transform((value, ctx) => {
  const parsed: ParsedWebhookUrl[] = [];
  for (const part of urlList(value)) {
    const url = parseWebhookUrl(part);
    if (typeof url === 'string') ctx.addIssue({ code: 'custom', message: url });
    else if (parsed.some((known) => known.url === url.url))
      ctx.addIssue({ code: 'custom', message: `${url.display} is listed twice` });
    else parsed.push(url);
  }
  if (parsed.length === 0 && urlList(value).length === 0) {
    ctx.addIssue({ code: 'custom', message: 'needs at least one URL' });
  }
  return parsed;
});

const MAIL_VARIABLES = ['UNITWATCH_TO', 'UNITWATCH_SMTP_URL', 'UNITWATCH_SENDMAIL'] as const;

/**
 * The channels the environment configures, mail first. Mail is the default: with nothing
 * configured it is the one listed, so its own "is required" problems say what is missing. Every
 * new channel adds its line here.
 */
export function configuredChannels(isSet: (name: string) => boolean): ChannelKind[] {
  const channels: ChannelKind[] = [];
  const webhook = isSet('UNITWATCH_WEBHOOK_URL');
  const alertmanager = isSet('UNITWATCH_ALERTMANAGER_URL');
  if (MAIL_VARIABLES.some(isSet) || (!webhook && !alertmanager)) channels.push('mail');
  if (webhook) channels.push('webhook');
  if (alertmanager) channels.push('alertmanager');
  return channels;
}

function variables(context: ConfigContext): readonly VariableSpec[] {
  return [
    {
      name: 'UNITWATCH_TO',
      description:
        'Where notifications go: one or more addresses, comma-separated, each `ops@example.org` or ' +
        '`Ops <ops@example.org>`. A bare local name such as `root` is accepted with `UNITWATCH_SENDMAIL`, ' +
        'which qualifies it, and refused with SMTP, where a relay would refuse it or deliver it to its own ' +
        '`root`: write `root@<hostname>` there. An address may not start with `-`. Required.',
      defaultText: undefined,
      example: 'ops@example.org, oncall@example.org',
      schema: addressList,
    },
    {
      name: 'UNITWATCH_FROM',
      description: 'Sender address of every mail, written as in `UNITWATCH_TO` (one address).',
      defaultText: `unitwatch@${context.hostname}`,
      example: 'unitwatch@web1.example.org',
      schema: singleAddress,
    },
    {
      name: 'UNITWATCH_SMTP_URL',
      description:
        'SMTP server to send through. `smtp://host:port` upgrades with STARTTLS (see ' +
        '`UNITWATCH_SMTP_STARTTLS`), `smtps://host:port` speaks TLS from the start (port 465). The port ' +
        'defaults to 25 (smtp) or 465 (smtps). A user name goes in the URL (`smtp://alerts@host:587`), ' +
        'the password never does; with a user, the password is only ever sent over TLS. The URL takes no ' +
        'query parameters and no path: every setting is a `UNITWATCH_*` variable. Exactly one of this and ' +
        '`UNITWATCH_SENDMAIL` must be set.',
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
      name: 'UNITWATCH_SMTP_STARTTLS',
      description:
        'For `smtp://`: `require` sends no mail unless the server offers STARTTLS and the upgrade ' +
        'succeeds; `opportunistic` upgrades when offered and otherwise sends in the clear. With a user in ' +
        '`UNITWATCH_SMTP_URL` it is always `require` (credentials never cross an unencrypted connection), ' +
        'and `opportunistic` is refused. Has no effect with `smtps://`, which is TLS from the start.',
      defaultText: '`require`, or `opportunistic` for a relay on loopback (127.0.0.0/8, ::1, localhost)',
      example: 'require',
      schema: z.enum(STARTTLS_POLICIES, { error: `must be one of ${STARTTLS_POLICIES.join(', ')}` }),
    },
    {
      name: 'UNITWATCH_SMTP_CA_FILE',
      description:
        "PEM file of CA certificates trusted besides Node.js's built-in ones, for a relay whose certificate " +
        'a private CA signed (or a self-signed one). Read at start-up; an unreadable file is a configuration ' +
        'error. Certificates are always verified; there is no way to turn that off.',
      defaultText: 'none',
      example: '/etc/unitwatch/relay-ca.pem',
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
      name: 'UNITWATCH_WEBHOOK_URL',
      description:
        'Also (or instead of mail) send every notification to these URLs, space- or comma-separated, each ' +
        'with its own durable queue and retries (docs/channels.md). `https://` only, or `http://` to ' +
        'loopback (127.0.0.0/8, ::1, localhost); plain `http://` elsewhere needs ' +
        '`UNITWATCH_WEBHOOK_ALLOW_HTTP=yes`. No credentials in the URL. Mail is optional once this is set: ' +
        'leave `UNITWATCH_TO` unset to send to webhooks only. Logs show scheme and host only, since a ' +
        "path may hold a token (Slack's, Discord's).",
      defaultText: 'none',
      example: 'https://hooks.example.org/unitwatch, https://ntfy.example.org/ops',
      schema: webhookUrls,
    },
    {
      name: 'UNITWATCH_WEBHOOK_FORMAT',
      description:
        "`json`: unitwatch's versioned schema (docs/channels.md). `slack`: the incoming-webhook JSON " +
        "(`text`) that Slack, Mattermost, Rocket.Chat and Discord's `/slack` endpoint accept. `ntfy`: an " +
        'ntfy publish (Title, Priority, Tags, Markdown body) to a topic URL such as ' +
        '`https://ntfy.sh/mytopic`. Applies to every URL.',
      defaultText: 'json',
      example: 'slack',
      schema: z.enum(WEBHOOK_FORMATS, { error: `must be one of ${WEBHOOK_FORMATS.join(', ')}` }),
    },
    {
      name: 'UNITWATCH_WEBHOOK_SECRET_FILE',
      description:
        'File holding a secret (trailing newline ignored): each request then carries ' +
        '`X-Unitwatch-Timestamp` and `X-Unitwatch-Signature: sha256=HEX`, the HMAC-SHA256 of ' +
        '`TIMESTAMP.BODY` (docs/channels.md shows how to verify it). When unset, the systemd credential ' +
        '`webhook-secret` is used if present (`LoadCredential=webhook-secret:/path`); otherwise requests ' +
        'are not signed.',
      defaultText: '`$CREDENTIALS_DIRECTORY/webhook-secret` if it exists, else unsigned',
      example: '/run/secrets/unitwatch-webhook',
      schema: absolutePath,
    },
    {
      name: 'UNITWATCH_NTFY_TOKEN_FILE',
      description:
        'With `UNITWATCH_WEBHOOK_FORMAT=ntfy`: file holding an ntfy access token, sent as ' +
        '`Authorization: Bearer`. When unset, the systemd credential `ntfy-token` is used if present.',
      defaultText: '`$CREDENTIALS_DIRECTORY/ntfy-token` if it exists, else no token',
      example: '/run/secrets/ntfy-token',
      schema: absolutePath,
    },
    {
      name: 'UNITWATCH_WEBHOOK_ALLOW_HTTP',
      description:
        'Allow plain `http://` webhook URLs to hosts that are not loopback. Notifications (and a bearer ' +
        'token) then cross the network unencrypted; refused by default.',
      defaultText: 'no',
      example: 'yes',
      schema: boolean,
    },
    {
      name: 'UNITWATCH_WEBHOOK_TIMEOUT',
      description:
        'How long one webhook request may take before it is abandoned and retried (as a transient failure).',
      defaultText: '10s',
      example: '30s',
      schema: duration(1000, 300_000),
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
      name: 'UNITWATCH_LOG_FORMAT',
      description:
        '`text`: one line a message for the journal, subject first, then `key=value` facts. `json`: one ' +
        'JSON object a line, for log shippers.',
      defaultText: 'text',
      example: 'json',
      schema: z.enum(LOG_FORMATS, { error: `must be one of ${LOG_FORMATS.join(', ')}` }),
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
        "When the failed invocation's journal does not yet show systemd's own closing line (\"Failed with " +
        'result", "Main process exited"), journald may not have stored the last lines the unit wrote: wait ' +
        'this long and read the journal again.',
      defaultText: '250ms',
      example: '1s',
      schema: duration(0, 10_000),
    },
    {
      name: 'UNITWATCH_INCLUDE',
      description:
        'Units to watch: comma-separated names or globs (`*`, `?`, `[…]`), such as `*.service`, `backup-*.service`, `user@*.service`. ' +
        'As with systemctl, a name without a type suffix is a service (`nginx` means `nginx.service`); a glob ' +
        'that ends in a wildcard is kept as written.',
      defaultText: '`*` (every unit)',
      example: '*.service,*.mount',
      schema: globList,
    },
    {
      name: 'UNITWATCH_EXCLUDE',
      description:
        'Units never to mail about, even when included: units that fail on purpose, such as automounts of absent disks. ' +
        'Written as `UNITWATCH_INCLUDE`.',
      defaultText: 'none',
      example: 'media-*.automount,systemd-networkd-wait-online.service',
      schema: globList,
    },
    {
      name: 'UNITWATCH_CRITICAL',
      description:
        'Units that must stay active. Leaving `active` for any reason (stopped, dead, failed) is mailed at high ' +
        'priority, and so is their recovery. Always watched, whatever UNITWATCH_EXCLUDE says. Written as ' +
        '`UNITWATCH_INCLUDE` (`myapp` means `myapp.service`).',
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
      description:
        'How long a storm digest collects failures at most before it is sent (sooner once they stop ' +
        'arriving: UNITWATCH_DIGEST_QUIET).',
      defaultText: '10s',
      example: '30s',
      schema: duration(0, 3_600_000),
    },
    {
      name: 'UNITWATCH_DIGEST_QUIET',
      description:
        'A storm digest goes out this long after the last failure it gathered, when that is sooner than ' +
        'UNITWATCH_DIGEST_DELAY: a storm that is over is mailed at once.',
      defaultText: '2s',
      example: '5s',
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
    // Alertmanager (docs/alertmanager.md).
    {
      name: 'UNITWATCH_ALERTMANAGER_URL',
      description:
        'Also post every open incident to Alertmanager, one alert per failed unit (see ' +
        '[alertmanager.md](alertmanager.md)). The base URL of each Alertmanager of the cluster, ' +
        'separated by commas or spaces: each gets every alert, as from Prometheus. http:// or https://, ' +
        'no user or password, no query; a path only as the prefix of an Alertmanager behind a proxy or ' +
        'with `--web.route-prefix`. unitwatch appends `/api/v2/alerts`. The rate limits and digests of ' +
        'mail do not apply here. Unset: no Alertmanager.',
      defaultText: undefined,
      example: 'http://am1.example.org:9093, http://am2.example.org:9093',
      schema: alertmanagerUrls,
    },
    {
      name: 'UNITWATCH_ALERTMANAGER_LABELS',
      description:
        'Static labels added to every alert, `name=value` separated by spaces or commas. Names follow ' +
        "Prometheus's `[a-zA-Z_][a-zA-Z0-9_]*`; `alertname`, `instance`, `unit` and `severity` are " +
        "unitwatch's own and cannot be overridden. Values cannot contain spaces or commas.",
      defaultText: 'none',
      example: 'env=prod team=ops',
      schema: staticLabels,
    },
    {
      name: 'UNITWATCH_ALERTMANAGER_INTERVAL',
      description:
        'How often open incidents are posted again. Each post says the alert ends 4 intervals later ' +
        'unless posted again, so an alert whose resolve was lost (unitwatch killed) resolves by itself; ' +
        "keep it well below Alertmanager's `resolve_timeout` (5 min by default).",
      defaultText: '1min',
      example: '30s',
      schema: duration(1000, 300_000),
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
 * What a command needs from the configuration. Only `run` keeps state; `check-config` runs outside
 * the service, where the systemd credential holding the password is not visible.
 */
export type ConfigPurpose = 'run' | 'test-email' | 'check-config';

const NEEDS: Record<ConfigPurpose, { readonly stateDirectory: boolean; readonly password: boolean }> = {
  run: { stateDirectory: true, password: true },
  'test-email': { stateDirectory: false, password: true },
  'check-config': { stateDirectory: false, password: false },
};

/**
 * Parses the environment into the daemon's Config. Throws ConfigError listing every problem,
 * never the first only.
 */
export function parseConfig(
  env: Readonly<Record<string, string | undefined>>,
  context: ConfigContext,
): Config {
  const config = parseConfigFor('run', env, context);
  return { ...config, stateDirectory: config.stateDirectory ?? '' };
}

/** Parses the environment for one command, validating only what that command needs. */
export function parseConfigFor(
  purpose: ConfigPurpose,
  env: Readonly<Record<string, string | undefined>>,
  context: ConfigContext,
): StatelessConfig {
  const needs = NEEDS[purpose];
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
  const hostname = pick('UNITWATCH_HOSTNAME', context.hostname);

  const channels = configuredChannels(isSet);
  const mail = channels.includes('mail');
  if (mail && !isSet('UNITWATCH_TO')) {
    problems.push({
      key: 'UNITWATCH_TO',
      message:
        channels.length > 1
          ? 'is required: who gets the mail? (to notify through the other channels only, unset UNITWATCH_SMTP_URL and UNITWATCH_SENDMAIL too)'
          : 'is required: who gets the mail? (or set UNITWATCH_WEBHOOK_URL or UNITWATCH_ALERTMANAGER_URL to notify through those only)',
    });
  }

  const smtp = values.get('UNITWATCH_SMTP_URL') as ParsedSmtpUrl | undefined;
  const sendmail = values.get('UNITWATCH_SENDMAIL') as string | undefined;
  if (isSet('UNITWATCH_SMTP_URL') && isSet('UNITWATCH_SENDMAIL')) {
    problems.push({
      key: 'UNITWATCH_SENDMAIL',
      message: 'cannot be combined with UNITWATCH_SMTP_URL: pick one',
    });
  } else if (mail && !isSet('UNITWATCH_SMTP_URL') && !isSet('UNITWATCH_SENDMAIL')) {
    problems.push({ key: 'UNITWATCH_SMTP_URL', message: 'is required unless UNITWATCH_SENDMAIL is set' });
  }

  const webhook = webhookProblems(values, isSet, problems, env.UNITWATCH_WEBHOOK_URL);

  // Settings that only SMTP reads.
  for (const name of ['UNITWATCH_SMTP_PASSWORD_FILE', 'UNITWATCH_SMTP_STARTTLS', 'UNITWATCH_SMTP_CA_FILE']) {
    if (values.has(name) && sendmail !== undefined)
      problems.push({ key: name, message: 'has no use with UNITWATCH_SENDMAIL' });
  }

  const explicitPasswordFile = values.get('UNITWATCH_SMTP_PASSWORD_FILE') as string | undefined;
  if (explicitPasswordFile !== undefined && smtp !== undefined && smtp.user === undefined) {
    problems.push({
      key: 'UNITWATCH_SMTP_PASSWORD_FILE',
      message: 'is set but UNITWATCH_SMTP_URL names no user (smtp://USER@host:port)',
    });
  }
  if (
    needs.password &&
    smtp?.user !== undefined &&
    explicitPasswordFile === undefined &&
    !isSet('UNITWATCH_SMTP_PASSWORD_FILE') &&
    context.credentialsDirectory === undefined
  ) {
    problems.push({
      key: 'UNITWATCH_SMTP_URL',
      message:
        `names the user "${printable(smtp.user)}" but no password is supplied: set ` +
        'UNITWATCH_SMTP_PASSWORD_FILE=/path/to/file, or give the service the systemd credential ' +
        'smtp-password (LoadCredential=smtp-password:/path/to/file; NixOS: smtpPasswordFile)',
    });
  }

  const explicitStartTls = values.get('UNITWATCH_SMTP_STARTTLS') as StartTlsPolicy | undefined;
  if (smtp?.secure === true && explicitStartTls !== undefined) {
    problems.push({
      key: 'UNITWATCH_SMTP_STARTTLS',
      message: 'has no effect with smtps://, which is TLS from the start: remove it',
    });
  }
  if (smtp?.secure === false && smtp.user !== undefined && explicitStartTls === 'opportunistic') {
    problems.push({
      key: 'UNITWATCH_SMTP_STARTTLS',
      message:
        'cannot be opportunistic while UNITWATCH_SMTP_URL names a user: credentials are only ever sent ' +
        'over TLS. Remove it (require is then implied), or remove the user if the relay needs no login',
    });
  }

  const to = pick<Mailbox[]>('UNITWATCH_TO', []);
  const from = pick<Mailbox | undefined>('UNITWATCH_FROM', undefined);
  // A URL that failed to parse still says the mail goes out over SMTP.
  if (isSet('UNITWATCH_SMTP_URL') && !isSet('UNITWATCH_SENDMAIL')) {
    for (const mailbox of to.filter((box) => box.local)) {
      problems.push({
        key: 'UNITWATCH_TO',
        message:
          `"${printable(mailbox.address)}" has no domain, and an SMTP relay would refuse it or deliver it to ` +
          `its own "${printable(mailbox.address)}": write ${printable(mailbox.address)}@${hostname} (or the ` +
          'full address), or send through UNITWATCH_SENDMAIL, which qualifies local names',
      });
    }
    if (from?.local === true) {
      problems.push({
        key: 'UNITWATCH_FROM',
        message: `"${printable(from.address)}" has no domain: with SMTP, write ${printable(from.address)}@${hostname}`,
      });
    }
  }

  const stateDirectory =
    (values.get('UNITWATCH_STATE_DIRECTORY') as string | undefined) ??
    // systemd joins several StateDirectory= entries with ':'; ours is the first.
    context.systemdStateDirectory?.split(':')[0] ??
    context.defaultStateDirectory;
  if (needs.stateDirectory && stateDirectory === undefined && !isSet('UNITWATCH_STATE_DIRECTORY')) {
    problems.push({
      key: 'UNITWATCH_STATE_DIRECTORY',
      message: 'is required outside systemd (under systemd, StateDirectory=unitwatch sets $STATE_DIRECTORY)',
    });
  }

  const alertmanagerUrlList = values.get('UNITWATCH_ALERTMANAGER_URL') as string[] | undefined;
  for (const name of ['UNITWATCH_ALERTMANAGER_LABELS', 'UNITWATCH_ALERTMANAGER_INTERVAL']) {
    // Under the URL's key: the setting itself is fine, what it belongs to is missing.
    if (values.has(name) && !isSet('UNITWATCH_ALERTMANAGER_URL'))
      problems.push({
        key: 'UNITWATCH_ALERTMANAGER_URL',
        message: `is needed by ${name}: set it to the Alertmanagers' URLs, or remove ${name}`,
      });
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const credential = (name: string) =>
    context.credentialsDirectory === undefined ? undefined : `${context.credentialsDirectory}/${name}`;
  const credentialPassword = credential('smtp-password');
  const passwordFile = smtp?.user === undefined ? undefined : (explicitPasswordFile ?? credentialPassword);
  return {
    to: to.map((mailbox) => mailbox.text),
    from: from?.text ?? `unitwatch@${hostname}`,
    hostname,
    channels,
    webhook:
      webhook === undefined
        ? undefined
        : {
            urls: webhook.urls.map(({ url, display }) => ({ url, display })),
            format: webhook.format,
            ...secretFileOf(webhook.secretFile, credential('webhook-secret'), 'secret'),
            ...secretFileOf(
              webhook.format === 'ntfy' ? webhook.tokenFile : undefined,
              webhook.format === 'ntfy' ? credential('ntfy-token') : undefined,
              'token',
            ),
            allowHttp: webhook.allowHttp,
            timeoutMs: webhook.timeoutMs,
          },
    transport: !mail
      ? undefined
      : smtp !== undefined
        ? {
            ...smtp,
            startTls:
              smtp.secure || smtp.user !== undefined
                ? 'require'
                : (explicitStartTls ?? (isLoopback(smtp.host) ? 'opportunistic' : 'require')),
            caFile: values.get('UNITWATCH_SMTP_CA_FILE') as string | undefined,
            passwordFile,
            passwordSource:
              passwordFile === undefined
                ? undefined
                : explicitPasswordFile === undefined
                  ? 'credential'
                  : 'file',
          }
        : { kind: 'sendmail', path: sendmail ?? '' },
    stateDirectory,
    logLevel: pick<LogLevel>('UNITWATCH_LOG_LEVEL', 'info'),
    logFormat: pick<LogFormat>('UNITWATCH_LOG_FORMAT', 'text'),
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
      digestQuietMs: pick('UNITWATCH_DIGEST_QUIET', 2_000),
      maxMailsPerHour: pick('UNITWATCH_MAX_MAILS_PER_HOUR', 30),
      recoveryMails: pick('UNITWATCH_RECOVERY', true),
      recoveryGraceMs: pick('UNITWATCH_RECOVERY_GRACE', 30_000),
    },
    alertmanager:
      alertmanagerUrlList === undefined
        ? undefined
        : {
            urls: alertmanagerUrlList,
            labels: pick<Record<string, string>>('UNITWATCH_ALERTMANAGER_LABELS', {}),
            intervalMs: pick('UNITWATCH_ALERTMANAGER_INTERVAL', 60_000),
          },
  };
}

interface ParsedWebhook {
  readonly urls: readonly ParsedWebhookUrl[];
  readonly format: WebhookFormat;
  readonly secretFile: string | undefined;
  readonly tokenFile: string | undefined;
  readonly allowHttp: boolean;
  readonly timeoutMs: number;
}

/** The webhook settings, checked against each other; problems are added to `problems`. */
function webhookProblems(
  values: ReadonlyMap<string, unknown>,
  isSet: (name: string) => boolean,
  problems: ConfigProblem[],
  rawUrls: string | undefined,
): ParsedWebhook | undefined {
  const urls = values.get('UNITWATCH_WEBHOOK_URL') as ParsedWebhookUrl[] | undefined;
  const format = (values.get('UNITWATCH_WEBHOOK_FORMAT') as WebhookFormat | undefined) ?? 'json';
  if (!isSet('UNITWATCH_WEBHOOK_URL')) {
    for (const name of [
      'UNITWATCH_WEBHOOK_FORMAT',
      'UNITWATCH_WEBHOOK_SECRET_FILE',
      'UNITWATCH_NTFY_TOKEN_FILE',
      'UNITWATCH_WEBHOOK_ALLOW_HTTP',
      'UNITWATCH_WEBHOOK_TIMEOUT',
    ]) {
      if (values.has(name)) problems.push({ key: name, message: 'has no use without UNITWATCH_WEBHOOK_URL' });
    }
    return undefined;
  }
  if (values.has('UNITWATCH_NTFY_TOKEN_FILE') && format !== 'ntfy') {
    problems.push({
      key: 'UNITWATCH_NTFY_TOKEN_FILE',
      message: `has no use with UNITWATCH_WEBHOOK_FORMAT=${format}: set UNITWATCH_WEBHOOK_FORMAT=ntfy, or remove it`,
    });
  }
  const allowHttp = values.get('UNITWATCH_WEBHOOK_ALLOW_HTTP') === true;
  // Read from the raw list too: one bad URL beside it must not hide that another is plain http.
  for (const url of urlList(rawUrls ?? '').map(parseWebhookUrl)) {
    if (typeof url !== 'string' && url.plainRemote && !allowHttp) {
      problems.push({
        key: 'UNITWATCH_WEBHOOK_URL',
        message:
          `${url.display} is plain http:// to a host that is not loopback: notifications would cross the ` +
          'network unencrypted. Use https://, or set UNITWATCH_WEBHOOK_ALLOW_HTTP=yes to accept that',
      });
    }
  }
  if (urls === undefined) return undefined;
  return {
    urls,
    format,
    secretFile: values.get('UNITWATCH_WEBHOOK_SECRET_FILE') as string | undefined,
    tokenFile: values.get('UNITWATCH_NTFY_TOKEN_FILE') as string | undefined,
    allowHttp,
    timeoutMs: (values.get('UNITWATCH_WEBHOOK_TIMEOUT') as number | undefined) ?? 10_000,
  };
}

/** A named file (must be readable), else the systemd credential (used only if it exists). */
function secretFileOf<K extends 'secret' | 'token'>(
  explicit: string | undefined,
  credential: string | undefined,
  kind: K,
): Record<`${K}File`, string | undefined> & Record<`${K}Source`, 'file' | 'credential' | undefined> {
  const file = explicit ?? credential;
  const source = explicit !== undefined ? 'file' : credential !== undefined ? 'credential' : undefined;
  return { [`${kind}File`]: file, [`${kind}Source`]: source } as Record<`${K}File`, string | undefined> &
    Record<`${K}Source`, 'file' | 'credential' | undefined>;
}

/**
 * A value as the env-file parser reads it back: quoted (with its escapes) when it starts with a
 * quote or has spaces at either end, literal otherwise.
 */
function envValue(value: string): string {
  if (!/^["']|^\s|\s$/.test(value)) return value;
  return `"${value.replace(/["\\$`]/g, '\\$&')}"`;
}

/**
 * The effective configuration as an environment file, for `unitwatch check-config`: read back by
 * `--env-file` (or systemd's EnvironmentFile=), it gives the same configuration. Holds no secret;
 * every comment is a line of its own, since a `#` after a value is part of the value.
 */
export function renderEffectiveConfig(config: StatelessConfig): string {
  const transport = config.transport;
  const lines: string[] = [];
  const set = (name: string, value: string) => lines.push(`${name}=${envValue(value)}`);
  lines.push(`# channels: ${config.channels.join(', ')}`);
  if (transport === undefined) {
    lines.push('# mail is not a channel: UNITWATCH_TO, UNITWATCH_SMTP_URL and UNITWATCH_SENDMAIL unset');
  } else {
    set('UNITWATCH_TO', config.to.join(','));
  }
  set('UNITWATCH_FROM', config.from);
  if (transport === undefined) {
    // Nothing to print for mail.
  } else if (transport.kind === 'smtp') {
    set('UNITWATCH_SMTP_URL', transport.url);
    if (transport.secure) lines.push('# UNITWATCH_SMTP_STARTTLS: no effect, smtps:// is TLS from the start');
    else {
      if (transport.user !== undefined) lines.push('# STARTTLS is required: the URL names a user');
      set('UNITWATCH_SMTP_STARTTLS', transport.startTls);
    }
    if (transport.caFile === undefined) lines.push("# UNITWATCH_SMTP_CA_FILE unset: Node.js's built-in CAs");
    else set('UNITWATCH_SMTP_CA_FILE', transport.caFile);
    if (transport.user === undefined) {
      lines.push('# UNITWATCH_SMTP_PASSWORD_FILE unset: no SMTP authentication');
    } else if (transport.passwordSource === 'file' && transport.passwordFile !== undefined) {
      lines.push('# the SMTP password is read from this file; its contents are not shown');
      set('UNITWATCH_SMTP_PASSWORD_FILE', transport.passwordFile);
    } else if (transport.passwordFile !== undefined) {
      lines.push(
        `# UNITWATCH_SMTP_PASSWORD_FILE unset: the password is the systemd credential smtp-password (${transport.passwordFile}), contents not shown`,
      );
    } else {
      lines.push(
        '# UNITWATCH_SMTP_PASSWORD_FILE unset and no $CREDENTIALS_DIRECTORY here: the service needs ' +
          'LoadCredential=smtp-password:/path, or set UNITWATCH_SMTP_PASSWORD_FILE',
      );
    }
  } else {
    set('UNITWATCH_SENDMAIL', transport.path);
  }
  const webhook = config.webhook;
  if (webhook !== undefined) {
    lines.push(
      `# UNITWATCH_WEBHOOK_URL: ${webhook.urls.map((url) => url.display).join(' ')} (paths not shown: they may hold a token)`,
    );
    set('UNITWATCH_WEBHOOK_FORMAT', webhook.format);
    lines.push(
      secretLine(
        'webhook secret',
        'UNITWATCH_WEBHOOK_SECRET_FILE',
        webhook.secretFile,
        webhook.secretSource,
        'unsigned',
      ),
    );
    if (webhook.format === 'ntfy') {
      lines.push(
        secretLine(
          'ntfy token',
          'UNITWATCH_NTFY_TOKEN_FILE',
          webhook.tokenFile,
          webhook.tokenSource,
          'no token',
        ),
      );
    }
    set('UNITWATCH_WEBHOOK_ALLOW_HTTP', webhook.allowHttp ? 'yes' : 'no');
    set('UNITWATCH_WEBHOOK_TIMEOUT', formatDuration(webhook.timeoutMs));
  } else {
    lines.push('# UNITWATCH_WEBHOOK_URL unset: no webhooks');
  }
  if (config.stateDirectory === undefined) {
    lines.push(
      '# UNITWATCH_STATE_DIRECTORY unset: run takes $STATE_DIRECTORY (StateDirectory=unitwatch) or needs it set',
    );
  } else set('UNITWATCH_STATE_DIRECTORY', config.stateDirectory);
  set('UNITWATCH_HOSTNAME', config.hostname);
  set('UNITWATCH_LOG_LEVEL', config.logLevel);
  set('UNITWATCH_LOG_FORMAT', config.logFormat);
  set('UNITWATCH_STATUS_LINES', String(config.statusLines));
  set('UNITWATCH_COMMAND_TIMEOUT', formatDuration(config.commandTimeoutMs));
  set('UNITWATCH_OUTPUT_LIMIT', formatSize(config.outputLimitBytes));
  set('UNITWATCH_JOURNAL_SETTLE', formatDuration(config.journalSettleMs));
  set('UNITWATCH_INCLUDE', config.include.join(','));
  set('UNITWATCH_EXCLUDE', config.exclude.join(','));
  set('UNITWATCH_CRITICAL', config.critical.join(','));
  set('UNITWATCH_REPEAT_INTERVALS', config.policy.repeatIntervalsMs.map(formatDuration).join(','));
  set('UNITWATCH_STORM_THRESHOLD', String(config.policy.stormThreshold));
  set('UNITWATCH_STORM_WINDOW', formatDuration(config.policy.stormWindowMs));
  set('UNITWATCH_DIGEST_DELAY', formatDuration(config.policy.digestDelayMs));
  set('UNITWATCH_DIGEST_QUIET', formatDuration(config.policy.digestQuietMs ?? config.policy.digestDelayMs));
  set('UNITWATCH_MAX_MAILS_PER_HOUR', String(config.policy.maxMailsPerHour));
  set('UNITWATCH_RECOVERY', config.policy.recoveryMails ? 'yes' : 'no');
  set('UNITWATCH_RECOVERY_GRACE', formatDuration(config.policy.recoveryGraceMs));
  const alertmanager = config.alertmanager;
  if (alertmanager === undefined) {
    lines.push(
      '# UNITWATCH_ALERTMANAGER_URL unset: no Alertmanager (UNITWATCH_ALERTMANAGER_LABELS and UNITWATCH_ALERTMANAGER_INTERVAL unused)',
    );
  } else {
    set('UNITWATCH_ALERTMANAGER_URL', alertmanager.urls.join(','));
    set(
      'UNITWATCH_ALERTMANAGER_LABELS',
      Object.entries(alertmanager.labels)
        .map(([name, value]) => `${name}=${value}`)
        .join(' '),
    );
    set('UNITWATCH_ALERTMANAGER_INTERVAL', formatDuration(alertmanager.intervalMs));
  }
  return `${lines.join('\n')}\n`;
}

/** A comment line saying where a secret comes from, never what it is. */
function secretLine(
  what: string,
  name: string,
  file: string | undefined,
  source: 'file' | 'credential' | undefined,
  without: string,
): string {
  if (source === 'file') return `# the ${what} is read from ${name}=${file}; its contents are not shown`;
  if (source === 'credential') {
    return `# ${name} unset: the ${what} is the systemd credential ${file?.split('/').pop()} (${file}) if it exists, else ${without}`;
  }
  return `# ${name} unset and no $CREDENTIALS_DIRECTORY here: ${without}`;
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
