import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { UnitChange } from '../src/adapters/systemd-bus.js';
import { parseConfig } from '../src/core/config.js';
import type { UnitFacts } from '../src/core/failure.js';
import type { ComposedMail } from '../src/core/message.js';
import type { SelfNotificationState } from '../src/core/own-unit.js';
import { FailureWatcher, type MailMeta, type StateStore, type WatcherDependencies } from '../src/watcher.js';
import { unitFacts } from './fixtures/unit-facts.js';

const SECOND = 1000;

/** The state log's contract in memory: what flush() wrote survives a "restart" (a new watcher). */
class MemoryState implements StateStore {
  readonly durable = new Map<string, unknown>();
  readonly #live = new Map<string, unknown>();
  /** Keys set or deleted since the last flush: a flush writes only those, as the state log does. */
  readonly #changed = new Set<string>();
  failWrites = false;

  async start(): Promise<ReadonlyMap<string, unknown>> {
    this.#live.clear();
    for (const [key, value] of this.durable) this.#live.set(key, structuredClone(value));
    return this.#live;
  }

  set(key: string, value: unknown): void {
    this.#live.set(key, structuredClone(value));
    this.#changed.add(key);
  }

  delete(key: string): void {
    this.#live.delete(key);
    this.#changed.add(key);
  }

  async flush(): Promise<void> {
    if (this.failWrites) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    for (const key of this.#changed) {
      if (this.#live.has(key)) this.durable.set(key, structuredClone(this.#live.get(key)));
      else this.durable.delete(key);
    }
    this.#changed.clear();
  }
}

interface Timer {
  readonly atMs: number;
  readonly callback: () => void;
}

/**
 * One host as the watcher sees it: systemd's answers (facts per unit, changeable), a clock and
 * timers the spec moves, and the mails handed to the outbox.
 */
class Host {
  nowMs = 1_000_000;
  readonly facts = new Map<string, UnitFacts>();
  readonly mails: { mail: ComposedMail; meta: MailMeta }[] = [];
  readonly queuedIds = new Set<string>();
  readonly state = new MemoryState();
  readonly logs: { level: number; msg: string }[] = [];
  timers: Timer[] = [];
  /** Fact reads that answer only once released: a bus busy with a start's catch-up. */
  readonly slowFacts = new Map<string, { promise: Promise<void>; release: () => void }>();
  /** What ListUnits answers; undefined: the source has no ListUnits and removals are believed. */
  listed: string[] | undefined;
  self: SelfNotificationState | undefined;
  #ids = 0;

  watcher(
    env: Record<string, string> = {},
    ownUnit?: string,
    extra: Partial<WatcherDependencies> = {},
  ): FailureWatcher {
    const config = parseConfig(
      {
        UNITWATCH_TO: 'ops@example.org',
        UNITWATCH_SMTP_URL: 'smtp://127.0.0.1:25',
        UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch',
        UNITWATCH_HOSTNAME: 'web1',
        ...env,
      },
      { hostname: 'web1', systemdStateDirectory: undefined, credentialsDirectory: undefined },
    );
    return new FailureWatcher({
      config,
      logger: pino({ level: 'debug' }, { write: (line: string) => this.logs.push(JSON.parse(line)) }),
      units: {
        readFacts: async (unit) => {
          await this.slowFacts.get(unit)?.promise;
          const facts = this.facts.get(unit);
          if (facts === undefined) throw new Error(`Unit ${unit} not loaded.`);
          return facts;
        },
        readRestarts: async (objectPath) => {
          const facts = [...this.facts.values()].find(
            (f) => change(f.unit, '', '').objectPath === objectPath,
          );
          if (facts === undefined) throw new Error('no such unit');
          return { restarts: facts.restarts };
        },
        ...(this.listed === undefined
          ? {}
          : {
              listUnits: async () =>
                (this.listed ?? []).map((unit) => ({ ...change(unit, 'failed', 'failed') })),
            }),
      },
      gather: async (unit, invocationId) => ({
        status: {
          command: `systemctl status --full -- ${unit}`,
          text: `× ${unit}\nsystemd[1]: ${unit}: Failed with result 'exit-code'.`,
          truncatedBytes: 0,
          problem: undefined,
        },
        journal:
          invocationId === ''
            ? undefined
            : { command: 'journalctl', text: 'it broke', truncatedBytes: 0, problem: undefined },
      }),
      deliver: async (mail, meta) => {
        this.mails.push({ mail, meta });
        this.queuedIds.add(mail.messageId);
      },
      state: this.state,
      isQueued: (id) => this.queuedIds.has(id),
      selfState: {
        load: async () => this.self,
        save: async (state) => {
          this.self = state;
        },
      },
      ownUnit,
      now: () => this.nowMs,
      newMessageId: () => `<${++this.#ids}@web1>`,
      sleep: async () => undefined,
      schedule: (callback, delayMs) => {
        const timer = { atMs: this.nowMs + delayMs, callback };
        this.timers.push(timer);
        return () => {
          this.timers = this.timers.filter((t) => t !== timer);
        };
      },
      ...extra,
    });
  }

  /** systemd's facts for a unit, as a fact read returns them. */
  setFacts(unit: string, overrides: Partial<UnitFacts> = {}): void {
    this.facts.set(
      unit,
      unitFacts(unit, {
        invocationId: 'a'.repeat(32),
        inactiveEnterTimestampUs: this.nowMs * 1000,
        ...overrides,
      }),
    );
  }

  /** Moves the clock, firing due timers in order. */
  async advance(ms: number, watcher: FailureWatcher): Promise<void> {
    const until = this.nowMs + ms;
    for (;;) {
      const next = [...this.timers].sort((a, b) => a.atMs - b.atMs)[0];
      if (next === undefined || next.atMs > until) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.nowMs = Math.max(this.nowMs, next.atMs);
      next.callback();
      await watcher.settle();
    }
    this.nowMs = until;
  }

  subjects(): string[] {
    return this.mails.map(({ mail }) => mail.subject);
  }
}

function change(unit: string, activeState: string, subState: string): UnitChange {
  return {
    unit,
    objectPath: `/org/freedesktop/systemd1/unit/${unit.replace(/\W/g, '_')}`,
    activeState,
    subState,
  };
}

async function started(host: Host, env?: Record<string, string>, ownUnit?: string): Promise<FailureWatcher> {
  const watcher = host.watcher(env, ownUnit);
  await watcher.start();
  return watcher;
}

/** A unit seen running, then failing: the change pair that makes a failure. */
async function failOnce(host: Host, watcher: FailureWatcher, unit: string, invocation = 'a'): Promise<void> {
  watcher.handleChange(change(unit, 'active', 'running'));
  host.setFacts(unit, { invocationId: invocation.repeat(32).slice(0, 32) });
  watcher.handleChange(change(unit, 'failed', 'failed'));
  await watcher.settle();
}

describe('FailureWatcher: deciding on facts', () => {
  it('mails a failure that the facts read back confirm, once however often the signal repeats', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'nginx.service');
    watcher.handleChange(change('nginx.service', 'failed', 'failed'));
    await watcher.settle();
    expect(host.subjects()).toEqual(['[unitwatch] nginx.service failed on web1 (exit-code)']);
  });

  it('mails nothing when the unit cannot be read back, and says why', async () => {
    const host = new Host();
    const watcher = await started(host);
    watcher.handleChange(change('ghost.service', 'failed', 'failed'));
    await watcher.settle();
    expect(host.mails).toEqual([]);
    expect(host.logs.some((log) => log.level === 40 && log.msg.includes('could not be read back'))).toBe(
      true,
    );
  });

  it('mails nothing when systemd says the unit is running after all', async () => {
    const host = new Host();
    const watcher = await started(host);
    host.setFacts('web.service', { activeState: 'active', subState: 'running', result: 'success' });
    watcher.handleChange(change('web.service', 'failed', 'failed'));
    await watcher.settle();
    expect(host.mails).toEqual([]);
  });

  it('takes failed → failed with a new invocation id for a new failure (systemd merged the changes)', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'job.service', 'a');
    host.setFacts('job.service', { invocationId: 'b'.repeat(32) });
    watcher.handleChange(change('job.service', 'failed', 'failed'));
    await watcher.settle();
    // The second failure waits out the unit's spacing (5 min by default), then is mailed.
    expect(host.mails).toHaveLength(1);
    await host.advance(5 * 60 * SECOND, watcher);
    expect(host.mails).toHaveLength(2);
    expect(host.mails[1]?.mail.headers['X-Unitwatch-Failures']).toBe('1');
  });

  it('mails a critical unit that is down when read back, and not one that came straight back', async () => {
    const host = new Host();
    const watcher = await started(host, { UNITWATCH_CRITICAL: 'db.service' });
    watcher.handleChange(change('db.service', 'active', 'running'));
    host.setFacts('db.service', { activeState: 'active', subState: 'running', result: 'success' });
    watcher.handleChange(change('db.service', 'inactive', 'dead'));
    await watcher.settle();
    expect(host.mails).toEqual([]);
    watcher.handleChange(change('db.service', 'active', 'running'));
    host.setFacts('db.service', { activeState: 'inactive', subState: 'dead', result: 'success' });
    watcher.handleChange(change('db.service', 'inactive', 'dead'));
    await watcher.settle();
    expect(host.mails.map(({ meta }) => meta.event)).toEqual(['stopped']);
  });
});

describe('FailureWatcher: recoveries', () => {
  it('announces a recovery the facts confirm, after the grace period, in the incident’s thread', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'api.service');
    host.setFacts('api.service', { activeState: 'active', subState: 'running', result: 'success' });
    watcher.handleChange(change('api.service', 'active', 'running'));
    await watcher.settle();
    await host.advance(30 * SECOND, watcher);
    const [failure, recovery] = host.mails;
    expect(recovery?.meta.event).toBe('recovery');
    expect(recovery?.mail.headers['In-Reply-To']).toBe(failure?.mail.messageId);
  });

  it('announces no recovery when systemd says the unit is still failed', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'api.service');
    watcher.handleChange(change('api.service', 'active', 'running'));
    await watcher.settle();
    await host.advance(60 * SECOND, watcher);
    expect(host.mails.map(({ meta }) => meta.event)).toEqual(['failed']);
  });
});

describe('FailureWatcher: restarts resume the held state', () => {
  it('sends after a restart the repeat that was held when the process died, in its thread', async () => {
    const host = new Host();
    const first = await started(host);
    await failOnce(host, first, 'loop.service', 'a');
    await failOnce(host, first, 'loop.service', 'b');
    await failOnce(host, first, 'loop.service', 'c');
    expect(host.mails).toHaveLength(1);
    first.stop(); // as a kill -9 leaves it: no drain, only what was flushed

    host.timers = [];
    const second = await started(host);
    expect(second.heldFailures).toBe(2);
    await host.advance(5 * 60 * SECOND, second);
    expect(host.mails).toHaveLength(2);
    const repeat = host.mails[1]?.mail;
    expect(repeat?.headers['X-Unitwatch-Failures']).toBe('2');
    expect(repeat?.headers['In-Reply-To']).toBe(host.mails[0]?.mail.messageId);
  });

  it('queues at start a mail decided before the crash that never reached the outbox, and only that one', async () => {
    const host = new Host();
    const first = await started(host);
    await failOnce(host, first, 'a.service');
    // A mail on disk as decided, whose enqueue the crash prevented; and one that did reach the outbox.
    const decided = {
      type: 'unit',
      report: {
        unit: 'b.service',
        latest: {
          kind: 'failed',
          facts: { ...host.facts.get('a.service'), unit: 'b.service' },
          atMs: host.nowMs,
          critical: false,
        },
        count: 1,
        firstAtMs: host.nowMs,
      },
      thread: { messageId: '<decided@web1>', references: [] },
      notes: [],
    };
    host.state.durable.set('o:<decided@web1>', decided);
    host.state.durable.set('o:<already@web1>', {
      ...decided,
      thread: { messageId: '<already@web1>', references: [] },
    });
    host.queuedIds.add('<already@web1>');
    host.mails.length = 0;

    const second = await started(host);
    await second.settle();
    expect(host.mails.map(({ mail }) => mail.messageId)).toEqual(['<decided@web1>']);
    expect([...host.state.durable.keys()].filter((key) => key.startsWith('o:'))).toEqual([]);
  });

  it('does not report again after a restart a failure reported before it', async () => {
    const host = new Host();
    const first = await started(host);
    await failOnce(host, first, 'a.service');
    const second = await started(host);
    second.catchUp([{ ...change('a.service', 'failed', 'failed') }]);
    await second.settle();
    expect(host.mails).toHaveLength(1);
  });

  it('when the state cannot be written, says so once and mails what it holds at stop', async () => {
    const host = new Host();
    const watcher = await started(host);
    host.state.failWrites = true;
    await failOnce(host, watcher, 'loop.service', 'a');
    await failOnce(host, watcher, 'loop.service', 'b');
    await failOnce(host, watcher, 'loop.service', 'c');
    expect(watcher.stateProblem).toContain('ENOSPC');
    expect(
      host.logs.filter((log) => log.level === 50 && log.msg.includes('cannot save the state')),
    ).toHaveLength(1);
    await watcher.drain();
    expect(host.mails.map(({ mail }) => mail.headers['X-Unitwatch-Failures'])).toEqual(['1', '2']);
  });
});

describe('FailureWatcher: catch-up finds what happened while nobody listened', () => {
  it('gives an open incident whose unit is active again its recovery, and closes one of a unit gone', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'back.service');
    await failOnce(host, watcher, 'gone.service');
    host.setFacts('back.service', { activeState: 'active', subState: 'running', result: 'success' });
    watcher.catchUp([change('back.service', 'active', 'running')]);
    await watcher.settle();
    expect(watcher.openIncidents).toBe(1);
    await host.advance(30 * SECOND, watcher);
    expect(host.mails.filter(({ meta }) => meta.event === 'recovery').map(({ meta }) => meta.unit)).toEqual([
      'back.service',
    ]);
    expect(watcher.openIncidents).toBe(0);
  });

  it('reports a unit that failed while unitwatch was away, once', async () => {
    const host = new Host();
    const watcher = await started(host);
    host.setFacts('missed.service');
    watcher.catchUp([change('missed.service', 'failed', 'failed')]);
    watcher.catchUp([change('missed.service', 'failed', 'failed')]);
    await watcher.settle();
    expect(host.subjects()).toEqual(['[unitwatch] missed.service failed on web1 (exit-code)']);
  });

  it('mails a crash that Restart= hid while nobody listened: the restart count moved', async () => {
    const host = new Host();
    const watcher = await started(host);
    host.setFacts('worker.service', {
      activeState: 'active',
      subState: 'running',
      result: 'success',
      restarts: 4,
    });
    watcher.catchUp([change('worker.service', 'active', 'running')]);
    await watcher.settle();
    expect(host.mails).toEqual([]);
    // Bus down meanwhile; the service crashed and systemd restarted it.
    host.setFacts('worker.service', {
      activeState: 'active',
      subState: 'running',
      result: 'success',
      restarts: 5,
      invocationId: 'b'.repeat(32),
    });
    watcher.catchUp([change('worker.service', 'active', 'running')]);
    await watcher.settle();
    watcher.catchUp([change('worker.service', 'active', 'running')]);
    await watcher.settle();
    expect(host.subjects()).toEqual(['[unitwatch] worker.service crashed on web1 (restarted), restarting']);
  });

  it('closes an incident without a mail when the operator runs reset-failed', async () => {
    const host = new Host();
    const watcher = await started(host);
    await failOnce(host, watcher, 'handled.service');
    host.setFacts('handled.service', { activeState: 'inactive', subState: 'dead', result: 'success' });
    watcher.handleChange(change('handled.service', 'inactive', 'dead'));
    await watcher.settle();
    await host.advance(60 * SECOND, watcher);
    expect(watcher.openIncidents).toBe(0);
    expect(host.mails.map(({ meta }) => meta.event)).toEqual(['failed']);
  });

  it('ends an incident stopped by hand while crash-looping as "stopped", not as a recovery', async () => {
    const host = new Host();
    const watcher = await started(host);
    watcher.handleChange(change('loop.service', 'active', 'running'));
    host.setFacts('loop.service', { activeState: 'activating', subState: 'auto-restart' });
    watcher.handleChange(change('loop.service', 'activating', 'auto-restart'));
    await watcher.settle();
    host.setFacts('loop.service', { activeState: 'inactive', subState: 'dead', result: 'success' });
    watcher.handleChange(change('loop.service', 'inactive', 'dead'));
    await watcher.settle();
    await host.advance(SECOND, watcher);
    expect(host.subjects().at(-1)).toBe('[unitwatch] loop.service stopped on web1 after 1 failure');
    expect(watcher.openIncidents).toBe(0);
  });

  it('forgets, at catch-up, a unit systemd no longer lists', async () => {
    const host = new Host();
    const watcher = await started(host);
    watcher.handleChange(change('gone.service', 'active', 'running'));
    watcher.catchUp([]);
    expect(watcher.watchedUnits).toBe(0);
  });

  it('forgets what it reported of 5,000 units that failed and were unloaded, on disk too', async () => {
    const host = new Host();
    const watcher = await started(host, { UNITWATCH_RECOVERY: 'off' });
    for (let i = 0; i < 5_000; i++) {
      const unit = `gc-${i}.service`;
      await failOnce(host, watcher, unit);
      watcher.unitRemoved(unit);
      await host.advance(100, watcher);
    }
    // Past the digests and the hourly cap they waited for: every mail owed has gone out.
    await host.advance(3 * 3_600_000, watcher);
    expect(host.mails.length).toBeGreaterThan(0);
    const kept = [...host.state.durable.keys()].filter((key) => key.startsWith('r:') || key.startsWith('u:'));
    expect(kept).toEqual([]);
    expect(watcher.watchedUnits).toBe(0);
    expect(watcher.openIncidents).toBe(0);
  });

  it('forgets at catch-up what it reported of a unit unloaded while it did not listen', async () => {
    const host = new Host();
    const first = await started(host);
    await failOnce(host, first, 'gone.service');
    expect([...host.state.durable.keys()].some((key) => key.startsWith('r:gone.service'))).toBe(true);
    const second = await started(host);
    second.catchUp([]);
    await second.settle();
    expect([...host.state.durable.keys()].some((key) => key.startsWith('r:gone.service'))).toBe(false);
  });

  it('keeps, through a daemon-reload that "removes" every unit and loads it again, what it reported', async () => {
    const host = new Host();
    host.listed = ['nginx.service'];
    const watcher = await started(host);
    await failOnce(host, watcher, 'nginx.service');
    watcher.unitRemoved('nginx.service');
    await host.advance(2_000, watcher);
    // systemd, loaded again, announces the same failed invocation.
    watcher.handleChange(change('nginx.service', 'failed', 'failed'));
    await watcher.settle();
    expect(host.mails).toHaveLength(1);
    expect([...host.state.durable.keys()].some((key) => key.startsWith('r:nginx.service'))).toBe(true);
  });

  it('forgets a unit once ListUnits confirms its removal, with one listing for many', async () => {
    const host = new Host();
    host.listed = ['kept.service'];
    const watcher = await started(host);
    await failOnce(host, watcher, 'gone.service');
    await failOnce(host, watcher, 'kept.service');
    watcher.unitRemoved('gone.service');
    watcher.unitRemoved('kept.service');
    expect(host.timers).toHaveLength(1);
    expect(watcher.watchedUnits).toBe(2);
    await host.advance(2_000, watcher);
    expect(watcher.watchedUnits).toBe(1);
    const reported = [...host.state.durable.keys()].filter((key) => key.startsWith('r:'));
    expect(reported.map((key) => key.split('\u0000')[0])).toEqual(['r:kept.service']);
  });

  it('forgets a unit systemd unloaded', async () => {
    const host = new Host();
    const watcher = await started(host);
    watcher.handleChange(change('tmp.service', 'active', 'running'));
    expect(watcher.watchedUnits).toBe(1);
    watcher.unitRemoved('tmp.service');
    expect(watcher.watchedUnits).toBe(0);
  });
});

describe('FailureWatcher: storms', () => {
  it('mails a storm whose fact reads lag behind its signals as one digest, not one mail per lag', async () => {
    const host = new Host();
    const watcher = await started(host, { UNITWATCH_RECOVERY: 'off' });
    const units = Array.from({ length: 30 }, (_, i) => `storm-${i}.service`);
    for (const unit of units) {
      let release = () => {};
      const promise = new Promise<void>((resolve) => {
        release = resolve;
      });
      host.slowFacts.set(unit, { promise, release });
      host.setFacts(unit, { invocationId: 'b'.repeat(32) });
      watcher.handleChange(change(unit, 'active', 'running'));
      watcher.handleChange(change(unit, 'failed', 'failed'));
    }
    // The reads come back one by one, 200 ms apart, over six seconds: longer than the quiet period
    // (2 s) after the signals, but never 2 s without a failure reaching the policy.
    // (Not watcher.settle(): it waits for the reads still held.)
    const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
    for (const unit of units) {
      host.slowFacts.get(unit)?.release();
      for (let i = 0; i < 5; i++) await turn();
      host.nowMs += 200;
      for (const timer of host.timers.filter((t) => t.atMs <= host.nowMs)) {
        host.timers = host.timers.filter((t) => t !== timer);
        timer.callback();
      }
      for (let i = 0; i < 5; i++) await turn();
    }
    await host.advance(60_000, watcher);
    const digests = host.subjects().filter((subject) => / and \d+ more failed on web1$/.test(subject));
    // The storm threshold's three first mails one by one, then everything else in one digest.
    expect(host.mails).toHaveLength(4);
    expect(digests).toHaveLength(1);
  });
});

describe('FailureWatcher: itself', () => {
  it('mails a failure of its own unit at most once an hour', async () => {
    const host = new Host();
    const watcher = await started(host, {}, 'unitwatch.service');
    await failOnce(host, watcher, 'unitwatch.service', 'a');
    await failOnce(host, watcher, 'unitwatch.service', 'b');
    expect(host.mails).toHaveLength(1);
    await host.advance(3600 * SECOND, watcher);
    await failOnce(host, watcher, 'unitwatch.service', 'c');
    expect(host.mails.filter(({ meta }) => meta.event !== 'recovery')).toHaveLength(2);
  });
});

describe('FailureWatcher: the open incidents, for Alertmanager', () => {
  it('lists each open incident with its latest facts at once, whatever the rate limit holds back', async () => {
    const host = new Host();
    let changes = 0;
    const watcher = host.watcher(
      { UNITWATCH_CRITICAL: 'db.service', UNITWATCH_STORM_THRESHOLD: '1' },
      undefined,
      {
        onIncidentsChanged: () => changes++,
      },
    );
    await watcher.start();
    await failOnce(host, watcher, 'nginx.service');
    await failOnce(host, watcher, 'db.service', 'c');
    await failOnce(host, watcher, 'cron.service', 'd');
    // The storm threshold of 1 puts cron.service into a digest: no mail yet, but an alert.
    expect(host.mails.map(({ meta }) => meta.unit)).toEqual(['nginx.service', 'db.service']);
    const views = watcher.alertIncidents();
    expect(views.map((view) => [view.unit, view.critical])).toEqual([
      ['nginx.service', false],
      ['db.service', true],
      ['cron.service', false],
    ]);
    expect(views[2]?.latest?.facts.invocationId).toBe('d'.repeat(32));
    expect(views[2]?.latest?.kind).toBe('failed');
    expect(views[0]?.firstFailureMs).toBe(host.nowMs);
    expect(changes).toBeGreaterThanOrEqual(3);
  });

  it('tells the listener when an incident closes, with the time the unit came up', async () => {
    const host = new Host();
    let changes = 0;
    const watcher = host.watcher({ UNITWATCH_RECOVERY_GRACE: '10s' }, undefined, {
      onIncidentsChanged: () => changes++,
    });
    await watcher.start();
    await failOnce(host, watcher, 'web.service');
    host.nowMs += 5 * SECOND;
    const upAt = host.nowMs;
    host.setFacts('web.service', { activeState: 'active', subState: 'running', result: 'success' });
    watcher.handleChange(change('web.service', 'active', 'running'));
    await watcher.settle();
    expect(watcher.alertIncidents()[0]?.endedAtMs).toBe(upAt);
    const before = changes;
    await host.advance(10 * SECOND, watcher);
    expect(watcher.alertIncidents()).toEqual([]);
    expect(changes).toBeGreaterThan(before);
  });

  it('after a restart lists the restored incidents, and learns their facts from the catch-up', async () => {
    const host = new Host();
    const first = await started(host);
    await failOnce(host, first, 'a.service');
    let changes = 0;
    const second = host.watcher({}, undefined, { onIncidentsChanged: () => changes++ });
    await second.start();
    expect(second.alertIncidents().map((view) => [view.unit, view.latest])).toEqual([
      ['a.service', undefined],
    ]);
    second.catchUp([change('a.service', 'failed', 'failed')]);
    await second.settle();
    expect(second.alertIncidents()[0]?.latest?.facts.result).toBe('exit-code');
    expect(changes).toBe(1);
    expect(host.mails).toHaveLength(1);
  });

  it('a listener that throws is logged and changes nothing for the mail', async () => {
    const host = new Host();
    const watcher = host.watcher({}, undefined, {
      onIncidentsChanged: () => {
        throw new Error('listener broke');
      },
    });
    await watcher.start();
    await failOnce(host, watcher, 'nginx.service');
    expect(host.mails).toHaveLength(1);
    expect(host.logs.some((log) => log.msg === 'the incident listener failed')).toBe(true);
  });
});
