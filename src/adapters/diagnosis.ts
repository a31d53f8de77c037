import type { CommandOutput, Diagnosis } from '../core/message.js';
import { DIGEST_JOURNAL_LINES, invocationJournalCommand } from '../core/message.js';
import { type ManagerScope, scopeArguments } from '../core/service-manager.js';
import { shellQuote } from '../core/text.js';
import { type CommandResult, runCommand } from './command-runner.js';

export interface DiagnosisOptions {
  /** Journal lines of the failed invocation shown in a failure mail. */
  readonly statusLines: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** `systemctl` and `journalctl` are looked up on PATH unless given here. */
  readonly systemctl?: string;
  readonly journalctl?: string;
  /** `user`: the units are a user manager's, asked with `systemctl --user` and `journalctl --user`. */
  readonly scope?: ManagerScope;
}

/** Colours and pagers off, whatever the operator's environment says. */
const PLAIN_OUTPUT_ENV = { SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', PAGER: 'cat', SYSTEMD_LESS: '' };

/** `systemctl status` exits 3 for a unit that is not active: for a failed unit that is the normal answer. */
const STATUS_EXPECTED_EXIT = new Set([0, 3]);

/** journalctl exits 1 when nothing matched, which for a unit that printed nothing is fine. */
const JOURNAL_EXPECTED_EXIT = new Set([0, 1]);

/** The journal fields unitwatch reads; journalctl adds `__REALTIME_TIMESTAMP` by itself. */
const JOURNAL_FIELDS = [
  'MESSAGE',
  'SYSLOG_IDENTIFIER',
  '_PID',
  '_COMM',
  '_SYSTEMD_INVOCATION_ID',
  'INVOCATION_ID',
  'USER_INVOCATION_ID',
  '_SYSTEMD_USER_UNIT',
] as const;

/**
 * The field in which the manager names the invocation its own lines are about: PID 1 writes
 * `INVOCATION_ID=`, a user's manager `USER_INVOCATION_ID=` (the unit's own lines carry
 * `_SYSTEMD_INVOCATION_ID=` under both).
 */
function managerInvocationField(scope: ManagerScope): string {
  return scope === 'user' ? 'USER_INVOCATION_ID' : 'INVOCATION_ID';
}

function problemOf(result: CommandResult, expectedExit: ReadonlySet<number>): string | undefined {
  if (result.spawnError !== undefined) return `could not run: ${result.spawnError}`;
  if (result.timedOut) return 'timed out and was killed; output so far is below';
  if (result.signal !== null) return `killed by ${result.signal}`;
  if (result.exitCode !== null && !expectedExit.has(result.exitCode)) {
    return `exited with status ${result.exitCode}`;
  }
  return undefined;
}

function withStderr(stdout: string, stderr: string): string {
  const trimmed = stderr.trim();
  if (trimmed === '') return stdout;
  return `${stdout}${stdout === '' || stdout.endsWith('\n') ? '' : '\n'}${trimmed}\n`;
}

function toOutput(command: string, result: CommandResult, expectedExit: ReadonlySet<number>): CommandOutput {
  return {
    command,
    text: withStderr(result.stdout, result.stderr),
    truncatedBytes: result.truncatedBytes,
    problem: problemOf(result, expectedExit),
  };
}

function runOptions(options: DiagnosisOptions) {
  return {
    timeoutMs: options.timeoutMs,
    maxBytes: options.maxBytes,
    env: { ...process.env, ...PLAIN_OUTPUT_ENV },
  };
}

/** One journal entry as unitwatch uses it; every field is untrusted text from the journal. */
export interface JournalEntry {
  /** Microseconds since the epoch; 0 when the entry had none. */
  readonly realtimeUs: number;
  /**
   * `_SYSTEMD_INVOCATION_ID` (the unit's own processes), or `INVOCATION_ID` / `USER_INVOCATION_ID`
   * (the system's or a user's manager about the unit).
   */
  readonly invocationId: string;
  readonly identifier: string;
  readonly pid: string;
  readonly comm: string;
  readonly message: string;
}

/** journalctl shows a field as a byte array when it is not valid UTF-8, and as null when too large. */
function fieldText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((byte) => typeof byte === 'number')) {
    return new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(value as number[]));
  }
  if (value === null) return '[message over 4096 bytes, not shown: journalctl --all shows it]';
  return undefined;
}

/**
 * Parses `journalctl -o json` output (one object a line) into entries. Lines that are not JSON
 * objects (a line cut by the size cap, a warning) are skipped, never thrown on.
 */
export function parseJournalJson(text: string): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) continue;
    const fields = record as Record<string, unknown>;
    const realtime = Number(fieldText(fields.__REALTIME_TIMESTAMP) ?? '0');
    // A user's manager runs in its own init.scope (journald's field, not the sender's), inside
    // user@UID.service: its _SYSTEMD_INVOCATION_ID is that service's, and the unit it writes about
    // is in USER_INVOCATION_ID.
    const userManagerLine = fieldText(fields._SYSTEMD_USER_UNIT) === 'init.scope';
    const aboutUnit = userManagerLine ? fieldText(fields.USER_INVOCATION_ID) : undefined;
    entries.push({
      realtimeUs: Number.isFinite(realtime) ? realtime : 0,
      invocationId:
        aboutUnit ??
        fieldText(fields._SYSTEMD_INVOCATION_ID) ??
        fieldText(fields.INVOCATION_ID) ??
        fieldText(fields.USER_INVOCATION_ID) ??
        '',
      identifier: fieldText(fields.SYSLOG_IDENTIFIER) ?? fieldText(fields._COMM) ?? '',
      pid: fieldText(fields._PID) ?? '',
      comm: fieldText(fields._COMM) ?? '',
      message: fieldText(fields.MESSAGE) ?? '',
    });
  }
  return entries;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * `Nov 22 05:00:21 sh[161]: message`, like `journalctl -o short` in UTC without the host name (the
 * mail names the host). Continuation lines of a multi-line message are indented, so a message can
 * never pass for an entry of its own. The text is still raw: the composer neutralises it.
 */
export function formatJournalEntry(entry: JournalEntry): string {
  const date = new Date(Math.floor(entry.realtimeUs / 1000));
  const pad = (value: number) => String(value).padStart(2, '0');
  const when = Number.isNaN(date.getTime())
    ? '?'
    : `${MONTHS[date.getUTCMonth()]} ${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const who = `${entry.identifier || '?'}${entry.pid === '' ? '' : `[${entry.pid}]`}`;
  const [first = '', ...rest] = entry.message.replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n');
  return [`${when} ${who}: ${first}`, ...rest.map((line) => `    ${line}`)].join('\n');
}

/**
 * systemd itself wrote this entry: journald sets `_PID` and `_COMM` (they cannot be forged by the
 * unit), and the service manager is PID 1 or, for user units, a process named `systemd`.
 */
function fromServiceManager(entry: JournalEntry): boolean {
  return entry.pid === '1' || entry.comm === 'systemd';
}

/** systemd's closing lines for an invocation: after them, the unit's own last lines are stored. */
const CLOSING_LINE = /: (Failed with result|Main process exited|Deactivated successfully|Succeeded\.)/;

/**
 * The invocation's journal is complete once systemd logged how it ended ("Failed with result",
 * "Main process exited", …). Only systemd's own entries count: a unit printing those words does not.
 */
export function journalSettled(entries: readonly JournalEntry[], invocationId: string): boolean {
  return entries.some(
    (entry) =>
      entry.invocationId === invocationId && fromServiceManager(entry) && CLOSING_LINE.test(entry.message),
  );
}

/** The last line the unit itself wrote (not systemd's), to show under the mail's headline. */
export function lastWordsOf(entries: readonly JournalEntry[]): string | undefined {
  for (let index = entries.length - 1; index >= 0; index -= 1) {
    const entry = entries[index];
    if (entry !== undefined && !fromServiceManager(entry) && entry.message.trim() !== '') {
      return entry.message.split('\n').find((line) => line.trim() !== '');
    }
  }
  return undefined;
}

/**
 * The argv of one `journalctl` for the given invocations, newest first (`--reverse`) so that the size
 * cap drops the oldest lines, never the last words; `--lines` bounds how far back it reads.
 */
export function journalArgv(
  journalctl: string,
  invocationIds: readonly string[],
  lines: number,
  scope: ManagerScope = 'system',
): string[] {
  const managerField = managerInvocationField(scope);
  const matches = invocationIds.flatMap((id, index) => [
    ...(index === 0 ? [] : ['+']),
    `_SYSTEMD_INVOCATION_ID=${id}`,
    '+',
    `${managerField}=${id}`,
  ]);
  return [
    journalctl,
    ...scopeArguments(scope),
    '--no-pager',
    '--quiet',
    '--reverse',
    '-o',
    'json',
    `--output-fields=${JOURNAL_FIELDS.join(',')}`,
    `--lines=${Math.max(lines, 1)}`,
    ...matches,
  ];
}

/** An invocation id as systemd writes it: anything else never reaches journalctl's argv. */
function isInvocationId(id: string): boolean {
  return /^[0-9a-f]{32}$/.test(id);
}

interface InvocationJournal {
  readonly output: CommandOutput;
  readonly entries: JournalEntry[];
}

async function readInvocationJournal(
  invocationId: string,
  options: DiagnosisOptions,
): Promise<InvocationJournal> {
  const scope = options.scope ?? 'system';
  const argv = journalArgv(options.journalctl ?? 'journalctl', [invocationId], options.statusLines, scope);
  const result = await runCommand(argv, runOptions(options));
  // journalctl's matches already select the invocation; the filter keeps a stray entry out all the same.
  const entries = parseJournalJson(result.stdout)
    .filter((entry) => entry.invocationId === invocationId)
    .reverse();
  const text = entries.map((entry) => `${formatJournalEntry(entry)}\n`).join('');
  return {
    entries,
    output: {
      command: invocationJournalCommand(invocationId, scope),
      text: withStderr(text, result.stderr),
      truncatedBytes: result.truncatedBytes,
      problem: problemOf(result, JOURNAL_EXPECTED_EXIT),
    },
  };
}

function journalPart(
  invocationId: string,
  journal: InvocationJournal | undefined,
): Pick<Diagnosis, 'journal' | 'settled' | 'lastWords'> {
  if (journal === undefined) return { journal: undefined, settled: true, lastWords: undefined };
  return {
    journal: journal.output,
    settled: journalSettled(journal.entries, invocationId),
    lastWords: lastWordsOf(journal.entries),
  };
}

/**
 * Runs `systemctl status --lines=0` (unit state only: it does not read the journal) and one journal
 * query for the failed invocation side by side; both are capped and time-limited, and neither can
 * make the caller throw. `settled` says whether systemd's closing line is already in the journal;
 * when it is not, wait and call {@link refreshJournal} instead of gathering everything again.
 */
export async function gatherDiagnosis(
  unit: string,
  invocationId: string,
  options: DiagnosisOptions,
): Promise<Diagnosis> {
  const systemctl = options.systemctl ?? 'systemctl';
  // `--` keeps units such as `-.mount` from being read as options.
  const scope = options.scope ?? 'system';
  const statusArgv = [
    systemctl,
    ...scopeArguments(scope),
    'status',
    '--full',
    '--no-pager',
    '--lines=0',
    '--',
    unit,
  ];
  const id = isInvocationId(invocationId) ? invocationId : '';
  const [status, journal] = await Promise.all([
    runCommand(statusArgv, runOptions(options)),
    id === '' ? Promise.resolve(undefined) : readInvocationJournal(id, options),
  ]);
  return {
    status: toOutput(
      `systemctl ${scope === 'user' ? '--user ' : ''}status --full -- ${shellQuote(unit)}`,
      status,
      STATUS_EXPECTED_EXIT,
    ),
    ...journalPart(id, journal),
  };
}

/** Reads only the invocation's journal again (after a settle wait), keeping the status already read. */
export async function refreshJournal(
  diagnosis: Diagnosis,
  invocationId: string,
  options: DiagnosisOptions,
): Promise<Diagnosis> {
  if (!isInvocationId(invocationId)) return diagnosis;
  return {
    status: diagnosis.status,
    ...journalPart(invocationId, await readInvocationJournal(invocationId, options)),
  };
}

export interface JournalsOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Lines kept per unit, the last ones; {@link DIGEST_JOURNAL_LINES} unless given. */
  readonly linesPerUnit?: number;
  /** Characters kept of one line. */
  readonly maxLineChars?: number;
  readonly journalctl?: string;
  readonly scope?: ManagerScope;
}

/** Entries read per unit of a digest: chatty units may fill the rest, but this bounds the whole read. */
const ENTRIES_READ_PER_UNIT = 50;

/**
 * Groups parsed entries by invocation, keeps the last `linesPerUnit` of each unit (oldest first),
 * each line cut to `maxLineChars`. Entries of invocations not asked for are ignored. Pure.
 */
export function splitJournals(
  entries: readonly JournalEntry[],
  wanted: readonly { unit: string; invocationId: string }[],
  linesPerUnit: number,
  maxLineChars: number,
): Map<string, string[]> {
  const unitOf = new Map(wanted.map((entry) => [entry.invocationId, entry.unit]));
  const byUnit = new Map<string, JournalEntry[]>(wanted.map((entry) => [entry.unit, []]));
  for (const entry of entries) {
    const unit = unitOf.get(entry.invocationId);
    if (unit !== undefined) byUnit.get(unit)?.push(entry);
  }
  const result = new Map<string, string[]>();
  for (const [unit, own] of byUnit) {
    const ordered = [...own].sort((a, b) => a.realtimeUs - b.realtimeUs).slice(-Math.max(linesPerUnit, 0));
    result.set(
      unit,
      ordered.map((entry) => {
        const line = formatJournalEntry(entry).replace(/\n {4}/g, ' ⏎ ');
        return line.length > maxLineChars ? `${line.slice(0, Math.max(maxLineChars - 1, 0))}…` : line;
      }),
    );
  }
  return result;
}

/**
 * The last journal lines of every unit of a digest, in **one** `journalctl` call whatever the number
 * of units. Never throws: when journalctl fails, each unit gets one line saying why. Units without an
 * invocation id get no entry (the digest then shows no journal for them).
 */
export async function gatherJournals(
  entries: readonly { unit: string; invocationId: string }[],
  options: JournalsOptions,
): Promise<Map<string, string[]>> {
  const wanted = entries.filter((entry) => isInvocationId(entry.invocationId));
  if (wanted.length === 0) return new Map();
  const linesPerUnit = options.linesPerUnit ?? DIGEST_JOURNAL_LINES;
  const argv = journalArgv(
    options.journalctl ?? 'journalctl',
    wanted.map((entry) => entry.invocationId),
    wanted.length * Math.max(linesPerUnit, ENTRIES_READ_PER_UNIT),
    options.scope ?? 'system',
  );
  const result = await runCommand(argv, {
    timeoutMs: options.timeoutMs,
    maxBytes: options.maxBytes,
    env: { ...process.env, ...PLAIN_OUTPUT_ENV },
  });
  const journals = splitJournals(
    parseJournalJson(result.stdout),
    wanted,
    linesPerUnit,
    options.maxLineChars ?? 300,
  );
  const problem = problemOf(result, JOURNAL_EXPECTED_EXIT);
  if (problem !== undefined) {
    for (const lines of journals.values()) lines.push(`(journalctl ${problem})`);
  }
  return journals;
}
