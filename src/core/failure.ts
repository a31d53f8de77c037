/** What systemd told us about a unit at the moment it failed, read before it can be garbage-collected. */
export interface UnitFacts {
  readonly unit: string;
  readonly description: string;
  readonly activeState: string;
  readonly subState: string;
  /** systemd's `Result` (`exit-code`, `signal`, `timeout`, `core-dump`, `start-limit-hit`, …); '' if the unit type has none. */
  readonly result: string;
  /** CLD_EXITED (1), CLD_KILLED (2) or CLD_DUMPED (3); undefined for unit types without a main process. */
  readonly execMainCode: number | undefined;
  readonly execMainStatus: number | undefined;
  readonly restarts: number | undefined;
  /** 32 hex digits, '' when systemd gave none. */
  readonly invocationId: string;
  /** Microseconds since the epoch, 0 when unknown. */
  readonly inactiveEnterTimestampUs: number;
  readonly fragmentPath: string;
}

export type FailureKind =
  /** The unit reached ActiveState=failed. */
  | 'failed'
  /** A Restart= unit crashed and systemd scheduled a restart: the failure that never reaches `failed`. */
  | 'crash-restart'
  /** A UNITWATCH_CRITICAL unit left `active` without failing (stopped, dead). */
  | 'stopped';

export interface Failure {
  readonly kind: FailureKind;
  readonly facts: UnitFacts;
  /** When unitwatch saw it (ms since epoch, from the injected clock). */
  readonly observedAtMs: number;
}

/** How the main process ended, by systemd's ExecMainCode (CLD_EXITED, CLD_KILLED, CLD_DUMPED). */
export const EXIT_CODE_NAMES: Readonly<Record<number, string>> = {
  1: 'exited',
  2: 'killed',
  3: 'dumped core',
};

/** An invocation id as systemd writes it (32 hex digits); '' for anything else. */
export function validInvocation(id: string): string {
  return /^[0-9a-f]{32}$/.test(id) ? id : '';
}

/** When systemd says the unit went down; when unitwatch saw it, if systemd gave no time. */
export function failedAtMs(facts: UnitFacts, observedAtMs: number): number {
  return facts.inactiveEnterTimestampUs > 0
    ? Math.floor(facts.inactiveEnterTimestampUs / 1000)
    : observedAtMs;
}

export interface UnitStateView {
  readonly activeState: string;
  readonly subState: string;
}

/** The transition that makes a notification owed, or undefined. Entering a state counts, staying in it does not. */
export function failureKindOf(
  previous: UnitStateView | undefined,
  next: UnitStateView,
): FailureKind | undefined {
  if (next.activeState === 'failed' && previous?.activeState !== 'failed') return 'failed';
  if (next.subState === 'auto-restart' && previous?.subState !== 'auto-restart') return 'crash-restart';
  return undefined;
}

/**
 * The kind a failure really is, judged on the facts read after the signal. systemd ≥ 246 passes a
 * crashing Restart= unit through `failed` on its way to `auto-restart`, and a signal may show either;
 * the facts, read afterwards, show where it landed, so both signals describe one crash-restart.
 */
export function classifyFailure(observed: FailureKind, facts: UnitFacts): FailureKind {
  return facts.subState === 'auto-restart' ? 'crash-restart' : observed;
}

/** A critical unit went from running to inactive without failing: stopped, or exited cleanly. */
export function leftActiveCleanly(previous: UnitStateView | undefined, next: UnitStateView): boolean {
  return previous !== undefined && previous.activeState !== 'inactive' && next.activeState === 'inactive';
}

/** Entering `active` ends an incident (after the policy's grace period). */
export function becameActive(previous: UnitStateView | undefined, next: UnitStateView): boolean {
  return next.activeState === 'active' && previous?.activeState !== 'active';
}

/** A oneshot or timer job ran and ended without failing: for such units that is the recovery. */
export function finishedRun(previous: UnitStateView | undefined, next: UnitStateView): boolean {
  // auto-restart is `activating` too, but leaving it for inactive is a stop by hand, not a run.
  return (
    previous?.activeState === 'activating' &&
    previous.subState !== 'auto-restart' &&
    next.activeState === 'inactive'
  );
}

/**
 * A scheduled restart after a clean exit (`Restart=always` on a job that finished) is routine; only a
 * restart after a non-success result is a crash worth a mail.
 */
export function isNotifiable(kind: FailureKind, facts: UnitFacts): boolean {
  if (kind !== 'crash-restart') return true;
  return facts.result !== '' && facts.result !== 'success';
}

/**
 * Identifies one failure of one invocation, so the same event seen twice (a repeated signal, a catch-up
 * after reconnect) is reported once. A crash-restart and the later `failed` of the same invocation
 * (start limit hit) are different events.
 */
export function failureKey(kind: FailureKind, facts: UnitFacts): string {
  const instant = facts.invocationId !== '' ? facts.invocationId : `t${facts.inactiveEnterTimestampUs}`;
  return `${facts.unit}\u0000${instant}\u0000${kind}\u0000${facts.result}`;
}

/**
 * Remembers the last state of every unit that is not inactive, and turns each new state into a
 * decision. Inactive units are forgotten, since unknown and inactive mean the same to failureKindOf;
 * this keeps memory proportional to the units that are running or failed.
 */
export class UnitStateTracker {
  readonly #states = new Map<string, UnitStateView>();

  /** Seeds the state without deciding anything (start-up, reconnect). */
  remember(unit: string, view: UnitStateView): void {
    if (view.activeState === 'inactive') this.#states.delete(unit);
    else this.#states.set(unit, { activeState: view.activeState, subState: view.subState });
  }

  /** Records the new state; returns the state before (recovery and critical checks need it) and the failure it makes, if any. */
  transition(
    unit: string,
    view: UnitStateView,
  ): { previous: UnitStateView | undefined; kind: FailureKind | undefined } {
    const previous = this.#states.get(unit);
    const kind = failureKindOf(previous, view);
    this.remember(unit, view);
    return { previous, kind };
  }

  units(): string[] {
    return [...this.#states.keys()];
  }

  forget(unit: string): void {
    this.#states.delete(unit);
  }

  get size(): number {
    return this.#states.size;
  }

  failedUnits(): string[] {
    return [...this.#states].filter(([, view]) => view.activeState === 'failed').map(([unit]) => unit);
  }
}
