import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { ComposedMail } from '../core/message.js';
import type { Notification } from '../core/notification.js';
import { rejectedSummary } from '../core/rejection-report.js';
import { DEFAULT_RETRY, nextAttemptDelayMs, type RetryOptions } from '../core/retry.js';
import { cleanLine } from '../core/text.js';
import { type DeliveryChannel, mailChannel } from './delivery-channel.js';
import type { Logger } from './logger.js';
import type { MailSender } from './mail-transport.js';
import {
  type DegradedState,
  ENTRY_SUFFIX,
  OutboxStore,
  type Schedule,
  type StoredEntry,
} from './outbox-store.js';

export type { DegradedState, Schedule } from './outbox-store.js';

/**
 * The durable outbox of one channel: every notification is a file in the channel's directory
 * before any delivery attempt, and the file goes away only after the far end (the SMTP server, the
 * webhook) accepted it. Each channel has its own Outbox over its own directory, so one channel's
 * outage pauses only its own queue. What is channel-specific (how to send, which failures are
 * final) is the DeliveryChannel's (delivery-channel.ts).
 *
 * Guarantee: at least once. The one window for a duplicate is a crash (kill -9, power loss) after the
 * server answered 250 and before the unlink below reached the disk; the next start sends that message
 * again, with the same Message-ID, so a mail client can still fold the two. At most `maxParallel`
 * messages can be in that window at once. There is no window for a loss: enqueue() resolves only
 * once the file and its directory entry are fsynced.
 *
 * One process per directory: two outboxes over the same directory would both send every entry.
 *
 * This file is the delivery scheduling (parallel sends, backoff with a relay-wide pause, permanent
 * refusals and their report); the files, and memory when the directory cannot be written, are
 * OutboxStore's (outbox-store.ts); the report's wording is src/core/rejection-report.ts.
 */

export interface OutboxMeta {
  readonly unit: string;
  /** The failure kind, e.g. `failed` or `crash-restart`; only logged and reported. */
  readonly event: string;
}

export interface OutboxOptions {
  readonly directory: string;
  /** What to deliver through; `sender` alone means mail (as before channels existed). */
  readonly channel?: DeliveryChannel;
  readonly sender?: MailSender;
  readonly logger: Logger;
  readonly now: () => number;
  /** In [0, 1), like Math.random; only spreads retry delays. */
  readonly random: () => number;
  readonly schedule?: Schedule;
  /** Sends at once; the SMTP transport pools two connections, more would only queue there. */
  readonly maxParallel?: number;
  /** How long stop() waits for sends already under way. */
  readonly stopTimeoutMs?: number;
  readonly retry?: RetryOptions;
  /** Mails kept in memory while the directory cannot be written; beyond it the oldest is dropped. */
  readonly memoryCapacity?: number;
}

/** The longest wait a Retry-After may impose; a far end asking for more is asked again after this. */
const MAX_RETRY_AFTER_MS = 60 * 60_000;

const DEFAULT_PARALLEL = 2;
const DEFAULT_STOP_TIMEOUT_MS = 3_000;

/** Rejected messages kept for inspection; a relay that answers 5xx to everything must not fill the disk. */
const KEPT_REJECTED = 100;
/** Rejected messages listed in one report; the rest are counted. */
const REPORTED_REJECTED = 20;

/** What stays in memory per pending message; the mail itself is read when its turn comes. */
interface PendingEntry {
  readonly name: string;
  nextAttemptMs: number;
  /** Successful sends counted when this entry was last deferred; any later success makes it due. */
  deferredAtSuccess: number;
}

interface RejectedEntry {
  readonly name: string;
  readonly summary: string;
  reported: boolean;
  /** The pending entry whose mail is carrying this report right now, if any. */
  carrier: string | undefined;
}

const defaultSchedule: Schedule = (callback, delayMs) => {
  const timer = setTimeout(callback, delayMs);
  return () => clearTimeout(timer);
};

export class Outbox {
  readonly #store: OutboxStore;
  readonly #channel: DeliveryChannel;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #schedule: Schedule;
  readonly #maxParallel: number;
  readonly #stopTimeoutMs: number;
  readonly #retry: RetryOptions;

  /** Sorted by file name, which is creation order: oldest first. */
  readonly #pending: PendingEntry[] = [];
  readonly #rejected: RejectedEntry[] = [];
  readonly #inFlight = new Map<string, Promise<void>>();
  #started = false;
  #stopping = false;
  #sequence = 0;
  #successes = 0;
  /** Failed attempts since the last success: the relay's health, not one message's. */
  #consecutiveFailures = 0;
  #pausedUntilMs = 0;
  #cancelWake: (() => void) | undefined;
  #rejectedFiles: Promise<void> = Promise.resolve();
  #loaded = false;
  /** Message-IDs found at load() and enqueued since; never shrinks during the process's life. */
  readonly #known = new Set<string>();

  constructor(options: OutboxOptions) {
    const channel =
      options.channel ?? (options.sender === undefined ? undefined : mailChannel(options.sender));
    if (channel === undefined) throw new TypeError('an Outbox needs a channel (or a mail sender)');
    this.#channel = channel;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#random = options.random;
    this.#schedule = options.schedule ?? defaultSchedule;
    this.#maxParallel = Math.max(1, options.maxParallel ?? DEFAULT_PARALLEL);
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#store = new OutboxStore({
      directory: options.directory,
      logger: options.logger,
      now: options.now,
      schedule: this.#schedule,
      ...(options.memoryCapacity === undefined ? {} : { memoryCapacity: options.memoryCapacity }),
      onDrop: (name) => removeSorted(this.#pending, name),
    });
  }

  /** Why the directory cannot be written and how much waits in memory; undefined when all is on disk. */
  get degraded(): DegradedState | undefined {
    return this.#store.degraded;
  }

  /**
   * The Message-ID of every entry found by load() and of every mail enqueued since, including those
   * delivered and removed meanwhile: whether a mail was queued before a crash, for reconciliation.
   */
  knownMessageIds(): ReadonlySet<string> {
    return this.#known;
  }

  /** Messages not yet accepted by the server, including those being sent right now. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Messages the server refused for good (5xx), kept on disk. */
  get rejected(): number {
    return this.#rejected.length;
  }

  /** One line per rejected message not yet reported in a delivered mail, oldest first. */
  rejectedSummaries(): string[] {
    return this.#rejected.filter((entry) => !entry.reported).map((entry) => entry.summary);
  }

  /**
   * Reads the directory into the index without sending anything, so a caller can consult
   * knownMessageIds() before delivery begins. start() calls it when it was not called. Never throws:
   * a directory that cannot be read or created is logged and the outbox runs degraded.
   */
  async load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    const startedAtMs = this.#now();
    for (const { name, entry } of await this.#store.scan()) {
      this.#known.add(entry.mail.messageId);
      if (entry.rejected !== undefined) {
        this.#addRejected(name, entry);
        continue;
      }
      // A clock that jumped back across the restart must not park a message for hours.
      const nextAttemptMs = Math.min(entry.nextAttemptMs, startedAtMs + this.#retry.capMs);
      insertSorted(this.#pending, { name, nextAttemptMs, deferredAtSuccess: 0 });
    }
    await this.#trimRejected().catch((error: unknown) => {
      this.#logger.error({ err: error }, 'outbox could not remove old rejected entries');
    });
    if (this.#pending.length > 0 || this.#rejected.length > 0) {
      this.#logger.info(
        { pending: this.#pending.length, rejected: this.#rejected.length, directory: this.#store.directory },
        'outbox loaded',
      );
    }
  }

  async start(): Promise<void> {
    if (this.#started) return;
    await this.load();
    this.#started = true;
    this.#stopping = false;
    this.#store.startProbing();
    this.#pump();
  }

  /**
   * Resolves once the message is durably on disk, or, when the directory cannot be written, held in
   * memory (degraded); delivery happens afterwards, in the background. Never rejects. Works before
   * start() and after stop() too: the next start delivers it.
   */
  async enqueue(mail: ComposedMail, meta: OutboxMeta): Promise<void> {
    const createdMs = this.#now();
    this.#sequence = (this.#sequence + 1) % 1_000_000;
    // Creation time first, so that sorting file names gives the delivery order, across restarts too.
    const name = `${String(Math.max(0, createdMs)).padStart(15, '0')}-${String(this.#sequence).padStart(6, '0')}-${randomUUID().slice(0, 8)}${ENTRY_SUFFIX}`;
    const entry: StoredEntry = {
      version: 1,
      createdMs,
      unit: meta.unit,
      event: meta.event,
      attempts: 0,
      nextAttemptMs: 0,
      mail: {
        subject: mail.subject,
        text: mail.text,
        headers: { ...mail.headers },
        messageId: mail.messageId,
      },
      ...(mail.notification === undefined || !this.#channel.usesNotification
        ? {}
        : { notification: { ...mail.notification } }),
    };
    this.#known.add(mail.messageId);
    await this.#store.create(name, entry);
    // Indexed even before start() or during its directory scan; the scan's copy of it is a no-op.
    insertSorted(this.#pending, { name, nextAttemptMs: 0, deferredAtSuccess: this.#successes });
    this.#pump();
  }

  /** Stops sending; pending files stay for the next start. Waits at most stopTimeoutMs for sends under way. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    if (this.#inFlight.size > 0) {
      let cancelTimeout: (() => void) | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        cancelTimeout = this.#schedule(() => resolve(true), this.#stopTimeoutMs);
      });
      const settled = Promise.allSettled([...this.#inFlight.values()]).then(() => false);
      const gaveUp = await Promise.race([settled, timedOut]);
      cancelTimeout?.();
      if (gaveUp) {
        this.#logger.warn(
          { inFlight: this.#inFlight.size, pending: this.#pending.length },
          'stopped while mail was still being sent; it stays in the outbox for the next start',
        );
      }
    }
    await this.#rejectedFiles;
    await this.#store.stop();
    this.#started = false;
  }

  /** Starts as many due sends as there are free slots, and arms one timer for the next due entry. */
  #pump(): void {
    if (!this.#started || this.#stopping) return;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    const now = this.#now();
    if (now < this.#pausedUntilMs) {
      this.#wakeAt(this.#pausedUntilMs, now);
      return;
    }
    let earliest = Number.POSITIVE_INFINITY;
    for (const entry of this.#pending) {
      if (this.#inFlight.size >= this.#maxParallel) return;
      if (this.#inFlight.has(entry.name)) continue;
      if (entry.nextAttemptMs <= now || entry.deferredAtSuccess < this.#successes) {
        const attempt = this.#attempt(entry).finally(() => {
          this.#inFlight.delete(entry.name);
          this.#pump();
        });
        this.#inFlight.set(entry.name, attempt);
      } else {
        earliest = Math.min(earliest, entry.nextAttemptMs);
      }
    }
    if (Number.isFinite(earliest)) this.#wakeAt(earliest, now);
  }

  #wakeAt(dueMs: number, now: number): void {
    this.#cancelWake = this.#schedule(
      () => {
        this.#cancelWake = undefined;
        this.#pump();
      },
      Math.max(0, dueMs - now),
    );
  }

  async #attempt(pending: PendingEntry): Promise<void> {
    try {
      const entry = await this.#store.read(pending.name);
      if (entry === undefined) {
        removeSorted(this.#pending, pending.name);
        return;
      }
      if (this.#stopping) return;
      const report = this.#channel.withRejectedReport?.bind(this.#channel);
      const carried = report === undefined ? [] : this.#claimRejectedReport(pending.name);
      const stored: ComposedMail = {
        ...entry.mail,
        // Written by enqueue() from a Notification; read back as it was written.
        ...(entry.notification === undefined
          ? {}
          : { notification: entry.notification as unknown as Notification }),
      };
      const mail =
        carried.length === 0 || report === undefined
          ? stored
          : report(
              stored,
              carried.map((rejected) => rejected.summary),
              this.#rejected.filter(
                (rejected) =>
                  !rejected.reported && (rejected.carrier === undefined || rejected.carrier === pending.name),
              ).length,
              this.#store.directory,
            );
      let response: string;
      let accepted: readonly string[];
      try {
        ({ response, accepted } = await this.#channel.send(mail));
      } catch (error) {
        for (const rejected of carried) rejected.carrier = undefined;
        if (this.#channel.classify(error).kind === 'permanent') await this.#reject(pending, entry, error);
        else await this.#defer(pending, entry, error);
        return;
      }
      this.#successes++;
      this.#consecutiveFailures = 0;
      this.#pausedUntilMs = 0;
      this.#logger.info(
        {
          unit: entry.unit,
          event: entry.event,
          to: accepted,
          messageId: entry.mail.messageId,
          response,
          ...(carried.length === 0 ? {} : { reportedRejected: carried.length }),
        },
        // Postfix-like: what was sent, and the server's code, in the sentence; its full answer in a field.
        `${this.#channel.label} sent: ${entry.mail.subject} (${response.slice(0, 3) || 'accepted'} after ${entry.attempts + 1} attempt${entry.attempts === 0 ? '' : 's'})`,
      );
      try {
        // The crash window of the at-least-once guarantee: accepted by the server, file not yet gone.
        await this.#store.remove(pending.name);
      } catch (error) {
        this.#logger.error(
          { file: pending.name, messageId: entry.mail.messageId, err: error },
          'a delivered notification could not be removed from the outbox; the next start sends it again',
        );
      } finally {
        // Counted as pending until the file is gone, so `pending === 0` means nothing is left to resend.
        removeSorted(this.#pending, pending.name);
      }
      if (carried.length > 0) await this.#markReported(carried, entry.mail.messageId);
    } catch (error) {
      // Only a failed rewrite gets here; the entry stays as it was on disk and is retried.
      this.#logger.error({ file: pending.name, err: error }, 'outbox could not update an entry');
    }
  }

  async #defer(pending: PendingEntry, entry: StoredEntry, error: unknown): Promise<void> {
    this.#consecutiveFailures++;
    const now = this.#now();
    const failure = this.#channel.classify(error);
    const delayMs = Math.max(
      nextAttemptDelayMs(this.#consecutiveFailures, this.#random, this.#retry),
      Math.min(failure.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS),
    );
    // The whole queue waits, not only this message: a relay that refuses one usually refuses all.
    this.#pausedUntilMs = Math.max(this.#pausedUntilMs, now + delayMs);
    pending.nextAttemptMs = now + delayMs;
    pending.deferredAtSuccess = this.#successes;
    const attempts = entry.attempts + 1;
    const lastError = cleanLine(error instanceof Error ? error.message : String(error), 500);
    const refusedLogin = failure.kind === 'operator';
    const label = this.#channel.label;
    this.#logger[refusedLogin ? 'error' : 'warn'](
      {
        unit: entry.unit,
        event: entry.event,
        messageId: entry.mail.messageId,
        attempts,
        retryInMs: delayMs,
        responseCode: failure.responseCode,
        ...(label === 'mail' ? {} : { channel: label }),
        err: error,
      },
      refusedLogin
        ? `${failure.fix ?? `${label} refused by its setup`}. Will retry: ${entry.mail.subject}`
        : `notification not sent yet${label === 'mail' ? '' : ` to ${label} (${lastError})`}, will retry: ${entry.mail.subject}`,
    );
    await this.#rewrite(pending.name, { ...entry, attempts, nextAttemptMs: now + delayMs, lastError });
  }

  async #rewrite(name: string, entry: StoredEntry): Promise<void> {
    // Dropped from memory while its send was under way: writing it back would resurrect it.
    if (this.#pending[sortedIndex(this.#pending, name)]?.name !== name) return;
    await this.#store.rewrite(name, entry);
  }

  async #reject(pending: PendingEntry, entry: StoredEntry, error: unknown): Promise<void> {
    // A 5xx says nothing about the relay's health (an oversized message, a refused recipient).
    const failure = this.#channel.classify(error);
    const rejected: StoredEntry = {
      ...entry,
      attempts: entry.attempts + 1,
      rejected: {
        atMs: this.#now(),
        ...(failure.responseCode === undefined ? {} : { responseCode: failure.responseCode }),
        error: cleanLine(error instanceof Error ? error.message : String(error), 500),
      },
    };
    this.#logger.error(
      {
        unit: entry.unit,
        event: entry.event,
        messageId: entry.mail.messageId,
        responseCode: failure.responseCode,
        file: join(this.#store.directory, pending.name),
        err: error,
      },
      `notification REJECTED by ${failure.refusedBy}, not retrying: ${entry.mail.subject}`,
    );
    await this.#serialRejected(async () => {
      try {
        // Off the memory queue: a rejected mail is not retried, only reported (kept on disk if it can be).
        await this.#store.keepOnDisk(pending.name, rejected);
      } finally {
        // Even if the mark did not reach the disk: retrying now would only collect the same 5xx.
        removeSorted(this.#pending, pending.name);
      }
      this.#addRejected(pending.name, rejected);
      await this.#trimRejected();
    });
  }

  #addRejected(name: string, entry: StoredEntry): void {
    const rejected = entry.rejected;
    if (rejected === undefined) return;
    const summary = rejectedSummary({
      createdMs: entry.createdMs,
      unit: entry.unit,
      event: entry.event,
      subject: entry.mail.subject,
      answer: rejected.error,
    });
    insertSorted(this.#rejected, {
      name,
      summary,
      reported: rejected.reportedInMessageId !== undefined,
      carrier: undefined,
    });
  }

  /** Keeps the newest KEPT_REJECTED rejected files, dropping reported ones first. */
  async #trimRejected(): Promise<void> {
    while (this.#rejected.length > KEPT_REJECTED) {
      const index = Math.max(
        0,
        this.#rejected.findIndex((entry) => entry.reported && entry.carrier === undefined),
      );
      const [dropped] = this.#rejected.splice(index, 1);
      if (dropped === undefined) return;
      await this.#store.remove(dropped.name);
      this.#logger.warn(
        { file: dropped.name, reported: dropped.reported, summary: dropped.summary },
        `more than ${KEPT_REJECTED} rejected notifications kept; removed the oldest`,
      );
    }
  }

  #claimRejectedReport(carrier: string): RejectedEntry[] {
    const claimed: RejectedEntry[] = [];
    for (const entry of this.#rejected) {
      if (claimed.length >= REPORTED_REJECTED) break;
      if (entry.reported || entry.carrier !== undefined) continue;
      entry.carrier = carrier;
      claimed.push(entry);
    }
    return claimed;
  }

  async #markReported(carried: readonly RejectedEntry[], messageId: string): Promise<void> {
    await this.#serialRejected(async () => {
      for (const rejected of carried) {
        rejected.reported = true;
        rejected.carrier = undefined;
        // Trimmed meanwhile: writing it back would resurrect a file that was meant to go.
        if (!this.#rejected.includes(rejected)) continue;
        const stored = await this.#store.readFromDisk(rejected.name);
        if (stored?.rejected === undefined) continue;
        await this.#store.keepOnDisk(rejected.name, {
          ...stored,
          rejected: { ...stored.rejected, reportedInMessageId: messageId },
        });
      }
    });
  }

  /** Rejected files are rewritten and trimmed from several sends at once; one at a time keeps them consistent. */
  #serialRejected(work: () => Promise<void>): Promise<void> {
    const next = this.#rejectedFiles.then(work);
    this.#rejectedFiles = next.catch((error: unknown) => {
      this.#logger.error({ err: error }, 'outbox could not update a rejected entry');
    });
    return next;
  }
}

/** Where `name` is or would go in a list sorted by name. */
function sortedIndex(list: readonly { readonly name: string }[], name: string): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((list[middle]?.name ?? '') < name) low = middle + 1;
    else high = middle;
  }
  return low;
}

function insertSorted<T extends { readonly name: string }>(list: T[], item: T): void {
  const index = sortedIndex(list, item.name);
  if (list[index]?.name !== item.name) list.splice(index, 0, item);
}

function removeSorted(list: { readonly name: string }[], name: string): void {
  const index = sortedIndex(list, name);
  if (list[index]?.name === name) list.splice(index, 1);
}
