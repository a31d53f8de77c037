import { randomUUID } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlertmanagerFeed } from './adapters/alertmanager-feed.js';
import {
  type ChannelQueue,
  fanOut,
  queuedEverywhere,
  webhookQueueDirectory,
} from './adapters/channel-queues.js';
import { gatherDiagnosis, gatherJournals, refreshJournal } from './adapters/diagnosis.js';
import { readJson, removeTemporaryFiles, writeJsonAtomic } from './adapters/json-file.js';
import type { Logger } from './adapters/logger.js';
import { MailTransport } from './adapters/mail-transport.js';
import { Outbox } from './adapters/outbox.js';
import { SystemdNotifier } from './adapters/sd-notify.js';
import { StateLog } from './adapters/state-log.js';
import { type DroppedMessages, SystemdBus, type UnitChange } from './adapters/systemd-bus.js';
import { WebhookSender } from './adapters/webhook-sender.js';
import { DESCRIPTION_JOURNAL_LINES, DESCRIPTION_LINE_CHARS } from './core/alert.js';
import type { Config } from './core/config.js';
import { ownUnitFromCgroup, type SelfNotificationState } from './core/own-unit.js';
import { type ServiceManager, systemManager } from './core/service-manager.js';
import { BusUnreachableError, rootMessage } from './errors/bus-unreachable-error.js';
import { FailureWatcher, type SelfStateStore, type StateStore } from './watcher.js';

const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 5000, 10_000];
/**
 * Waits between the attempts to reach the bus at start: 8 attempts over some 11 s (at most ~35 s
 * with every attempt timing out), well under the unit's start timeout; then exit, and Restart= applies.
 */
const START_CONNECT_DELAYS_MS = [500, 1000, 1500, 2000, 2000, 2000, 2000];
/** A bus that accepts the connection but never answers must not hold an attempt for a call timeout. */
const CONNECT_ATTEMPT_TIMEOUT_MS = 3000;
const STOP_GRACE_MS = 8000;
/** How often STATUS= is brought up to date; systemd-notify runs only when the line changed. */
const STATUS_INTERVAL_MS = 2000;

/**
 * The state log, and once the keys that versions before 0.2 kept in `reported.json`: taken over
 * at the first start, so an upgrade does not mail the failed units of the moment again.
 */
function stateStore(stateDirectory: string, logger: Logger): StateStore {
  const log = new StateLog({ directory: stateDirectory, logger });
  const legacy = join(stateDirectory, 'reported.json');
  return {
    async start() {
      const entries = await log.start();
      const keys = await readJson(legacy, {
        logger,
        validate: (read) =>
          Array.isArray(read) && read.every((key) => typeof key === 'string')
            ? undefined
            : 'not a list of reported failure keys',
        consequence: 'failures still failed now may be reported once more',
      });
      if (Array.isArray(keys)) {
        for (const key of keys) if (typeof key === 'string') log.set(`r:${key}`, 1);
        await log.flush();
        await unlink(legacy);
        logger.info(
          { file: legacy, keys: keys.length },
          `took over ${keys.length} reported failures from ${legacy}`,
        );
      }
      return entries;
    },
    set: (key, value) => log.set(key, value),
    delete: (key) => log.delete(key),
    flush: () => log.flush(),
  };
}

function fileSelfStateStore(stateDirectory: string, logger: Logger): SelfStateStore {
  const path = join(stateDirectory, 'self.json');
  return {
    async load() {
      const value = (await readJson(path, {
        logger,
        validate: (read) => {
          const state = read as Partial<SelfNotificationState> | null;
          return typeof state?.restartsSeen === 'number' && typeof state.lastMailMs === 'number'
            ? undefined
            : "not unitwatch's own restart state";
        },
      })) as Partial<SelfNotificationState> | undefined;
      if (typeof value?.restartsSeen !== 'number' || typeof value.lastMailMs !== 'number') return undefined;
      return { restartsSeen: value.restartsSeen, lastMailMs: value.lastMailMs };
    },
    save: (state) => writeJsonAtomic(path, state),
  };
}

async function readOwnUnit(): Promise<string | undefined> {
  try {
    return ownUnitFromCgroup(await readFile('/proc/self/cgroup', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Secrets read at start-up by the CLI, never kept in Config. */
export interface DaemonSecrets {
  /** HMAC key of every webhook request (UNITWATCH_WEBHOOK_SECRET_FILE or the credential). */
  readonly webhookSecret?: string | undefined;
  /** ntfy access token (UNITWATCH_NTFY_TOKEN_FILE or the credential). */
  readonly ntfyToken?: string | undefined;
}

/**
 * The composition root: builds the adapters, wires them to the watcher, and owns the lifecycle
 * (connect, subscribe, readiness, reconnect, stop). The constructor only stores its inputs.
 */
export class Daemon {
  readonly #config: Config;
  readonly #logger: Logger;
  readonly #smtpPassword: string | undefined;
  readonly #secrets: DaemonSecrets;
  /** PID 1 on the system bus, or (`run --user`) the user's manager on the session bus. */
  readonly #manager: ServiceManager;
  #mail: MailTransport | undefined;
  /** Every channel's queue, mail first; every notification goes to each. */
  #queues: ChannelQueue[] = [];
  #bus: SystemdBus | undefined;
  #watcher: FailureWatcher | undefined;
  /** Set when UNITWATCH_ALERTMANAGER_URL is. */
  #alerts: AlertmanagerFeed | undefined;
  #notifier: SystemdNotifier | undefined;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  /** When the current bus connection was made and caught up; `unitwatch status` shows it. */
  #connectedSinceMs: number | undefined;
  /** Set while the bus is lost: when and how many attempts so far. WATCHDOG=1 pauses meanwhile. */
  #reconnecting: { sinceMs: number; attempt: number } | undefined;
  /** Connected and caught up once; before that a lost bus is the start's retry loop's business. */
  #ready = false;
  /** Aborts every wait (reconnect delays, start retries, the stop grace) when a stop is asked for. */
  readonly #abort = new AbortController();
  #teardown: Promise<void> | undefined;

  constructor(
    config: Config,
    logger: Logger,
    smtpPassword: string | undefined,
    secrets: DaemonSecrets = {},
    manager: ServiceManager = systemManager(process.env),
  ) {
    this.#config = config;
    this.#logger = logger;
    this.#smtpPassword = smtpPassword;
    this.#secrets = secrets;
    this.#manager = manager;
  }

  /** `system bus` or `session bus`, as the log lines say. */
  get #busName(): string {
    return this.#manager.busName;
  }

  /**
   * Starts everything, or nothing: a start that fails (or is stopped half-way) tears down what it
   * had started, and rejects. A start cut short by stop() rejects with the signal's AbortError.
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (error) {
      await this.#tearDown();
      throw error;
    }
  }

  async #start(): Promise<void> {
    const config = this.#config;
    const logger = this.#logger;
    this.#notifier = new SystemdNotifier(logger);
    await removeTemporaryFiles(config.stateDirectory, logger);
    const queues = this.#buildQueues();
    this.#queues = queues;
    // Notifications queued before a crash or a stop go out first, each channel on its own.
    await Promise.all(queues.map((queue) => queue.outbox.start()));
    this.#checkpoint();
    const ownUnit = await readOwnUnit();
    const diagnosisOptions = {
      statusLines: config.statusLines,
      timeoutMs: config.commandTimeoutMs,
      maxBytes: config.outputLimitBytes,
      scope: this.#manager.scope,
    };
    const watcher = new FailureWatcher({
      config,
      logger,
      units: {
        readFacts: (unit, path) => this.#requireBus().readFacts(unit, path),
        readRestarts: (path) => this.#requireBus().readRestarts(path),
        listUnits: () => this.#requireBus().listUnits(),
      },
      gather: (unit, invocationId) => gatherDiagnosis(unit, invocationId, diagnosisOptions),
      refreshJournal: (diagnosis, invocationId) => refreshJournal(diagnosis, invocationId, diagnosisOptions),
      gatherJournals: (entries) =>
        gatherJournals(entries, {
          timeoutMs: config.commandTimeoutMs,
          maxBytes: config.outputLimitBytes,
          scope: this.#manager.scope,
        }),
      // A full or read-only state directory does not cost the notification: the outbox then sends it
      // directly and keeps it in memory, retried with the same backoff, until the disk takes it again.
      // Every channel gets every notification; one that already has it (queued before a crash) is
      // skipped, so a decided notification re-queued at start reaches only the channels that lack it.
      deliver: (composed, meta) => fanOut(queues, composed, meta),
      state: stateStore(config.stateDirectory, logger),
      isQueued: (messageId) => queuedEverywhere(queues, messageId),
      selfState: fileSelfStateStore(config.stateDirectory, logger),
      ownUnit,
      scope: this.#manager.scope,
      now: Date.now,
      newMessageId: () => `<${randomUUID()}@${config.hostname}>`,
      sleep: (ms) => sleep(ms),
      onIncidentsChanged: () => this.#alerts?.changed(),
    });
    this.#watcher = watcher;
    await watcher.start();
    this.#checkpoint();
    if (config.alertmanager !== undefined) {
      // After the watcher restored its incidents: the first pass posts every open one at once.
      this.#alerts = new AlertmanagerFeed({
        settings: config.alertmanager,
        hostname: config.hostname,
        logger,
        incidents: () => watcher.alertIncidents(),
        journals: (entries) =>
          gatherJournals(entries, {
            timeoutMs: config.commandTimeoutMs,
            maxBytes: config.outputLimitBytes,
            linesPerUnit: DESCRIPTION_JOURNAL_LINES,
            maxLineChars: DESCRIPTION_LINE_CHARS,
            scope: this.#manager.scope,
          }),
        now: Date.now,
        random: Math.random,
      });
      this.#alerts.start();
    }

    await this.#connectAtStart();
    this.#ready = true;
    // Subscribed and compared with ListUnits: that is caught up. What the comparison found is mailed
    // in the background, so readiness does not wait for diagnoses or D-Bus reads of many units.
    if (ownUnit !== undefined) void this.#reportOwnRestart(ownUnit);
    await this.#notifier.ready(this.#statusLine());
    this.#startWatchdog();
    logger.info(
      {
        watched: watcher.watchedUnits,
        channels: queues.map((queue) => queue.label),
        ...(this.#mail === undefined ? {} : { transport: this.#mail.description, to: config.to }),
        unit: ownUnit,
      },
      'unitwatch is watching',
    );
  }

  /** Stops at any moment, also during start() or a reconnect wait; every wait in progress ends at once. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#abort.abort();
    await this.#notifier?.stopping();
    await this.#tearDown();
    this.#logger.info('unitwatch stopped');
  }

  /** Idempotent: stops timers, the bus, the watcher (draining what the policy held), the outbox and the transport. */
  #tearDown(): Promise<void> {
    this.#teardown ??= (async () => {
      this.#stopping = true;
      clearInterval(this.#watchdogTimer);
      clearInterval(this.#statusTimer);
      this.#bus?.stop();
      this.#bus = undefined;
      if (this.#watcher !== undefined) {
        const drained = this.#watcher.drain().catch((error: unknown) => {
          this.#logger.error({ err: error }, 'could not hand what the rate limit held to the outbox');
        });
        // Not aborted by the stop itself: the grace is what the stop grants the work under way.
        await Promise.race([drained, sleep(STOP_GRACE_MS, undefined, { ref: false })]);
      }
      this.#alerts?.stop();
      await Promise.all(this.#queues.map((queue) => queue.outbox.stop()));
      this.#mail?.stop();
    })();
    return this.#teardown;
  }

  /** Throws the stop's AbortError when a stop came while start() was waiting. */
  #checkpoint(): void {
    this.#abort.signal.throwIfAborted();
  }

  /**
   * The first connection, retried a bounded number of times: one log line per failed attempt, then
   * a BusUnreachableError, so the process exits and systemd's Restart= decides what next.
   */
  async #connectAtStart(): Promise<void> {
    const address = this.#manager.busAddress;
    const attempts = START_CONNECT_DELAYS_MS.length + 1;
    for (let attempt = 1; ; attempt++) {
      this.#checkpoint();
      try {
        await this.#connect(CONNECT_ATTEMPT_TIMEOUT_MS);
        return;
      } catch (error) {
        this.#checkpoint();
        this.#bus?.stop();
        this.#bus = undefined;
        const delayMs = START_CONNECT_DELAYS_MS[attempt - 1];
        if (delayMs === undefined) throw new BusUnreachableError(address, attempts, error, this.#busName);
        const seconds = delayMs / 1000;
        this.#logger.error(
          // The reason is in the line; the stack of a refused connect says nothing more.
          { address, attempt, attempts, retryInMs: delayMs, reason: rootMessage(error) },
          `cannot connect to the ${this.#busName} at ${address}: ${rootMessage(error)}; is dbus running? retrying in ${seconds} s (attempt ${attempt} of ${attempts})`,
        );
        void this.#notifier?.status(
          `cannot connect to the ${this.#busName} at ${address}; retrying (attempt ${attempt} of ${attempts})`,
        );
        await sleep(delayMs, undefined, { signal: this.#abort.signal });
      }
    }
  }

  async #reportOwnRestart(ownUnit: string): Promise<void> {
    try {
      const bus = this.#requireBus();
      const facts = await bus.readFacts(ownUnit, await bus.unitPath(ownUnit));
      await this.#watcher?.reportOwnRestart(facts);
    } catch (error) {
      this.#logger.error({ unit: ownUnit, err: error }, 'could not report our own restart');
    }
  }

  #requireBus(): SystemdBus {
    if (this.#bus === undefined) throw new Error(`not connected to the ${this.#busName}`);
    return this.#bus;
  }

  /**
   * Subscribes first and lists second, so no change falls between the two. The listing is compared
   * with what we knew and what was reported before: a unit that failed while we were away (stopped,
   * restarting, disconnected) is reported then, once.
   */
  async #connect(attemptTimeoutMs?: number): Promise<void> {
    const watcher = this.#watcher;
    if (watcher === undefined) throw new Error('watcher not built');
    const bus = new SystemdBus(
      {
        onUnitChange: (change: UnitChange) => watcher.handleChange(change),
        onUnitRemoved: (unit) => watcher.unitRemoved(unit),
        onSystemdRestarted: () => void this.#recatchUp(),
        onDroppedMessages: (dropped) =>
          this.#logger.warn(
            { sender: dropped.lastSender, member: dropped.lastMember, total: dropped.total },
            `dropped ${dropped.count} D-Bus message${dropped.count === 1 ? '' : 's'} not sent by systemd (last: ${describeDropped(dropped)}); someone on this host is sending forged unit changes`,
          ),
        onDisconnect: (reason) => this.#onDisconnect(bus, reason),
      },
      { manager: this.#manager },
    );
    this.#bus = bus;
    if (attemptTimeoutMs === undefined) {
      await bus.start();
    } else {
      const timer = new AbortController();
      const timedOut = sleep(attemptTimeoutMs, undefined, { signal: timer.signal }).then(() => {
        throw new Error(`no answer within ${attemptTimeoutMs} ms`);
      });
      try {
        await Promise.race([bus.start(), timedOut]);
      } finally {
        timer.abort();
        timedOut.catch(() => undefined);
      }
    }
    // Stopped while connecting: the stop already ran and must not find a live bus left behind.
    if (this.#stopping) {
      bus.stop();
      this.#checkpoint();
    }
    watcher.catchUp(await bus.listUnits());
    this.#connectedSinceMs = Date.now();
  }

  /** systemd re-executed (new unique name): subscribe again and compare, as after a reconnect. */
  async #recatchUp(): Promise<void> {
    try {
      const bus = this.#requireBus();
      await bus.resubscribe();
      this.#watcher?.catchUp(await bus.listUnits());
      this.#logger.info('systemd has a new bus name (re-executed); subscribed again and caught up');
    } catch (error) {
      this.#logger.error({ err: error }, 'could not catch up after systemd re-executed');
    }
  }

  #onDisconnect(bus: SystemdBus, reason: Error): void {
    // A bus given up on (a failed attempt, a stop) or not yet ready is not a loss to recover from here.
    if (this.#stopping || !this.#ready || bus !== this.#bus || this.#reconnecting !== undefined) return;
    this.#reconnecting = { sinceMs: Date.now(), attempt: 0 };
    this.#logger.error(
      { err: reason },
      `lost the ${this.#busName}; reconnecting (${rootMessage(reason)})${watchdogMs() === undefined ? '' : '; the watchdog is not fed until then'}`,
    );
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    const state = this.#reconnecting;
    if (state === undefined) return;
    for (let attempt = 1; !this.#stopping; attempt++) {
      state.attempt = attempt;
      void this.#notifier?.status(this.#statusLine());
      try {
        await sleep(reconnectDelayMs(attempt, watchdogMs()), undefined, { signal: this.#abort.signal });
      } catch {
        return; // stopping
      }
      try {
        this.#bus?.stop();
        await this.#connect(CONNECT_ATTEMPT_TIMEOUT_MS);
        if (this.#stopping) return;
        this.#reconnecting = undefined;
        this.#logger.warn(
          { attempt },
          `reconnected to the ${this.#busName} after ${attempt} attempt${attempt === 1 ? '' : 's'}`,
        );
        void this.#notifier?.status(this.#statusLine());
        return;
      } catch (error) {
        if (this.#stopping) return;
        this.#logger.warn(
          { attempt, err: error },
          `reconnect to the ${this.#busName} failed: ${rootMessage(error)}; trying again (attempt ${attempt})`,
        );
      }
    }
  }

  /** What STATUS= says: the bus, then the state directory if it is in trouble, then the counts. */
  #statusLine(): string {
    const watcher = this.#watcher;
    const failed = watcher?.failedUnits().length ?? 0;
    const parts: string[] = [];
    if (this.#reconnecting !== undefined) {
      parts.push(
        `reconnecting to the ${this.#busName} since ${clockTime(this.#reconnecting.sinceMs)} (attempt ${this.#reconnecting.attempt})`,
      );
    } else if (this.#connectedSinceMs !== undefined) {
      parts.push(`on the ${this.#busName} since ${clockTime(this.#connectedSinceMs)}`);
    }
    const degraded = this.#queues.map((queue) => queue.outbox.degraded).find((state) => state !== undefined);
    if (degraded !== undefined) {
      const inMemory = this.#queues.reduce((sum, queue) => sum + (queue.outbox.degraded?.inMemory ?? 0), 0);
      parts.push(
        `state directory not writable since ${clockTime(degraded.sinceMs)}: mail sent directly, ${inMemory} kept in memory`,
      );
    }
    const problem = watcher?.stateProblem;
    if (problem !== undefined) parts.push(problem);
    for (const peer of this.#alerts?.unreachable ?? []) {
      parts.push(`alertmanager ${peer.url} not taking alerts since ${clockTime(peer.sinceMs)}`);
    }
    const dropped = this.#bus?.droppedMessages ?? 0;
    parts.push(
      `watching ${watcher?.watchedUnits ?? 0} active units, ${failed} failed, ${watcher?.openIncidents ?? 0} open incidents, ${watcher?.heldFailures ?? 0} failures held, outbox ${this.#outboxLine()}${dropped > 0 ? `, ${dropped} forged messages dropped` : ''}`,
    );
    return parts.join('; ');
  }

  /** `3`, or with several channels `3 (webhook https://hooks.example.org/… 3)`: which one is behind. */
  #outboxLine(): string {
    const total = this.#queues.reduce((sum, queue) => sum + queue.outbox.pending, 0);
    if (this.#queues.length <= 1 || total === 0) return String(total);
    const behind = this.#queues
      .filter((queue) => queue.outbox.pending > 0)
      .map((queue) => `${queue.label} ${queue.outbox.pending}`);
    return `${total} (${behind.join(', ')})`;
  }

  /** Mail (when configured) and one queue per webhook URL, each with its own directory and retries. */
  #buildQueues(): ChannelQueue[] {
    const config = this.#config;
    const common = { logger: this.#logger, now: Date.now, random: Math.random };
    const queues: ChannelQueue[] = [];
    if (config.transport !== undefined) {
      const mail = new MailTransport({ ...config, transport: config.transport }, this.#smtpPassword);
      mail.start();
      this.#mail = mail;
      const directory = join(config.stateDirectory, 'outbox');
      queues.push({ label: 'mail', outbox: new Outbox({ ...common, directory, sender: mail }) });
    }
    const webhook = config.webhook;
    for (const target of webhook?.urls ?? []) {
      const channel = new WebhookSender({
        target,
        format: webhook?.format ?? 'json',
        secret: this.#secrets.webhookSecret,
        token: this.#secrets.ntfyToken,
        timeoutMs: webhook?.timeoutMs ?? 10_000,
        now: Date.now,
      });
      const directory = webhookQueueDirectory(config.stateDirectory, target);
      queues.push({ label: channel.label, outbox: new Outbox({ ...common, directory, channel }) });
    }
    return queues;
  }

  /** WATCHDOG=1 only while the bus is connected: a daemon deaf to systemd should be restarted. */
  #startWatchdog(): void {
    const notifier = this.#notifier;
    const intervalMs = watchdogMs();
    // STATUS= with or without a watchdog: outbox length, a reconnect, a degraded state directory.
    this.#statusTimer = setInterval(() => void notifier?.status(this.#statusLine()), STATUS_INTERVAL_MS);
    this.#statusTimer.unref();
    if (intervalMs === undefined) return;
    this.#watchdogTimer = setInterval(
      () => {
        if (notifier === undefined) return;
        void notifier.status(this.#statusLine());
        // Not fed while the bus is lost: a daemon deaf to systemd for WatchdogSec= is restarted.
        if (this.#reconnecting === undefined) void notifier.watchdog();
      },
      Math.max(intervalMs / 2, 500),
    );
  }
}

/** `10:02:03` in UTC, as the status line shows it. */
/** `PropertiesChanged from :1.42`; a message dropped unread (its header too large) names neither. */
function describeDropped(dropped: DroppedMessages): string {
  if (dropped.lastSender === '' && dropped.lastMember === '') return 'a message too large to read';
  return `${dropped.lastMember || 'a message'} from ${dropped.lastSender || 'no named sender'}`;
}

function clockTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** WatchdogSec= in milliseconds when systemd watches this process, else undefined. */
function watchdogMs(): number | undefined {
  const usec = Number(process.env.WATCHDOG_USEC ?? '0');
  const pid = process.env.WATCHDOG_PID;
  if (!(usec > 0) || (pid !== undefined && pid !== String(process.pid))) return undefined;
  return usec / 1000;
}

/**
 * The wait before reconnect attempt `attempt` (1 for the first): 250 ms growing to 10 s, but under a
 * watchdog at most a quarter of WatchdogSec=, so that several attempts fit before systemd, which is
 * not fed meanwhile, restarts the daemon: under the reliability test's WatchdogSec=4s the first four
 * attempts alone span 3.75 s, and a dbus restart slower than that on a loaded host would cost a kill.
 */
export function reconnectDelayMs(attempt: number, watchdogIntervalMs: number | undefined): number {
  const delay =
    RECONNECT_DELAYS_MS[Math.min(Math.max(attempt, 1) - 1, RECONNECT_DELAYS_MS.length - 1)] ?? 10_000;
  return watchdogIntervalMs === undefined ? delay : Math.min(delay, Math.max(100, watchdogIntervalMs / 4));
}
