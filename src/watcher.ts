import type { Logger } from './adapters/logger.js';
import type { MailSender } from './adapters/mail-transport.js';
import type { ListedUnit, UnitChange } from './adapters/systemd-bus.js';
import type { Config } from './core/config.js';
import {
  classifyFailure,
  type Failure,
  type FailureKind,
  failureKey,
  isNotifiable,
  type UnitFacts,
  UnitStateTracker,
} from './core/failure.js';
import { type ComposedMail, composeFailureMail, type Diagnosis } from './core/message.js';
import { mayNotifyAboutSelf, type SelfNotificationState } from './core/own-unit.js';

/** What the watcher needs from systemd; SystemdBus in the daemon, a test double in unit tests. */
export interface UnitSource {
  readFacts(unit: string, objectPath: string): Promise<UnitFacts>;
}

export interface SelfStateStore {
  load(): Promise<SelfNotificationState | undefined>;
  save(state: SelfNotificationState): Promise<void>;
}

export interface WatcherDependencies {
  readonly config: Config;
  readonly logger: Logger;
  readonly units: UnitSource;
  readonly gather: (unit: string, invocationId: string) => Promise<Diagnosis>;
  readonly mail: MailSender;
  readonly selfState: SelfStateStore;
  readonly ownUnit: string | undefined;
  readonly now: () => number;
  readonly newMessageId: () => string;
  readonly sleep: (ms: number) => Promise<void>;
}

/** Failures already reported, so a repeated signal or a re-read does not mail twice. Bounded. */
const REMEMBERED_FAILURES = 10_000;

/** Diagnoses run at once; a storm queues instead of forking thousands of systemctl processes. */
const PARALLEL_DIAGNOSES = 8;

/**
 * What happens when a unit fails, start to end: a state change from D-Bus → is a notification owed?
 * → read the unit's facts at once → wait for the journal to settle → run `systemctl status` and the
 * invocation's journal → compose the mail → send it → log one line saying what went to whom.
 */
export class FailureWatcher {
  readonly #deps: WatcherDependencies;
  readonly #tracker = new UnitStateTracker();
  readonly #reported = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  #activeDiagnoses = 0;
  readonly #waitingForDiagnosis: (() => void)[] = [];

  constructor(deps: WatcherDependencies) {
    this.#deps = deps;
  }

  get watchedUnits(): number {
    return this.#tracker.size;
  }

  failedUnits(): string[] {
    return this.#tracker.failedUnits();
  }

  /** Learns the current state of every loaded unit without notifying: what was failed before us is not news here. */
  seed(units: readonly ListedUnit[]): void {
    for (const unit of units) this.#tracker.remember(unit.unit, unit);
  }

  handleChange(change: UnitChange): void {
    const kind = this.#tracker.observe(change.unit, change);
    if (kind === undefined) return;
    this.#track(this.#handleFailure(kind, change));
  }

  /** Resolves when every failure seen so far has been mailed or given up on. */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
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
    const failure: Failure = {
      kind: 'crash-restart',
      facts: {
        ...facts,
        result: facts.result === 'success' || facts.result === '' ? 'restarted' : facts.result,
      },
      observedAtMs: now(),
    };
    await this.#notify(failure);
  }

  #track(work: Promise<void>): void {
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  async #handleFailure(observed: FailureKind, change: UnitChange): Promise<void> {
    const { logger, units, now } = this.#deps;
    const observedAtMs = now();
    let facts: UnitFacts;
    try {
      facts = await units.readFacts(change.unit, change.objectPath);
    } catch (error) {
      // The unit may already be gone (a transient unit collected at once): mail what the signal said.
      logger.warn(
        { unit: change.unit, err: error },
        'could not read the failed unit; mailing what the signal said',
      );
      facts = {
        unit: change.unit,
        description: '',
        activeState: change.activeState,
        subState: change.subState,
        result: '',
        execMainCode: undefined,
        execMainStatus: undefined,
        restarts: undefined,
        invocationId: '',
        inactiveEnterTimestampUs: 0,
        fragmentPath: '',
      };
    }
    const kind = classifyFailure(observed, facts);
    if (!isNotifiable(kind, facts)) {
      logger.debug({ unit: change.unit, result: facts.result }, 'restart after a clean exit, not a failure');
      return;
    }
    const key = failureKey(kind, facts);
    if (this.#reported.has(key)) return;
    this.#remember(key);
    logger.warn(
      { unit: facts.unit, event: kind, result: facts.result, invocation: facts.invocationId },
      kind === 'failed' ? 'unit failed' : 'unit crashed and is being restarted',
    );

    if (facts.unit === this.#deps.ownUnit) {
      const state = await this.#deps.selfState.load();
      if (!mayNotifyAboutSelf(state, now())) {
        logger.warn({ unit: facts.unit }, 'not mailing about unitwatch itself again within the hour');
        return;
      }
      await this.#deps.selfState.save({ restartsSeen: state?.restartsSeen ?? 0, lastMailMs: now() });
    }
    await this.#notify({ kind, facts, observedAtMs });
  }

  async #notify(failure: Failure): Promise<void> {
    const { config } = this.#deps;
    const diagnosis = await this.#diagnose(failure.facts);
    const mail = composeFailureMail(failure, diagnosis, {
      hostname: config.hostname,
      messageId: this.#deps.newMessageId(),
    });
    await this.#deliver(failure, mail);
  }

  async #diagnose(facts: UnitFacts): Promise<Diagnosis> {
    await this.#acquireDiagnosisSlot();
    try {
      // Give journald a moment to store the last lines the unit wrote before it died.
      await this.#deps.sleep(this.#deps.config.journalSettleMs);
      return await this.#deps.gather(facts.unit, facts.invocationId);
    } finally {
      this.#releaseDiagnosisSlot();
    }
  }

  async #deliver(failure: Failure, mail: ComposedMail): Promise<void> {
    const { config, logger } = this.#deps;
    const unit = failure.facts.unit;
    try {
      const receipt = await this.#deps.mail.send(mail);
      logger.info(
        { unit, event: failure.kind, to: config.to, messageId: mail.messageId, response: receipt.response },
        `notification sent: ${mail.subject}`,
      );
    } catch (error) {
      logger.error(
        { unit, event: failure.kind, to: config.to, err: error },
        `notification NOT sent: ${mail.subject}`,
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

  async #acquireDiagnosisSlot(): Promise<void> {
    if (this.#activeDiagnoses < PARALLEL_DIAGNOSES) {
      this.#activeDiagnoses++;
      return;
    }
    await new Promise<void>((resolve) => this.#waitingForDiagnosis.push(resolve));
  }

  #releaseDiagnosisSlot(): void {
    const next = this.#waitingForDiagnosis.shift();
    if (next === undefined) this.#activeDiagnoses--;
    else next();
  }
}
