import { describe, expect, it } from 'vitest';
import type { FailureKind } from '../../src/core/failure.js';
import {
  type FailureEvent,
  type GlobalPolicyState,
  NotificationPolicy,
  type Outgoing,
  type PolicySettings,
  type RecoveredUnit,
  type Thread,
  type UnitPolicyState,
  type UnitReport,
} from '../../src/core/policy.js';
import { unitFacts } from '../fixtures/unit-facts.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The defaults a person gets from the configuration, so the specs read in familiar numbers. */
const DEFAULTS: PolicySettings = {
  repeatIntervalsMs: [5 * MINUTE, 15 * MINUTE, HOUR],
  stormThreshold: 3,
  stormWindowMs: MINUTE,
  digestDelayMs: 10 * SECOND,
  maxMailsPerHour: 30,
  recoveryMails: true,
  recoveryGraceMs: 30 * SECOND,
};

interface FailOptions {
  readonly critical?: boolean;
  readonly kind?: FailureKind;
}

function failureOf(unit: string, atMs: number, options: FailOptions = {}): FailureEvent {
  return {
    kind: options.kind ?? 'failed',
    facts: unitFacts(unit),
    atMs,
    critical: options.critical ?? false,
  };
}

interface Sent {
  readonly atMs: number;
  readonly mail: Outgoing;
}

type UnitMail = Extract<Outgoing, { type: 'unit' }>;
type DigestMail = Extract<Outgoing, { type: 'digest' }>;
type RecoveryMail = Extract<Outgoing, { type: 'recovery' }>;

/**
 * Drives the policy as the daemon does: events at their times, and one timer that calls due() at
 * nextDueMs() (never in the past: a deadline already passed fires at once). Message ids count up.
 */
class Simulation {
  policy: NotificationPolicy;
  readonly sent: Sent[] = [];
  nowMs = 0;
  failures = 0;
  #ids = 0;
  readonly #settings: PolicySettings;
  /** What a store fed by takeChanges() holds: the state a restart resumes from. */
  readonly #stored = new Map<string, UnitPolicyState>();
  #storedGlobal: GlobalPolicyState | undefined;

  constructor(overrides: Partial<PolicySettings> = {}) {
    this.#settings = { ...DEFAULTS, ...overrides };
    this.policy = new NotificationPolicy(this.#settings, () => `<${++this.#ids}@test>`);
  }

  /** A process restart: a new policy restored from what was stored, through JSON as on disk. */
  restart(): void {
    const { units, global } = JSON.parse(
      JSON.stringify({ units: [...this.#stored], global: this.#storedGlobal }),
    ) as { units: [string, UnitPolicyState][]; global: GlobalPolicyState | undefined };
    this.policy = new NotificationPolicy(this.#settings, () => `<${++this.#ids}@test>`);
    this.policy.restore(units, global);
  }

  #persist(): void {
    const changes = this.policy.takeChanges();
    for (const [unit, state] of changes.units) {
      if (state === null) this.#stored.delete(unit);
      else this.#stored.set(unit, state);
    }
    if (changes.global !== undefined) this.#storedGlobal = changes.global;
  }

  /** Fires every timer whose deadline is not after `untilMs`, in order, and leaves the clock there. */
  advanceTo(untilMs: number): void {
    this.#fireUntil(untilMs);
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  /** Lets the timer run until nothing waits any more; the clock stops at the last deadline fired. */
  settle(): void {
    this.#fireUntil(Number.POSITIVE_INFINITY);
  }

  #fireUntil(untilMs: number): void {
    for (let rounds = 0; ; rounds++) {
      if (rounds > 100_000) throw new Error('the timer never settles');
      const next = this.policy.nextDueMs();
      if (next === undefined || next > untilMs) return;
      this.nowMs = Math.max(this.nowMs, next);
      this.#record(this.policy.due(this.nowMs));
    }
  }

  fail(unit: string, atMs: number, options: FailOptions = {}): Outgoing[] {
    this.advanceTo(atMs);
    this.failures++;
    return this.#record(this.policy.failure(failureOf(unit, atMs, options)));
  }

  recover(unit: string, atMs: number): Outgoing[] {
    this.advanceTo(atMs);
    return this.#record(this.policy.recovered(unit, atMs));
  }

  drain(atMs: number): Outgoing[] {
    this.advanceTo(atMs);
    return this.#record(this.policy.drain(atMs));
  }

  #record(mails: Outgoing[]): Outgoing[] {
    for (const mail of mails) this.sent.push({ atMs: this.nowMs, mail });
    this.#persist();
    return mails;
  }

  unitMails(unit?: string): (UnitMail & { atMs: number })[] {
    return this.sent
      .filter((sent) => sent.mail.type === 'unit')
      .map((sent) => ({ ...(sent.mail as UnitMail), atMs: sent.atMs }))
      .filter((mail) => unit === undefined || mail.report.unit === unit);
  }

  digests(): (DigestMail & { atMs: number })[] {
    return this.sent
      .filter((sent) => sent.mail.type === 'digest')
      .map((sent) => ({ ...(sent.mail as DigestMail), atMs: sent.atMs }));
  }

  /** Each unit's end of incident, one entry per unit even where one mail named several. */
  recoveries(unit?: string): (RecoveredUnit & { thread: Thread; atMs: number; mail: RecoveryMail })[] {
    return this.sent
      .filter((sent) => sent.mail.type === 'recovery')
      .flatMap((sent) => {
        const mail = sent.mail as RecoveryMail;
        return mail.units.map((entry) => ({ ...entry, thread: mail.thread, atMs: sent.atMs, mail }));
      })
      .filter((entry) => unit === undefined || entry.unit === unit);
  }

  /** Every failure report in the mails sent so far, unit mails and digest lines alike. */
  reports(): UnitReport[] {
    return this.sent.flatMap(({ mail }) =>
      mail.type === 'unit' ? [mail.report] : mail.type === 'digest' ? [...mail.reports] : [],
    );
  }

  countedFailures(): number {
    return this.reports().reduce((sum, report) => sum + report.count, 0);
  }
}

/** The most mails a continuous crash loop of `durationMs` may cause: one at once, then one per window begun. */
function crashLoopMailBound(intervals: readonly number[], durationMs: number): number {
  let mails = 1;
  let windowStartMs = 0;
  for (let level = 0; windowStartMs < durationMs; level++) {
    mails++;
    windowStartMs += intervals[Math.min(level, intervals.length - 1)] ?? 0;
  }
  return mails;
}

function only<T>(items: readonly T[]): T {
  expect(items).toHaveLength(1);
  return items[0] as T;
}

describe('NotificationPolicy: per-unit backoff', () => {
  it('mails the first failure of a unit at once, in a thread of its own', () => {
    const sim = new Simulation();
    const mail = only(sim.fail('nginx.service', 1_000));
    expect(mail.type).toBe('unit');
    if (mail.type !== 'unit') return;
    expect(mail.report).toEqual({
      unit: 'nginx.service',
      latest: failureOf('nginx.service', 1_000),
      count: 1,
      firstAtMs: 1_000,
    });
    expect(mail.thread).toEqual({ messageId: '<1@test>', inReplyTo: undefined, references: [] });
    expect(mail.notes).toEqual([]);
  });

  it('holds repeats within the window and sums them into one mail when the window ends', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    expect(sim.fail('nginx.service', 1 * MINUTE)).toEqual([]);
    expect(sim.fail('nginx.service', 2 * MINUTE)).toEqual([]);
    expect(sim.fail('nginx.service', 3 * MINUTE)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(5 * MINUTE);

    sim.advanceTo(5 * MINUTE - 1);
    expect(sim.sent).toHaveLength(1);
    sim.advanceTo(5 * MINUTE);

    const [first, summary] = sim.unitMails();
    expect(first?.report.count).toBe(1);
    expect(summary?.atMs).toBe(5 * MINUTE);
    expect(summary?.report).toEqual({
      unit: 'nginx.service',
      latest: failureOf('nginx.service', 3 * MINUTE),
      count: 3,
      firstAtMs: 1 * MINUTE,
    });
    expect(sim.sent).toHaveLength(2);
  });

  it('spaces the mails of one unit 5 min, 15 min, 1 h, and then 1 h again and again', () => {
    const sim = new Simulation();
    for (let at = 0; at < 5 * HOUR; at += 30 * SECOND) sim.fail('nginx.service', at);
    sim.settle();
    const times = sim.unitMails().map((mail) => mail.atMs);
    const gaps = times.slice(1).map((at, index) => at - (times[index] ?? 0));
    expect(gaps).toEqual([5 * MINUTE, 15 * MINUTE, HOUR, HOUR, HOUR, HOUR, HOUR]);
  });

  it('mails a repeat at once when the window since the last mail has passed', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    const mail = only(sim.fail('nginx.service', 6 * MINUTE));
    expect(mail.type === 'unit' && mail.report.count).toBe(1);
    expect(mail.thread.inReplyTo).toBe('<1@test>');
  });

  it('takes the next, longer interval after a repeat mailed at once', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', 6 * MINUTE);
    expect(sim.fail('nginx.service', 7 * MINUTE)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(6 * MINUTE + 15 * MINUTE);
  });

  it('mails at once a failure that follows a quiet period of the longest interval, deep into the backoff', () => {
    const sim = new Simulation();
    for (let at = 0; at < 90 * MINUTE; at += MINUTE) sim.fail('nginx.service', at);
    sim.settle();
    const before = sim.sent.length;
    const lastMailMs = sim.sent.at(-1)?.atMs ?? 0;

    const resumedMs = lastMailMs + 2 * HOUR;
    const mail = only(sim.fail('nginx.service', resumedMs));
    expect(mail.type === 'unit' && mail.report).toMatchObject({ count: 1, firstAtMs: resumedMs });
    expect(sim.sent).toHaveLength(before + 1);
  });

  it('starts the backoff afresh after a quiet period: the next repeat waits the first interval, not the last', () => {
    // Regression: the level was reset only by a due() call, which an idle daemon never makes.
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', MINUTE);
    sim.settle();
    sim.fail('nginx.service', 130 * MINUTE);
    expect(sim.fail('nginx.service', 131 * MINUTE)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(130 * MINUTE + 5 * MINUTE);
  });

  it('sends a critical unit at once even while a storm is being gathered into a digest', () => {
    const sim = new Simulation();
    for (let i = 0; i < 10; i++) sim.fail(`storm-${i}.service`, i);
    const mail = only(sim.fail('vital.service', 20, { critical: true }));
    expect(mail.type === 'unit' && mail.report.unit).toBe('vital.service');
  });

  it('keeps the units apart: a crash loop of one does not delay the first mail of another', () => {
    const sim = new Simulation();
    sim.fail('a.service', 0);
    sim.fail('a.service', SECOND);
    const mail = only(sim.fail('b.service', 2 * MINUTE));
    expect(mail.type === 'unit' && mail.report.unit).toBe('b.service');
    expect(mail.thread.inReplyTo).toBeUndefined();
  });
});

describe('NotificationPolicy: nextDueMs', () => {
  it('is undefined for a policy that has seen nothing', () => {
    expect(new Simulation().policy.nextDueMs()).toBeUndefined();
  });

  it('is undefined after a failure mailed at once: idle needs no timer', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    expect(sim.policy.nextDueMs()).toBeUndefined();
    expect(sim.policy.openIncidents).toBe(1);
    expect(sim.policy.awaitsRecovery('nginx.service')).toBe(true);
  });

  it('is the end of the window while a repeat is held, and undefined again once it is mailed', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', MINUTE);
    expect(sim.policy.nextDueMs()).toBe(5 * MINUTE);
    sim.advanceTo(5 * MINUTE);
    expect(sim.policy.nextDueMs()).toBeUndefined();
  });

  it('is undefined after the last incident has recovered', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.recover('nginx.service', MINUTE);
    expect(sim.policy.nextDueMs()).toBe(MINUTE + DEFAULTS.recoveryGraceMs);
    sim.settle();
    expect(sim.policy.nextDueMs()).toBeUndefined();
    expect(sim.policy.openIncidents).toBe(0);
  });

  it('has nothing to send when due() is called early', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', MINUTE);
    expect(sim.policy.due(2 * MINUTE)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(5 * MINUTE);
  });
});

/**
 * The next deadline worked out the slow way, from the saved state alone, walking every incident:
 * what nextDueMs() computed before it kept an index. The index must agree with it at every step.
 */
function referenceNextDueMs(policy: NotificationPolicy, settings: PolicySettings): number | undefined {
  const incidents = policy
    .incidentUnits()
    .map((unit) => policy.unitState(unit)?.incident)
    .filter((incident) => incident !== undefined);
  const spacing = (level: number) =>
    settings.repeatIntervalsMs[Math.min(level, settings.repeatIntervalsMs.length - 1)] ?? 0;
  const comingUp = (i: (typeof incidents)[number]) =>
    i.upSinceMs !== undefined && i.stoppedAtMs === undefined && i.held === undefined && !i.inDigest;
  const groupReady = new Map<string, number>();
  for (const i of incidents) {
    if (i.rootId === undefined || !comingUp(i)) continue;
    const deadline = (i.upSinceMs ?? 0) + settings.recoveryGraceMs;
    groupReady.set(i.rootId, Math.max(groupReady.get(i.rootId) ?? deadline, deadline));
  }
  const notBeforeGroup = (i: (typeof incidents)[number], ms: number) =>
    Math.max(ms, (i.rootId === undefined ? undefined : groupReady.get(i.rootId)) ?? ms);
  const candidates: number[] = [];
  for (const i of incidents) {
    if (i.held !== undefined && i.lastMailMs !== undefined) candidates.push(i.lastMailMs + spacing(i.level));
    else if (i.inDigest) continue;
    else if (i.gone === true) candidates.push(i.lastFailureMs);
    else if (i.stoppedAtMs !== undefined) candidates.push(notBeforeGroup(i, i.stoppedAtMs));
    else if (i.upSinceMs !== undefined)
      candidates.push(notBeforeGroup(i, i.upSinceMs + settings.recoveryGraceMs));
  }
  const digestDue = policy.globalState().digestDueMs;
  if (digestDue !== undefined) candidates.push(digestDue);
  return candidates.length === 0 ? undefined : Math.min(...candidates);
}

describe('NotificationPolicy: nextDueMs agrees with a walk over every incident', () => {
  it('at every step of a day of failures, storms, recoveries, stops and removals', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const settings: PolicySettings = { ...DEFAULTS, maxMailsPerHour: 40, digestQuietMs: 2 * SECOND };
    let ids = 0;
    const policy = new NotificationPolicy(settings, () => `<${++ids}@test>`);
    let now = 0;
    let checks = 0;
    let mails = 0;
    const check = () => {
      expect(policy.nextDueMs()).toBe(referenceNextDueMs(policy, settings));
      checks++;
    };
    for (let step = 0; step < 4_000; step++) {
      now += Math.floor(random() * (random() < 0.1 ? 10 * MINUTE : 3 * SECOND));
      // Fire what is due first, as the watcher's timer would have, checking after each firing.
      for (let next = policy.nextDueMs(); next !== undefined && next <= now; next = policy.nextDueMs()) {
        mails += policy.due(Math.max(next, 0)).length;
        check();
      }
      const unit = `u${Math.floor(random() * 60)}.service`;
      const roll = random();
      if (roll < 0.55) mails += policy.failure(failureOf(unit, now, { critical: random() < 0.05 })).length;
      else if (roll < 0.8) policy.recovered(unit, now);
      else if (roll < 0.9) policy.stopped(unit, now);
      else policy.unitRemoved(unit);
      check();
    }
    // The day exercised what the index has to follow: digests, groups recovering, and mail.
    expect(checks).toBeGreaterThan(4_000);
    expect(mails).toBeGreaterThan(100);
  });
});

describe('NotificationPolicy: a crash loop of one unit every 10 s for 6 hours', () => {
  const durationMs = 6 * HOUR;

  function crashLoop(): Simulation {
    const sim = new Simulation();
    for (let at = 0; at < durationMs; at += 10 * SECOND) sim.fail('loop.service', at);
    sim.settle();
    return sim;
  }

  it('sends no more mails than one at once plus one per backoff window begun', () => {
    const sim = crashLoop();
    const bound = crashLoopMailBound(DEFAULTS.repeatIntervalsMs, durationMs);
    // 0, 5 min, 20 min, 1 h 20, then hourly: windows begin at 0, 5, 20, 80, 140, 200, 260, 320 min.
    expect(bound).toBe(9);
    expect(sim.sent.length).toBeLessThanOrEqual(bound);
    expect(sim.sent.every((sent) => sent.mail.type === 'unit')).toBe(true);
  });

  it('counts every failure in exactly one mail', () => {
    const sim = crashLoop();
    expect(sim.failures).toBe(2_160);
    expect(sim.countedFailures()).toBe(sim.failures);
    const reports = sim.reports();
    for (let index = 1; index < reports.length; index++) {
      const previous = reports[index - 1] as UnitReport;
      expect(reports[index]?.firstAtMs).toBe(previous.latest.atMs + 10 * SECOND);
    }
    expect(reports.at(-1)?.latest.atMs).toBe(durationMs - 10 * SECOND);
  });

  it('threads every mail after the first under the one before it and the first', () => {
    const sim = crashLoop();
    const threads = sim.sent.map((sent) => sent.mail.thread);
    const firstId = threads[0]?.messageId;
    expect(threads[0]?.inReplyTo).toBeUndefined();
    for (let index = 1; index < threads.length; index++) {
      expect(threads[index]?.inReplyTo).toBe(threads[index - 1]?.messageId);
      expect(threads[index]?.references).toContain(firstId);
      expect(threads[index]?.references).toContain(threads[index - 1]?.messageId);
    }
    expect(new Set(threads.map((thread) => thread.messageId)).size).toBe(threads.length);
  });

  it('has nothing left waiting once the loop ended and its last window was mailed', () => {
    const sim = crashLoop();
    expect(sim.policy.nextDueMs()).toBeUndefined();
    expect(sim.policy.drain(sim.nowMs)).toEqual([]);
  });
});

describe('NotificationPolicy: a storm of 200 units failing within one second', () => {
  const units = Array.from({ length: 200 }, (_, index) => `storm-${String(index).padStart(3, '0')}.service`);

  function storm(): Simulation {
    const sim = new Simulation({ stormThreshold: 3 });
    units.forEach((unit, index) => {
      sim.fail(unit, index * 5);
    });
    return sim;
  }

  it('mails the first 3 units one by one and holds the other 197 for one digest', () => {
    const sim = storm();
    expect(sim.unitMails().map((mail) => mail.report.unit)).toEqual(units.slice(0, 3));
    expect(sim.digests()).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(3 * 5 + DEFAULTS.digestDelayMs);

    sim.settle();
    expect(sim.sent).toHaveLength(4);
    const digest = only(sim.digests());
    expect(digest.atMs).toBe(3 * 5 + DEFAULTS.digestDelayMs);
    expect(digest.reports.map((report) => report.unit)).toEqual(units.slice(3));
    expect(digest.reports.every((report) => report.count === 1)).toBe(true);
    expect(digest.thread.inReplyTo).toBeUndefined();
  });

  it('names every one of the 200 units exactly once', () => {
    const sim = storm();
    sim.settle();
    const named = sim.reports().map((report) => report.unit);
    expect(named).toHaveLength(200);
    expect(new Set(named)).toEqual(new Set(units));
    expect(sim.countedFailures()).toBe(200);
  });

  it('counts in the digest a storm unit that fails again before the digest goes out', () => {
    const sim = storm();
    sim.fail('storm-100.service', 5 * SECOND);
    sim.fail('storm-100.service', 6 * SECOND);
    sim.settle();
    const report = sim.digests()[0]?.reports.find((line) => line.unit === 'storm-100.service');
    expect(report).toMatchObject({ count: 3, firstAtMs: 500, latest: { atMs: 6 * SECOND } });
    expect(sim.countedFailures()).toBe(202);
  });

  it('puts a unit failing later in the same storm into the digest too', () => {
    const sim = storm();
    expect(sim.fail('late.service', 5 * SECOND)).toEqual([]);
    sim.settle();
    expect(sim.digests()[0]?.reports.map((report) => report.unit)).toContain('late.service');
  });

  it('holds repeats of a storm unit after the digest to the unit’s own backoff, threaded under the digest', () => {
    const sim = storm();
    sim.settle();
    const digest = only(sim.digests());
    const digestMs = digest.atMs;

    expect(sim.fail('storm-100.service', digestMs + MINUTE)).toEqual([]);
    expect(sim.fail('storm-100.service', digestMs + 2 * MINUTE)).toEqual([]);
    sim.advanceTo(digestMs + 5 * MINUTE);
    const repeat = only(sim.unitMails('storm-100.service'));
    expect(repeat.atMs).toBe(digestMs + 5 * MINUTE);
    expect(repeat.report.count).toBe(2);
    expect(repeat.thread.inReplyTo).toBe(digest.thread.messageId);
    expect(repeat.thread.references).toContain(digest.thread.messageId);

    expect(sim.fail('storm-100.service', digestMs + 6 * MINUTE)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBe(digestMs + 5 * MINUTE + 15 * MINUTE);
    sim.settle();
    const [, next] = sim.unitMails('storm-100.service');
    expect(next?.atMs).toBe(digestMs + 20 * MINUTE);
    expect(next?.thread.inReplyTo).toBe(repeat.thread.messageId);
  });

  it('holds repeats of the units mailed one by one to their own backoff as well', () => {
    const sim = storm();
    sim.settle();
    expect(sim.fail(units[0] as string, MINUTE)).toEqual([]);
    sim.settle();
    const [first, repeat] = sim.unitMails(units[0]);
    expect(repeat?.atMs).toBe(5 * MINUTE);
    expect(repeat?.thread.inReplyTo).toBe(first?.thread.messageId);
  });
});

describe('NotificationPolicy: the hourly cap', () => {
  const maxMailsPerHour = 5;

  /** Eight units failing two minutes apart (no storm), then repeats of two of them. */
  function capped(): Simulation {
    const sim = new Simulation({ maxMailsPerHour, stormThreshold: 100 });
    for (let index = 0; index < 8; index++) sim.fail(`u${index}.service`, index * 2 * MINUTE);
    sim.fail('u0.service', 20 * MINUTE);
    sim.fail('u0.service', 21 * MINUTE);
    sim.fail('u7.service', 22 * MINUTE);
    return sim;
  }

  it('says in the Nth mail of the hour that the cap is reached, and not before', () => {
    const sim = capped();
    const mails = sim.unitMails();
    expect(mails).toHaveLength(maxMailsPerHour);
    expect(mails.slice(0, maxMailsPerHour - 1).every((mail) => mail.notes.length === 0)).toBe(true);
    const capMail = mails[maxMailsPerHour - 1];
    expect(capMail?.notes.length).toBeGreaterThan(0);
    expect(capMail?.notes.join(' ')).toContain('UNITWATCH_MAX_MAILS_PER_HOUR');
  });

  it('collects the mails beyond the cap into one digest sent when the oldest mail is an hour old', () => {
    const sim = capped();
    expect(sim.policy.nextDueMs()).toBe(HOUR);
    sim.advanceTo(HOUR - 1);
    expect(sim.sent).toHaveLength(maxMailsPerHour);

    sim.settle();
    const digest = only(sim.digests());
    expect(digest.atMs).toBe(HOUR);
    expect(digest.reports.map((report) => report.unit).sort()).toEqual([
      'u0.service',
      'u5.service',
      'u6.service',
      'u7.service',
    ]);
    expect(digest.reports.find((report) => report.unit === 'u0.service')?.count).toBe(2);
    expect(digest.reports.find((report) => report.unit === 'u7.service')?.count).toBe(2);
    expect(sim.sent).toHaveLength(maxMailsPerHour + 1);
  });

  it('says the cap once, not again in the digest that follows it', () => {
    const sim = capped();
    sim.settle();
    const noted = sim.sent.filter(
      ({ mail }) => mail.type !== 'recovery' && mail.notes.some((note) => note.includes('per hour')),
    );
    expect(noted).toHaveLength(1);
  });

  it('loses no failure to the cap', () => {
    const sim = capped();
    sim.settle();
    expect(sim.failures).toBe(11);
    expect(sim.countedFailures()).toBe(11);
    expect(new Set(sim.reports().map((report) => report.unit)).size).toBe(8);
  });

  it('sends at most the cap in any hour, however many units keep failing', () => {
    const sim = new Simulation({ maxMailsPerHour, stormThreshold: 100 });
    for (let at = 0; at < 6 * HOUR; at += 2 * MINUTE) sim.fail(`u${(at / (2 * MINUTE)) % 40}.service`, at);
    sim.settle();
    const times = sim.sent.map((sent) => sent.atMs);
    for (const start of times) {
      expect(times.filter((at) => at >= start && at < start + HOUR).length).toBeLessThanOrEqual(
        maxMailsPerHour,
      );
    }
    expect(sim.countedFailures()).toBe(sim.failures);
  });
});

describe('NotificationPolicy: recovery', () => {
  it('announces a recovery once the unit stayed up for the grace period, threaded under the last mail', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', MINUTE);
    sim.advanceTo(5 * MINUTE);
    expect(sim.recover('nginx.service', 6 * MINUTE)).toEqual([]);

    sim.advanceTo(6 * MINUTE + DEFAULTS.recoveryGraceMs - 1);
    expect(sim.recoveries()).toEqual([]);
    sim.settle();

    const [first, second] = sim.unitMails();
    const recovery = only(sim.recoveries());
    expect(recovery).toMatchObject({
      unit: 'nginx.service',
      critical: false,
      failures: 2,
      sinceMs: 0,
      atMs: 6 * MINUTE + DEFAULTS.recoveryGraceMs,
    });
    expect(recovery.thread.inReplyTo).toBe(second?.thread.messageId);
    expect(recovery.thread.references).toEqual([first?.thread.messageId, second?.thread.messageId]);
    expect(sim.policy.openIncidents).toBe(0);
    expect(sim.policy.awaitsRecovery('nginx.service')).toBe(false);
    expect(sim.policy.nextDueMs()).toBeUndefined();
  });

  it('cancels the recovery when the unit fails again within the grace period', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.recover('nginx.service', MINUTE);
    sim.fail('nginx.service', MINUTE + 10 * SECOND);
    sim.settle();
    expect(sim.recoveries()).toEqual([]);
    expect(sim.unitMails().map((mail) => mail.report.count)).toEqual([1, 1]);
    expect(sim.policy.awaitsRecovery('nginx.service')).toBe(true);
  });

  it('counts the grace from the latest coming up, not from one before a relapse', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.recover('nginx.service', MINUTE);
    sim.fail('nginx.service', MINUTE + 10 * SECOND);
    sim.recover('nginx.service', 10 * MINUTE);
    sim.settle();
    expect(only(sim.recoveries()).atMs).toBe(10 * MINUTE + DEFAULTS.recoveryGraceMs);
  });

  it('starts a new incident, in a new thread, for a failure after the recovery', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.recover('nginx.service', MINUTE);
    sim.settle();
    const mail = only(sim.fail('nginx.service', 2 * MINUTE));
    expect(mail.thread.inReplyTo).toBeUndefined();
    expect(mail.thread.references).toEqual([]);
  });

  it('sends no recovery for ordinary units when recovery mails are off, but still for critical ones', () => {
    const sim = new Simulation({ recoveryMails: false });
    sim.fail('app.service', 0);
    sim.fail('sshd.service', 0, { critical: true });
    sim.recover('app.service', MINUTE);
    sim.recover('sshd.service', MINUTE);
    sim.settle();
    const recovery = only(sim.recoveries());
    expect(recovery).toMatchObject({ unit: 'sshd.service', critical: true });
    expect(sim.policy.openIncidents).toBe(0);
    expect(sim.policy.nextDueMs()).toBeUndefined();
  });

  it('threads interleaved recoveries of several units each under its own incident', () => {
    const sim = new Simulation();
    sim.fail('a.service', 0);
    sim.fail('b.service', 2 * MINUTE);
    sim.fail('c.service', 4 * MINUTE);
    sim.fail('b.service', 5 * MINUTE);
    sim.fail('a.service', 6 * MINUTE);
    sim.recover('b.service', 10 * MINUTE);
    sim.fail('c.service', 10 * MINUTE + 5 * SECOND);
    sim.recover('a.service', 10 * MINUTE + 10 * SECOND);
    sim.recover('c.service', 10 * MINUTE + 20 * SECOND);
    sim.settle();

    for (const unit of ['a.service', 'b.service', 'c.service']) {
      const mails = sim.unitMails(unit);
      const recovery = only(sim.recoveries(unit));
      expect(recovery.thread.inReplyTo).toBe(mails.at(-1)?.thread.messageId);
      expect(recovery.thread.references[0]).toBe(mails[0]?.thread.messageId);
      expect(recovery.failures).toBe(2);
    }
    expect(sim.recoveries().map((recovery) => recovery.unit)).toEqual([
      'b.service',
      'a.service',
      'c.service',
    ]);
  });

  it('sends a held repeat first and the recovery after it, when the unit comes up during its window', () => {
    const sim = new Simulation();
    sim.fail('nginx.service', 0);
    sim.fail('nginx.service', MINUTE);
    sim.recover('nginx.service', 2 * MINUTE);
    expect(sim.policy.nextDueMs()).toBe(5 * MINUTE);
    sim.settle();

    const types = sim.sent.map((sent) => sent.mail.type);
    expect(types).toEqual(['unit', 'unit', 'recovery']);
    const held = sim.unitMails()[1];
    expect(held?.report.count).toBe(1);
    const recovery = only(sim.recoveries());
    expect(recovery.atMs).toBe(5 * MINUTE);
    expect(recovery.thread.inReplyTo).toBe(held?.thread.messageId);
  });

  it('names a unit held only in a storm digest first, then mails its recovery under the digest', () => {
    const sim = new Simulation({ stormThreshold: 3 });
    for (let index = 0; index < 10; index++) sim.fail(`u${index}.service`, index * 100);
    sim.recover('u5.service', 2 * SECOND);
    expect(sim.policy.awaitsRecovery('u5.service')).toBe(false);
    sim.settle();

    const digest = only(sim.digests());
    const recovery = only(sim.recoveries());
    expect(recovery.unit).toBe('u5.service');
    expect(recovery.atMs).toBeGreaterThanOrEqual(digest.atMs);
    const order = sim.sent.map((sent) => sent.mail.type);
    expect(order.indexOf('recovery')).toBeGreaterThan(order.indexOf('digest'));
    expect(recovery.thread.inReplyTo).toBe(digest.thread.messageId);
    expect(recovery.thread.references).toEqual([digest.thread.messageId]);
  });

  it('ignores the recovery of a unit it knows no incident of', () => {
    const sim = new Simulation();
    expect(sim.recover('never-failed.service', 0)).toEqual([]);
    expect(sim.policy.nextDueMs()).toBeUndefined();
    expect(sim.policy.openIncidents).toBe(0);
  });
});

describe('NotificationPolicy: ends of incidents follow the policy', () => {
  it('announces the units of one digest that come back together in one mail, in the digest’s thread', () => {
    const sim = new Simulation();
    const units = Array.from({ length: 100 }, (_, i) => `u${i}.service`);
    for (const unit of units) sim.fail(unit, 0);
    sim.advanceTo(20 * SECOND);
    const digest = only(sim.digests());
    // They come back within a few seconds of each other.
    units.forEach((unit, i) => {
      sim.recover(unit, 30 * SECOND + i * 20);
    });
    sim.settle();
    const mails = sim.sent.filter(({ mail }) => mail.type === 'recovery');
    // The three mailed one by one end in their own threads; the 97 of the digest in one mail.
    const fromDigest = mails.filter(({ mail }) => mail.thread.inReplyTo === digest.thread.messageId);
    expect(fromDigest).toHaveLength(1);
    expect(sim.recoveries().filter((r) => r.mail === fromDigest[0]?.mail)).toHaveLength(97);
    expect(sim.recoveries()).toHaveLength(100);
  });

  it('counts recoveries toward the hourly cap and names those beyond it in the next summary', () => {
    const sim = new Simulation({ maxMailsPerHour: 4, stormThreshold: 100, recoveryGraceMs: 0 });
    for (const unit of ['a.service', 'b.service', 'c.service']) sim.fail(unit, 0);
    sim.recover('a.service', MINUTE);
    sim.recover('b.service', 2 * MINUTE);
    sim.recover('c.service', 3 * MINUTE);
    sim.settle();
    // Mails in the first hour: 3 failures, 1 recovery; the other two after the hour, in one mail.
    const inFirstHour = sim.sent.filter(({ atMs }) => atMs < HOUR);
    expect(inFirstHour).toHaveLength(4);
    const later = only(sim.sent.filter(({ atMs }) => atMs >= HOUR));
    expect(later.mail.type === 'recovery' && later.mail.units.map((u) => u.unit)).toEqual([
      'b.service',
      'c.service',
    ]);
    expect(sim.recoveries()).toHaveLength(3);
  });

  it('ends an incident stopped by hand as "stopped", at once, after what it held', () => {
    const sim = new Simulation();
    sim.fail('loop.service', 0);
    sim.fail('loop.service', 10 * SECOND);
    sim.policy.stopped('loop.service', 20 * SECOND);
    sim.advanceTo(20 * SECOND);
    expect(sim.recoveries()).toEqual([]);
    sim.settle();
    const ended = only(sim.recoveries('loop.service'));
    expect(ended.ending).toBe('stopped');
    expect(ended.failures).toBe(2);
    // After the held repeat (5 min), not after a recovery grace.
    expect(ended.atMs).toBe(5 * MINUTE);
    expect(sim.countedFailures()).toBe(2);
  });
});

describe('NotificationPolicy: critical units', () => {
  it('mails at once a critical unit that stopped cleanly', () => {
    const sim = new Simulation();
    const mail = only(sim.fail('sshd.service', 0, { kind: 'stopped', critical: true }));
    expect(mail.type === 'unit' && mail.report.latest).toMatchObject({ kind: 'stopped', critical: true });
  });

  it('marks the recovery of a critical unit as critical', () => {
    const sim = new Simulation();
    sim.fail('sshd.service', 0, { kind: 'stopped', critical: true });
    sim.recover('sshd.service', MINUTE);
    sim.settle();
    expect(only(sim.recoveries()).critical).toBe(true);
  });
});

describe('NotificationPolicy: drain', () => {
  it('returns every held repeat and the pending digest at once, with the counts intact', () => {
    const sim = new Simulation({ stormThreshold: 3 });
    sim.fail('loop.service', 0);
    sim.fail('loop.service', MINUTE);
    sim.fail('loop.service', MINUTE + SECOND);
    sim.fail('loop.service', MINUTE + 2 * SECOND);
    // The first mail of loop.service is out of the storm window: storm-0 to storm-2 go one by one.
    for (let index = 0; index < 10; index++) sim.fail(`storm-${index}.service`, 2 * MINUTE + index);
    const before = sim.sent.length;

    const drained = sim.drain(2 * MINUTE + SECOND);
    expect(sim.sent.length).toBe(before + drained.length);
    expect(drained.map((mail) => mail.type).sort()).toEqual(['digest', 'unit']);
    const held = drained.find((mail) => mail.type === 'unit');
    expect(held?.type === 'unit' && held.report).toMatchObject({ unit: 'loop.service', count: 3 });
    const digest = drained.find((mail) => mail.type === 'digest');
    expect(digest?.type === 'digest' && digest.reports.map((report) => report.unit)).toEqual(
      Array.from({ length: 7 }, (_, index) => `storm-${index + 3}.service`),
    );
    expect(sim.countedFailures()).toBe(sim.failures);
    expect(sim.policy.nextDueMs()).toBeUndefined();
  });

  it('sends the digest held back by the cap at once, as the unit’s own mail when it names one unit', () => {
    const sim = new Simulation({ maxMailsPerHour: 2, stormThreshold: 100 });
    sim.fail('a.service', 0);
    sim.fail('b.service', MINUTE);
    sim.fail('c.service', 2 * MINUTE);
    const mail = only(sim.drain(3 * MINUTE));
    expect(mail.type === 'unit' && mail.report.unit).toBe('c.service');
    expect(sim.countedFailures()).toBe(3);
  });

  it('returns nothing when nothing is held', () => {
    const sim = new Simulation();
    sim.fail('a.service', 0);
    expect(sim.drain(MINUTE)).toEqual([]);
  });
});

/** Many units failing, relapsing and recovering for 12 hours; restarted every `restartEvery` events. */
function mixedDay(
  restartEvery = Number.POSITIVE_INFINITY,
  overrides: Partial<PolicySettings> = {},
): Simulation {
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const sim = new Simulation({ maxMailsPerHour: 20, ...overrides });
  let events = 0;
  for (let at = 0; at < 12 * HOUR; at += Math.floor(random() * 90 * SECOND)) {
    const unit = `u${Math.floor(random() * 25)}.service`;
    if (random() < 0.8) sim.fail(unit, at);
    else sim.recover(unit, at);
    if (++events % restartEvery === 0) sim.restart();
  }
  sim.settle();
  return sim;
}

describe('NotificationPolicy: digests', () => {
  it('never sends a digest of one unit: a lone unit gathered in a storm gets its own mail and thread', () => {
    const sim = new Simulation();
    sim.fail('a.service', 0);
    sim.fail('b.service', SECOND);
    sim.fail('c.service', 2 * SECOND);
    sim.fail('late.service', 20 * SECOND);
    sim.settle();
    expect(sim.digests()).toEqual([]);
    const late = only(sim.unitMails('late.service'));
    expect(late.thread.inReplyTo).toBeUndefined();
    expect(late.atMs).toBe(30 * SECOND);
  });

  it('goes out once failures stop arriving for the quiet period, before the whole delay', () => {
    const sim = new Simulation({ digestQuietMs: 2 * SECOND, digestDelayMs: 10 * SECOND });
    for (let i = 0; i < 53; i++) sim.fail(`u${i}.service`, i * 12);
    sim.settle();
    const digest = only(sim.digests());
    expect(digest.reports).toHaveLength(50);
    // The last failure came at 636 ms; the digest 2 s later, not 10 s after the first.
    expect(digest.atMs).toBe(52 * 12 + 2 * SECOND);
  });

  it('still goes out at the whole delay while failures keep coming', () => {
    const sim = new Simulation({ digestQuietMs: 2 * SECOND, digestDelayMs: 10 * SECOND });
    for (let at = 0; at < 30 * SECOND; at += SECOND) sim.fail(`u${at}.service`, at);
    sim.settle();
    expect(sim.digests()[0]?.atMs).toBe(3 * SECOND + 10 * SECOND);
  });
});

describe('NotificationPolicy: restored after a restart', () => {
  it('sends exactly the mails, counts, threads and times it would have sent without the restarts', () => {
    const uninterrupted = mixedDay();
    // Restarts land in held repeats, open digests, a reached cap and recovery graces alike.
    for (const every of [1, 7, 37]) {
      const restarted = mixedDay(every);
      expect(JSON.parse(JSON.stringify(restarted.sent))).toEqual(
        JSON.parse(JSON.stringify(uninterrupted.sent)),
      );
    }
    expect(uninterrupted.digests().length).toBeGreaterThan(0);
    const quiet = { digestQuietMs: 2 * SECOND };
    expect(JSON.stringify(mixedDay(5, quiet).sent)).toBe(JSON.stringify(mixedDay(undefined, quiet).sent));
    expect(uninterrupted.sent.some(({ mail }) => mail.type !== 'recovery' && mail.notes.length > 0)).toBe(
      true,
    );
  });

  it('keeps nothing for a unit whose incident has ended', () => {
    const sim = new Simulation();
    sim.fail('a.service', 0);
    sim.recover('a.service', SECOND);
    sim.settle();
    sim.restart();
    expect(sim.policy.openIncidents).toBe(0);
    expect(sim.policy.nextDueMs()).toBeUndefined();
  });
});

describe('NotificationPolicy: a long, mixed day', () => {
  it('accounts for every failure of many units failing, relapsing and recovering for 12 hours', () => {
    const sim = mixedDay();
    sim.drain(sim.nowMs);
    expect(sim.failures).toBeGreaterThan(500);
    expect(sim.countedFailures()).toBe(sim.failures);
    const ids = sim.sent.map((sent) => sent.mail.thread.messageId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
