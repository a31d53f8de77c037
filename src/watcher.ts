import type { Logger } from './adapters/logger.js';
import type { ListedUnit, UnitChange } from './adapters/systemd-bus.js';
import type { IncidentAlertView } from './core/alert.js';
import { ConcurrencyLimit } from './core/concurrency-limit.js';
import type { Config } from './core/config.js';
import {
  becameActive,
  classifyFailure,
  type Failure,
  type FailureKind,
  failureKey,
  finishedRun,
  isNotifiable,
  leftActiveCleanly,
  type UnitFacts,
  UnitStateTracker,
} from './core/failure.js';
import { isCritical, isWatched, type UnitFilter, unitFilter } from './core/globs.js';
import {
  type ComposedMail,
  composeDigestMail,
  composeFailureMail,
  composeRecoveryMail,
  type Diagnosis,
  type DigestEntry,
  describeExit,
} from './core/message.js';
import { mayNotifyAboutSelf, type SelfNotificationState } from './core/own-unit.js';
import {
  type GlobalPolicyState,
  NotificationPolicy,
  type Outgoing,
  type UnitPolicyState,
} from './core/policy.js';
import { ReportedFailures } from './core/reported-failures.js';
import type { ManagerScope } from './core/service-manager.js';
import { cleanLine } from './core/text.js';

/** What the watcher needs from systemd; SystemdBus in the daemon, a test double in unit tests. */
export interface UnitSource {
  readFacts(unit: string, objectPath: string): Promise<UnitFacts>;
  /** A service's restart count and invocation; optional so a source without them is still a source. */
  readRestarts?(objectPath: string): Promise<{ restarts: number | undefined }>;
  /** Every loaded unit (ListUnits), to confirm a removal; without it a UnitRemoved signal is believed. */
  listUnits?(): Promise<readonly ListedUnit[]>;
}

export interface SelfStateStore {
  load(): Promise<SelfNotificationState | undefined>;
  save(state: SelfNotificationState): Promise<void>;
}

/**
 * The durable state (StateLog in the daemon): the policy's per-unit (`u:UNIT`) and global (`g`)
 * state, the failures already reported (`r:KEY`), and mails decided but not yet queued (`o:ID`).
 */
export interface StateStore {
  start(): Promise<ReadonlyMap<string, unknown>>;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  /** Resolves once every change made before the call is on disk; rejects when the disk refuses. */
  flush(): Promise<void>;
}

export interface MailMeta {
  readonly unit: string;
  readonly event: string;
}

export interface WatcherDependencies {
  readonly config: Config;
  readonly logger: Logger;
  readonly units: UnitSource;
  readonly gather: (unit: string, invocationId: string) => Promise<Diagnosis>;
  /** Reads the invocation's journal again after a settle wait, keeping the status; gather anew if absent. */
  readonly refreshJournal?: (diagnosis: Diagnosis, invocationId: string) => Promise<Diagnosis>;
  /** The last journal lines of every unit of a digest, in one read; a digest without them if absent. */
  readonly gatherJournals?: (
    entries: readonly { unit: string; invocationId: string }[],
  ) => Promise<ReadonlyMap<string, readonly string[]>>;
  /** Hands a composed mail over for delivery; resolves once it is durably queued. */
  readonly deliver: (mail: ComposedMail, meta: MailMeta) => Promise<void>;
  readonly state: StateStore;
  /** Whether a mail with this Message-ID reached the outbox (in this process or before a restart). */
  readonly isQueued: (messageId: string) => boolean;
  readonly selfState: SelfStateStore;
  readonly ownUnit: string | undefined;
  /** `user` when a user's manager is watched: the mails' commands then say `--user`. */
  readonly scope?: ManagerScope;
  readonly now: () => number;
  readonly newMessageId: () => string;
  readonly sleep: (ms: number) => Promise<void>;
  /** Arms a timer and returns its disarm; setTimeout by default, a fake clock's in unit specs. */
  readonly schedule?: (callback: () => void, delayMs: number) => () => void;
  /** Called when an incident opened, closed or learned new facts; read them with alertIncidents(). */
  readonly onIncidentsChanged?: () => void;
}

const defaultSchedule = (callback: () => void, delayMs: number): (() => void) => {
  const timer = setTimeout(callback, delayMs);
  return () => clearTimeout(timer);
};

/**
 * Whether the facts read back show what the change suggested: a failure (failed, waiting to restart
 * after a crash, or a non-success result of a unit already restarted) or, for a critical unit, that
 * it is really down.
 */
function confirmsFailure(observed: FailureKind, facts: UnitFacts): boolean {
  if (observed === 'stopped') return !['active', 'activating', 'reloading'].includes(facts.activeState);
  return (
    facts.activeState === 'failed' ||
    facts.subState === 'auto-restart' ||
    (facts.result !== '' && facts.result !== 'success')
  );
}

/** Failures already reported, so a repeated signal or a re-read does not mail twice. Bounded. */
const REMEMBERED_FAILURES = 10_000;

/** How long UnitRemoved signals gather before one ListUnits confirms them all (a reload sends thousands). */
const REMOVAL_BATCH_MS = 1_000;

/** Diagnoses run at once; a storm queues instead of forking thousands of systemctl processes. */
const PARALLEL_DIAGNOSES = 8;

/** Restart counts read at once by a catch-up (one Get each, of every running service). */
const PARALLEL_RESTART_READS = 4;

/**
 * What happens when a unit fails, start to end: a state change from D-Bus → is the unit watched,
 * is a notification owed? → read the unit's facts at once → the policy decides what to mail when
 * (now, held back for the unit's backoff, or into a storm digest) → for each mail due, wait for the
 * journal to settle, run `systemctl status` and the invocation's journal, compose, send, and log
 * one line saying what went to whom. Recoveries and critical units take the same path.
 */
export class FailureWatcher {
  readonly #deps: WatcherDependencies;
  readonly #filter: UnitFilter;
  readonly #tracker = new UnitStateTracker();
  readonly #policy: NotificationPolicy;
  readonly #reported = new ReportedFailures(REMEMBERED_FAILURES);
  readonly #inFlight = new Set<Promise<void>>();
  #cancelTimer: (() => void) | undefined;
  /** Units systemd said it removed, until a listing confirms it (see unitRemoved). */
  readonly #removals = new Set<string>();
  #cancelRemovalCheck: (() => void) | undefined;
  #timerDueMs: number | undefined;
  readonly #diagnoses = new ConcurrencyLimit(PARALLEL_DIAGNOSES);
  readonly #restartReads = new ConcurrencyLimit(PARALLEL_RESTART_READS);
  /** NRestarts of each running service at the last catch-up or failure: a crash hidden meanwhile shows. */
  readonly #restartsSeen = new Map<string, number>();
  /** False when the state directory could not be opened: held failures then live in memory only. */
  #durable = true;
  /** Why the last state write failed, until one succeeds again. */
  #stateProblem: string | undefined;
  /** The latest failure read back for each unit, for alertIncidents(); the policy keeps no facts. */
  readonly #latest = new Map<string, NonNullable<IncidentAlertView['latest']>>();

  constructor(deps: WatcherDependencies) {
    this.#deps = deps;
    this.#filter = unitFilter(deps.config);
    this.#policy = new NotificationPolicy(deps.config.policy, deps.newMessageId);
  }

  /** Failures counted but in no mail yet (held by spacing, the cap or the digest). */
  get heldFailures(): number {
    return this.#policy.heldFailures;
  }

  /** A sentence for the status line when state cannot be written, else undefined. */
  get stateProblem(): string | undefined {
    if (!this.#durable) return 'state directory unusable: held failures kept in memory only';
    return this.#stateProblem === undefined ? undefined : `state not saved (${this.#stateProblem})`;
  }

  get watchedUnits(): number {
    return this.#tracker.size;
  }

  get openIncidents(): number {
    return this.#policy.openIncidents;
  }

  failedUnits(): string[] {
    return this.#tracker.failedUnits();
  }

  /**
   * Every open incident with what an alert about it says: the unit, critical or not, since when, and
   * the latest failure this process read back (after a restart, once the catch-up has read it).
   */
  alertIncidents(): IncidentAlertView[] {
    return this.#policy.incidentViews().map((view) => {
      const incident = this.#policy.unitState(view.unit)?.incident;
      return {
        unit: view.unit,
        critical: view.critical,
        firstFailureMs: view.firstFailureMs,
        failures: view.failures,
        latest: this.#latest.get(view.unit),
        endedAtMs: incident?.stoppedAtMs ?? incident?.upSinceMs,
      };
    });
  }

  /**
   * Resumes where the last process stopped, gracefully or not: the policy's incidents, held counts,
   * digest, cap and threads, the failures already reported, and the mails that were decided but had
   * not reached the outbox (queued now). Call once, after the outbox started and before catchUp.
   */
  async start(): Promise<void> {
    const { logger, state } = this.#deps;
    let entries: ReadonlyMap<string, unknown>;
    try {
      entries = await state.start();
    } catch (error) {
      this.#durable = false;
      logger.error(
        { err: error, directory: this.#deps.config.stateDirectory },
        'cannot open the state in the state directory; failures held back by the rate limit are kept in memory only and mailed at stop',
      );
      return;
    }
    const units: Array<[string, UnitPolicyState]> = [];
    let global: GlobalPolicyState | undefined;
    const undecided: Outgoing[] = [];
    for (const [key, value] of entries) {
      if (typeof value !== 'object' && key.startsWith('r:')) {
        for (const old of this.#reported.add(key.slice(2))) state.delete(`r:${old}`);
      }
      if (typeof value !== 'object' || value === null) continue;
      if (key.startsWith('u:')) units.push([key.slice(2), value as UnitPolicyState]);
      else if (key === 'g') global = value as GlobalPolicyState;
      else if (key.startsWith('o:')) undecided.push(value as Outgoing);
    }
    this.#policy.restore(units, global);
    let requeued = 0;
    for (const item of undecided) {
      if (this.#deps.isQueued(item.thread.messageId)) {
        state.delete(`o:${item.thread.messageId}`);
        continue;
      }
      requeued++;
      this.#track(this.#send(item));
    }
    this.#schedule();
    if (units.length > 0 || requeued > 0) {
      logger.info(
        {
          incidents: this.#policy.openIncidents,
          held: this.#policy.heldFailures,
          requeued,
          reported: this.#reported.size,
        },
        `resumed ${this.#policy.openIncidents} open incident${this.#policy.openIncidents === 1 ? '' : 's'} with ${this.#policy.heldFailures} failure${this.#policy.heldFailures === 1 ? '' : 's'} held back${requeued > 0 ? `; queueing ${requeued} mail${requeued === 1 ? '' : 's'} decided before the stop` : ''}`,
      );
    }
  }

  /**
   * Learns the state of every loaded unit, and reports what is failed (or crash-restarting, or a
   * critical unit down) unless it was reported before: failures that happened while we were not
   * watching — stopped, restarting, disconnected — are mailed once, and never twice.
   */
  catchUp(units: readonly ListedUnit[]): void {
    // A unit systemd no longer lists was unloaded while nobody listened: forget its state.
    const listed = new Set(units.map((unit) => unit.unit));
    for (const unit of this.#tracker.units()) if (!listed.has(unit)) this.#tracker.forget(unit);
    const unlisted = [...this.#reported.units()].filter((unit) => !listed.has(unit));
    if (unlisted.length > 0) {
      for (const unit of unlisted) this.#forgetReported(unit);
      this.#track(this.#commit([]));
    }
    for (const unit of units) {
      if (!isWatched(unit.unit, this.#filter)) continue;
      const previous = this.#tracker.transition(unit.unit, unit).previous;
      const failing = unit.activeState === 'failed' || unit.subState === 'auto-restart';
      const wasFailing = previous?.activeState === 'failed' || previous?.subState === 'auto-restart';
      if (failing && !wasFailing) {
        this.#track(
          this.#handleFailure(
            unit.activeState === 'failed' ? 'failed' : 'crash-restart',
            unit,
            isCritical(unit.unit, this.#filter),
          ),
        );
      } else if (
        isCritical(unit.unit, this.#filter) &&
        unit.activeState === 'inactive' &&
        previous?.activeState !== 'inactive'
      ) {
        this.#track(this.#handleFailure('stopped', unit, true));
      }
    }
    this.#catchUpIncidents(units);
    this.#track(this.#catchUpRestarts(units));
  }

  /**
   * A service that crashed and was restarted by `Restart=` while nobody listened (bus down,
   * reconnecting) is running again when listed; only its restart count moved. The crash's Result
   * is gone by then (a restart resets it), so the mail says "restarted".
   */
  async #catchUpRestarts(units: readonly ListedUnit[]): Promise<void> {
    const read = this.#deps.units.readRestarts?.bind(this.#deps.units);
    if (read === undefined) return;
    const running = units.filter(
      (row) =>
        row.unit.endsWith('.service') &&
        ['active', 'activating', 'reloading'].includes(row.activeState) &&
        row.subState !== 'auto-restart' &&
        isWatched(row.unit, this.#filter),
    );
    await Promise.all(
      running.map(async (row) => {
        // A few at a time: a thousand reads at once hold up the start (READY=1) and the fact reads
        // of a storm that begins meanwhile, behind them on the bus.
        const now = await this.#restartReads.run(() => read(row.objectPath)).catch(() => undefined);
        if (now?.restarts === undefined) return;
        const seen = this.#restartsSeen.get(row.unit);
        this.#restartsSeen.set(row.unit, now.restarts);
        if (seen !== undefined && now.restarts > seen) {
          await this.#handleFailure('crash-restart', row, isCritical(row.unit, this.#filter), {
            missed: true,
          });
        }
      }),
    );
  }

  /**
   * What happened to open incidents while nobody listened (stopped, restarting, bus down): a unit
   * active again, or whose last run succeeded, gets its recovery; a unit systemd no longer has
   * closes its incident.
   */
  #catchUpIncidents(units: readonly ListedUnit[]): void {
    const listed = new Map(units.map((unit) => [unit.unit, unit]));
    for (const unit of this.#policy.incidentUnits()) {
      const row = listed.get(unit);
      if (row === undefined) this.#forgetUnit(unit);
      else if (!this.#policy.awaitsRecovery(unit)) continue;
      else if (row.activeState === 'active') this.#track(this.#checkRecovered(row));
      else if (row.activeState === 'inactive') this.#track(this.#checkFinishedRun(row));
    }
  }

  /**
   * Finishes the work under way and makes sure the policy's state is on disk: what it holds back is
   * resumed by the next start, spacing, digest and cap included. Only when the state cannot be
   * written is everything held sent now instead, so that a stop still loses no count.
   */
  async drain(): Promise<void> {
    this.stop();
    await this.settle();
    if (this.#durable) await this.#commit([]);
    if (!this.#durable || this.#stateProblem !== undefined) {
      const outgoing = this.#policy.drain(this.#deps.now());
      await this.#commit(outgoing);
      await this.#dispatch(outgoing);
    }
  }

  /**
   * systemd says it unloaded the unit. It says so of every unit on a daemon-reload or re-exec too,
   * and loads them again at once: forgetting then would mail a failure already reported a second
   * time. So the removal is believed once a ListUnits, answered after the reload, no longer lists
   * the unit; removals within REMOVAL_BATCH_MS share one listing.
   */
  unitRemoved(unit: string): void {
    const list = this.#deps.units.listUnits?.bind(this.#deps.units);
    if (list === undefined) {
      this.#forgetUnit(unit);
      return;
    }
    this.#removals.add(unit);
    if (this.#cancelRemovalCheck !== undefined) return;
    this.#cancelRemovalCheck = (this.#deps.schedule ?? defaultSchedule)(() => {
      this.#cancelRemovalCheck = undefined;
      this.#track(this.#confirmRemovals(list));
    }, REMOVAL_BATCH_MS);
  }

  async #confirmRemovals(list: () => Promise<readonly ListedUnit[]>): Promise<void> {
    const removed = [...this.#removals];
    this.#removals.clear();
    let listed: Set<string>;
    try {
      listed = new Set((await list()).map((row) => row.unit));
    } catch (error) {
      // Kept for now: the next catch-up, after the reconnect this error leads to, lists again.
      this.#deps.logger.debug({ err: error, units: removed.length }, 'could not confirm unit removals');
      return;
    }
    for (const unit of removed) if (!listed.has(unit)) this.#forgetUnit(unit);
  }

  /** The unit is gone: its state goes, and so does an incident with nothing left to mail. */
  #forgetUnit(unit: string): void {
    this.#latest.delete(unit);
    this.#tracker.forget(unit);
    this.#restartsSeen.delete(unit);
    const forgotten = this.#forgetReported(unit);
    const closed = this.#policy.unitRemoved(unit);
    if (closed) this.#schedule();
    if (closed || forgotten) this.#track(this.#commit([]));
  }

  handleChange(change: UnitChange): void {
    const unit = change.unit;
    if (!isWatched(unit, this.#filter)) return;
    const { previous, kind } = this.#tracker.transition(unit, change);
    const critical = isCritical(unit, this.#filter);
    if (kind !== undefined) {
      this.#track(this.#handleFailure(kind, change, critical));
    } else if (change.activeState === 'failed' && previous?.activeState === 'failed') {
      // systemd merges the changes of one unit made in one loop iteration into one signal: a unit
      // started again and failed at once shows failed → failed. Its facts tell by the invocation id;
      // a repeated signal for the same invocation is known by its key and mailed once.
      this.#track(this.#handleFailure('failed', change, critical));
    } else if (critical && leftActiveCleanly(previous, change)) {
      this.#track(this.#handleFailure('stopped', change, critical));
    } else if (this.#policy.awaitsRecovery(unit) && becameActive(previous, change)) {
      this.#track(this.#checkRecovered(change));
    } else if (this.#policy.awaitsRecovery(unit) && finishedRun(previous, change)) {
      this.#track(this.#checkFinishedRun(change));
    } else if (previous?.activeState === 'failed' && change.activeState === 'inactive') {
      // `systemctl reset-failed`: the operator has handled it; the incident closes without a mail.
      if (this.#policy.unitRemoved(unit)) {
        this.#schedule();
        this.#track(this.#commit([]));
      }
    } else if (this.#policy.awaitsRecovery(unit) && change.activeState === 'inactive') {
      // Stopped while running, or while waiting to restart after a crash: the end of the incident,
      // but not a recovery.
      this.#track(this.#confirmEnd(change, (facts) => facts.activeState === 'inactive', 'stopped'));
    }
  }

  /** Resolves when every mail owed so far has been handed to the transport (held-back ones excepted). */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  stop(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#cancelRemovalCheck?.();
    this.#cancelRemovalCheck = undefined;
    this.#timerDueMs = undefined;
  }

  /** Our own unit was restarted after a crash: say so once, without letting a crash loop become a mail loop. */
  async reportOwnRestart(facts: UnitFacts): Promise<void> {
    const { logger, selfState, now } = this.#deps;
    const restarts = facts.restarts ?? 0;
    const previous = await selfState.load();
    if (restarts === 0 || restarts <= (previous?.restartsSeen ?? 0)) return;
    if (!mayNotifyAboutSelf(previous, now())) {
      logger.warn(
        { unit: facts.unit, restarts },
        'unitwatch was restarted after a crash; mail about it held back',
      );
      await selfState.save({ restartsSeen: restarts, lastMailMs: previous?.lastMailMs ?? 0 });
      return;
    }
    await selfState.save({ restartsSeen: restarts, lastMailMs: now() });
    const result = facts.result === 'success' || facts.result === '' ? 'restarted' : facts.result;
    const outgoing = this.#policy.failure({
      kind: 'crash-restart',
      facts: { ...facts, result },
      atMs: now(),
      critical: false,
    });
    await this.#commit(outgoing);
    await this.#dispatch(outgoing);
  }

  #track(work: Promise<void>): void {
    const guarded = work.catch((error: unknown) => {
      this.#deps.logger.error({ err: error }, 'handling a unit change failed');
    });
    this.#inFlight.add(guarded);
    void guarded.finally(() => this.#inFlight.delete(guarded));
  }

  /**
   * Keeps the latest failure's facts for the alerts. Also for a failure already reported: after a
   * restart the catch-up reads the facts of the incidents restored without them.
   */
  #noteLatest(kind: FailureKind, facts: UnitFacts, atMs: number): void {
    const known = this.#latest.get(facts.unit);
    if (
      known?.facts.invocationId === facts.invocationId &&
      known.kind === kind &&
      known.facts.result === facts.result
    )
      return;
    this.#latest.set(facts.unit, { kind, facts, atMs });
    if (this.#policy.hasIncident(facts.unit)) this.#incidentsChanged();
  }

  /** Tells the listener; its failure is logged, never the watcher's. */
  #incidentsChanged(): void {
    try {
      this.#deps.onIncidentsChanged?.();
    } catch (error) {
      this.#deps.logger.error({ err: error }, 'the incident listener failed');
    }
  }

  /**
   * What systemd says of the unit now. A signal only says "this unit changed"; every decision is
   * taken on these facts. Undefined when they cannot be read (no such unit, access denied, bus
   * error): nothing is mailed on a claim that systemd does not confirm.
   */
  async #readFacts(change: UnitChange): Promise<UnitFacts | undefined> {
    const read = () => this.#deps.units.readFacts(change.unit, change.objectPath);
    try {
      const facts = await read().catch(async () => {
        // One more try: a busy bus refuses calls for a moment, and facts are what deduplication needs.
        await this.#deps.sleep(200);
        return read();
      });
      // systemd answers for an object path it never had with an empty unit: no ActiveState at all.
      if (facts.activeState === '') throw new Error('systemd has no such unit');
      return facts;
    } catch (error) {
      this.#deps.logger.warn(
        { unit: change.unit, err: error },
        `${change.unit} changed but its state could not be read back from systemd; nothing decided`,
      );
      return undefined;
    }
  }

  /**
   * An incident may be ending (up again, a run succeeded, stopped by hand): the policy hears of it
   * only once the facts read back confirm it.
   */
  async #confirmEnd(
    change: UnitChange,
    confirmed: (facts: UnitFacts) => boolean,
    ending: 'recovered' | 'stopped',
  ): Promise<void> {
    const facts = await this.#readFacts(change);
    if (facts === undefined || !confirmed(facts)) return;
    if (ending === 'recovered') this.#policy.recovered(change.unit, this.#deps.now());
    else this.#policy.stopped(change.unit, this.#deps.now());
    this.#schedule();
    await this.#commit([]);
  }

  #checkRecovered(change: UnitChange): Promise<void> {
    return this.#confirmEnd(change, (facts) => facts.activeState === 'active', 'recovered');
  }

  /** A oneshot or timer job's next run succeeded: for such units that is the recovery. */
  #checkFinishedRun(change: UnitChange): Promise<void> {
    return this.#confirmEnd(
      change,
      (facts) => facts.activeState === 'inactive' && facts.result === 'success',
      'recovered',
    );
  }

  async #handleFailure(
    observed: FailureKind,
    change: UnitChange,
    critical: boolean,
    options: { missed?: boolean } = {},
  ): Promise<void> {
    const { logger, now } = this.#deps;
    const atMs = now();
    if (observed === 'stopped') {
      // `systemctl restart` passes through inactive; only a unit still down a moment later is news.
      await this.#deps.sleep(this.#deps.config.journalSettleMs);
    }
    const read = await this.#readFacts(change);
    if (read === undefined) return;
    const facts =
      options.missed === true && (read.result === '' || read.result === 'success')
        ? { ...read, result: 'restarted' }
        : read;
    if (facts.restarts !== undefined) this.#restartsSeen.set(facts.unit, facts.restarts);
    if (options.missed !== true && !confirmsFailure(observed, facts)) {
      // A critical unit passing through inactive on `systemctl restart` is routine, hence debug there.
      logger[observed === 'stopped' ? 'debug' : 'info'](
        { unit: change.unit, active: facts.activeState, sub: facts.subState, result: facts.result },
        `${change.unit} is ${facts.activeState} (${facts.subState}) when read back; no failure to report`,
      );
      return;
    }
    const kind = classifyFailure(observed, facts);
    if (!isNotifiable(kind, facts)) {
      logger.debug({ unit: change.unit, result: facts.result }, 'restart after a clean exit, not a failure');
      return;
    }
    this.#noteLatest(kind, facts, atMs);
    const key = failureKey(kind, facts);
    if (this.#reported.has(key)) return;
    // In memory at once, so a second signal for it is ignored; on disk with the policy's state below.
    for (const old of this.#reported.add(key)) if (this.#durable) this.#deps.state.delete(`r:${old}`);
    const what: Record<FailureKind, string> = {
      failed: 'failed',
      'crash-restart': 'crashed and is being restarted',
      stopped: 'is no longer active (critical unit)',
    };
    const exit = describeExit(facts);
    const detail = [facts.result, exit].filter((part) => part !== undefined && part !== '').join(', ');
    // One sentence, subject first, what becomes of its mail last: `nginx.service failed (exit-code,
    // exited with status 1); mail due now`. The fields repeat the facts for `-o json` readers.
    const log = (mail: string) =>
      logger.warn(
        { unit: facts.unit, event: kind, result: facts.result, invocation: facts.invocationId, critical },
        `${cleanLine(facts.unit)} ${what[kind]}${detail === '' ? '' : ` (${cleanLine(detail)})`}; ${mail}`,
      );
    if (facts.unit === this.#deps.ownUnit) {
      const state = await this.#deps.selfState.load();
      if (!mayNotifyAboutSelf(state, now())) {
        log('no mail: unitwatch mails about itself at most once an hour');
        return;
      }
      await this.#deps.selfState.save({ restartsSeen: state?.restartsSeen ?? 0, lastMailMs: now() });
    }
    // The policy's clock is now, not when the signal came: in a storm the fact reads queue up
    // (behind a start's catch-up, say), and a digest's quiet period counted from the signals
    // would end before the failures had reached the policy, splitting one storm into many mails.
    const outgoing = this.#policy.failure({ kind, facts, atMs: now(), critical });
    this.#rememberDurably(key);
    // From here the failure is in the policy's state or in a mail being made, on disk once committed.
    const committed = this.#commit(outgoing);
    // One line per failure, with what becomes of its mail: a storm logs each unit once, not twice.
    log(outgoing.length === 0 ? 'mail held back by the rate limit, counted in a later mail' : 'mail due now');
    this.#schedule();
    await committed;
    await this.#dispatch(outgoing);
  }

  /**
   * Writes the policy's changes, the reported keys and the mails just decided (until each reaches
   * the outbox) in one batch. Everything is staged synchronously, before the first await, so no
   * other handler's flush can carry a reported key without the state that accounts for it.
   */
  async #commit(outgoing: readonly Outgoing[]): Promise<void> {
    // Every change of the policy's incidents passes through here, so this one call covers them all.
    this.#incidentsChanged();
    if (!this.#durable) return;
    const { state, logger } = this.#deps;
    const changes = this.#policy.takeChanges();
    for (const [unit, unitState] of changes.units) {
      if (unitState === null) state.delete(`u:${unit}`);
      else state.set(`u:${unit}`, unitState);
    }
    if (changes.global !== undefined) state.set('g', changes.global);
    for (const item of outgoing) state.set(`o:${item.thread.messageId}`, item);
    try {
      await state.flush();
      if (this.#stateProblem !== undefined) {
        logger.warn({ directory: this.#deps.config.stateDirectory }, 'state is saved again');
        this.#stateProblem = undefined;
      }
    } catch (error) {
      if (this.#stateProblem === undefined) {
        logger.error(
          { err: error, directory: this.#deps.config.stateDirectory },
          'cannot save the state; it is kept in memory and saved when the disk allows, and held failures are mailed at stop',
        );
      }
      this.#stateProblem = (error as NodeJS.ErrnoException).code ?? String(error);
    }
  }

  /** One timer for the policy's next deadline; none when nothing waits, so idle means no wake-ups. */
  #schedule(): void {
    const due = this.#policy.nextDueMs();
    if (due === this.#timerDueMs) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#timerDueMs = due;
    if (due === undefined) return;
    this.#cancelTimer = (this.#deps.schedule ?? defaultSchedule)(
      () => {
        this.#cancelTimer = undefined;
        this.#timerDueMs = undefined;
        const outgoing = this.#policy.due(this.#deps.now());
        this.#schedule();
        this.#track(this.#commit(outgoing).then(() => this.#dispatch(outgoing)));
      },
      Math.max(0, due - this.#deps.now()),
    );
  }

  async #dispatch(outgoing: readonly Outgoing[]): Promise<void> {
    await Promise.all(outgoing.map((item) => this.#send(item)));
  }

  async #send(item: Outgoing): Promise<void> {
    const { config, logger } = this.#deps;
    const base = {
      hostname: config.hostname,
      messageId: item.thread.messageId,
      inReplyTo: item.thread.inReplyTo,
      references: item.thread.references,
      // What else is down, as systemd last said: every mail read alone tells the host's state.
      failingNow: this.#failingNow(),
      scope: this.#deps.scope ?? 'system',
    };
    let mail: ComposedMail;
    let units: string[];
    if (item.type === 'unit') {
      const { report } = item;
      const failure: Failure = {
        kind: report.latest.kind,
        facts: report.latest.facts,
        observedAtMs: report.latest.atMs,
      };
      const diagnosis = await this.#diagnose(report.latest.facts);
      mail = composeFailureMail(failure, diagnosis, {
        ...base,
        count: report.count,
        firstAtMs: report.firstAtMs,
        critical: report.latest.critical,
        notes: item.notes,
      });
      units = [report.unit];
    } else if (item.type === 'digest') {
      // One journal read for every unit of the digest, not one process per unit.
      const journals = await this.#digestJournals(item.reports.map((report) => report.latest.facts));
      const entries: DigestEntry[] = item.reports.map((report) => {
        const journal = journals.get(report.unit);
        return {
          failure: { kind: report.latest.kind, facts: report.latest.facts, observedAtMs: report.latest.atMs },
          count: report.count,
          critical: report.latest.critical,
          ...(journal === undefined ? {} : { journal }),
        };
      });
      mail = composeDigestMail(entries, { ...base, notes: item.notes });
      units = item.reports.map((report) => report.unit);
    } else {
      mail = composeRecoveryMail({ units: item.units, atMs: item.atMs }, { ...base, notes: item.notes });
      units = item.units.map((entry) => entry.unit);
    }
    if (await this.#deliver(mail, units)) {
      // At once, not with the next change: a start that finds the entry and no outbox file (sent and
      // deleted meanwhile) queues it again. The window left is this one write, against an SMTP round
      // trip; a crash in it means a duplicate, never a loss.
      this.#deps.state.delete(`o:${item.thread.messageId}`);
      await this.#commit([]);
    }
    if (item.type !== 'recovery' && item.notes.length > 0) {
      logger.warn(
        { limit: config.policy.maxMailsPerHour },
        'hourly mail cap reached; collecting into one summary',
      );
    }
  }

  #diagnose(facts: UnitFacts): Promise<Diagnosis> {
    return this.#diagnoses.run(async () => {
      const first = await this.#deps.gather(facts.unit, facts.invocationId);
      // journald stores what a unit wrote to stdout/stderr when it reads the stream, which can be after
      // systemd's own "Failed with result" line for a unit that died at once (seen in a real systemd:
      // the unit's only line missing from the mail). So settled is not enough: without a line of the
      // unit's own, wait once and read the journal again (only the journal: one fork, not two).
      if (first.settled === true && first.lastWords !== undefined) return first;
      await this.#deps.sleep(this.#deps.config.journalSettleMs);
      const refresh = this.#deps.refreshJournal;
      return refresh === undefined
        ? this.#deps.gather(facts.unit, facts.invocationId)
        : refresh(first, facts.invocationId);
    });
  }

  async #digestJournals(facts: readonly UnitFacts[]): Promise<ReadonlyMap<string, readonly string[]>> {
    const gather = this.#deps.gatherJournals;
    if (gather === undefined) return new Map();
    return this.#diagnoses.run(() =>
      gather(facts.map((entry) => ({ unit: entry.unit, invocationId: entry.invocationId }))),
    );
  }

  /** Watched units failed now, critical ones first. */
  #failingNow(): string[] {
    const failed = this.#tracker.failedUnits();
    return [
      ...failed.filter((unit) => isCritical(unit, this.#filter)),
      ...failed.filter((unit) => !isCritical(unit, this.#filter)),
    ];
  }

  /** True once the mail is durably queued; false leaves it in the state for the next start. */
  async #deliver(mail: ComposedMail, units: readonly string[]): Promise<boolean> {
    const meta = {
      unit: units.length === 1 ? (units[0] ?? '') : `${units.length} units`,
      event: mail.headers['X-Unitwatch-Event'] ?? '',
    };
    try {
      await this.#deps.deliver(mail, meta);
      this.#deps.logger.debug({ ...meta, messageId: mail.messageId }, `notification queued: ${mail.subject}`);
      return true;
    } catch (error) {
      this.#deps.logger.error(
        { ...meta, err: error },
        `notification NOT queued: ${mail.subject}; it stays in the state and is queued at the next start`,
      );
      return false;
    }
  }

  /** Stages the key with the state change it belongs to. */
  #rememberDurably(key: string): void {
    if (this.#durable) this.#deps.state.set(`r:${key}`, 1);
  }

  /** The unit was unloaded: its reported keys can never match again. True when there were some. */
  #forgetReported(unit: string): boolean {
    const keys = this.#reported.forgetUnit(unit);
    if (this.#durable) for (const key of keys) this.#deps.state.delete(`r:${key}`);
    return keys.length > 0;
  }
}
