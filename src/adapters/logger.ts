import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../core/config.js';

export type { Logger } from 'pino';

/** pino's numeric levels → syslog priorities, so `journalctl -p warning` shows problems only. */
const JOURNAL_PRIORITY: ReadonlyArray<[minimumLevel: number, priority: number]> = [
  [60, 2], // fatal → crit
  [50, 3], // error → err
  [40, 4], // warn → warning
  [30, 6], // info → info
  [0, 7], // debug, trace → debug
];

export function journalPriority(pinoLevel: number): number {
  return JOURNAL_PRIORITY.find(([minimum]) => pinoLevel >= minimum)?.[1] ?? 7;
}

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

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Defaults to stdout, prefixed with journal priorities when systemd connected stdout to the journal. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination =
    options.destination ??
    (process.env.JOURNAL_STREAM === undefined
      ? pino.destination({ dest: 1, sync: true })
      : journalPrefixedStream(pino.destination({ dest: 1, sync: true })));
  return pino(
    {
      level: options.level,
      base: null,
      // The journal stamps every line itself; outside it, the time is still useful.
      timestamp: process.env.JOURNAL_STREAM === undefined ? pino.stdTimeFunctions.isoTime : false,
      redact: { paths: ['password', '*.password', 'auth.pass'], censor: '[secret]' },
    },
    destination,
  );
}
