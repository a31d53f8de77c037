import type { DestinationStream } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  createLogger,
  journalPrefixedStream,
  journalPriority,
  journalText,
  sanitizeLogText,
} from '../../src/adapters/logger.js';
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
  const logger = createLogger({ level, format: 'json', destination: sink });
  const records = () => sink.chunks.map((chunk) => JSON.parse(chunk) as Record<string, unknown>);
  return { logger, sink, records };
}

describe('createLogger, JSON format', () => {
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
    [60, 3, 'fatal', 'err'],
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
    const logger = createLogger({ level: 'trace', format: 'json', destination: journalPrefixedStream(sink) });
    return { logger, sink };
  }

  it('prefixes each line with the priority journald reads: warn → <4>, error and fatal → <3>, info → <6>', () => {
    const { logger, sink } = journalLogger();
    logger.warn('w');
    logger.error('e');
    logger.info('i');
    logger.debug('d');
    logger.fatal('f');
    expect(sink.chunks.map((chunk) => /^<(\d)>\{/.exec(chunk)?.[1])).toEqual(['4', '3', '6', '7', '3']);
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

/** The text format as journald receives it (`<N>` first) or as a terminal shows it (ISO time first). */
function textInto(options: { level?: LogLevel; journal?: boolean } = {}) {
  const sink = memory();
  const logger = createLogger({
    level: options.level ?? 'info',
    format: 'text',
    journal: options.journal ?? true,
    destination: sink,
  });
  const lines = () => sink.chunks.join('').split('\n').slice(0, -1);
  return { logger, sink, lines };
}

describe('createLogger, text format (issue 12: a journal people can read)', () => {
  it('writes the message first, then the facts as key=value, under the journal priority', () => {
    const { logger, lines } = textInto();
    logger.info(
      { unit: 'acc-false.service', result: 'exit-code', status: 1 },
      'acc-false.service failed; mail due now',
    );
    logger.warn({ unit: 'nginx.service', attempt: 2 }, 'mail not sent, retrying');
    logger.error({ file: 'x.json' }, 'outbox could not update an entry');
    logger.fatal('cannot go on');
    expect(lines()).toEqual([
      '<6>acc-false.service failed; mail due now unit=acc-false.service result=exit-code status=1',
      '<4>mail not sent, retrying unit=nginx.service attempt=2',
      '<3>outbox could not update an entry file=x.json',
      '<3>cannot go on',
    ]);
  });

  it('has no JSON in it', () => {
    const { logger, sink } = textInto();
    logger.info(
      { smtp: { host: 'mail.example.org', port: 587 }, to: ['a@example.org', 'b@example.org'] },
      'sent',
    );
    expect(sink.chunks.join('')).toBe(
      '<6>sent smtp.host=mail.example.org smtp.port=587 to=a@example.org,b@example.org\n',
    );
    expect(sink.chunks.join('')).not.toMatch(/[{}]/);
  });

  it('quotes a value with spaces, quotes, = or backslashes, and an empty one', () => {
    const { logger, lines } = textInto();
    logger.info({ reason: '451 try again later', q: 'say "hi"', eq: 'a=b', bs: 'a\\b', empty: '' }, 'x');
    expect(lines()).toEqual([
      '<6>x reason="451 try again later" q="say \\"hi\\"" eq="a=b" bs="a\\\\b" empty=""',
    ]);
  });

  it('shows an error as its message and code, without the stack at info', () => {
    const { logger, lines } = textInto();
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:25'), { code: 'ECONNREFUSED' });
    logger.warn({ unit: 'a.service', err: error }, 'mail not sent; next try in 30s');
    expect(lines()).toEqual([
      '<4>mail not sent; next try in 30s unit=a.service err="connect ECONNREFUSED 127.0.0.1:25" code=ECONNREFUSED',
    ]);
  });

  it('adds the stack as one debug line when the logger runs at debug', () => {
    const { logger, lines } = textInto({ level: 'debug' });
    logger.error({ err: new Error('boom') }, 'handling a unit change failed');
    const [first, second, ...rest] = lines();
    expect(first).toBe('<3>handling a unit change failed err=boom');
    expect(second).toMatch(/^<7>stack: Error: boom \| at /);
    expect(rest).toEqual([]);
  });

  it('cannot be made to forge a second journal line by a field or message with a line break (\\n<3>forged)', () => {
    const { logger, sink, lines } = textInto();
    logger.info({ unit: 'evil\n<3>forged.service' }, 'failed\r\n<2>also forged');
    expect(sink.chunks).toHaveLength(1);
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toBe('<6>failed <2>also forged unit="evil <3>forged.service"');
  });

  it('strips terminal escapes and bidi controls from fields and keys', () => {
    const { logger, lines } = textInto();
    logger.info({ unit: '\u001b[31mred\u202e.service\u0085', 'k\u2066ey': '\u009bx\u007f' }, 'm\u0007');
    // Without ESC the rest is inert text; NEL (U+0085) is a line break, so a space.
    expect(lines()).toEqual(['<6>m unit="[31mred.service " key=x']);
  });

  it('keeps a field name with a space or = from reading as two fields', () => {
    const { logger, lines } = textInto();
    logger.info({ 'a b': 1, 'c=d': 2 }, 'm');
    expect(lines()).toEqual(['<6>m a_b=1 c_d=2']);
  });

  it('keeps secrets redacted', () => {
    const { logger, sink } = textInto();
    logger.info(
      { password: 'hunter2', smtp: { password: 'x1' }, auth: { user: 'u', pass: 's3cret' } },
      'login',
    );
    const text = sink.chunks.join('');
    expect(text).not.toMatch(/hunter2|x1|s3cret/);
    expect(text).toContain('password=[secret]');
    expect(text).toContain('auth.pass=[secret]');
  });

  it('starts with an ISO time and the level outside the journal', () => {
    const { logger, lines } = textInto({ journal: false });
    logger.warn({ unit: 'a.service' }, 'retrying');
    expect(lines()[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN retrying unit=a\.service$/);
  });
});

describe('sanitizeLogText', () => {
  it('turns line breaks and tabs into spaces and drops C0, C1, DEL and bidi controls', () => {
    expect(sanitizeLogText('a\nb\r\nc\td')).toBe('a b c d');
    expect(
      sanitizeLogText(
        '\u0000\u001f\u007f\u0080\u009f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069ok',
      ),
    ).toBe('ok');
    expect(sanitizeLogText('nginx.service – Grüße')).toBe('nginx.service – Grüße');
  });
});

describe('journalText (stderr written before a logger exists)', () => {
  const problem = 'unitwatch: invalid configuration (1 problem):\n  UNITWATCH_TO: is required\n';

  it('files every line of a configuration error at err in the journal, not info', () => {
    expect(journalText(problem, 3, true)).toBe(
      '<3>unitwatch: invalid configuration (1 problem):\n<3>  UNITWATCH_TO: is required\n',
    );
  });

  it('leaves the text as it is in a terminal, but for control characters', () => {
    expect(journalText(problem, 3, false)).toBe(problem);
    expect(journalText('bad \u001b[2Jvalue\n', 3, false)).toBe('bad [2Jvalue\n');
  });
});
