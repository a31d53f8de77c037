import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gatherDiagnosis } from './adapters/diagnosis.js';
import { readJson, writeJsonAtomic } from './adapters/json-file.js';
import type { Logger } from './adapters/logger.js';
import { MailTransport } from './adapters/mail-transport.js';
import { SystemdNotifier } from './adapters/sd-notify.js';
import { SystemdBus, type UnitChange } from './adapters/systemd-bus.js';
import type { Config } from './core/config.js';
import { ownUnitFromCgroup, type SelfNotificationState } from './core/own-unit.js';
import { FailureWatcher, type SelfStateStore } from './watcher.js';

const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 5000, 10_000];
const STOP_GRACE_MS = 8000;

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
    this.#notifier = new SystemdNotifier(logger);
    const ownUnit = await readOwnUnit();
    const watcher = new FailureWatcher({
      config,
      logger,
      units: { readFacts: (unit, path) => this.#requireBus().readFacts(unit, path) },
      gather: (unit, invocationId) =>
        gatherDiagnosis(unit, invocationId, {
          statusLines: config.statusLines,
          timeoutMs: config.commandTimeoutMs,
          maxBytes: config.outputLimitBytes,
        }),
      mail,
      selfState: fileSelfStateStore(config.stateDirectory),
      ownUnit,
      now: Date.now,
      newMessageId: () => `<${randomUUID()}@${config.hostname}>`,
      sleep: (ms) => sleep(ms),
    });
    this.#watcher = watcher;

    await this.#connect(false);
    if (ownUnit !== undefined) {
      const bus = this.#requireBus();
      const facts = await bus.readFacts(ownUnit, await bus.unitPath(ownUnit));
      void watcher.reportOwnRestart(facts).catch((error: unknown) => {
        logger.error({ unit: ownUnit, err: error }, 'could not report our own restart');
      });
    }
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
    this.#watcher?.stop();
    await this.#notifier?.stopping();
    this.#bus?.stop();
    const settled = this.#watcher?.settle() ?? Promise.resolve();
    await Promise.race([settled, sleep(STOP_GRACE_MS)]);
    this.#mail?.stop();
    this.#logger.info('unitwatch stopped');
  }

  #requireBus(): SystemdBus {
    if (this.#bus === undefined) throw new Error('not connected to the system bus');
    return this.#bus;
  }

  /**
   * Subscribes first and lists second, so no change falls between the two. After a reconnect the
   * listing is compared with what we knew: a unit that failed while we were away is reported then.
   */
  async #connect(compareWithKnown: boolean): Promise<void> {
    const watcher = this.#watcher;
    if (watcher === undefined) throw new Error('watcher not built');
    const bus = new SystemdBus({
      onUnitChange: (change: UnitChange) => watcher.handleChange(change),
      onDisconnect: (reason) => this.#onDisconnect(reason),
    });
    this.#bus = bus;
    await bus.start();
    const units = await bus.listUnits();
    if (compareWithKnown) for (const unit of units) watcher.handleChange(unit);
    else watcher.seed(units);
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
        await this.#connect(true);
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
    return `watching ${watcher?.watchedUnits ?? 0} active units, ${failed} failed, ${watcher?.openIncidents ?? 0} open incidents`;
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
