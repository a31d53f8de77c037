import { createLogger, type Logger } from '../../src/adapters/logger.js';

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/**
 * The daemon's logger writing JSON lines into an array (a new one, or the one given, so several
 * loggers can share it), so specs read what it said, as pino's own tests do.
 */
export function memoryLogger(lines: LogLine[] = []): { logger: Logger; lines: LogLine[] } {
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  });
  return { logger, lines };
}
