import { constants } from 'node:os';
import { EXIT_CODE_NAMES, type Failure, failedAtMs, type UnitFacts, validInvocation } from './failure.js';
import {
  digestNotification,
  failureNotification,
  type Notification,
  recoveryNotification,
} from './notification.js';
import type { ManagerScope } from './service-manager.js';
import { bodyText, inlineText, shellQuote } from './text.js';
import { UNIT_NAME_MAX_LENGTH } from './unit-name.js';

/** What one diagnostic command produced, already decoded and capped by the adapter that ran it. */
export interface CommandOutput {
  /** The command as an operator would type it. */
  readonly command: string;
  readonly text: string;
  /** Bytes dropped by the size cap. */
  readonly truncatedBytes: number;
  /** Why the output may be incomplete (timed out, missing binary, unexpected exit), or undefined. */
  readonly problem: string | undefined;
}

export interface Diagnosis {
  readonly status: CommandOutput;
  /** The failed invocation's own journal lines; undefined when there was no invocation to ask for. */
  readonly journal: CommandOutput | undefined;
  /**
   * True when the journal already holds systemd's own closing line for the invocation ("Failed with
   * result", "Main process exited", …), so the unit's last lines are stored too. Undefined when the
   * gatherer cannot tell (older callers): treat as not settled.
   */
  readonly settled?: boolean;
  /** The last line the unit itself wrote before it stopped (not systemd's), shown right under the headline. */
  readonly lastWords?: string | undefined;
}

export interface ComposedMail {
  readonly subject: string;
  readonly text: string;
  /** Extra headers; values are single-line and safe. */
  readonly headers: Readonly<Record<string, string>>;
  readonly messageId: string;
  /**
   * The same notification as structured data, for channels that are not mail (webhooks). Built from
   * the facts, not from the text; absent for mail made elsewhere (test-email).
   */
  readonly notification?: Notification;
}

export interface CompositionContext {
  readonly hostname: string;
  /** A fresh `<…@…>` id, injected so composition stays deterministic in tests. */
  readonly messageId: string;
  /** Earlier mails of the same incident, so clients show one conversation per incident. */
  readonly inReplyTo?: string | undefined;
  readonly references?: readonly string[];
  /** Failures this mail accounts for (more than one after a held-back window), and since when. */
  readonly count?: number;
  readonly firstAtMs?: number;
  /** A UNITWATCH_CRITICAL unit: flagged high priority. */
  readonly critical?: boolean;
  /** Policy remarks the reader must see (cap reached, …). */
  readonly notes?: readonly string[];
  /**
   * Units failing on the host as the mail is composed (a short list, most important first), for the
   * closing "Also failing" / "Still failing" line. Undefined: the line is left out.
   */
  readonly failingNow?: readonly string[];
  /** `user`: the units are a user manager's, and the commands to type say `--user`. */
  readonly scope?: ManagerScope;
}

/** Marks every mail as sent by a machine, so vacation replies and auto-responders leave it alone. */
const AUTOMATED = { 'Auto-Submitted': 'auto-generated', 'X-Auto-Response-Suppress': 'All' } as const;

/** Threading and priority headers shared by every kind of mail. */
/** `1 failure`, `2 failures`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** `a`, `a and b`, `a, b and c`; with `more` left out: `a, b and 5 more`. */
export function listWords(words: readonly string[], more = 0): string {
  const parts = more > 0 ? [...words, `${more} more`] : [...words];
  if (parts.length <= 1) return parts.join('');
  return `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}

/** The journal of one invocation, as an operator would type it. */
export function invocationJournalCommand(invocationId: string, scope: ManagerScope = 'system'): string {
  return scope === 'user'
    ? `journalctl --user _SYSTEMD_INVOCATION_ID=${invocationId} + USER_INVOCATION_ID=${invocationId}`
    : `journalctl _SYSTEMD_INVOCATION_ID=${invocationId} + INVOCATION_ID=${invocationId}`;
}

/** `systemctl` or `journalctl`, with `--user` when the units are a user manager's. */
function tool(name: 'systemctl' | 'journalctl', scope: ManagerScope): string {
  return scope === 'user' ? `${name} --user` : name;
}

function contextHeaders(context: CompositionContext): Record<string, string> {
  const headers: Record<string, string> = {};
  if (context.inReplyTo !== undefined) headers['In-Reply-To'] = context.inReplyTo;
  if (context.references !== undefined && context.references.length > 0) {
    headers.References = context.references.join(' ');
  }
  if (context.critical === true) {
    headers.Importance = 'high';
    headers['X-Priority'] = '1 (Highest)';
  }
  return headers;
}

function signalName(number: number): string {
  const entry = Object.entries(constants.signals).find(([, value]) => value === number);
  return entry === undefined ? `signal ${number}` : `signal ${number} (${entry[0]})`;
}

export function describeExit(facts: UnitFacts): string | undefined {
  const code = facts.execMainCode;
  const status = facts.execMainStatus;
  if (code === undefined || code === 0 || status === undefined) return undefined;
  if (code === 1) return `exited with status ${status}`;
  const how = EXIT_CODE_NAMES[code] ?? `code ${code}`;
  return `${how}, ${signalName(status)}`;
}

/** `2026-11-22 04:32:22 UTC`: unambiguous across the servers of one operator. */
export function formatTimestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** Result and exit in a few words: `exit-code, exited with status 1`. */
function resultWords(facts: UnitFacts): string {
  const result = inlineText(facts.result || facts.subState, 60);
  const exit = describeExit(facts);
  return exit === undefined ? result : `${result}, ${exit}`;
}

function headline(failure: Failure, hostname: string, count: number): string {
  const { facts } = failure;
  const unit = inlineText(facts.unit);
  const result = inlineText(facts.result || facts.subState, 60);
  const repeated = count > 1 ? `, ${count} times` : '';
  if (failure.kind === 'crash-restart') {
    return `${unit} crashed on ${hostname} (${result})${repeated}, restarting`;
  }
  if (failure.kind === 'stopped')
    return `${unit} is not active on ${hostname} (${inlineText(facts.activeState, 60)})`;
  return `${unit} failed on ${hostname} (${result})${repeated}`;
}

/**
 * Lines of the invocation's journal that `systemctl status` already showed are not repeated; the
 * journal section appears only when status lacks some of them (a long-running unit, a small --lines).
 */
export function journalAddsLines(status: string, journal: string): boolean {
  return journal
    .split('\n')
    .map((line) => line.trim())
    .some((line) => line !== '' && !line.startsWith('-- ') && !status.includes(line));
}

function section(title: string, output: CommandOutput): string {
  const parts = [`── ${title}: ${inlineText(output.command, 500)}`];
  if (output.problem !== undefined) parts.push(`(${inlineText(output.problem, 500)})`);
  const text = bodyText(output.text).replace(/\n+$/, '');
  if (text !== '') parts.push(text);
  if (output.truncatedBytes > 0)
    parts.push(`[… ${output.truncatedBytes} more bytes cut by UNITWATCH_OUTPUT_LIMIT]`);
  return parts.join('\n');
}

/** Policy remarks are ours, but may quote a unit: shown as body text, never raw. */
function noteBlocks(context: CompositionContext): string[] {
  return (context.notes ?? []).map((note) => bodyText(note));
}

/** Names shown in the closing "Also failing" line; the rest are counted. */
export const FAILING_NOW_SHOWN = 10;

/**
 * The closing line on what else is down on the host, or undefined when the caller gave no list.
 * Units the mail is about are not repeated.
 */
function failingNowLine(
  context: CompositionContext,
  hostname: string,
  about: readonly string[],
  lead: 'Also failing' | 'Still failing',
): string | undefined {
  if (context.failingNow === undefined) return undefined;
  const skip = new Set(about);
  const others = [...new Set(context.failingNow)].filter((unit) => !skip.has(unit));
  if (others.length === 0) return `Nothing else is failing on ${hostname}.`;
  const shown = others.slice(0, FAILING_NOW_SHOWN).map((unit) => inlineText(unit, 80));
  return `${lead} on ${hostname}: ${listWords(shown, others.length - shown.length)}.`;
}

/** Commands to copy; a unit name too long for systemd is not put into a command at all. */
function investigateCommands(unit: string, invocationId: string, scope: ManagerScope): string[] {
  const systemctl = tool('systemctl', scope);
  if (unit.length > UNIT_NAME_MAX_LENGTH) {
    return [
      `${systemctl} list-units --failed   # the unit name is ${unit.length} characters, too long to show here`,
    ];
  }
  const quoted = shellQuote(unit);
  return [
    `${systemctl} status --full -- ${quoted}`,
    invocationId === ''
      ? `${tool('journalctl', scope)} -b -u ${quoted}`
      : invocationJournalCommand(invocationId, scope),
    `${systemctl} reset-failed -- ${quoted}   # once handled`,
  ];
}

function investigateBlock(commands: readonly string[]): string {
  return `Investigate:\n${commands.map((command) => `  ${command}`).join('\n')}`;
}

const SIGNATURE = '-- \nunitwatch';

/**
 * One failure: the first line says what broke and where, the next what it last said, then the facts,
 * `systemctl status`, the invocation's journal, what else is failing, and last the commands to type.
 */
export function composeFailureMail(
  failure: Failure,
  diagnosis: Diagnosis,
  context: CompositionContext,
): ComposedMail {
  const { facts } = failure;
  const hostname = inlineText(context.hostname);
  const unit = inlineText(facts.unit);
  const invocationId = validInvocation(facts.invocationId);
  const exit = describeExit(facts);
  const failedAt = failedAtMs(facts, failure.observedAtMs);

  const summary: [string, string | undefined][] = [
    ['Unit', facts.description === '' ? unit : `${unit} (${inlineText(facts.description)})`],
    ['Host', hostname],
    ['Result', inlineText(facts.result || facts.subState, 60)],
    ['Exit', exit],
    ['Time', formatTimestamp(failedAt)],
    ['Restarts', facts.restarts === undefined ? undefined : String(facts.restarts)],
    ['Invocation', facts.invocationId === '' ? undefined : inlineText(facts.invocationId, 64)],
    ['Unit file', facts.fragmentPath === '' ? undefined : inlineText(facts.fragmentPath, 500)],
  ];

  const count = context.count ?? 1;
  const leads: Record<Failure['kind'], string> = {
    'crash-restart': `${unit} crashed on ${hostname}; systemd is restarting it (Restart=).`,
    failed: `${unit} failed on ${hostname}.`,
    stopped: `${unit} is a critical unit (UNITWATCH_CRITICAL) and is no longer active on ${hostname}.`,
  };
  const opening = [leads[failure.kind]];
  if (diagnosis.lastWords !== undefined && diagnosis.lastWords.trim() !== '') {
    opening.push(`It said: ${inlineText(diagnosis.lastWords, 300)}`);
  }
  const repeats =
    count > 1
      ? [
          `It failed ${count} times since ${formatTimestamp(context.firstAtMs ?? failedAt)}; ` +
            'the repeats were held back by the rate limit. The facts below are of the latest failure.',
        ]
      : [];
  const blocks = [
    opening.join('\n'),
    ...noteBlocks(context),
    ...repeats,
    summary
      .filter((row): row is [string, string] => row[1] !== undefined)
      .map(([label, value]) => `  ${`${label}:`.padEnd(12)}${value}`)
      .join('\n'),
    section('status', diagnosis.status),
  ];
  const journal = diagnosis.journal;
  if (journal !== undefined && journal.problem === undefined && journal.text.trim() === '') {
    blocks.push(
      `── journal of this invocation: ${inlineText(journal.command, 500)}\n(no journal lines for this invocation)`,
    );
  } else if (
    journal !== undefined &&
    (journal.problem !== undefined || journalAddsLines(diagnosis.status.text, journal.text))
  ) {
    blocks.push(section('journal of this invocation', journal));
  }
  const failing = failingNowLine(context, hostname, [facts.unit], 'Also failing');
  if (failing !== undefined) blocks.push(failing);
  blocks.push(
    investigateBlock(investigateCommands(facts.unit, invocationId, context.scope ?? 'system')),
    SIGNATURE,
  );

  const subject = `[unitwatch] ${headline(failure, hostname, count)}`;
  const journalText = diagnosis.journal?.problem === undefined ? diagnosis.journal?.text : undefined;
  return {
    subject,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      ...AUTOMATED,
      'X-Unitwatch-Unit': unit,
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': failure.kind,
      'X-Unitwatch-Failures': String(count),
      ...(invocationId === '' ? {} : { 'X-Unitwatch-Invocation': invocationId }),
      ...contextHeaders(context),
    },
    messageId: context.messageId,
    notification: failureNotification(
      {
        failure,
        count,
        ...(context.firstAtMs === undefined ? {} : { firstAtMs: context.firstAtMs }),
        critical: context.critical === true,
        exitText: exit,
        status: diagnosis.status.text,
        ...(journalText === undefined ? {} : { journal: journalText.split('\n') }),
        lastWords: diagnosis.lastWords,
      },
      subject,
      notificationContext(context),
    ),
  };
}

function notificationContext(context: CompositionContext) {
  return {
    hostname: context.hostname,
    messageId: context.messageId,
    references: context.references,
    ...(context.notes === undefined ? {} : { notes: context.notes }),
    ...(context.failingNow === undefined ? {} : { failingNow: context.failingNow }),
  };
}

export interface DigestEntry {
  readonly failure: Failure;
  readonly count: number;
  readonly critical: boolean;
  /**
   * The last journal lines of the failed invocation (from `gatherJournals`), oldest first; undefined
   * when they were not gathered, empty when the journal had none.
   */
  readonly journal?: readonly string[];
}

/**
 * The head of `systemctl status` rebuilt from the properties already read over D-Bus: in a storm,
 * forking `systemctl` once per unit would cost more than everything else together. Every field is
 * one line: a Description with line breaks cannot add a line of its own.
 */
export function statusHeadFromFacts(facts: UnitFacts, observedAtMs: number): string {
  const sinceMs = failedAtMs(facts, observedAtMs);
  const unit = inlineText(facts.unit);
  const description = inlineText(facts.description);
  const active = inlineText(facts.activeState, 40);
  const sub = inlineText(facts.subState, 40);
  const result = facts.result === '' ? '' : ` (Result: ${inlineText(facts.result, 60)})`;
  const lines = [
    `${facts.activeState === 'failed' ? '×' : '●'} ${unit}${description === '' ? '' : ` - ${description}`}`,
    `     Active: ${active}${facts.subState === facts.activeState ? '' : ` (${sub})`}${result} since ${formatTimestamp(sinceMs)}`,
  ];
  const exit = describeExit(facts);
  if (exit !== undefined) lines.push(`       Exit: ${exit}`);
  if (facts.fragmentPath !== '') lines.push(`  Unit file: ${inlineText(facts.fragmentPath, 500)}`);
  return lines.join('\n');
}

/** Lines of status output shown per unit in a digest: enough to tell a crash from a timeout. */
export const DIGEST_STATUS_LINES = 6;

/** Journal lines gathered per unit of a digest by default (`gatherJournals`). */
export const DIGEST_JOURNAL_LINES = 5;

/** At most this many journal lines per unit are shown, whatever the gatherer returned. */
export const DIGEST_JOURNAL_MAX_LINES = 50;

/** Characters of one journal line in a digest; longer lines end in `…`. */
export const DIGEST_JOURNAL_LINE_CHARS = 300;

/**
 * Characters of journal lines in one digest, all units together (16 KiB keeps a 77-unit storm
 * readable on a phone). Units are served most important first; what does not fit is counted and the
 * command to see it is given.
 */
export const DIGEST_JOURNAL_BUDGET_CHARS = 16 * 1024;

/** Characters of unit names in a digest's Subject before the rest become "and N more". */
export const DIGEST_SUBJECT_NAMES_CHARS = 100;

/** Most important first: critical units, then the most failures, then the earliest failure, then by name. */
export function rankDigestEntries(entries: readonly DigestEntry[]): DigestEntry[] {
  const at = (entry: DigestEntry) => failedAtMs(entry.failure.facts, entry.failure.observedAtMs);
  return [...entries].sort(
    (a, b) =>
      Number(b.critical) - Number(a.critical) ||
      b.count - a.count ||
      at(a) - at(b) ||
      (a.failure.facts.unit < b.failure.facts.unit
        ? -1
        : a.failure.facts.unit > b.failure.facts.unit
          ? 1
          : 0),
  );
}

/** As many names as fit into `budget` characters (at least one), and how many were left out. */
function namesWithin(units: readonly string[], budget: number): { shown: string[]; more: number } {
  const shown: string[] = [];
  let used = 0;
  for (const unit of units) {
    const name = inlineText(unit, 60);
    if (shown.length > 0 && used + name.length + 2 > budget) break;
    shown.push(name);
    used += name.length + 2;
  }
  return { shown, more: units.length - shown.length };
}

/** `[unitwatch] a.service, b.service and 5 more failed on web1`: units ranked, bounded in length. */
export function digestSubject(ranked: readonly DigestEntry[], hostname: string): string {
  const { shown, more } = namesWithin(
    ranked.map((entry) => entry.failure.facts.unit),
    DIGEST_SUBJECT_NAMES_CHARS,
  );
  return `[unitwatch] ${listWords(shown, more)} failed on ${hostname}`;
}

interface JournalCut {
  lines: number;
  units: number;
}

/** One unit's journal lines in a digest, within what is left of the mail's budget. */
function digestJournal(
  entry: DigestEntry,
  budget: { left: number },
  cut: JournalCut,
  scope: ManagerScope,
): string[] {
  if (entry.journal === undefined) return [];
  if (entry.journal.length === 0) return ['    (no journal lines for this invocation)'];
  const all = entry.journal.slice(-DIGEST_JOURNAL_MAX_LINES);
  const kept: string[] = [];
  // From the newest backwards: the last lines are the ones that say why it died.
  for (let index = all.length - 1; index >= 0; index -= 1) {
    const line = `    ${inlineText(all[index] ?? '', DIGEST_JOURNAL_LINE_CHARS)}`;
    if (line.length + 1 > budget.left) break;
    budget.left -= line.length + 1;
    kept.unshift(line);
  }
  const dropped = entry.journal.length - kept.length;
  if (dropped === 0) return kept;
  const { facts } = entry.failure;
  const invocationId = validInvocation(facts.invocationId);
  const see =
    invocationId !== ''
      ? invocationJournalCommand(invocationId, scope)
      : facts.unit.length <= UNIT_NAME_MAX_LENGTH
        ? `${tool('journalctl', scope)} -b -u ${shellQuote(facts.unit)}`
        : `${tool('journalctl', scope)} -b`;
  // Lines cut only by the per-unit maximum are not a cut of the mail's budget.
  if (kept.length < all.length) {
    cut.lines += all.length - kept.length;
    cut.units += 1;
  }
  return [`    [… ${plural(dropped, 'earlier line')} not shown: ${see}]`, ...kept];
}

/**
 * One mail for a storm, to read on a phone: the first line names what broke and where, each unit
 * follows most important first with its result, head of status and last journal lines, then what
 * else is failing, and last the commands to type.
 */
export function composeDigestMail(
  entries: readonly DigestEntry[],
  context: CompositionContext,
): ComposedMail {
  const hostname = inlineText(context.hostname);
  const ranked = rankDigestEntries(entries);
  const failures = entries.reduce((sum, entry) => sum + entry.count, 0);
  const critical = entries.some((entry) => entry.critical);
  const budget = { left: DIGEST_JOURNAL_BUDGET_CHARS };
  const scope = context.scope ?? 'system';
  const cut: JournalCut = { lines: 0, units: 0 };
  const unitBlocks = ranked.map((entry) => {
    const { facts } = entry.failure;
    const detail = [
      resultWords(facts),
      entry.count > 1 ? plural(entry.count, 'failure') : undefined,
      entry.critical ? 'CRITICAL' : undefined,
    ]
      .filter((part) => part !== undefined)
      .join(', ');
    const status = statusHeadFromFacts(facts, entry.failure.observedAtMs)
      .split('\n')
      .slice(0, DIGEST_STATUS_LINES)
      .map((line) => `    ${line}`);
    return [
      `● ${inlineText(facts.unit)}: ${detail}`,
      ...status,
      ...digestJournal(entry, budget, cut, scope),
    ].join('\n');
  });
  const top = ranked[0];
  const commands = [`${tool('systemctl', scope)} list-units --failed`];
  if (top !== undefined) {
    const [status, journal] = investigateCommands(
      top.failure.facts.unit,
      validInvocation(top.failure.facts.invocationId),
      scope,
    );
    if (journal !== undefined) commands.push(`${status}   # first of the list`, journal);
    else if (status !== undefined) commands.push(status);
  }
  commands.push(`${tool('systemctl', scope)} reset-failed   # once handled: clears every failed unit`);
  const blocks = [
    `${plural(entries.length, 'unit')} failed on ${hostname} close together (${plural(failures, 'failure')}); ` +
      'most important first. Later repeats of each unit follow the usual rate limit.',
    ...noteBlocks(context),
    unitBlocks.join('\n\n'),
  ];
  if (cut.lines > 0) {
    blocks.push(
      `[… ${plural(cut.lines, 'journal line')} of ${plural(cut.units, 'unit')} cut to keep this mail short ` +
        `(${DIGEST_JOURNAL_BUDGET_CHARS} characters of journal per mail); each unit above names the command that shows them.]`,
    );
  }
  const failing = failingNowLine(
    context,
    hostname,
    entries.map((entry) => entry.failure.facts.unit),
    'Also failing',
  );
  if (failing !== undefined) blocks.push(failing);
  blocks.push(investigateBlock(commands), SIGNATURE);
  const subject = digestSubject(ranked, hostname);
  return {
    subject,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      ...AUTOMATED,
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': 'digest',
      'X-Unitwatch-Failures': String(failures),
      ...contextHeaders({ ...context, critical }),
    },
    messageId: context.messageId,
    notification: digestNotification(
      ranked.map((entry) => ({
        failure: entry.failure,
        count: entry.count,
        critical: entry.critical,
        exitText: describeExit(entry.failure.facts),
        status: statusHeadFromFacts(entry.failure.facts, entry.failure.observedAtMs),
        ...(entry.journal === undefined ? {} : { journal: entry.journal }),
      })),
      subject,
      notificationContext(context),
    ),
  };
}

export interface RecoveredUnitView {
  readonly unit: string;
  readonly failures: number;
  readonly sinceMs: number;
  readonly critical: boolean;
  readonly ending: 'recovered' | 'stopped';
}

export interface Recovery {
  /** One unit, or the units of one incident group (a digest) that ended together. */
  readonly units: readonly RecoveredUnitView[];
  readonly atMs: number;
}

/**
 * The end of one incident, or of several that failed together: up again, or stopped by hand. A
 * short reply in the incident's thread, ending with what is still down on the host.
 */
export function composeRecoveryMail(recovery: Recovery, context: CompositionContext): ComposedMail {
  const hostname = inlineText(context.hostname);
  const units = recovery.units.map((entry) => ({ ...entry, unit: inlineText(entry.unit) }));
  const critical = units.some((entry) => entry.critical);
  const [only] = units;
  const verb = (entry: RecoveredUnitView) => (entry.ending === 'stopped' ? 'was stopped' : 'is up again');
  const detail = (entry: RecoveredUnitView) => [
    `  ${'Down since:'.padEnd(12)}${formatTimestamp(entry.sinceMs)}`,
    `  ${(entry.ending === 'stopped' ? 'Stopped:' : 'Up since:').padEnd(12)}${formatTimestamp(recovery.atMs)}`,
    `  ${'Failures:'.padEnd(12)}${entry.failures}`,
  ];
  let subject: string;
  let lines: string[];
  if (units.length === 1 && only !== undefined) {
    subject =
      only.ending === 'stopped'
        ? `[unitwatch] ${only.unit} stopped on ${hostname} after ${plural(only.failures, 'failure')}`
        : `[unitwatch] ${only.unit} recovered on ${hostname}`;
    lines = [
      `${only.unit} ${verb(only)} on ${hostname} after ${plural(only.failures, 'failure')}.`,
      ...detail(only),
      ...(only.ending === 'stopped'
        ? ['', 'It was stopped (by hand or by a job), not recovered: it is not running now.']
        : []),
    ];
  } else {
    // Names cut shorter in the Subject than in the body, so three of them always fit.
    const shown = recovery.units.slice(0, 3).map((entry) => inlineText(entry.unit, 60));
    subject = `[unitwatch] ${listWords(shown, units.length - shown.length)} ended on ${hostname}`;
    lines = [
      `${plural(units.length, 'unit')} that failed together ended on ${hostname}:`,
      ...units.flatMap((entry) => ['', `● ${entry.unit} ${verb(entry)}`, ...detail(entry)]),
    ];
  }
  const blocks = [lines.join('\n'), ...noteBlocks(context)];
  const failing = failingNowLine(
    context,
    hostname,
    recovery.units.map((entry) => entry.unit),
    'Still failing',
  );
  if (failing !== undefined) blocks.push(failing);
  blocks.push(SIGNATURE);
  return {
    subject,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      ...AUTOMATED,
      ...(units.length === 1 && only !== undefined ? { 'X-Unitwatch-Unit': only.unit } : {}),
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': units.every((entry) => entry.ending === 'stopped')
        ? 'stopped-by-hand'
        : 'recovery',
      ...contextHeaders({ ...context, critical }),
    },
    messageId: context.messageId,
    notification: recoveryNotification(recovery.units, recovery.atMs, subject, notificationContext(context)),
  };
}
