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

function headline(failure: Failure, hostname: string): string {
  const { facts } = failure;
  const unit = cleanLine(facts.unit);
  const result = cleanLine(facts.result || facts.subState);
  if (failure.kind === 'crash-restart') {
    return `${unit} crashed on ${hostname} (${result}), restarting`;
  }
  return `${unit} failed on ${hostname} (${result})`;
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
  const failedAtMs =
    facts.inactiveEnterTimestampUs > 0
      ? Math.floor(facts.inactiveEnterTimestampUs / 1000)
      : failure.observedAtMs;

  const summary: [string, string | undefined][] = [
    ['Unit', facts.description === '' ? unit : `${unit} (${cleanLine(facts.description)})`],
    ['Host', hostname],
    ['Result', cleanLine(facts.result || facts.subState)],
    ['Exit', exit],
    ['Time', formatTimestamp(failedAtMs)],
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

  const lead =
    failure.kind === 'crash-restart'
      ? `${unit} crashed on ${hostname}; systemd is restarting it (Restart=).`
      : `${unit} failed on ${hostname}.`;
  const blocks = [
    lead,
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
    subject: `[unitwatch] ${headline(failure, hostname)}`,
    text: `${blocks.join('\n\n')}\n`,
    headers: {
      'Auto-Submitted': 'auto-generated',
      'X-Auto-Response-Suppress': 'All',
      'X-Unitwatch-Unit': unit,
      'X-Unitwatch-Host': hostname,
      'X-Unitwatch-Event': failure.kind,
      ...(facts.invocationId === '' ? {} : { 'X-Unitwatch-Invocation': facts.invocationId }),
    },
    messageId: context.messageId,
  };
}
