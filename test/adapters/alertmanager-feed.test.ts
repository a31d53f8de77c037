import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertmanagerFeed } from '../../src/adapters/alertmanager-feed.js';
import type { IncidentAlertView, PostableAlert } from '../../src/core/alert.js';
import { unitFacts } from '../fixtures/unit-facts.js';
import { type LogLine, memoryLogger } from '../harness/memory-logger.js';

const INTERVAL_MS = 60_000;
const START_MS = Date.parse('2026-12-02T10:00:00Z');

/** A loopback HTTP server that answers POST /api/v2/alerts as Alertmanager does, and keeps each body. */
class FakeAlertmanager {
  readonly posts: PostableAlert[][] = [];
  readonly paths: string[] = [];
  /** Answer with this status instead of 200; `hang` never answers. */
  answer: number | 'hang' = 200;
  #server: Server | undefined;
  readonly #hanging: ServerResponse[] = [];

  get url(): string {
    const address = this.#server?.address() as AddressInfo | undefined;
    return `http://127.0.0.1:${address?.port ?? 0}`;
  }

  async start(): Promise<void> {
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.paths.push(`${request.method} ${request.url}`);
        if (this.answer === 'hang') {
          this.#hanging.push(response);
          return;
        }
        this.posts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as PostableAlert[]);
        response.statusCode = this.answer;
        response.end(
          this.answer === 400 ? '{"code":400,"message":"start time must be before end time"}' : '',
        );
      });
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    for (const response of this.#hanging) response.destroy();
    const server = this.#server;
    server?.closeAllConnections();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A base URL where nothing listens: connection refused. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Timers that fire only when the spec says, and a clock that moves with them. */
class ManualTimers {
  nowMs = START_MS;
  readonly timers: { delayMs: number; callback: () => void; active: boolean }[] = [];

  readonly now = (): number => this.nowMs;

  readonly schedule = (callback: () => void, delayMs: number): (() => void) => {
    const timer = { delayMs, callback, active: true };
    this.timers.push(timer);
    return () => {
      timer.active = false;
    };
  };

  armed(): number[] {
    return this.timers.filter((timer) => timer.active).map((timer) => timer.delayMs);
  }

  /** Moves the clock by `delayMs` and fires the armed timers of that delay. */
  fire(delayMs: number): void {
    this.nowMs += delayMs;
    const due = this.timers.filter((timer) => timer.active && timer.delayMs === delayMs);
    for (const timer of due) {
      timer.active = false;
      timer.callback();
    }
  }
}

function incident(unit: string, overrides: Partial<IncidentAlertView> = {}): IncidentAlertView {
  return {
    unit,
    critical: false,
    firstFailureMs: START_MS - 1000,
    failures: 1,
    latest: {
      kind: 'failed',
      facts: unitFacts(unit, { invocationId: 'b'.repeat(32) }),
      atMs: START_MS - 1000,
    },
    endedAtMs: undefined,
    ...overrides,
  };
}

describe('AlertmanagerFeed against loopback HTTP servers', () => {
  const up = new FakeAlertmanager();
  const second = new FakeAlertmanager();
  let timers: ManualTimers;
  let lines: LogLine[];
  let open: IncidentAlertView[];
  let feed: AlertmanagerFeed | undefined;

  function makeFeed(urls: string[], options: { timeoutMs?: number } = {}): AlertmanagerFeed {
    const made = memoryLogger();
    lines = made.lines;
    feed = new AlertmanagerFeed({
      settings: { urls, labels: { env: 'test' }, intervalMs: INTERVAL_MS },
      hostname: 'web1',
      logger: made.logger,
      incidents: () => open,
      journals: async (entries) =>
        new Map(entries.map((entry) => [entry.unit, [`${entry.unit}: last words`]])),
      now: timers.now,
      random: () => 0,
      schedule: timers.schedule,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    });
    return feed;
  }

  const units = (post: PostableAlert[] | undefined) => (post ?? []).map((alert) => alert.labels.unit);

  beforeEach(async () => {
    timers = new ManualTimers();
    open = [];
    up.posts.length = 0;
    up.paths.length = 0;
    up.answer = 200;
    second.posts.length = 0;
    second.answer = 200;
    await up.start();
    await second.start();
  });

  afterEach(async () => {
    feed?.stop();
    feed = undefined;
    await up.stop();
    await second.stop();
  });

  it('posts every open incident at start, to /api/v2/alerts of each peer', async () => {
    open = [incident('a.service'), incident('b.service', { critical: true })];
    const started = makeFeed([up.url, second.url]);
    started.start();
    await started.settle();
    for (const peer of [up, second]) {
      expect(peer.posts).toHaveLength(1);
      expect(units(peer.posts[0])).toEqual(['a.service', 'b.service']);
    }
    expect(up.paths).toEqual(['POST /api/v2/alerts']);
    const [a, b] = up.posts[0] ?? [];
    expect(a?.labels).toEqual({
      env: 'test',
      alertname: 'SystemdUnitFailed',
      instance: 'web1',
      unit: 'a.service',
      severity: 'warning',
    });
    expect(b?.labels.severity).toBe('critical');
    expect(a?.annotations.description).toContain('a.service: last words');
    expect(a?.startsAt).toBe(new Date(START_MS - 1000).toISOString());
    expect(a?.endsAt).toBe(new Date(START_MS + 4 * INTERVAL_MS).toISOString());
  });

  it('one peer down: the other still gets every post; the outage is logged once, and its end once', async () => {
    const dead = await deadUrl();
    open = [incident('a.service')];
    const started = makeFeed([dead, up.url]);
    started.start();
    await started.settle();
    expect(up.posts).toHaveLength(1);
    // Retried with backoff (random 0: the base, 1 s), without a line per attempt.
    expect(timers.armed()).toEqual([INTERVAL_MS, 1000]);
    for (let attempt = 0; attempt < 3; attempt++) {
      timers.fire(timers.armed().find((delay) => delay < INTERVAL_MS) ?? 0);
      await started.settle();
    }
    const outage = lines.filter((line) => line.msg.includes('did not take'));
    expect(outage).toHaveLength(1);
    expect(outage[0]?.msg).toMatch(
      new RegExp(
        `^alertmanager ${dead} did not take 1 alert: .*; retrying with backoff, mail and other Alertmanagers not affected$`,
      ),
    );
    expect(outage[0]?.level).toBe(40);
    expect(started.unreachable.map((peer) => peer.url)).toEqual([dead]);

    open = [incident('a.service'), incident('c.service')];
    started.changed();
    await started.settle();
    expect(units(up.posts.at(-1))).toEqual(['a.service', 'c.service']);
    expect(lines.filter((line) => line.msg.includes('did not take'))).toHaveLength(1);
  });

  it('a peer that takes the connection and never answers delays neither the other peer nor the next post', async () => {
    second.answer = 'hang';
    open = [incident('a.service')];
    const started = makeFeed([second.url, up.url], { timeoutMs: 300 });
    started.start();
    await started.settle();
    expect(up.posts).toHaveLength(1);
    expect(lines.find((line) => line.msg.includes('did not take'))?.msg).toContain('no answer within 300 ms');
  });

  it('comes back: the first good post after an outage is logged, and the outage is over', async () => {
    second.answer = 503;
    open = [incident('a.service')];
    const started = makeFeed([second.url]);
    started.start();
    await started.settle();
    expect(lines.filter((line) => line.msg.includes('did not take'))[0]?.msg).toContain('503');
    second.answer = 200;
    timers.fire(1000);
    await started.settle();
    expect(second.posts.at(-1)?.map((alert) => alert.labels.unit)).toEqual(['a.service']);
    expect(lines.filter((line) => line.msg.includes('takes alerts again'))).toHaveLength(1);
    expect(started.unreachable).toEqual([]);
  });

  it('a refusal (4xx) is logged at error and not retried before the next interval', async () => {
    up.answer = 400;
    open = [incident('a.service')];
    const started = makeFeed([up.url]);
    started.start();
    await started.settle();
    const refusal = lines.find((line) => line.msg.includes('did not take'));
    expect(refusal?.level).toBe(50);
    expect(refusal?.msg).toContain(
      '400 Bad Request: {"code":400,"message":"start time must be before end time"}',
    );
    expect(refusal?.msg).toContain('posting again in the next interval');
    expect(timers.armed()).toEqual([INTERVAL_MS]);
  });

  it('re-posts open incidents every interval, each post valid for four intervals from then', async () => {
    open = [incident('a.service')];
    const started = makeFeed([up.url]);
    started.start();
    await started.settle();
    for (let tick = 1; tick <= 3; tick++) {
      expect(timers.armed()).toEqual([INTERVAL_MS]);
      timers.fire(INTERVAL_MS);
      await started.settle();
      expect(up.posts).toHaveLength(tick + 1);
      expect(up.posts.at(-1)?.[0]?.endsAt).toBe(new Date(START_MS + (tick + 4) * INTERVAL_MS).toISOString());
      expect(up.posts.at(-1)?.[0]?.startsAt).toBe(new Date(START_MS - 1000).toISOString());
    }
  });

  it('a closed incident is posted resolved at its end to each peer, then no more; idle means no timer', async () => {
    const endedAtMs = START_MS + 5000;
    open = [incident('a.service', { endedAtMs }), incident('b.service')];
    const started = makeFeed([up.url, second.url]);
    started.start();
    await started.settle();
    timers.nowMs = START_MS + 40_000;
    open = [incident('b.service')];
    started.changed();
    await started.settle();
    for (const peer of [up, second]) {
      const resolved = peer.posts.at(-1)?.find((alert) => alert.labels.unit === 'a.service');
      expect(resolved?.endsAt).toBe(new Date(endedAtMs).toISOString());
      expect(units(peer.posts.at(-1))).toEqual(['b.service', 'a.service']);
    }
    timers.fire(INTERVAL_MS);
    await started.settle();
    expect(units(up.posts.at(-1))).toEqual(['b.service']);

    open = [];
    started.changed();
    await started.settle();
    expect(units(up.posts.at(-1))).toEqual(['b.service']);
    expect(Date.parse(up.posts.at(-1)?.[0]?.endsAt ?? '')).toBe(timers.nowMs);
    expect(timers.armed()).toEqual([]);
  });

  it('a resolve a peer missed is carried by later posts until that peer takes it', async () => {
    open = [incident('a.service')];
    const started = makeFeed([up.url, second.url]);
    started.start();
    await started.settle();
    second.answer = 503;
    open = [];
    started.changed();
    await started.settle();
    expect(units(up.posts.at(-1))).toEqual(['a.service']);
    second.answer = 200;
    timers.fire(1000);
    await started.settle();
    expect(units(second.posts.at(-1))).toEqual(['a.service']);
    expect(Date.parse(second.posts.at(-1)?.[0]?.endsAt ?? '')).toBeLessThanOrEqual(timers.nowMs);
    const before = up.posts.length;
    timers.fire(INTERVAL_MS);
    await started.settle();
    expect(up.posts.length).toBe(before);
    expect(timers.armed()).toEqual([]);
  });

  it('stop() posts nothing more and resolves nothing: unitwatch stopping is not a recovery', async () => {
    open = [incident('a.service')];
    const started = makeFeed([up.url]);
    started.start();
    await started.settle();
    started.stop();
    open = [];
    started.changed();
    await started.settle();
    expect(up.posts).toHaveLength(1);
    expect(timers.armed()).toEqual([]);
  });
});
