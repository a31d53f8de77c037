import { randomUUID } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gatherDiagnosis } from './adapters/diagnosis.js';
import { readJson, writeJsonAtomic } from './adapters/json-file.js';
import type { Logger } from './adapters/logger.js';
import { MailTransport } from './adapters/mail-transport.js';
import { Outbox } from './adapters/outbox.js';
import { SystemdNotifier } from './adapters/sd-notify.js';
import { StateLog } from './adapters/state-log.js';
import { SystemdBus, type UnitChange } from './adapters/systemd-bus.js';
import type { Config } from './core/config.js';
import { ownUnitFromCgroup, type SelfNotificationState } from './core/own-unit.js';
import { FailureWatcher, type SelfStateStore, type StateStore } from './watcher.js';

const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 5000, 10_000];
const STOP_GRACE_MS = 8000;

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
      const keys = await readJson(legacy).catch(() => undefined);
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

function fileSelfStateStore(stateDirectory: string): SelfStateStore {
  const path = join(stateDirectory, 'self.json');
  return {
    async load() {
      const value = (await readJson(path)) as Partial<SelfNotificationState> | undefined;
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

/**
 * The composition root: builds the adapters, wires them to the watcher, and owns the lifecycle
 * (connect, subscribe, readiness, reconnect, stop). The constructor only stores its inputs.
 */
export class Daemon {
  readonly #config: Config;
  readonly #logger: Logger;
  readonly #smtpPassword: string | undefined;
  #mail: MailTransport | undefined;
  #outbox: Outbox | undefined;
  #bus: SystemdBus | undefined;
  #watcher: FailureWatcher | undefined;
  #notifier: SystemdNotifier | undefined;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #reconnecting = false;

  constructor(config: Config, logger: Logger, smtpPassword: string | undefined) {
    this.#config = config;
    this.#logger = logger;
    this.#smtpPassword = smtpPassword;
  }

  async start(): Promise<void> {
    const config = this.#config;
    const logger = this.#logger;
    const mail = new MailTransport(config, this.#smtpPassword);
    mail.start();
    this.#mail = mail;
    const outbox = new Outbox({
      directory: join(config.stateDirectory, 'outbox'),
      sender: mail,
      logger,
      now: Date.now,
      random: Math.random,
    });
    this.#outbox = outbox;
    // Mail queued before a crash or a stop goes out first.
    await outbox.start();
    this.#notifier = new SystemdNotifier(logger);
    const ownUnit = await readOwnUnit();
    const watcher = new FailureWatcher({
      config,
      logger,
      units: {
        readFacts: (unit, path) => this.#requireBus().readFacts(unit, path),
        readRestarts: (path) => this.#requireBus().readRestarts(path),
      },
      gather: (unit, invocationId) =>
        gatherDiagnosis(unit, invocationId, {
          statusLines: config.statusLines,
          timeoutMs: config.commandTimeoutMs,
          maxBytes: config.outputLimitBytes,
        }),
      deliver: async (composed, meta) => {
        try {
          await outbox.enqueue(composed, meta);
        } catch (error) {
          // A full or read-only state directory must not cost the notification: send it directly.
          logger.error(
            { err: error, unit: meta.unit },
            'could not queue the mail on disk; sending it directly',
          );
          await mail.send(composed);
        }
      },
      state: stateStore(config.stateDirectory, logger),
      isQueued: (messageId) => outbox.knownMessageIds().has(messageId),
      selfState: fileSelfStateStore(config.stateDirectory),
      ownUnit,
      now: Date.now,
      newMessageId: () => `<${randomUUID()}@${config.hostname}>`,
      sleep: (ms) => sleep(ms),
    });
    this.#watcher = watcher;
    await watcher.start();

    await this.#connect();
    // Subscribed and compared with ListUnits: that is caught up. What the comparison found is mailed
    // in the background, so readiness does not wait for diagnoses or D-Bus reads of many units.
    if (ownUnit !== undefined) void this.#reportOwnRestart(ownUnit);
    await this.#notifier.ready(this.#statusLine());
    this.#startWatchdog();
    logger.info(
      { watched: watcher.watchedUnits, transport: mail.description, to: config.to, unit: ownUnit },
      'unitwatch is watching',
    );
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#watchdogTimer);
    await this.#notifier?.stopping();
    this.#bus?.stop();
    const drained = this.#watcher?.drain() ?? Promise.resolve();
    await Promise.race([drained, sleep(STOP_GRACE_MS)]);
    await this.#outbox?.stop();
    this.#mail?.stop();
    this.#logger.info('unitwatch stopped');
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
    if (this.#bus === undefined) throw new Error('not connected to the system bus');
    return this.#bus;
  }

  /**
   * Subscribes first and lists second, so no change falls between the two. The listing is compared
   * with what we knew and what was reported before: a unit that failed while we were away (stopped,
   * restarting, disconnected) is reported then, once.
   */
  async #connect(): Promise<void> {
    const watcher = this.#watcher;
    if (watcher === undefined) throw new Error('watcher not built');
    const bus = new SystemdBus({
      onUnitChange: (change: UnitChange) => watcher.handleChange(change),
      onUnitRemoved: (unit) => watcher.unitRemoved(unit),
      onSystemdRestarted: () => void this.#recatchUp(),
      onDroppedSignals: (dropped) =>
        this.#logger.warn(
          { sender: dropped.lastSender, member: dropped.lastMember, total: dropped.total },
          `dropped ${dropped.count} D-Bus signal${dropped.count === 1 ? '' : 's'} not sent by systemd (last from ${dropped.lastSender}); someone on this host is sending forged unit changes`,
        ),
      onDisconnect: (reason) => this.#onDisconnect(reason),
    });
    this.#bus = bus;
    await bus.start();
    watcher.catchUp(await bus.listUnits());
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

  #onDisconnect(reason: Error): void {
    if (this.#stopping || this.#reconnecting) return;
    this.#reconnecting = true;
    this.#logger.error({ err: reason }, 'lost the system bus; reconnecting');
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 0; !this.#stopping; attempt++) {
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)] ?? 10_000);
      try {
        this.#bus?.stop();
        await this.#connect();
        this.#reconnecting = false;
        this.#logger.warn({ attempt: attempt + 1 }, 'reconnected to the system bus');
        return;
      } catch (error) {
        this.#logger.warn({ attempt: attempt + 1, err: error }, 'reconnect to the system bus failed');
      }
    }
  }

  #statusLine(): string {
    const watcher = this.#watcher;
    const failed = watcher?.failedUnits().length ?? 0;
    const dropped = this.#bus?.droppedSignals ?? 0;
    const problem = watcher?.stateProblem;
    return `watching ${watcher?.watchedUnits ?? 0} active units, ${failed} failed, ${watcher?.openIncidents ?? 0} open incidents, ${watcher?.heldFailures ?? 0} failures held, outbox ${this.#outbox?.pending ?? 0}${dropped > 0 ? `, ${dropped} forged signals dropped` : ''}${problem === undefined ? '' : `; ${problem}`}`;
  }

  /** WATCHDOG=1 only while the bus is connected: a daemon deaf to systemd should be restarted. */
  #startWatchdog(): void {
    const usec = Number(process.env.WATCHDOG_USEC ?? '0');
    const pid = process.env.WATCHDOG_PID;
    if (!(usec > 0) || (pid !== undefined && pid !== String(process.pid))) return;
    const notifier = this.#notifier;
    this.#watchdogTimer = setInterval(
      () => {
        if (this.#reconnecting || notifier === undefined) return;
        void notifier.watchdog();
        void notifier.status(this.#statusLine());
      },
      Math.max(usec / 2000, 500),
    );
  }
}
