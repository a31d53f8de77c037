import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  formatJournalEntry,
  gatherDiagnosis,
  gatherJournals,
  type JournalEntry,
  journalArgv,
  journalSettled,
  lastWordsOf,
  parseJournalJson,
  refreshJournal,
  splitJournals,
} from '../../src/adapters/diagnosis.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
// 2026-11-22 05:00:21 UTC
const T = 1_795_323_621_000_000;

function record(fields: Record<string, unknown>): string {
  return JSON.stringify({ __REALTIME_TIMESTAMP: String(T), ...fields });
}

const unitLine = (id: string, message: string, at = T) =>
  record({
    __REALTIME_TIMESTAMP: String(at),
    _SYSTEMD_INVOCATION_ID: id,
    SYSLOG_IDENTIFIER: 'sh',
    _PID: '161',
    _COMM: 'sh',
    MESSAGE: message,
  });
const systemdLine = (id: string, message: string, at = T) =>
  record({
    __REALTIME_TIMESTAMP: String(at),
    INVOCATION_ID: id,
    SYSLOG_IDENTIFIER: 'systemd',
    _PID: '1',
    _COMM: 'systemd',
    MESSAGE: message,
  });

describe('parseJournalJson', () => {
  it('reads the fields unitwatch uses from one JSON object a line', () => {
    const [entry] = parseJournalJson(`${unitLine(A, 'bind() failed')}\n`);
    expect(entry).toEqual({
      realtimeUs: T,
      invocationId: A,
      identifier: 'sh',
      pid: '161',
      comm: 'sh',
      message: 'bind() failed',
    });
  });

  it('takes USER_INVOCATION_ID from a user manager, whose own cgroup is user@UID.service', () => {
    // As journald stores systemd --user's line about a unit: the trusted fields are its own.
    const line = record({
      USER_INVOCATION_ID: A,
      _SYSTEMD_INVOCATION_ID: B,
      _SYSTEMD_USER_UNIT: 'init.scope',
      SYSLOG_IDENTIFIER: 'systemd',
      _PID: '96',
      _COMM: 'systemd',
      MESSAGE: "sync.service: Failed with result 'exit-code'.",
    });
    const [entry] = parseJournalJson(line);
    expect(entry?.invocationId).toBe(A);
    expect(journalSettled(parseJournalJson(line), A)).toBe(true);
  });

  it("does not let a unit's own line claim another invocation through USER_INVOCATION_ID", () => {
    const forged = record({
      USER_INVOCATION_ID: A,
      _SYSTEMD_INVOCATION_ID: B,
      _SYSTEMD_USER_UNIT: 'sync.service',
      _PID: '161',
      _COMM: 'sh',
      MESSAGE: 'not about A',
    });
    expect(parseJournalJson(forged)[0]?.invocationId).toBe(B);
  });

  it('takes INVOCATION_ID when systemd, not the unit, wrote the entry', () => {
    expect(parseJournalJson(systemdLine(B, 'x'))[0]?.invocationId).toBe(B);
  });

  it('decodes a message journalctl shows as a byte array, and marks one too large to show', () => {
    const bytes = [...Buffer.from('caf\u00e9 \u001b[31m')];
    const [binary, large] = parseJournalJson(`${record({ MESSAGE: bytes })}\n${record({ MESSAGE: null })}\n`);
    expect(binary?.message).toBe('caf\u00e9 \u001b[31m');
    expect(large?.message).toBe('[message over 4096 bytes, not shown: journalctl --all shows it]');
  });

  it('skips a line cut by the size cap, a warning and a non-object, without throwing', () => {
    const text = `${unitLine(A, 'kept')}\nWarning: something\n[1,2]\n"x"\n{"MESSAGE":"cut mid-way`;
    expect(parseJournalJson(text).map((entry) => entry.message)).toEqual(['kept']);
  });
});

describe('formatJournalEntry', () => {
  it('reads like journalctl -o short in UTC, without the host', () => {
    const [entry] = parseJournalJson(unitLine(A, 'nginx: [emerg] bind() failed'));
    expect(formatJournalEntry(entry as JournalEntry)).toBe(
      'Nov 22 05:00:21 sh[161]: nginx: [emerg] bind() failed',
    );
  });

  it('indents the continuation lines of a multi-line message so none passes for an entry', () => {
    const [entry] = parseJournalJson(
      unitLine(A, 'first\r\nNov 22 05:00:21 systemd[1]: x.service: Failed with result'),
    );
    expect(formatJournalEntry(entry as JournalEntry)).toBe(
      'Nov 22 05:00:21 sh[161]: first\n    Nov 22 05:00:21 systemd[1]: x.service: Failed with result',
    );
  });
});

describe('journalSettled', () => {
  it("is true once systemd logged the invocation's closing line", () => {
    for (const closing of [
      "x.service: Failed with result 'exit-code'.",
      'x.service: Main process exited, code=exited, status=1/FAILURE',
    ]) {
      expect(journalSettled(parseJournalJson(systemdLine(A, closing)), A), closing).toBe(true);
    }
  });

  it('is false before it, or for another invocation', () => {
    expect(journalSettled(parseJournalJson(unitLine(A, 'still writing')), A)).toBe(false);
    expect(
      journalSettled(parseJournalJson(systemdLine(B, "x.service: Failed with result 'exit-code'.")), A),
    ).toBe(false);
  });

  it('is not fooled by a unit printing the words itself', () => {
    expect(
      journalSettled(parseJournalJson(unitLine(A, "x.service: Failed with result 'exit-code'.")), A),
    ).toBe(false);
  });
});

describe('lastWordsOf', () => {
  it("is the unit's own last line, not systemd's", () => {
    const entries = parseJournalJson(
      [
        unitLine(A, 'starting'),
        unitLine(A, 'bind() failed\nmore'),
        systemdLine(A, 'x.service: Main process exited'),
      ].join('\n'),
    );
    expect(lastWordsOf(entries)).toBe('bind() failed');
    expect(lastWordsOf(parseJournalJson(systemdLine(A, 'only systemd')))).toBeUndefined();
  });
});

describe('journalArgv', () => {
  it('asks for every invocation in one query, newest first, as JSON, bounded', () => {
    expect(journalArgv('journalctl', [A, B], 100)).toEqual([
      'journalctl',
      '--no-pager',
      '--quiet',
      '--reverse',
      '-o',
      'json',
      '--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_PID,_COMM,_SYSTEMD_INVOCATION_ID,INVOCATION_ID,USER_INVOCATION_ID,_SYSTEMD_USER_UNIT',
      '--lines=100',
      `_SYSTEMD_INVOCATION_ID=${A}`,
      '+',
      `INVOCATION_ID=${A}`,
      '+',
      `_SYSTEMD_INVOCATION_ID=${B}`,
      '+',
      `INVOCATION_ID=${B}`,
    ]);
  });

  it("reads a user manager's journal with --user, matching its USER_INVOCATION_ID", () => {
    const argv = journalArgv('journalctl', [A], 20, 'user');
    expect(argv.slice(0, 2)).toEqual(['journalctl', '--user']);
    expect(argv.slice(-3)).toEqual([`_SYSTEMD_INVOCATION_ID=${A}`, '+', `USER_INVOCATION_ID=${A}`]);
  });
});

describe('splitJournals', () => {
  const wanted = [
    { unit: 'a.service', invocationId: A },
    { unit: 'b.service', invocationId: B },
  ];

  it("keeps each unit's last lines, oldest first, and ignores other invocations", () => {
    // Newest first, as journalctl --reverse prints them.
    const text = [
      systemdLine(A, 'a.service: Failed', T + 9),
      unitLine(B, 'b-2', T + 8),
      unitLine('cccccccccccccccccccccccccccccccc', 'other unit', T + 7),
      unitLine(A, 'a-3', T + 6),
      unitLine(A, 'a-2', T + 5),
      unitLine(A, 'a-1', T + 4),
      unitLine(B, 'b-1', T + 3),
    ].join('\n');
    const journals = splitJournals(parseJournalJson(text), wanted, 3, 300);
    expect(journals.get('a.service')?.map((line) => line.replace(/^.*?: /, ''))).toEqual([
      'a-2',
      'a-3',
      'a.service: Failed',
    ]);
    expect(journals.get('b.service')?.map((line) => line.replace(/^.*?: /, ''))).toEqual(['b-1', 'b-2']);
    expect([...journals.keys()]).toEqual(['a.service', 'b.service']);
  });

  it('gives a unit with no lines an empty list, and cuts long or multi-line messages to one bounded line', () => {
    const journals = splitJournals(parseJournalJson(unitLine(A, `x\ny${'z'.repeat(500)}`)), wanted, 5, 80);
    expect(journals.get('b.service')).toEqual([]);
    const [line] = journals.get('a.service') ?? [];
    expect(line).toHaveLength(80);
    expect(line).not.toContain('\n');
    expect(line?.endsWith('…')).toBe(true);
  });
});

describe('gatherJournals and gatherDiagnosis against a stand-in journalctl and systemctl', () => {
  let dir = '';
  let journalctl = '';
  let systemctl = '';
  const argvLog = () => join(dir, 'argv.log');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'unitwatch-diagnosis-'));
    await writeFile(
      join(dir, 'journal.json'),
      `${[systemdLine(A, "a.service: Failed with result 'exit-code'.", T + 2_000_000), unitLine(A, 'a last words', T + 1_000_000), unitLine(B, 'b said', T)].join('\n')}\n`,
    );
    journalctl = join(dir, 'journalctl');
    systemctl = join(dir, 'systemctl');
    // Each records its argv, one line per call, and prints a fixture.
    await writeFile(
      journalctl,
      `#!/bin/sh\necho "journalctl $*" >> '${argvLog()}'\ncat '${join(dir, 'journal.json')}'\n`,
    );
    await writeFile(
      systemctl,
      `#!/bin/sh\necho "systemctl $*" >> '${argvLog()}'\necho '× a.service - A'\nexit 3\n`,
    );
    await chmod(journalctl, 0o755);
    await chmod(systemctl, 0o755);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const calls = async () =>
    (await readFile(argvLog(), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
  const reset = () => rm(argvLog(), { force: true });
  /** The limits of every call below, with the stand-in commands (known once beforeAll ran). */
  const options = () => ({ statusLines: 20, timeoutMs: 5_000, maxBytes: 65_536, systemctl, journalctl });

  it('makes one journalctl call for all units of a digest', async () => {
    await reset();
    const journals = await gatherJournals(
      [
        { unit: 'a.service', invocationId: A },
        { unit: 'b.service', invocationId: B },
        { unit: 'no-id.service', invocationId: '' },
      ],
      { timeoutMs: 5_000, maxBytes: 65_536, journalctl },
    );
    expect(await calls()).toHaveLength(1);
    expect(journals.get('a.service')).toEqual([
      'Nov 22 05:00:22 sh[161]: a last words',
      "Nov 22 05:00:23 systemd[1]: a.service: Failed with result 'exit-code'.",
    ]);
    expect(journals.get('b.service')).toEqual(['Nov 22 05:00:21 sh[161]: b said']);
    expect(journals.has('no-id.service')).toBe(false);
  });

  it('never throws when journalctl is missing: each unit says why', async () => {
    const journals = await gatherJournals([{ unit: 'a.service', invocationId: A }], {
      timeoutMs: 5_000,
      maxBytes: 65_536,
      journalctl: join(dir, 'missing'),
    });
    expect(journals.get('a.service')?.[0]).toMatch(/^\(journalctl could not run: /);
  });

  it('reads status without the journal (--lines=0) and the journal once, and reports it settled', async () => {
    await reset();
    const diagnosis = await gatherDiagnosis('a.service', A, options());
    const made = await calls();
    expect(made).toHaveLength(2);
    expect(made).toContain('systemctl status --full --no-pager --lines=0 -- a.service');
    expect(made.filter((call) => call.startsWith('journalctl'))).toHaveLength(1);
    expect(diagnosis.status).toMatchObject({
      command: 'systemctl status --full -- a.service',
      text: '× a.service - A\n',
      problem: undefined,
    });
    expect(diagnosis.journal?.command).toBe(`journalctl _SYSTEMD_INVOCATION_ID=${A} + INVOCATION_ID=${A}`);
    expect(diagnosis.journal?.text).toContain('Nov 22 05:00:22 sh[161]: a last words\n');
    expect(diagnosis.settled).toBe(true);
    expect(diagnosis.lastWords).toBe('a last words');
  });

  it("asks a user manager's units with systemctl --user and journalctl --user, and says so", async () => {
    await reset();
    const diagnosis = await gatherDiagnosis('a.service', A, {
      ...options(),
      scope: 'user',
    });
    const made = await calls();
    expect(made).toContain('systemctl --user status --full --no-pager --lines=0 -- a.service');
    expect(made.find((call) => call.startsWith('journalctl'))).toMatch(
      new RegExp(`^journalctl --user .* _SYSTEMD_INVOCATION_ID=${A} \\+ USER_INVOCATION_ID=${A}$`),
    );
    expect(diagnosis.status.command).toBe('systemctl --user status --full -- a.service');
    expect(diagnosis.journal?.command).toBe(
      `journalctl --user _SYSTEMD_INVOCATION_ID=${A} + USER_INVOCATION_ID=${A}`,
    );
  });

  it('refreshJournal reads only the journal again and keeps the status', async () => {
    const first = await gatherDiagnosis('b.service', B, options());
    expect(first.settled).toBe(false);
    await reset();
    const again = await refreshJournal(first, B, options());
    const made = await calls();
    expect(made).toHaveLength(1);
    expect(made[0]).toMatch(/^journalctl /);
    expect(again.status).toBe(first.status);
  });

  it('asks journalctl nothing for an invocation id that is not 32 hex digits', async () => {
    await reset();
    const diagnosis = await gatherDiagnosis('a.service', '$(reboot)', options());
    expect(await calls()).toEqual(['systemctl status --full --no-pager --lines=0 -- a.service']);
    expect(diagnosis.journal).toBeUndefined();
  });
});
