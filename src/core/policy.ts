import { DeadlineQueue } from './deadline-queue.js';
import type { FailureKind, UnitFacts } from './failure.js';

/**
 * Decides which mail goes out when: per-unit backoff for repeats, one digest for storms, a global
 * hourly cap, and recovery notices. Pure: the caller passes the time in and sends what comes out.
 * Nothing is dropped: every failure is counted into some later mail.
 */

export interface PolicySettings {
  /** Minimum spacing between two mails about one unit, growing with each mail of an incident. */
  readonly repeatIntervalsMs: readonly number[];
  /** Individual first-failure mails allowed within `stormWindowMs`; beyond that, failures go into a digest. */
  readonly stormThreshold: number;
  readonly stormWindowMs: number;
  /** How long a digest collects at most before it is sent. */
  readonly digestDelayMs: number;
  /**
   * A digest goes out this long after the last failure it gathered, if that is sooner: a storm
   * that is over is mailed at once, not after the whole delay. Undefined waits the whole delay.
   */
  readonly digestQuietMs?: number;
  readonly maxMailsPerHour: number;
  readonly recoveryMails: boolean;
  /** A unit must stay up this long before its recovery is announced (a crash loop is not a recovery). */
  readonly recoveryGraceMs: number;
}

export interface FailureEvent {
  readonly kind: FailureKind;
  readonly facts: UnitFacts;
  readonly atMs: number;
  /** A UNITWATCH_CRITICAL unit: reported at high priority, even on a clean stop. */
  readonly critical: boolean;
}

export interface Thread {
  readonly messageId: string;
  readonly inReplyTo: string | undefined;
  readonly references: readonly string[];
}

export interface UnitReport {
  readonly unit: string;
  readonly latest: FailureEvent;
  /** Failures this mail accounts for, the latest included. */
  readonly count: number;
  readonly firstAtMs: number;
}

export type Outgoing =
  | {
      readonly type: 'unit';
      readonly report: UnitReport;
      readonly thread: Thread;
      readonly notes: readonly string[];
    }
  | {
      readonly type: 'digest';
      readonly reports: readonly UnitReport[];
      readonly thread: Thread;
      readonly notes: readonly string[];
    }
  | {
      /** Units whose incidents ended together: one unit, or the units of one digest coming back. */
      readonly type: 'recovery';
      readonly units: readonly RecoveredUnit[];
      readonly atMs: number;
      readonly thread: Thread;
      readonly notes: readonly string[];
    };

export interface RecoveredUnit {
  readonly unit: string;
  readonly critical: boolean;
  readonly failures: number;
  readonly sinceMs: number;
  /** Up again, or stopped by hand (while crash-looping, or while running after its failures). */
  readonly ending: 'recovered' | 'stopped';
}

interface Held {
  count: number;
  latest: FailureEvent;
  firstAtMs: number;
}

/** Plain data, so a snapshot survives JSON and a restart resumes exactly where the policy stopped. */
export interface Incident {
  level: number;
  lastMailMs: number | undefined;
  lastFailureMs: number;
  firstFailureMs: number;
  failures: number;
  held: Held | undefined;
  inDigest: boolean;
  critical: boolean;
  /** A mail about this incident went out, so its end is worth a recovery notice. */
  reported: boolean;
  upSinceMs: number | undefined;
  rootId: string | undefined;
  lastId: string | undefined;
  /** systemd unloaded the unit while a mail about it was still owed: closes once that is sent. */
  gone?: boolean;
  /** Stopped by hand: the incident ends at once (no grace), as "stopped", once nothing is held. */
  stoppedAtMs?: number | undefined;
}

/** One unit's share of the policy's state; absent parts are not held. */
export interface UnitPolicyState {
  readonly incident?: Incident;
  readonly digest?: Held;
}

/** The policy's state that belongs to no one unit: the storm, the digest's deadline and the hourly cap. */
export interface GlobalPolicyState {
  readonly digestDueMs: number | undefined;
  /** When the digest being gathered got its first unit, and the earliest the hourly cap allows it. */
  readonly digestStartMs?: number | undefined;
  readonly digestNotBeforeMs?: number | undefined;
  /** Ends of incidents beyond the hourly cap, named in the next summary. */
  readonly heldRecoveries?: readonly RecoveredUnit[];
  readonly individualMailTimes: readonly number[];
  readonly mailTimes: readonly number[];
  readonly capAnnounced: boolean;
}

/** What changed since the last call: units whose state is new (null: forgotten) and the global part. */
export interface PolicyChanges {
  readonly units: ReadonlyArray<readonly [unit: string, state: UnitPolicyState | null]>;
  readonly global: GlobalPolicyState | undefined;
}

export interface IncidentView {
  readonly unit: string;
  readonly failures: number;
  /** Failures counted but in no mail yet. */
  readonly held: number;
  readonly critical: boolean;
  readonly state: 'mailed' | 'held' | 'in digest' | 'recovering';
  /** When the policy acts on it next (a held mail, the digest, the recovery notice). */
  readonly nextDueMs: number | undefined;
  readonly firstFailureMs: number;
}

const HOUR_MS = 3_600_000;

export class NotificationPolicy {
  readonly #settings: PolicySettings;
  readonly #newMessageId: () => string;
  readonly #incidents = new Map<string, Incident>();
  readonly #digest = new Map<string, Held>();
  #digestDueMs: number | undefined;
  #digestStartMs: number | undefined;
  #digestNotBeforeMs: number | undefined;
  #heldRecoveries: RecoveredUnit[] = [];
  readonly #individualMailTimes: number[] = [];
  readonly #mailTimes: number[] = [];
  #capAnnounced = false;
  /** Units whose state changed since takeChanges() last ran, and whether the global part did. */
  readonly #dirty = new Set<string>();
  #globalDirty = false;
  /**
   * When `due` must next look at each unit, kept up to date from the units touched since, so that
   * neither `nextDueMs` nor `due` walks every open incident (a storm of thousands would make each
   * event cost as much as the storm). `#groups` indexes incidents by their thread's root, whose
   * recoveries end together; `#groupReady` is when the last unit of such a group is through its
   * grace period.
   */
  readonly #deadlines = new DeadlineQueue<string>();
  readonly #stale = new Set<string>();
  readonly #staleRoots = new Set<string>();
  readonly #groups = new Map<string, Set<string>>();
  readonly #groupReady = new Map<string, number>();

  constructor(settings: PolicySettings, newMessageId: () => string) {
    this.#settings = settings;
    this.#newMessageId = newMessageId;
  }

  /**
   * Resumes from a saved state (start-up after a stop or a crash). Objects are copied, so the
   * caller's snapshot is never mutated by later decisions.
   */
  restore(units: Iterable<readonly [string, UnitPolicyState]>, global: GlobalPolicyState | undefined): void {
    for (const [unit, state] of units) {
      if (state.incident !== undefined) {
        const incident = structuredClone(state.incident);
        this.#incidents.set(unit, incident);
        if (incident.rootId !== undefined) this.#joinGroup(unit, incident.rootId);
        this.#stale.add(unit);
      }
      if (state.digest !== undefined) this.#digest.set(unit, structuredClone(state.digest));
    }
    if (global !== undefined) {
      this.#digestDueMs = global.digestDueMs;
      this.#digestStartMs = global.digestStartMs;
      this.#digestNotBeforeMs = global.digestNotBeforeMs;
      this.#heldRecoveries = [...(global.heldRecoveries ?? [])];
      this.#individualMailTimes.push(...global.individualMailTimes);
      this.#mailTimes.push(...global.mailTimes);
      this.#capAnnounced = global.capAnnounced;
    }
    // A digest restored without its deadline (or the reverse) would never be sent, or sent empty.
    if (this.#digest.size > 0)
      this.#digestDueMs ??= Math.min(...[...this.#digest.values()].map((h) => h.firstAtMs));
  }

  /** The state changed since the last call, for a store that writes only what moved. */
  takeChanges(): PolicyChanges {
    const units: Array<readonly [string, UnitPolicyState | null]> = [];
    for (const unit of this.#dirty) units.push([unit, this.unitState(unit) ?? null]);
    this.#dirty.clear();
    const global = this.#globalDirty ? this.globalState() : undefined;
    this.#globalDirty = false;
    return { units, global };
  }

  unitState(unit: string): UnitPolicyState | undefined {
    const incident = this.#incidents.get(unit);
    const digest = this.#digest.get(unit);
    if (incident === undefined && digest === undefined) return undefined;
    return {
      ...(incident === undefined ? {} : { incident: structuredClone(incident) }),
      ...(digest === undefined ? {} : { digest: structuredClone(digest) }),
    };
  }

  globalState(): GlobalPolicyState {
    return {
      digestDueMs: this.#digestDueMs,
      digestStartMs: this.#digestStartMs,
      digestNotBeforeMs: this.#digestNotBeforeMs,
      heldRecoveries: [...this.#heldRecoveries],
      individualMailTimes: [...this.#individualMailTimes],
      mailTimes: [...this.#mailTimes],
      capAnnounced: this.#capAnnounced,
    };
  }

  /** Failures counted but not yet in any mail: held by spacing, or gathered for the digest. */
  get heldFailures(): number {
    let held = 0;
    for (const incident of this.#incidents.values()) held += incident.held?.count ?? 0;
    for (const entry of this.#digest.values()) held += entry.count;
    return held;
  }

  /** Units with an open incident: failed, held back, or waiting to be seen up again. */
  get openIncidents(): number {
    return this.#incidents.size;
  }

  /** What `unitwatch status` shows of each open incident. */
  incidentViews(): IncidentView[] {
    const views: IncidentView[] = [];
    for (const [unit, incident] of this.#incidents) {
      const digest = this.#digest.get(unit);
      const held = incident.held?.count ?? digest?.count ?? 0;
      let nextDueMs: number | undefined;
      if (incident.held !== undefined && incident.lastMailMs !== undefined) {
        nextDueMs = incident.lastMailMs + this.#spacing(incident.level);
      } else if (incident.inDigest) nextDueMs = this.#digestDueMs;
      else if (incident.upSinceMs !== undefined)
        nextDueMs = incident.upSinceMs + this.#settings.recoveryGraceMs;
      views.push({
        unit,
        failures: incident.failures,
        held,
        critical: incident.critical,
        state: incident.inDigest
          ? 'in digest'
          : incident.held !== undefined
            ? 'held'
            : incident.upSinceMs !== undefined
              ? 'recovering'
              : 'mailed',
        nextDueMs,
        firstFailureMs: incident.firstFailureMs,
      });
    }
    return views;
  }

  /** Mails sent in the last hour, and the cap. */
  capUse(nowMs: number): { used: number; max: number } {
    return {
      used: this.#mailTimes.filter((ms) => ms > nowMs - HOUR_MS).length,
      max: this.#settings.maxMailsPerHour,
    };
  }

  /** Units with an open incident. */
  incidentUnits(): string[] {
    return [...this.#incidents.keys()];
  }

  hasIncident(unit: string): boolean {
    return this.#incidents.has(unit);
  }

  awaitsRecovery(unit: string): boolean {
    return this.#incidents.get(unit)?.reported === true;
  }

  failure(event: FailureEvent): Outgoing[] {
    const now = event.atMs;
    const unit = event.facts.unit;
    this.#touch(unit);
    let incident = this.#incidents.get(unit);
    if (incident === undefined) {
      incident = {
        level: 0,
        lastMailMs: undefined,
        lastFailureMs: now,
        firstFailureMs: now,
        failures: 0,
        held: undefined,
        inDigest: false,
        critical: event.critical,
        reported: false,
        upSinceMs: undefined,
        rootId: undefined,
        lastId: undefined,
      };
      this.#incidents.set(unit, incident);
    }
    if (
      incident.held === undefined &&
      !incident.inDigest &&
      incident.lastMailMs !== undefined &&
      now >= incident.lastFailureMs + this.#longestInterval()
    ) {
      // Quiet for the longest interval: the backoff starts afresh, the thread and recovery stay.
      incident.lastMailMs = undefined;
      incident.level = 0;
    }
    incident.failures++;
    incident.lastFailureMs = now;
    incident.upSinceMs = undefined;
    incident.stoppedAtMs = undefined;
    incident.gone = false;
    incident.critical ||= event.critical;

    const digestEntry = this.#digest.get(unit);
    if (digestEntry !== undefined) {
      hold(digestEntry, event);
      this.#setDigestDue(now);
      return [];
    }
    if (incident.held !== undefined) {
      hold(incident.held, event);
      return [];
    }
    if (incident.lastMailMs !== undefined && now < incident.lastMailMs + this.#spacing(incident.level)) {
      incident.held = { count: 1, latest: event, firstAtMs: now };
      return [];
    }
    const isFirstOfIncident = incident.lastMailMs === undefined;
    // A critical unit is never kept waiting for a digest.
    if (isFirstOfIncident && !event.critical && this.#stormInProgress(now)) {
      this.#addToDigest(unit, { count: 1, latest: event, firstAtMs: now }, now);
      return [];
    }
    if (isFirstOfIncident) {
      this.#individualMailTimes.push(now);
      this.#globalDirty = true;
    }
    return this.#sendUnitMail(incident, { unit, latest: event, count: 1, firstAtMs: now }, now);
  }

  /**
   * systemd unloaded the unit: its incident closes unless a mail about it is still owed (held or in
   * the digest), which goes out as planned. True when an incident was closed.
   */
  unitRemoved(unit: string): boolean {
    const incident = this.#incidents.get(unit);
    if (incident === undefined) return false;
    this.#touch(unit);
    if (incident.held !== undefined || incident.inDigest) {
      incident.gone = true;
      return false;
    }
    this.#deleteIncident(unit);
    return true;
  }

  /**
   * The unit was stopped by hand (systemctl stop) while its incident was open: the incident ends as
   * "stopped", without the grace period, once what is held about it has gone out.
   */
  stopped(unit: string, atMs: number): Outgoing[] {
    const incident = this.#incidents.get(unit);
    if (incident === undefined) return [];
    this.#touch(unit);
    incident.stoppedAtMs ??= atMs;
    return [];
  }

  /** The unit is up again (active, or its next run succeeded). */
  recovered(unit: string, atMs: number): Outgoing[] {
    const incident = this.#incidents.get(unit);
    if (incident === undefined) return [];
    if (incident.upSinceMs === undefined) this.#touch(unit);
    incident.upSinceMs ??= atMs;
    return [];
  }

  /** Everything whose time has come: ends of backoff windows, digests, settled recoveries. */
  due(nowMs: number): Outgoing[] {
    const out: Outgoing[] = [];
    const ending: Array<readonly [string, Incident]> = [];
    this.#globalDirty = true;
    this.#forgetOldMailTimes(nowMs);
    this.#refreshDeadlines();
    // Ties by name: the heap's order depends on its history, and a restored policy (another
    // history) must decide exactly as the one that kept running.
    const dueUnits = this.#deadlines
      .takeDue(nowMs)
      .sort((a, b) => a.atMs - b.atMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const { key: unit } of dueUnits) {
      // Whatever happens to it below, its deadline is worked out afresh.
      this.#stale.add(unit);
      const incident = this.#incidents.get(unit);
      if (incident === undefined) continue;
      const held = incident.held;
      if (held !== undefined && incident.lastMailMs !== undefined) {
        if (nowMs >= incident.lastMailMs + this.#spacing(incident.level)) {
          this.#touch(unit);
          incident.held = undefined;
          out.push(...this.#sendUnitMail(incident, { unit, ...held }, nowMs));
        }
        continue;
      }
      if (incident.inDigest) continue;
      if (incident.gone === true) {
        this.#touch(unit);
        this.#deleteIncident(unit);
        continue;
      }
      if (this.#endsNow(incident, nowMs)) ending.push([unit, incident]);
    }
    out.push(...this.#endIncidents(ending, nowMs));
    if (this.#digestDueMs !== undefined && nowMs >= this.#digestDueMs) out.push(...this.#flushDigest(nowMs));
    return out;
  }

  #endsNow(incident: Incident, nowMs: number): boolean {
    if (incident.stoppedAtMs !== undefined) return true;
    return incident.upSinceMs !== undefined && nowMs >= incident.upSinceMs + this.#settings.recoveryGraceMs;
  }

  /**
   * Ends incidents, one notice for those that failed together (same first mail, e.g. a digest):
   * a storm that comes back is one mail, not one per unit. A unit of the group that is up but still
   * in its grace period holds the group back until it is through, so the group is not split.
   */
  #endIncidents(ending: ReadonlyArray<readonly [string, Incident]>, nowMs: number): Outgoing[] {
    const groups = new Map<string, Array<readonly [string, Incident]>>();
    for (const entry of ending) {
      const root = entry[1].rootId ?? entry[0];
      const group = groups.get(root) ?? [];
      group.push(entry);
      groups.set(root, group);
    }
    const out: Outgoing[] = [];
    for (const [root, group] of groups) {
      if (this.#groupStillComingUp(root, nowMs)) continue;
      const ended: RecoveredUnit[] = [];
      for (const [unit, incident] of group) {
        this.#touch(unit);
        this.#deleteIncident(unit);
        if (!incident.reported || !(this.#settings.recoveryMails || incident.critical)) continue;
        ended.push({
          unit,
          critical: incident.critical,
          failures: incident.failures,
          sinceMs: incident.firstFailureMs,
          ending: incident.stoppedAtMs === undefined ? 'recovered' : 'stopped',
        });
      }
      const first = group[0]?.[1];
      if (ended.length > 0 && first !== undefined) out.push(...this.#recoveryMail(ended, first, nowMs));
    }
    return out;
  }

  #groupStillComingUp(root: string, nowMs: number): boolean {
    return nowMs < (this.#readyTime(root) ?? Number.NEGATIVE_INFINITY);
  }

  /** When the last unit of the group still coming up is through its grace period; undefined: none is. */
  #readyTime(root: string): number | undefined {
    let ready: number | undefined;
    for (const unit of this.#groups.get(root) ?? []) {
      const incident = this.#incidents.get(unit);
      if (incident === undefined || !this.#comingUp(incident)) continue;
      const deadline = (incident.upSinceMs ?? 0) + this.#settings.recoveryGraceMs;
      ready = ready === undefined ? deadline : Math.max(ready, deadline);
    }
    return ready;
  }

  /** Up again and waiting out the grace period, with nothing held: its recovery is next. */
  #comingUp(incident: Incident): boolean {
    return (
      incident.upSinceMs !== undefined &&
      incident.stoppedAtMs === undefined &&
      incident.held === undefined &&
      !incident.inDigest
    );
  }

  /**
   * Everything held back, sent now regardless of windows and cap: on shutdown the counts would
   * otherwise die with the process. The outbox keeps them until the next start delivers them.
   */
  drain(nowMs: number): Outgoing[] {
    const out: Outgoing[] = [];
    this.#globalDirty = true;
    for (const [unit, incident] of this.#incidents) {
      const held = incident.held;
      if (held === undefined) continue;
      this.#touch(unit);
      incident.held = undefined;
      incident.lastMailMs = nowMs;
      out.push({
        type: 'unit',
        report: { unit, ...held },
        thread: this.#nextThread(unit, incident),
        notes: [],
      });
    }
    if (this.#digest.size > 0) {
      this.#mailTimes.length = 0;
      out.push(...this.#flushDigest(nowMs));
    }
    return out;
  }

  /** When `due` next has something to do; undefined means nothing is waiting and no timer is needed. */
  nextDueMs(): number | undefined {
    this.#refreshDeadlines();
    const unitDue = this.#deadlines.earliest();
    if (this.#digestDueMs === undefined) return unitDue;
    return unitDue === undefined ? this.#digestDueMs : Math.min(unitDue, this.#digestDueMs);
  }

  /** The unit's state changed: it is saved with the next takeChanges() and its deadline recomputed. */
  #touch(unit: string): void {
    this.#dirty.add(unit);
    this.#stale.add(unit);
  }

  #joinGroup(unit: string, root: string): void {
    let members = this.#groups.get(root);
    if (members === undefined) {
      members = new Set();
      this.#groups.set(root, members);
    }
    members.add(unit);
    this.#staleRoots.add(root);
  }

  /** The incident's thread starts here (unless it already has one): the unit joins that group. */
  #setRoot(unit: string | undefined, incident: Incident, messageId: string): void {
    if (incident.rootId !== undefined) return;
    incident.rootId = messageId;
    if (unit !== undefined) this.#joinGroup(unit, messageId);
  }

  #deleteIncident(unit: string): void {
    const root = this.#incidents.get(unit)?.rootId;
    this.#incidents.delete(unit);
    this.#deadlines.delete(unit);
    if (root === undefined) return;
    const members = this.#groups.get(root);
    members?.delete(unit);
    if (members?.size === 0) this.#groups.delete(root);
    this.#staleRoots.add(root);
  }

  /**
   * Recomputes the deadlines of the units touched since the last call. A group's ready time moves
   * only when one of its units changed; then each of its units is recomputed, since its ending
   * waits for the whole group (see #endIncidents).
   */
  #refreshDeadlines(): void {
    if (this.#stale.size === 0 && this.#staleRoots.size === 0) return;
    for (const unit of this.#stale) {
      const root = this.#incidents.get(unit)?.rootId;
      if (root !== undefined) this.#staleRoots.add(root);
    }
    for (const root of this.#staleRoots) {
      const ready = this.#readyTime(root);
      if (ready === this.#groupReady.get(root)) continue;
      if (ready === undefined) this.#groupReady.delete(root);
      else this.#groupReady.set(root, ready);
      for (const unit of this.#groups.get(root) ?? []) this.#stale.add(unit);
    }
    this.#staleRoots.clear();
    for (const unit of this.#stale) {
      const incident = this.#incidents.get(unit);
      this.#deadlines.set(unit, incident === undefined ? undefined : this.#deadlineOf(incident));
    }
    this.#stale.clear();
  }

  /** When `due` must look at this incident; undefined: only an event (or the digest) moves it. */
  #deadlineOf(incident: Incident): number | undefined {
    if (incident.held !== undefined && incident.lastMailMs !== undefined) {
      return incident.lastMailMs + this.#spacing(incident.level);
    }
    if (incident.inDigest) return undefined;
    // Gone from systemd and nothing owed any more: closed at the next due(), which is now.
    if (incident.gone === true) return incident.lastFailureMs;
    let end: number;
    if (incident.stoppedAtMs !== undefined) end = incident.stoppedAtMs;
    else if (incident.upSinceMs !== undefined) end = incident.upSinceMs + this.#settings.recoveryGraceMs;
    else return undefined;
    const ready = incident.rootId === undefined ? undefined : this.#groupReady.get(incident.rootId);
    return ready === undefined ? end : Math.max(end, ready);
  }

  #spacing(level: number): number {
    const intervals = this.#settings.repeatIntervalsMs;
    return intervals[Math.min(level, intervals.length - 1)] ?? 0;
  }

  #longestInterval(): number {
    return Math.max(0, ...this.#settings.repeatIntervalsMs);
  }

  #stormInProgress(now: number): boolean {
    const window = this.#settings.stormWindowMs;
    while ((this.#individualMailTimes[0] ?? Number.POSITIVE_INFINITY) <= now - window) {
      this.#individualMailTimes.shift();
      this.#globalDirty = true;
    }
    return this.#digest.size > 0 || this.#individualMailTimes.length >= this.#settings.stormThreshold;
  }

  #addToDigest(unit: string, held: Held, now: number): void {
    const incident = this.#incidents.get(unit);
    if (incident !== undefined) incident.inDigest = true;
    this.#touch(unit);
    this.#globalDirty = true;
    this.#digest.set(unit, held);
    this.#digestStartMs ??= now;
    this.#setDigestDue(now);
  }

  /** The digest's deadline: the whole delay from its start, or sooner once failures stop coming. */
  #setDigestDue(now: number): void {
    const start = this.#digestStartMs ?? now;
    const byDelay = start + this.#settings.digestDelayMs;
    const quiet = this.#settings.digestQuietMs;
    const due = quiet === undefined ? byDelay : Math.min(byDelay, now + quiet);
    this.#globalDirty = true;
    this.#digestDueMs = Math.max(this.#digestNotBeforeMs ?? due, due);
  }

  #forgetOldMailTimes(now: number): void {
    while ((this.#mailTimes[0] ?? Number.POSITIVE_INFINITY) <= now - HOUR_MS) this.#mailTimes.shift();
  }

  /** Takes a slot under the hourly cap, or says when the next one frees up. */
  #takeMailSlot(now: number): { ok: true; notes: string[] } | { ok: false; freeAtMs: number } {
    this.#globalDirty = true;
    this.#forgetOldMailTimes(now);
    const max = this.#settings.maxMailsPerHour;
    if (this.#mailTimes.length >= max) return { ok: false, freeAtMs: (this.#mailTimes[0] ?? now) + HOUR_MS };
    this.#mailTimes.push(now);
    const notes: string[] = [];
    if (this.#mailTimes.length === max) {
      if (!this.#capAnnounced) {
        notes.push(
          `This is mail ${max} of at most ${max} per hour (UNITWATCH_MAX_MAILS_PER_HOUR). Further ` +
            'notifications are collected and sent as one summary when the hour allows.',
        );
      }
      this.#capAnnounced = true;
    } else if (this.#mailTimes.length < max / 2) {
      this.#capAnnounced = false;
    }
    return { ok: true, notes };
  }

  #sendUnitMail(incident: Incident, report: UnitReport, now: number): Outgoing[] {
    const slot = this.#takeMailSlot(now);
    if (!slot.ok) {
      this.#digestNotBeforeMs = Math.max(this.#digestNotBeforeMs ?? 0, slot.freeAtMs);
      this.#addToDigest(
        report.unit,
        { count: report.count, latest: report.latest, firstAtMs: report.firstAtMs },
        now,
      );
      return [];
    }
    const thread = this.#nextThread(report.unit, incident);
    incident.level = incident.lastMailMs === undefined ? 0 : incident.level + 1;
    incident.lastMailMs = now;
    incident.reported = true;
    return [{ type: 'unit', report, thread, notes: slot.notes }];
  }

  #flushDigest(now: number): Outgoing[] {
    if (this.#digest.size === 0 && this.#heldRecoveries.length === 0) {
      this.#digestDueMs = undefined;
      return [];
    }
    const slot = this.#takeMailSlot(now);
    if (!slot.ok) {
      this.#digestNotBeforeMs = slot.freeAtMs;
      this.#digestDueMs = slot.freeAtMs;
      return [];
    }
    this.#digestStartMs = undefined;
    this.#digestNotBeforeMs = undefined;
    const recovered = this.#heldRecoveries;
    this.#heldRecoveries = [];
    if (this.#digest.size === 0) {
      this.#digestDueMs = undefined;
      const thread = { messageId: this.#newMessageId(), inReplyTo: undefined, references: [] };
      return [{ type: 'recovery', units: recovered, atMs: now, thread, notes: slot.notes }];
    }
    if (recovered.length > 0) slot.notes.push(recoveredNote(recovered));
    if (this.#digest.size === 1) return this.#flushDigestOfOne(slot.notes, now);
    const reports: UnitReport[] = [];
    const messageId = this.#newMessageId();
    this.#globalDirty = true;
    for (const [unit, held] of this.#digest) {
      this.#touch(unit);
      reports.push({ unit, ...held });
      const incident = this.#incidents.get(unit);
      if (incident === undefined) continue;
      incident.inDigest = false;
      incident.level = incident.lastMailMs === undefined ? 0 : incident.level + 1;
      incident.reported = true;
      incident.lastMailMs = now;
      this.#setRoot(unit, incident, messageId);
      incident.lastId = messageId;
    }
    this.#digest.clear();
    this.#digestDueMs = undefined;
    reports.sort((a, b) => a.firstAtMs - b.firstAtMs || a.unit.localeCompare(b.unit));
    return [
      {
        type: 'digest',
        reports,
        thread: { messageId, inReplyTo: undefined, references: [] },
        notes: slot.notes,
      },
    ];
  }

  /** A digest of one unit is that unit's own mail, with its name in the Subject and its thread. */
  #flushDigestOfOne(notes: readonly string[], now: number): Outgoing[] {
    const [entry] = this.#digest;
    this.#digest.clear();
    this.#digestDueMs = undefined;
    if (entry === undefined) return [];
    const [unit, held] = entry;
    this.#touch(unit);
    const incident = this.#incidents.get(unit);
    if (incident === undefined) return [];
    incident.inDigest = false;
    const thread = this.#nextThread(unit, incident);
    incident.level = incident.lastMailMs === undefined ? 0 : incident.level + 1;
    incident.lastMailMs = now;
    incident.reported = true;
    return [{ type: 'unit', report: { unit, ...held }, thread, notes }];
  }

  /** Recoveries count toward the hourly cap; beyond it they are named in the next summary. */
  #recoveryMail(units: readonly RecoveredUnit[], incident: Incident, now: number): Outgoing[] {
    const slot = this.#takeMailSlot(now);
    if (!slot.ok) {
      this.#globalDirty = true;
      this.#heldRecoveries.push(...units);
      this.#digestNotBeforeMs = Math.max(this.#digestNotBeforeMs ?? 0, slot.freeAtMs);
      this.#digestDueMs = Math.max(this.#digestDueMs ?? 0, slot.freeAtMs);
      return [];
    }
    // The incident is closed already: its thread is continued, no group is joined.
    const thread = this.#nextThread(undefined, incident);
    return [{ type: 'recovery', units, atMs: now, thread, notes: slot.notes }];
  }

  #nextThread(unit: string | undefined, incident: Incident): Thread {
    const messageId = this.#newMessageId();
    const thread: Thread = {
      messageId,
      inReplyTo: incident.lastId,
      references: [
        ...new Set([incident.rootId, incident.lastId].filter((id): id is string => id !== undefined)),
      ],
    };
    this.#setRoot(unit, incident, messageId);
    incident.lastId = messageId;
    return thread;
  }
}

function recoveredNote(units: readonly RecoveredUnit[]): string {
  const names = units.map((u) => `${u.unit} (${u.ending})`).join(', ');
  return `Ended while the hourly cap held mail back: ${names}.`;
}

function hold(held: Held, event: FailureEvent): void {
  held.count++;
  held.latest = event;
}
