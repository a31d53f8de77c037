import type { CommandOutput, Diagnosis } from '../core/message.js';
import { shellQuote } from '../core/text.js';
import { type CommandResult, runCommand } from './command-runner.js';

export interface DiagnosisOptions {
  readonly statusLines: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** `systemctl` and `journalctl` are looked up on PATH unless given here. */
  readonly systemctl?: string;
  readonly journalctl?: string;
}

/** Colours and pagers off, whatever the operator's environment says. */
const PLAIN_OUTPUT_ENV = { SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', PAGER: 'cat', SYSTEMD_LESS: '' };

/** `systemctl status` exits 3 for a unit that is not active: for a failed unit that is the normal answer. */
const STATUS_EXPECTED_EXIT = new Set([0, 3]);

/** journalctl exits 1 when nothing matched, which for a unit that printed nothing is fine. */
const JOURNAL_EXPECTED_EXIT = new Set([0, 1]);

function toOutput(command: string, result: CommandResult, expectedExit: ReadonlySet<number>): CommandOutput {
  let problem: string | undefined;
  if (result.spawnError !== undefined) problem = `could not run: ${result.spawnError}`;
  else if (result.timedOut) problem = 'timed out and was killed; output so far is below';
  else if (result.signal !== null) problem = `killed by ${result.signal}`;
  else if (result.exitCode !== null && !expectedExit.has(result.exitCode)) {
    problem = `exited with status ${result.exitCode}`;
  }
  const stderr = result.stderr.trim();
  return {
    command,
    text:
      stderr === ''
        ? result.stdout
        : `${result.stdout}${result.stdout.endsWith('\n') ? '' : '\n'}${stderr}\n`,
    truncatedBytes: result.truncatedBytes,
    problem,
  };
}

/**
 * Runs `systemctl status` and the invocation's journal query side by side; both are capped and
 * time-limited, and neither can make the caller throw.
 */
export async function gatherDiagnosis(
  unit: string,
  invocationId: string,
  options: DiagnosisOptions,
): Promise<Diagnosis> {
  const env = { ...process.env, ...PLAIN_OUTPUT_ENV };
  const run = { timeoutMs: options.timeoutMs, maxBytes: options.maxBytes, env };
  const systemctl = options.systemctl ?? 'systemctl';
  const journalctl = options.journalctl ?? 'journalctl';
  // `--` keeps units such as `-.mount` from being read as options.
  const statusArgv = [
    systemctl,
    'status',
    '--full',
    '--no-pager',
    `--lines=${options.statusLines}`,
    '--',
    unit,
  ];
  const journalArgv = [
    journalctl,
    '--no-pager',
    '--quiet',
    '-o',
    'short',
    `--lines=${Math.max(options.statusLines, 1) * 5}`,
    `_SYSTEMD_INVOCATION_ID=${invocationId}`,
    '+',
    `INVOCATION_ID=${invocationId}`,
  ];
  const [status, journal] = await Promise.all([
    runCommand(statusArgv, run),
    invocationId === '' ? Promise.resolve(undefined) : runCommand(journalArgv, run),
  ]);
  return {
    status: toOutput(`systemctl status --full -- ${shellQuote(unit)}`, status, STATUS_EXPECTED_EXIT),
    journal:
      journal === undefined
        ? undefined
        : toOutput(`journalctl _SYSTEMD_INVOCATION_ID=${invocationId}`, journal, JOURNAL_EXPECTED_EXIT),
  };
}
