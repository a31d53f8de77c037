import {
  type AlertContext,
  firingAlert,
  type IncidentAlertView,
  type PostableAlert,
  resolvedAlert,
} from '../core/alert.js';
import { type AlertmanagerSettings, alertsEndpoint } from '../core/alertmanager-settings.js';
import { nextAttemptDelayMs } from '../core/retry.js';
import { cleanLine } from '../core/text.js';
import { AlertmanagerError } from '../errors/alertmanager-error.js';
import { type Fetch, postAlerts } from './alertmanager-client.js';
import type { Logger } from './logger.js';

export interface AlertmanagerFeedDependencies {
  readonly settings: AlertmanagerSettings;
  readonly hostname: string;
  readonly logger: Logger;
  /** The watcher's open incidents, as they are now. */
  readonly incidents: () => readonly IncidentAlertView[];
  /** The last journal lines of each unit's failed invocation, in one read; none in the description if absent. */
  readonly journals?: (
    entries: readonly { unit: string; invocationId: string }[],
  ) => Promise<ReadonlyMap<string, readonly string[]>>;
  readonly now: () => number;
  readonly random: () => number;
  /** Node's fetch by default; a spec's double otherwise. */
  readonly fetch?: Fetch;
  /** Arms a timer and returns its disarm; setTimeout by default, a fake clock's in unit specs. */
  readonly schedule?: (callback: () => void, delayMs: number) => () => void;
  /** How long one post may take; 10 s, or the interval if that is shorter. */
  readonly timeoutMs?: number;
}

/** The first retry after a failed post comes this soon; later ones back off up to the interval. */
const RETRY_BASE_MS = 1000;
const DEFAULT_TIMEOUT_MS = 10_000;

const defaultSchedule = (callback: () => void, delayMs: number): (() => void) => {
  const timer = setTimeout(callback, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
};

/** One Alertmanager of the cluster, with its own retries: a peer that is down delays no other. */
interface Peer {
  readonly base: string;
  readonly endpoint: string;
  /** Resolved alerts this peer has not yet acknowledged, by unit. */
  readonly pendingResolved: Map<string, PostableAlert>;
  posting: Promise<void> | undefined;
  /** Something changed while a post was on its way: post again once it is done. */
  again: boolean;
  failures: number;
  /** Set from the first failed post of an outage to the first good one: the outage is logged once. */
  outage: { sinceMs: number; reason: string } | undefined;
  cancelRetry: (() => void) | undefined;
}

/**
 * Feeds Alertmanager from the watcher's incidents (not from mails: rate limits and digests do not
 * apply here, Alertmanager groups and deduplicates itself). Each pass compares the open incidents
 * with the last pass: a new one is posted firing at once, a closed one is posted resolved (to each
 * peer until that peer took it), and every interval all open ones are posted again with endsAt a
 * few intervals ahead, so a resolve that never comes (unitwatch killed) resolves by itself.
 * Idle (nothing open, nothing to resolve): no timer.
 */
export class AlertmanagerFeed {
  readonly #deps: AlertmanagerFeedDependencies;
  readonly #peers: Peer[] = [];
  /** The firing alert last built for each open incident, and the incident it was built from. */
  readonly #open = new Map<string, { view: IncidentAlertView; alert: PostableAlert }>();
  #abort = new AbortController();
  #running = false;
  #pass: Promise<void> | undefined;
  #passAgain = false;
  #cancelTick: (() => void) | undefined;

  constructor(deps: AlertmanagerFeedDependencies) {
    this.#deps = deps;
  }

  /** Posts every open incident at once (they are restored from the state log), then keeps them fresh. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#peers.length = 0;
    for (const base of this.#deps.settings.urls) {
      this.#peers.push({
        base,
        endpoint: alertsEndpoint(base),
        pendingResolved: new Map(),
        posting: undefined,
        again: false,
        failures: 0,
        outage: undefined,
        cancelRetry: undefined,
      });
    }
    this.changed();
  }

  /**
   * Stops posting and abandons posts under way. Resolves nothing: unitwatch stopping does not mean
   * the units recovered; the alerts stay until the next start posts them again, or lapse at endsAt.
   */
  stop(): void {
    this.#running = false;
    this.#abort.abort();
    this.#cancelTick?.();
    this.#cancelTick = undefined;
    for (const peer of this.#peers) {
      peer.cancelRetry?.();
      peer.cancelRetry = undefined;
    }
  }

  /** The watcher's incidents changed: reconcile soon (one pass at a time; changes meanwhile join the next). */
  changed(): void {
    if (!this.#running) return;
    if (this.#pass !== undefined) {
      this.#passAgain = true;
      return;
    }
    this.#pass = this.#runPasses().finally(() => {
      this.#pass = undefined;
    });
  }

  /** Resolves once no pass and no post is under way (for specs and a graceful stop). */
  async settle(): Promise<void> {
    for (;;) {
      const busy = [this.#pass, ...this.#peers.map((peer) => peer.posting)].filter(
        (work): work is Promise<void> => work !== undefined,
      );
      if (busy.length === 0) return;
      await Promise.allSettled(busy);
    }
  }

  /** Peers in an outage, for the status line: base URL and since when. */
  get unreachable(): readonly { url: string; sinceMs: number }[] {
    return this.#peers.flatMap((peer) =>
      peer.outage === undefined ? [] : [{ url: peer.base, sinceMs: peer.outage.sinceMs }],
    );
  }

  async #runPasses(): Promise<void> {
    do {
      this.#passAgain = false;
      try {
        await this.#reconcile();
      } catch (error) {
        // A bad pass must not end the feed: the next change or tick tries again.
        this.#deps.logger.error({ err: error }, 'building the Alertmanager alerts failed');
      }
    } while (this.#passAgain && this.#running);
  }

  /** Compares the incidents with the last pass, builds the alerts, posts to every peer, re-arms the tick. */
  async #reconcile(): Promise<void> {
    const { now } = this.#deps;
    const views = this.#deps.incidents();
    const current = new Map(views.map((view) => [view.unit, view]));
    for (const [unit, previous] of this.#open) {
      if (current.has(unit)) continue;
      this.#open.delete(unit);
      const resolved = resolvedAlert(previous.alert, previous.view.endedAtMs, now());
      for (const peer of this.#peers) peer.pendingResolved.set(unit, resolved);
    }
    const journals = await this.#journals(views);
    if (!this.#running) return;
    const context: AlertContext = {
      hostname: this.#deps.hostname,
      staticLabels: this.#deps.settings.labels,
      nowMs: now(),
      intervalMs: this.#deps.settings.intervalMs,
    };
    for (const view of views) {
      // Open again before its resolve reached a peer: the firing alert supersedes the resolve.
      for (const peer of this.#peers) peer.pendingResolved.delete(view.unit);
      this.#open.set(view.unit, { view, alert: firingAlert(view, journals.get(view.unit), context) });
    }
    for (const peer of this.#peers) this.#push(peer);
    this.#armTick();
  }

  async #journals(views: readonly IncidentAlertView[]): Promise<ReadonlyMap<string, readonly string[]>> {
    const read = this.#deps.journals;
    const entries = views.flatMap((view) =>
      view.latest === undefined ? [] : [{ unit: view.unit, invocationId: view.latest.facts.invocationId }],
    );
    if (read === undefined || entries.length === 0) return new Map();
    try {
      return await read(entries);
    } catch (error) {
      this.#deps.logger.warn(
        { err: error },
        'could not read the journal for the Alertmanager alerts; posting without it',
      );
      return new Map();
    }
  }

  /** The next re-post, one interval ahead; none when there is nothing to post to anyone. */
  #armTick(): void {
    this.#cancelTick?.();
    this.#cancelTick = undefined;
    const pending = this.#peers.some((peer) => peer.pendingResolved.size > 0);
    if (!this.#running || (this.#open.size === 0 && !pending)) return;
    this.#cancelTick = (this.#deps.schedule ?? defaultSchedule)(() => {
      this.#cancelTick = undefined;
      this.changed();
    }, this.#deps.settings.intervalMs);
  }

  /** Posts the current alerts to one peer, unless a post to it is on its way (then once more after it). */
  #push(peer: Peer): void {
    if (!this.#running) return;
    if (peer.posting !== undefined) {
      peer.again = true;
      return;
    }
    peer.cancelRetry?.();
    peer.cancelRetry = undefined;
    peer.posting = this.#postLoop(peer).finally(() => {
      peer.posting = undefined;
    });
  }

  async #postLoop(peer: Peer): Promise<void> {
    do {
      peer.again = false;
      const resolved = [...peer.pendingResolved];
      const alerts = [
        ...[...this.#open.values()].map((entry) => entry.alert),
        ...resolved.map(([, alert]) => alert),
      ];
      if (alerts.length === 0) return;
      try {
        await postAlerts(peer.endpoint, alerts, {
          fetch: this.#deps.fetch ?? fetch,
          timeoutMs: this.#deps.timeoutMs ?? Math.min(DEFAULT_TIMEOUT_MS, this.#deps.settings.intervalMs),
          signal: this.#abort.signal,
        });
      } catch (error) {
        if (!this.#running) return;
        this.#failed(peer, error, alerts.length);
        return;
      }
      // Taken: forget the resolves it carried, unless a newer one for the unit came meanwhile.
      for (const [unit, alert] of resolved) {
        if (peer.pendingResolved.get(unit) === alert) peer.pendingResolved.delete(unit);
      }
      this.#succeeded(peer, alerts.length, resolved.length);
    } while (peer.again && this.#running);
  }

  #succeeded(peer: Peer, alerts: number, resolved: number): void {
    const { logger } = this.#deps;
    const firing = alerts - resolved;
    if (peer.outage !== undefined) {
      logger.warn(
        { url: peer.base, attempts: peer.failures + 1, firing, resolved },
        `alertmanager ${peer.base} takes alerts again after ${peer.failures} failed post${peer.failures === 1 ? '' : 's'}; posted ${firing} firing, ${resolved} resolved`,
      );
    } else {
      logger.debug(
        { url: peer.base, firing, resolved },
        `posted ${firing} firing and ${resolved} resolved alerts to ${peer.base}`,
      );
    }
    peer.outage = undefined;
    peer.failures = 0;
    // The last resolve was taken and nothing is open: idle, no timer.
    if (this.#open.size === 0 && this.#peers.every((other) => other.pendingResolved.size === 0)) {
      this.#cancelTick?.();
      this.#cancelTick = undefined;
    }
  }

  /** Logged once per outage; a transient failure is retried with backoff, a refusal at the next tick. */
  #failed(peer: Peer, error: unknown, alerts: number): void {
    const { logger, settings } = this.#deps;
    peer.failures++;
    const transient = !(error instanceof AlertmanagerError) || error.transient;
    const reason = error instanceof AlertmanagerError ? error.reason : String(error);
    if (peer.outage === undefined) {
      peer.outage = { sinceMs: this.#deps.now(), reason };
      const next = transient ? 'retrying with backoff' : 'posting again in the next interval';
      logger[transient ? 'warn' : 'error'](
        {
          url: peer.base,
          alerts,
          reason,
          ...(error instanceof AlertmanagerError && error.status !== undefined
            ? { status: error.status }
            : {}),
        },
        `alertmanager ${peer.base} did not take ${alerts} alert${alerts === 1 ? '' : 's'}: ${cleanLine(reason)}; ${next}, mail and other Alertmanagers not affected`,
      );
    }
    if (!transient) return;
    const delayMs = nextAttemptDelayMs(peer.failures, this.#deps.random, {
      baseMs: Math.min(RETRY_BASE_MS, settings.intervalMs),
      capMs: settings.intervalMs,
    });
    peer.cancelRetry = (this.#deps.schedule ?? defaultSchedule)(() => {
      peer.cancelRetry = undefined;
      this.#push(peer);
    }, delayMs);
  }
}
