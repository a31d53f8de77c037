import { constants } from 'node:os';
import type { Failure, UnitFacts } from './failure.js';
import { cleanBodyText, cleanLine, shellQuote } from './text.js';

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
}

export interface ComposedMail {
  readonly subject: string;
  readonly text: string;
  /** Extra headers; values are single-line and safe. */
  readonly headers: Readonly<Record<string, string>>;
  readonly messageId: string;
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
}

/** Marks every mail as sent by a machine, so vacation replies and auto-responders leave it alone. */
const AUTOMATED = { 'Auto-Submitted': 'auto-generated', 'X-Auto-Response-Suppress': 'All' } as const;

/** Threading and priority headers shared by every kind of mail. */
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

const EXIT_CODES: Readonly<Record<number, string>> = { 1: 'exited', 2: 'killed', 3: 'dumped core' };

function signalName(number: number): string {
  const entry = Object.entries(constants.signals).find(([, value]) => value === number);
  return entry === undefined ? `signal ${number}` : `signal ${number} (${entry[0]})`;
}

export function describeExit(facts: UnitFacts): string | undefined {
  const code = facts.execMainCode;
  const status = facts.execMainStatus;
  if (code === undefined || code === 0 || status === undefined) return undefined;
  if (code === 1) return `exited with status ${status}`;
  const how = EXIT_CODES[code] ?? `code ${code}`;
  return `${how}, ${signalName(status)}`;
}

/** `2026-11-22 04:32:22 UTC`: unambiguous across the servers of one operator. */
export function formatTimestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** When systemd says the unit went down; when unitwatch saw it, if systemd gave no time. */
function failedAtMs(facts: UnitFacts, observedAtMs: number): number {
  return facts.inactiveEnterTimestampUs > 0
    ? Math.floor(facts.inactiveEnterTimestampUs / 1000)
    : observedAtMs;
}

function headline(failure: Failure, hostname: string, count: number): string {
  const { facts } = failure;
  const unit = cleanLine(facts.unit);
  const result = cleanLine(facts.result || facts.subState);
  const repeated = count > 1 ? `, ${count} times` : '';
  if (failure.kind === 'crash-restart') {
    return `${unit} crashed on ${hostname} (${result})${repeated}, restarting`;
  }
  if (failure.kind === 'stopped')
    return `${unit} is not active on ${hostname} (${cleanLine(facts.activeState)})`;
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
  const parts = [`── ${title}: ${output.command}`];
  if (output.problem !== undefined) parts.push(`(${cleanLine(output.problem, 500)})`);
  const text = cleanBodyText(output.text).replace(/\n+$/, '');
  if (text !== '') parts.push(text);
  if (output.truncatedBytes > 0)
    parts.push(`[… ${output.truncatedBytes} more bytes cut by UNITWATCH_OUTPUT_LIMIT]`);
  return parts.join('\n');
}

export function composeFailureMail(
  failure: Failure,
  diagnosis: Diagnosis,
  context: CompositionContext,
): ComposedMail {
  const { facts } = failure;
  const hostname = cleanLine(context.hostname);
  const unit = cleanLine(facts.unit);
  const quotedUnit = shellQuote(facts.unit);
  const exit = describeExit(facts);
  const failedAt = failedAtMs(facts, failure.observedAtMs);

  const summary: [string, string | undefined][] = [
    ['Unit', facts.description === '' ? unit : `${unit} (${cleanLine(facts.description)})`],
    ['Host', hostname],
    ['Result', cleanLine(facts.result || facts.subState)],
    ['Exit', exit],
    ['Time', formatTimestamp(failedAt)],
    ['Restarts', facts.restarts === undefined ? undefined : String(facts.restarts)],
    ['Invocation', facts.invocationId === '' ? undefined : facts.invocationId],
    ['Unit file', facts.fragmentPath === '' ? undefined : cleanLine(facts.fragmentPath, 500)],
  ];
  const investigate = [
    `systemctl status --full -- ${quotedUnit}`,
    facts.invocationId === ''
      ? `journalctl -b -u ${quotedUnit}`
      : `journalctl _SYSTEMD_INVOCATION_ID=${facts.invocationId} + INVOCATION_ID=${facts.invocationId}`,
    `systemctl reset-failed -- ${quotedUnit}   # once handled`,
  ];

  const count = context.count ?? 1;
  const leads: Record<Failure['kind'], string> = {
    'crash-restart': `${unit} crashed on ${hostname}; systemd is restarting it (Restart=).`,
    failed: `${unit} failed on ${hostname}.`,
    stopped: `${unit} is a critical unit (UNITWATCH_CRITICAL) and is no longer active on ${hostname}.`,
  };
  const repeats =
    count > 1
      ? [
          `It failed ${count} times since ${formatTimestamp(context.firstAtMs ?? failedAt)}; ` +
            'the repeats were held back by the rate limit. The facts below are of the latest failure.',
        ]
      : [];
  const blocks = [
    ...(context.notes ?? []),
    leads[failure.kind],
    ...repeats,
    summary
      .filter((row): row is [string, string] => row[1] !== undefined)
      .map(([label, value]) => `  ${`${label}:`.padEnd(12)}${value}`)
      .join('\n'),
    `Investigate:\n${investigate.map((command) => `  ${command}`).join('\n')}`,
    section('status', diagnosis.status),
  ];
  const journal = diagnosis.journal;
  if (
    journal !== undefined &&
    (journal.problem !== undefined || journalAddsLines(diagnosis.status.text, journal.text))
  ) {
    blocks.push(section('journal of this invocation', journal));
  }
  blocks.push('-- \nunitwatch');

  return {
    subject: `[unitwatch] ${headline(failure, hostname, count)}`,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      ...AUTOMATED,
      'X-Unitwatch-Unit': unit,
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': failure.kind,
      'X-Unitwatch-Failures': String(count),
      ...(facts.invocationId === '' ? {} : { 'X-Unitwatch-Invocation': facts.invocationId }),
      ...contextHeaders(context),
    },
    messageId: context.messageId,
  };
}

export interface DigestEntry {
  readonly failure: Failure;
  readonly count: number;
  readonly critical: boolean;
}

/**
 * The head of `systemctl status` rebuilt from the properties already read over D-Bus: in a storm,
 * forking `systemctl` once per unit would cost more than everything else together.
 */
export function statusHeadFromFacts(facts: UnitFacts, observedAtMs: number): string {
  const sinceMs = failedAtMs(facts, observedAtMs);
  const result = facts.result === '' ? '' : ` (Result: ${facts.result})`;
  const lines = [
    `${facts.activeState === 'failed' ? '×' : '●'} ${facts.unit}${facts.description === '' ? '' : ` - ${facts.description}`}`,
    `     Active: ${facts.activeState}${facts.subState === facts.activeState ? '' : ` (${facts.subState})`}${result} since ${formatTimestamp(sinceMs)}`,
  ];
  const exit = describeExit(facts);
  if (exit !== undefined) lines.push(`       Exit: ${exit}`);
  if (facts.fragmentPath !== '') lines.push(`  Unit file: ${facts.fragmentPath}`);
  return lines.join('\n');
}

/** Lines of status output shown per unit in a digest: enough to tell a crash from a timeout. */
export const DIGEST_STATUS_LINES = 6;

/** One mail for a storm: every unit named, with its result and the head of its status. */
export function composeDigestMail(
  entries: readonly DigestEntry[],
  context: CompositionContext,
): ComposedMail {
  const hostname = cleanLine(context.hostname);
  const failures = entries.reduce((sum, entry) => sum + entry.count, 0);
  const critical = entries.some((entry) => entry.critical);
  const blocks = [
    ...(context.notes ?? []),
    `${entries.length} units failed on ${hostname} close together (${failures} failures). ` +
      'They are listed in one mail instead of one mail each; later repeats of each unit follow the usual rate limit.',
    entries
      .map((entry) => {
        const { facts } = entry.failure;
        const exit = describeExit(facts);
        const detail = [
          cleanLine(facts.result || facts.subState),
          exit,
          entry.count > 1 ? `${entry.count} failures` : undefined,
          entry.critical ? 'CRITICAL' : undefined,
        ]
          .filter((part) => part !== undefined)
          .join(', ');
        const status = cleanBodyText(statusHeadFromFacts(facts, entry.failure.observedAtMs))
          .split('\n')
          .slice(0, DIGEST_STATUS_LINES)
          .map((line) => `    ${line}`)
          .join('\n');
        return `● ${cleanLine(facts.unit)}: ${detail}\n${status}`;
      })
      .join('\n\n'),
    'Investigate each with: systemctl status --full -- UNIT',
    '-- \nunitwatch',
  ];
  return {
    subject: `[unitwatch] ${entries.length} units failed on ${hostname}`,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      ...AUTOMATED,
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': 'digest',
      'X-Unitwatch-Failures': String(failures),
      ...contextHeaders({ ...context, critical }),
    },
    messageId: context.messageId,
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
  readonly notes?: readonly string[];
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The end of one incident or of several that failed together: up again, or stopped by hand. */
export function composeRecoveryMail(recovery: Recovery, context: CompositionContext): ComposedMail {
  const hostname = cleanLine(context.hostname);
  const units = recovery.units.map((entry) => ({ ...entry, unit: cleanLine(entry.unit) }));
  const critical = units.some((entry) => entry.critical);
  const [only] = units;
  const verb = (entry: RecoveredUnitView) => (entry.ending === 'stopped' ? 'was stopped' : 'is up again');
  const detail = (entry: RecoveredUnitView) => [
    `  ${'Down since:'.padEnd(12)}${formatTimestamp(entry.sinceMs)}`,
    `  ${entry.ending === 'stopped' ? 'Stopped:'.padEnd(12) : 'Up since:'.padEnd(12)}${formatTimestamp(recovery.atMs)}`,
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
      `${only.unit} ${verb(only)} on ${hostname}.`,
      ...detail(only),
      ...(only.ending === 'stopped'
        ? ['', 'It was stopped (by hand or by a job), not recovered: it is not running now.']
        : []),
    ];
  } else {
    const names = units.map((entry) => entry.unit);
    const shown = names.slice(0, 3).join(', ');
    const rest = names.length > 3 ? ` and ${names.length - 3} more` : '';
    subject = `[unitwatch] ${shown}${rest} ended on ${hostname}`;
    lines = [
      `${plural(units.length, 'unit')} that failed together ended on ${hostname}:`,
      ...units.flatMap((entry) => ['', `● ${entry.unit} ${verb(entry)}`, ...detail(entry)]),
    ];
  }
  const text = [...(recovery.notes ?? []), lines.join('\n'), '-- \nunitwatch'].join('\n\n');
  return {
    subject,
    text: `${text}\n`,
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
  };
}
