import type { Logger } from './adapters/logger.js';
import type { ListedUnit, UnitChange } from './adapters/systemd-bus.js';
import { CoalescedSave } from './core/coalesced-save.js';
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
} from './core/message.js';
import { mayNotifyAboutSelf, type SelfNotificationState } from './core/own-unit.js';
import { NotificationPolicy, type Outgoing } from './core/policy.js';

/** What the watcher needs from systemd; SystemdBus in the daemon, a test double in unit tests. */
export interface UnitSource {
  readFacts(unit: string, objectPath: string): Promise<UnitFacts>;
}

export interface SelfStateStore {
  load(): Promise<SelfNotificationState | undefined>;
  save(state: SelfNotificationState): Promise<void>;
}

/** Failures already reported, kept across restarts so a restart does not mail them again. */
export interface ReportedStore {
  load(): Promise<readonly string[]>;
  save(keys: readonly string[]): Promise<void>;
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
  /** Hands a composed mail over for delivery; resolves once it is durably queued. */
  readonly deliver: (mail: ComposedMail, meta: MailMeta) => Promise<void>;
  readonly reported: ReportedStore;
  readonly selfState: SelfStateStore;
  readonly ownUnit: string | undefined;
  readonly now: () => number;
  readonly newMessageId: () => string;
  readonly sleep: (ms: number) => Promise<void>;
}

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

/**
 * At most one save of the reported keys per this interval: a storm of 200 failures wrote the file
 * some 140 times (with two fsyncs each) when every failure saved it.
 */
const REPORTED_SAVE_INTERVAL_MS = 250;

/** Diagnoses run at once; a storm queues instead of forking thousands of systemctl processes. */
const PARALLEL_DIAGNOSES = 8;

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
  readonly #reported = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #timerDueMs: number | undefined;
  readonly #diagnoses = new ConcurrencyLimit(PARALLEL_DIAGNOSES);
  readonly #reportedSave: CoalescedSave;

  constructor(deps: WatcherDependencies) {
    this.#deps = deps;
    this.#filter = unitFilter(deps.config);
    this.#policy = new NotificationPolicy(deps.config.policy, deps.newMessageId);
    this.#reportedSave = new CoalescedSave({
      save: () => this.#saveReported(),
      minIntervalMs: REPORTED_SAVE_INTERVAL_MS,
      now: deps.now,
      sleep: deps.sleep,
    });
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

  /** Loads the failures reported before a restart; call once before catchUp. */
  async start(): Promise<void> {
    for (const key of await this.#deps.reported.load()) this.#reported.add(key);
  }

  /**
   * Learns the state of every loaded unit, and reports what is failed (or crash-restarting, or a
   * critical unit down) unless it was reported before: failures that happened while we were not
   * watching — stopped, restarting, disconnected — are mailed once, and never twice.
   */
  catchUp(units: readonly ListedUnit[]): void {
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
  }

  /** Sends everything the policy holds back, so a stop loses no count; the outbox keeps it for the next start. */
  async drain(): Promise<void> {
    this.stop();
    await this.settle();
    await this.#dispatch(this.#policy.drain(this.#deps.now()));
  }

  /** systemd unloaded the unit: its state goes, and so does an incident with nothing left to mail. */
  unitRemoved(unit: string): void {
    this.#tracker.forget(unit);
    if (this.#policy.unitRemoved(unit)) this.#schedule();
  }

  handleChange(change: UnitChange): void {
    const unit = change.unit;
    if (!isWatched(unit, this.#filter)) return;
    const { previous, kind } = this.#tracker.transition(unit, change);
    const critical = isCritical(unit, this.#filter);
    if (kind !== undefined) {
      this.#track(this.#handleFailure(kind, change, critical));
    } else if (critical && leftActiveCleanly(previous, change)) {
      this.#track(this.#handleFailure('stopped', change, critical));
    } else if (this.#policy.awaitsRecovery(unit) && becameActive(previous, change)) {
      this.#track(this.#checkRecovered(change));
    } else if (this.#policy.awaitsRecovery(unit) && finishedRun(previous, change)) {
      this.#track(this.#checkFinishedRun(change));
    }
  }

  /** Resolves when every mail owed so far has been handed to the transport (held-back ones excepted). */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    await this.#reportedSave.idle();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
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
    await this.#dispatch(
      this.#policy.failure({
        kind: 'crash-restart',
        facts: { ...facts, result },
        atMs: now(),
        critical: false,
      }),
    );
  }

  #track(work: Promise<void>): void {
    const guarded = work.catch((error: unknown) => {
      this.#deps.logger.error({ err: error }, 'handling a unit change failed');
    });
    this.#inFlight.add(guarded);
    void guarded.finally(() => this.#inFlight.delete(guarded));
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

  async #checkRecovered(change: UnitChange): Promise<void> {
    const facts = await this.#readFacts(change);
    if (facts?.activeState !== 'active') return;
    this.#policy.recovered(change.unit, this.#deps.now());
    this.#schedule();
  }

  async #handleFailure(observed: FailureKind, change: UnitChange, critical: boolean): Promise<void> {
    const { logger, now } = this.#deps;
    const atMs = now();
    if (observed === 'stopped') {
      // `systemctl restart` passes through inactive; only a unit still down a moment later is news.
      await this.#deps.sleep(this.#deps.config.journalSettleMs);
    }
    const facts = await this.#readFacts(change);
    if (facts === undefined) return;
    if (!confirmsFailure(observed, facts)) {
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
    const key = failureKey(kind, facts);
    if (this.#reported.has(key)) return;
    this.#remember(key);
    void this.#reportedSave.request();
    const messages: Record<FailureKind, string> = {
      failed: 'unit failed',
      'crash-restart': 'unit crashed and is being restarted',
      stopped: 'critical unit is no longer active',
    };
    const log = (mail: string) =>
      logger.warn(
        {
          unit: facts.unit,
          event: kind,
          result: facts.result,
          invocation: facts.invocationId,
          critical,
          mail,
        },
        messages[kind],
      );
    if (facts.unit === this.#deps.ownUnit) {
      const state = await this.#deps.selfState.load();
      if (!mayNotifyAboutSelf(state, now())) {
        log('not mailing about unitwatch itself again within the hour');
        return;
      }
      await this.#deps.selfState.save({ restartsSeen: state?.restartsSeen ?? 0, lastMailMs: now() });
    }
    const outgoing = this.#policy.failure({ kind, facts, atMs, critical });
    // One line per failure, with what becomes of its mail: a storm logs each unit once, not twice.
    log(outgoing.length === 0 ? 'held back by the rate limit; counted in a later mail' : 'due now');
    this.#schedule();
    await this.#dispatch(outgoing);
  }

  async #checkFinishedRun(change: UnitChange): Promise<void> {
    const facts = await this.#readFacts(change);
    if (facts === undefined || facts.activeState !== 'inactive' || facts.result !== 'success') return;
    this.#policy.recovered(change.unit, this.#deps.now());
    this.#schedule();
  }

  /** One timer for the policy's next deadline; none when nothing waits, so idle means no wake-ups. */
  #schedule(): void {
    const due = this.#policy.nextDueMs();
    if (due === this.#timerDueMs) return;
    clearTimeout(this.#timer);
    this.#timerDueMs = due;
    if (due === undefined) {
      this.#timer = undefined;
      return;
    }
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDueMs = undefined;
        const outgoing = this.#policy.due(this.#deps.now());
        this.#schedule();
        this.#track(this.#dispatch(outgoing));
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
      const entries: DigestEntry[] = item.reports.map((report) => ({
        failure: { kind: report.latest.kind, facts: report.latest.facts, observedAtMs: report.latest.atMs },
        count: report.count,
        critical: report.latest.critical,
      }));
      mail = composeDigestMail(entries, { ...base, notes: item.notes });
      units = item.reports.map((report) => report.unit);
    } else {
      mail = composeRecoveryMail(item, base);
      units = [item.unit];
    }
    await this.#deliver(mail, units);
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
      // systemd logs "Failed with result" after the unit's own last lines; until the journal shows it,
      // journald may not have stored what the unit wrote before it died: wait once, then ask again.
      if (first.status.text.includes('Failed with result')) return first;
      await this.#deps.sleep(this.#deps.config.journalSettleMs);
      return this.#deps.gather(facts.unit, facts.invocationId);
    });
  }

  async #deliver(mail: ComposedMail, units: readonly string[]): Promise<void> {
    const meta = {
      unit: units.length === 1 ? (units[0] ?? '') : `${units.length} units`,
      event: mail.headers['X-Unitwatch-Event'] ?? '',
    };
    // A queued mail whose failure is not yet saved as reported would be mailed again after a kill -9:
    // the restarted daemon's catch-up would take the still-failed unit for news.
    await this.#reportedSave.idle();
    try {
      await this.#deps.deliver(mail, meta);
      this.#deps.logger.debug({ ...meta, messageId: mail.messageId }, `notification queued: ${mail.subject}`);
    } catch (error) {
      this.#deps.logger.error({ ...meta, err: error }, `notification NOT queued: ${mail.subject}`);
    }
  }

  async #saveReported(): Promise<void> {
    try {
      await this.#deps.reported.save([...this.#reported]);
    } catch (error) {
      this.#deps.logger.error(
        { err: error },
        'could not save the reported failures; a restart may mail them again',
      );
    }
  }

  #remember(key: string): void {
    this.#reported.add(key);
    if (this.#reported.size > REMEMBERED_FAILURES) {
      const oldest = this.#reported.values().next().value;
      if (oldest !== undefined) this.#reported.delete(oldest);
    }
  }
}
