import type { DestinationStream } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, journalPrefixedStream, journalPriority } from '../../src/adapters/logger.js';
import type { LogLevel } from '../../src/core/config.js';

/** An in-memory destination, as pino's own tests do: the logger is real, only the sink is ours. */
function memory(): DestinationStream & { readonly chunks: string[] } {
  const chunks: string[] = [];
  return {
    chunks,
    write(chunk: string) {
      chunks.push(chunk);
    },
  };
}

function loggerInto(level: LogLevel = 'trace') {
  const sink = memory();
  const logger = createLogger({ level, destination: sink });
  const records = () => sink.chunks.map((chunk) => JSON.parse(chunk) as Record<string, unknown>);
  return { logger, sink, records };
}

describe('createLogger', () => {
  it('writes one JSON line per event', () => {
    const { logger, sink } = loggerInto();
    logger.info('first');
    logger.warn('second');
    expect(sink.chunks).toHaveLength(2);
    for (const chunk of sink.chunks) {
      expect(chunk.endsWith('\n')).toBe(true);
      expect(chunk.slice(0, -1)).not.toContain('\n');
    }
  });

  it('carries the unit name as a field', () => {
    const { logger, records } = loggerInto();
    logger.info({ unit: 'nginx.service', to: ['ops@example.org'] }, 'mail sent');
    expect(records()[0]).toMatchObject({
      level: 30,
      unit: 'nginx.service',
      to: ['ops@example.org'],
      msg: 'mail sent',
    });
  });

  it('adds no pid or hostname: the journal records both', () => {
    const { logger, records } = loggerInto();
    logger.info('x');
    expect(records()[0]).not.toHaveProperty('pid');
    expect(records()[0]).not.toHaveProperty('hostname');
  });

  it('drops events below the configured level', () => {
    const { logger, records } = loggerInto('warn');
    logger.debug('chatter');
    logger.info('more chatter');
    logger.warn('a problem');
    logger.error('a failure');
    expect(records().map((record) => record.msg)).toEqual(['a problem', 'a failure']);
  });

  it('keeps a unit name with line breaks inside one JSON line', () => {
    const { logger, sink, records } = loggerInto();
    logger.info({ unit: 'evil\n{"level":60}.service' }, 'x');
    expect(sink.chunks).toHaveLength(1);
    expect(sink.chunks[0]?.slice(0, -1)).not.toContain('\n');
    expect(records()[0]?.unit).toBe('evil\n{"level":60}.service');
  });

  it('redacts a password field', () => {
    const { logger, sink, records } = loggerInto();
    logger.info({ password: 'hunter2' }, 'login');
    expect(records()[0]?.password).toBe('[secret]');
    expect(sink.chunks.join('')).not.toContain('hunter2');
  });

  it('redacts a password one level down and nodemailer’s auth.pass', () => {
    const { logger, sink, records } = loggerInto();
    logger.info(
      { smtp: { user: 'alerts', password: 'hunter2' }, auth: { user: 'alerts', pass: 's3cret' } },
      'x',
    );
    expect(records()[0]).toMatchObject({
      smtp: { user: 'alerts', password: '[secret]' },
      auth: { user: 'alerts', pass: '[secret]' },
    });
    expect(sink.chunks.join('')).not.toMatch(/hunter2|s3cret/);
  });
});

describe('journalPriority', () => {
  it.each([
    [60, 2, 'fatal', 'crit'],
    [50, 3, 'error', 'err'],
    [40, 4, 'warn', 'warning'],
    [30, 6, 'info', 'info'],
    [20, 7, 'debug', 'debug'],
    [10, 7, 'trace', 'debug'],
  ])('maps pino level %d to syslog priority %d (%s → %s)', (level, priority) => {
    expect(journalPriority(level)).toBe(priority);
  });
});

describe('journalPrefixedStream', () => {
  function journalLogger() {
    const sink = memory();
    const logger = createLogger({ level: 'trace', destination: journalPrefixedStream(sink) });
    return { logger, sink };
  }

  it('prefixes each line with the priority journald reads: warn → <4>, error → <3>, info → <6>', () => {
    const { logger, sink } = journalLogger();
    logger.warn('w');
    logger.error('e');
    logger.info('i');
    logger.debug('d');
    logger.fatal('f');
    expect(sink.chunks.map((chunk) => /^<(\d)>\{/.exec(chunk)?.[1])).toEqual(['4', '3', '6', '7', '2']);
  });

  it('leaves the rest of the line valid JSON', () => {
    const { logger, sink } = journalLogger();
    logger.warn({ unit: 'nginx.service' }, 'mail not sent');
    const line = sink.chunks[0] ?? '';
    expect(JSON.parse(line.replace(/^<\d>/, ''))).toMatchObject({
      level: 40,
      unit: 'nginx.service',
      msg: 'mail not sent',
    });
  });

  it('passes through a line that carries no level', () => {
    const sink = memory();
    journalPrefixedStream(sink).write('plain text\n');
    expect(sink.chunks).toEqual(['plain text\n']);
  });
});
