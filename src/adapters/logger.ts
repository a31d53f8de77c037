import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../core/config.js';

export type { Logger } from 'pino';

/** `text`: one readable line per event, message first (the default). `json`: pino's own lines. */
export type LogFormat = 'text' | 'json';

/**
 * pino's numeric levels → syslog priorities, so `journalctl -p warning` lists exactly what needs
 * acting on: err for error and fatal, warning for warn, info, and debug for debug and trace.
 */
const JOURNAL_PRIORITY: ReadonlyArray<[minimumLevel: number, priority: number]> = [
  [50, 3], // error, fatal → err
  [40, 4], // warn → warning
  [30, 6], // info → info
  [0, 7], // debug, trace → debug
];

export function journalPriority(pinoLevel: number): number {
  return JOURNAL_PRIORITY.find(([minimum]) => pinoLevel >= minimum)?.[1] ?? 7;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/**
 * journald reads a leading `<N>` on each stdout line as the line's priority (SyslogLevelPrefix=, on by
 * default), which needs no native journal client. The rest of the line stays pino's JSON.
 */
export function journalPrefixedStream(target: { write(chunk: string): unknown }): DestinationStream {
  return {
    write(line: string) {
      const level = /^\{"level":(\d+)/.exec(line)?.[1];
      target.write(level === undefined ? line : `<${journalPriority(Number(level))}>${line}`);
    },
  };
}

/**
 * C0 and C1 controls, DEL, and the bidi embeddings, overrides and isolates (U+202A–U+202E,
 * U+2066–U+2069). Unit names and journal lines are written by whoever runs a unit: in a log line they
 * must not start a new journal entry, move the cursor or reorder what a reader sees.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const LINE_BREAKS = /\r\n|[\r\n\t\u0085\u2028\u2029]/g;

/** One line of plain text: breaks and tabs become a space, other unsafe characters are dropped. */
export function sanitizeLogText(text: string): string {
  return text.replace(LINE_BREAKS, ' ').replace(UNSAFE, '');
}

/** A field name as `key=value` shows it: no space or `=` that would make it read as two fields. */
function renderKey(key: string): string {
  return sanitizeLogText(key).replace(/[\s="]/g, '_');
}

/** A value as `key=value` shows it: bare when it has no space, quote, `=` or backslash, else quoted. */
function renderValue(value: string): string {
  const safe = sanitizeLogText(value);
  if (safe !== '' && !/[\s"=\\]/.test(safe)) return safe;
  return `"${safe.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

interface SerializedError {
  readonly type?: unknown;
  readonly message: string;
  readonly stack?: unknown;
  readonly code?: unknown;
}

/** pino's `err` serializer output, or anything of that shape under another key. */
function isSerializedError(value: unknown): value is SerializedError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string' &&
    typeof (value as { stack?: unknown }).stack === 'string'
  );
}

/** Flattens nested fields to `a.b=value`; lists of plain values join with commas; errors show their message. */
function renderFields(
  prefix: string,
  value: unknown,
  out: string[],
  stacks: string[],
  withStacks: boolean,
): void {
  if (value === undefined) return;
  if (isSerializedError(value)) {
    out.push(`${prefix}=${renderValue(value.message)}`);
    if (typeof value.code === 'string' || typeof value.code === 'number') {
      out.push(`${prefix === 'err' ? 'code' : `${prefix}.code`}=${renderValue(String(value.code))}`);
    }
    if (withStacks && typeof value.stack === 'string') stacks.push(value.stack);
    return;
  }
  if (Array.isArray(value)) {
    if (value.every((item) => item === null || typeof item !== 'object')) {
      out.push(`${prefix}=${renderValue(value.map(String).join(','))}`);
    } else {
      value.forEach((item, index) => {
        renderFields(`${prefix}.${index}`, item, out, stacks, withStacks);
      });
    }
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      renderFields(`${prefix}.${renderKey(key)}`, inner, out, stacks, withStacks);
    }
    return;
  }
  out.push(`${prefix}=${renderValue(String(value))}`);
}

export interface TextLineOptions {
  /** Prefix `<N>` for journald and leave the time to it; otherwise start with an ISO time and the level. */
  readonly journal: boolean;
  /** Append error stacks (as their own debug lines); only when the logger runs at debug or trace. */
  readonly stacks: boolean;
}

/**
 * Turns one of pino's JSON lines into text lines: the message, then the other fields as `key=value`.
 * Returns the input unchanged if it is not a pino record.
 */
export function formatTextLine(jsonLine: string, options: TextLineOptions): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const { level, time, msg, ...fields } = record;
  const numericLevel = typeof level === 'number' ? level : 30;
  const parts: string[] = [];
  const stacks: string[] = [];
  if (typeof msg === 'string' && msg !== '') parts.push(sanitizeLogText(msg));
  for (const [key, value] of Object.entries(fields)) {
    renderFields(renderKey(key), value, parts, stacks, options.stacks);
  }
  const head = options.journal
    ? `<${journalPriority(numericLevel)}>`
    : `${typeof time === 'string' ? `${time} ` : ''}${LEVEL_NAMES[numericLevel] ?? 'INFO'} `;
  const lines = [`${head}${parts.join(' ')}`];
  for (const stack of stacks) {
    const frames = stack
      .split('\n')
      .map((frame) => sanitizeLogText(frame).trim())
      .filter((frame) => frame !== '');
    lines.push(
      `${options.journal ? '<7>' : `${typeof time === 'string' ? `${time} ` : ''}DEBUG `}stack: ${frames.join(' | ')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A destination that receives pino's JSON lines and writes text lines to `target`. */
export function textStream(
  target: { write(chunk: string): unknown },
  options: TextLineOptions,
): DestinationStream {
  return {
    write(line: string) {
      target.write(formatTextLine(line, options));
    },
  };
}

/**
 * Text written outside the logger (a configuration error on stderr before any logger exists) as
 * journal lines: each line sanitised and, when systemd connected us to the journal, prefixed with
 * `priority` (default err), so `journalctl -p warning` lists a refused start. Without the prefix
 * journald would file every line at info.
 */
export function journalText(
  text: string,
  priority = 3,
  journal: boolean = process.env.JOURNAL_STREAM !== undefined,
): string {
  const lines = text.replace(/\n$/, '').split(/\r?\n/);
  return `${lines.map((line) => `${journal ? `<${priority}>` : ''}${sanitizeLogText(line)}`).join('\n')}\n`;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /**
   * `text` (default for stdout) or `json`. An injected destination is read by a program, so it gets
   * JSON unless a format is given.
   */
  readonly format?: LogFormat;
  /**
   * Where the final lines go. Defaults to stdout. In JSON format the lines reach it as pino writes
   * them (callers wrap it in journalPrefixedStream themselves); in text format, formatted.
   */
  readonly destination?: DestinationStream;
  /**
   * Whether systemd connected stdout to the journal: `<N>` priority prefixes and no time of our own.
   * Defaults to whether `JOURNAL_STREAM` is set.
   */
  readonly journal?: boolean;
}

const DEBUG_OR_BELOW: ReadonlySet<LogLevel> = new Set(['trace', 'debug']);

export function createLogger(options: LoggerOptions): Logger {
  const journal = options.journal ?? process.env.JOURNAL_STREAM !== undefined;
  const format: LogFormat = options.format ?? (options.destination === undefined ? 'text' : 'json');
  const stdout = () => pino.destination({ dest: 1, sync: true });
  let destination: DestinationStream;
  if (format === 'text') {
    destination = textStream(options.destination ?? stdout(), {
      journal,
      stacks: DEBUG_OR_BELOW.has(options.level),
    });
  } else {
    destination = options.destination ?? (journal ? journalPrefixedStream(stdout()) : stdout());
  }
  return pino(
    {
      level: options.level,
      base: null,
      // The journal stamps every line itself; outside it, the time is still useful.
      timestamp: journal ? false : pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'auth.pass'], censor: '[secret]' },
    },
    destination,
  );
}
