import { randomUUID } from 'node:crypto';
import { lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { ComposedMail } from '../core/message.js';
import { appendRejectedReport, rejectedSummary } from '../core/rejection-report.js';
import { DEFAULT_RETRY, nextAttemptDelayMs, type RetryOptions } from '../core/retry.js';
import { cleanLine } from '../core/text.js';
import { MailDeliveryError } from '../errors/mail-error.js';
import { readJson, readJsonFile, setAside, syncDirectory, writeJsonAtomic } from './json-file.js';
import type { Logger } from './logger.js';
import type { MailSender } from './mail-transport.js';
import { BoundedMemoryQueue } from './memory-queue.js';

/**
 * The durable outbox: every notification is a file in the state directory before any delivery
 * attempt, and the file goes away only after the SMTP server accepted the message.
 *
 * Guarantee: at least once. The one window for a duplicate is a crash (kill -9, power loss) after the
 * server answered 250 and before the unlink below reached the disk; the next start sends that message
 * again, with the same Message-ID, so a mail client can still fold the two. At most `maxParallel`
 * messages can be in that window at once. There is no window for a loss: enqueue() resolves only
 * once the file and its directory entry are fsynced.
 *
 * One process per directory: two outboxes over the same directory would both send every entry.
 *
 * Degraded mode: when an entry cannot be written (ENOSPC, EROFS, EACCES, …) it is kept in a bounded
 * memory queue instead and delivered from there with the same backoff; the disk is probed every
 * PROBE_MS and what memory holds is written back once it takes writes again. A restart loses what
 * only memory held.
 */

/** The outbox cannot write its directory; mail waits in memory meanwhile. */
export interface DegradedState {
  readonly sinceMs: number;
  readonly reason: string;
  /** Messages waiting in memory only. */
  readonly inMemory: number;
}

export interface OutboxMeta {
  readonly unit: string;
  /** The failure kind, e.g. `failed` or `crash-restart`; only logged and reported. */
  readonly event: string;
}

/** Arms a timer; returns a function that disarms it. Injected so tests decide when time passes. */
export type Schedule = (callback: () => void, delayMs: number) => () => void;

export interface OutboxOptions {
  readonly directory: string;
  readonly sender: MailSender;
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

const DEFAULT_PARALLEL = 2;
const DEFAULT_STOP_TIMEOUT_MS = 3_000;
const DEFAULT_MEMORY_CAPACITY = 200;
/** How often a directory that refused a write is tried again. */
const PROBE_MS = 30_000;
/** Rejected messages kept for inspection; a relay that answers 5xx to everything must not fill the disk. */
const KEPT_REJECTED = 100;
/** Rejected messages listed in one report; the rest are counted. */
const REPORTED_REJECTED = 20;

const ENTRY_SUFFIX = '.json';
const TEMPORARY_SUFFIX = '.tmp';
/** Written and removed to learn whether a degraded directory takes writes again; not an entry. */
const WRITE_PROBE = '.write-probe';

const STORED_ENTRY = z.object({
  version: z.literal(1),
  createdMs: z.number(),
  unit: z.string(),
  event: z.string(),
  attempts: z.number().int().nonnegative(),
  /** 0 until the first failed attempt. */
  nextAttemptMs: z.number(),
  lastError: z.string().optional(),
  rejected: z
    .object({
      atMs: z.number(),
      responseCode: z.number().optional(),
      error: z.string(),
      /** The Message-ID of the mail that told the operator; set once, so a report is not repeated. */
      reportedInMessageId: z.string().optional(),
    })
    .optional(),
  mail: z.object({
    subject: z.string(),
    text: z.string(),
    headers: z.record(z.string(), z.string()),
    messageId: z.string(),
  }),
});

type StoredEntry = z.infer<typeof STORED_ENTRY>;

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
  readonly #directory: string;
  readonly #sender: MailSender;
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
  readonly #memory: BoundedMemoryQueue<StoredEntry>;
  #degraded: { sinceMs: number; reason: string } | undefined;
  #cancelProbe: (() => void) | undefined;
  #flushing: Promise<void> | undefined;

  constructor(options: OutboxOptions) {
    this.#directory = options.directory;
    this.#sender = options.sender;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#random = options.random;
    this.#schedule = options.schedule ?? defaultSchedule;
    this.#maxParallel = Math.max(1, options.maxParallel ?? DEFAULT_PARALLEL);
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#memory = new BoundedMemoryQueue(options.memoryCapacity ?? DEFAULT_MEMORY_CAPACITY, (name, entry) =>
      this.#dropFromMemory(name, entry),
    );
  }

  /** Why the directory cannot be written and how much waits in memory; undefined when all is on disk. */
  get degraded(): DegradedState | undefined {
    if (this.#degraded === undefined) return undefined;
    return { ...this.#degraded, inMemory: this.#memory.size };
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
    let names: string[];
    try {
      await this.#ensureDirectory();
      names = (await readdir(this.#directory)).sort();
    } catch (error) {
      this.#enterDegraded(error);
      return;
    }
    const startedAtMs = this.#now();
    let changedDirectory = false;
    for (const name of names) {
      if (name.endsWith(TEMPORARY_SUFFIX)) {
        // A write that a crash interrupted before its rename; enqueue() had not resolved for it.
        await unlinkIfPresent(join(this.#directory, name));
        this.#logger.info({ file: name }, 'removed a half-written outbox file left by a crash');
        changedDirectory = true;
        continue;
      }
      if (!name.endsWith(ENTRY_SUFFIX)) continue;
      const entry = await this.#readEntry(name);
      if (entry === undefined) {
        changedDirectory = true;
        continue;
      }
      this.#known.add(entry.mail.messageId);
      if (entry.rejected !== undefined) {
        this.#addRejected(name, entry);
        continue;
      }
      // A clock that jumped back across the restart must not park a message for hours.
      const nextAttemptMs = Math.min(entry.nextAttemptMs, startedAtMs + this.#retry.capMs);
      insertSorted(this.#pending, { name, nextAttemptMs, deferredAtSuccess: 0 });
    }
    try {
      if (changedDirectory) await syncDirectory(this.#directory);
      await this.#trimRejected();
    } catch (error) {
      this.#enterDegraded(error);
    }
    if (this.#pending.length > 0 || this.#rejected.length > 0) {
      this.#logger.info(
        { pending: this.#pending.length, rejected: this.#rejected.length, directory: this.#directory },
        'outbox loaded',
      );
    }
  }

  async start(): Promise<void> {
    if (this.#started) return;
    await this.load();
    this.#started = true;
    this.#stopping = false;
    if (this.#degraded !== undefined) this.#armProbe();
    this.#pump();
  }

  /**
   * Resolves once the message is durably on disk; delivery happens afterwards, in the background.
   * Rejects when it cannot be stored (disk full, directory gone): the caller then still holds the mail.
   * Works before start() and after stop() too: the next start delivers it.
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
    };
    this.#known.add(mail.messageId);
    try {
      // Degraded: the directory itself may be what went missing, and what came back.
      if (!this.#started || this.#degraded !== undefined) await this.#ensureDirectory();
      await writeJsonAtomic(join(this.#directory, name), entry);
    } catch (error) {
      this.#enterDegraded(error);
      this.#memory.put(name, entry);
      if (this.#started && !this.#stopping) this.#armProbe();
    }
    // Indexed even before start() or during its directory scan; the scan's copy of it is a no-op.
    // A mail dropped from memory at once (capacity 0 is not allowed, so only an older one) is not.
    insertSorted(this.#pending, { name, nextAttemptMs: 0, deferredAtSuccess: this.#successes });
    if (this.#degraded !== undefined && !this.#memory.has(name)) void this.#flushMemory();
    this.#pump();
  }

  /** Stops sending; pending files stay for the next start. Waits at most stopTimeoutMs for sends under way. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    this.#cancelProbe?.();
    this.#cancelProbe = undefined;
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
    await this.#flushing;
    if (this.#memory.size > 0) {
      this.#logger.error(
        {
          lost: this.#memory.entries().map(([, entry]) => ({
            unit: entry.unit,
            subject: entry.mail.subject,
            messageId: entry.mail.messageId,
          })),
          directory: this.#directory,
        },
        `stopped with ${this.#memory.size} notification${this.#memory.size === 1 ? '' : 's'} held in memory only (the state directory could not be written); they are lost`,
      );
    }
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
      const entry = await this.#readEntry(pending.name);
      if (entry === undefined) {
        removeSorted(this.#pending, pending.name);
        return;
      }
      if (this.#stopping) return;
      const carried = this.#claimRejectedReport(pending.name);
      const mail =
        carried.length === 0
          ? entry.mail
          : appendRejectedReport(
              entry.mail,
              carried.map((rejected) => rejected.summary),
              this.#rejected.filter(
                (rejected) =>
                  !rejected.reported && (rejected.carrier === undefined || rejected.carrier === pending.name),
              ).length,
              this.#directory,
            );
      let response: string;
      let accepted: readonly string[];
      try {
        ({ response, accepted } = await this.#sender.send(mail));
      } catch (error) {
        for (const rejected of carried) rejected.carrier = undefined;
        if (isPermanent(error)) await this.#reject(pending, entry, error);
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
          attempts: entry.attempts + 1,
          ...(carried.length === 0 ? {} : { reportedRejected: carried.length }),
        },
        `notification sent: ${entry.mail.subject}`,
      );
      try {
        // The crash window of the at-least-once guarantee: accepted by the server, file not yet gone.
        await this.#removeFile(pending.name);
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
    const delayMs = nextAttemptDelayMs(this.#consecutiveFailures, this.#random, this.#retry);
    // The whole queue waits, not only this message: a relay that refuses one usually refuses all.
    this.#pausedUntilMs = Math.max(this.#pausedUntilMs, now + delayMs);
    pending.nextAttemptMs = now + delayMs;
    pending.deferredAtSuccess = this.#successes;
    const attempts = entry.attempts + 1;
    const lastError = cleanLine(error instanceof Error ? error.message : String(error), 500);
    const refusedLogin = isOperatorError(error);
    this.#logger[refusedLogin ? 'error' : 'warn'](
      {
        unit: entry.unit,
        event: entry.event,
        messageId: entry.mail.messageId,
        attempts,
        retryInMs: delayMs,
        responseCode: error instanceof MailDeliveryError ? error.responseCode : undefined,
        err: error,
      },
      refusedLogin
        ? error instanceof MailDeliveryError && error.exitStatus !== undefined
          ? `the sendmail command failed because of its setup (${lastError}); fix UNITWATCH_SENDMAIL. Will retry: ${entry.mail.subject}`
          : `the mail server refused unitwatch's login; fix the SMTP credentials. Will retry: ${entry.mail.subject}`
        : `notification not sent yet, will retry: ${entry.mail.subject}`,
    );
    await this.#rewrite(pending.name, { ...entry, attempts, nextAttemptMs: now + delayMs, lastError });
  }

  /** Writes an updated entry where it lives: memory if it is held there or the disk refuses it. */
  async #rewrite(name: string, entry: StoredEntry): Promise<void> {
    // Dropped from memory while its send was under way: writing it back would resurrect it.
    if (this.#pending[sortedIndex(this.#pending, name)]?.name !== name) return;
    if (this.#memory.has(name)) {
      this.#memory.put(name, entry);
      return;
    }
    try {
      await writeJsonAtomic(join(this.#directory, name), entry);
    } catch (error) {
      this.#enterDegraded(error);
      this.#memory.put(name, entry);
      this.#armProbe();
    }
  }

  async #reject(pending: PendingEntry, entry: StoredEntry, error: MailDeliveryError): Promise<void> {
    // A 5xx says nothing about the relay's health (an oversized message, a refused recipient).
    const rejected: StoredEntry = {
      ...entry,
      attempts: entry.attempts + 1,
      rejected: {
        atMs: this.#now(),
        ...(error.responseCode === undefined ? {} : { responseCode: error.responseCode }),
        error: cleanLine(error.message, 500),
      },
    };
    this.#logger.error(
      {
        unit: entry.unit,
        event: entry.event,
        messageId: entry.mail.messageId,
        responseCode: error.responseCode,
        file: join(this.#directory, pending.name),
        err: error,
      },
      `notification REJECTED by the mail server, not retrying: ${entry.mail.subject}`,
    );
    await this.#serialRejected(async () => {
      try {
        // Off the memory queue: a rejected mail is not retried, only reported (kept on disk if it can be).
        this.#memory.delete(pending.name);
        await writeJsonAtomic(join(this.#directory, pending.name), rejected).catch((writeError: unknown) => {
          this.#enterDegraded(writeError);
        });
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
      await this.#removeFile(dropped.name);
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
        const path = join(this.#directory, rejected.name);
        const stored = STORED_ENTRY.safeParse(await readJson(path, { logger: this.#logger, now: this.#now }));
        if (!stored.success || stored.data.rejected === undefined) continue;
        await writeJsonAtomic(path, {
          ...stored.data,
          rejected: { ...stored.data.rejected, reportedInMessageId: messageId },
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

  /** Reads one entry; a missing file is undefined, an unreadable one is moved aside and undefined. */
  async #readEntry(name: string): Promise<StoredEntry | undefined> {
    const held = this.#memory.get(name);
    if (held !== undefined) return held;
    const read = await readJsonFile(join(this.#directory, name), {
      logger: this.#logger,
      now: this.#now,
      validate: entryProblem,
      consequence: 'the notification in it was not sent',
    });
    if (read.status === 'missing') {
      removeSorted(this.#pending, name);
      this.#logger.warn({ file: name }, 'outbox entry vanished before it was sent');
      return undefined;
    }
    const parsed = read.status === 'ok' ? STORED_ENTRY.safeParse(read.value) : undefined;
    if (parsed?.success) return parsed.data;
    removeSorted(this.#pending, name);
    return undefined;
  }

  #enterDegraded(error: unknown): void {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = cleanLine(
      `${code === undefined ? '' : `${code}: `}${error instanceof Error ? error.message : String(error)}`,
      300,
    );
    if (this.#degraded !== undefined) {
      this.#degraded.reason = reason;
      return;
    }
    this.#degraded = { sinceMs: this.#now(), reason };
    // Once, not per mail: the state line says it for as long as it lasts.
    this.#logger.error(
      { directory: this.#directory, err: error },
      `cannot write the outbox in ${this.#directory} (${reason}); mail is sent directly and kept in memory (at most ${this.#memory.capacity}) until the directory takes writes again`,
    );
  }

  #armProbe(): void {
    if (this.#cancelProbe !== undefined || this.#stopping || !this.#started) return;
    this.#cancelProbe = this.#schedule(() => {
      this.#cancelProbe = undefined;
      void this.#flushMemory().then(() => {
        if (this.#degraded !== undefined) this.#armProbe();
      });
    }, PROBE_MS);
  }

  /** Writes what memory holds back to the directory, oldest first; leaves degraded mode if all went. */
  #flushMemory(): Promise<void> {
    this.#flushing ??= (async () => {
      try {
        await this.#ensureDirectory();
        for (const [name, entry] of this.#memory.entries()) {
          await writeJsonAtomic(join(this.#directory, name), entry);
          // Delivered or dropped meanwhile: the file written for it must go again.
          if (!this.#memory.delete(name)) await this.#removeFile(name);
        }
        if (this.#degraded === undefined) return;
        // The probe writes nothing when memory is empty; make sure the directory takes a write.
        await writeJsonAtomic(join(this.#directory, WRITE_PROBE), {});
        await this.#removeFile(WRITE_PROBE);
        this.#logger.warn(
          { directory: this.#directory, sinceMs: this.#degraded.sinceMs },
          `the outbox in ${this.#directory} takes writes again; notifications kept in memory are on disk`,
        );
        this.#degraded = undefined;
        this.#cancelProbe?.();
        this.#cancelProbe = undefined;
      } catch (error) {
        this.#enterDegraded(error);
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  #dropFromMemory(name: string, entry: StoredEntry): void {
    removeSorted(this.#pending, name);
    this.#logger.error(
      {
        unit: entry.unit,
        event: entry.event,
        messageId: entry.mail.messageId,
        createdMs: entry.createdMs,
        attempts: entry.attempts,
      },
      `notification LOST: more than ${this.#memory.capacity} kept in memory while the state directory cannot be written; dropped the oldest: ${entry.mail.subject}`,
    );
  }

  async #ensureDirectory(): Promise<void> {
    try {
      const found = await lstat(this.#directory);
      if (!found.isDirectory()) {
        await setAside(this.#directory, 'it is not a directory', this.#logger, {
          now: this.#now,
          consequence: 'creating an empty outbox directory',
        });
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const created = await mkdir(this.#directory, { recursive: true, mode: 0o700 });
    if (created === undefined) return;
    // Each new directory's entry lives in its parent; all of them must reach the disk.
    for (let child = this.#directory; child !== dirname(created); child = dirname(child)) {
      await syncDirectory(dirname(child));
    }
  }

  async #removeFile(name: string): Promise<void> {
    if (this.#memory.delete(name)) return;
    await unlinkIfPresent(join(this.#directory, name));
    await syncDirectory(this.#directory);
  }
}

/** What is wrong with a parsed outbox entry, or undefined when it is one. */
function entryProblem(value: unknown): string | undefined {
  const parsed = STORED_ENTRY.safeParse(value);
  if (parsed.success) return undefined;
  return parsed.error.issues
    .map((issue) => `${issue.path.join('.') || '(entry)'}: ${issue.message}`)
    .join('; ');
}

/**
 * A 5xx about this message (too big, recipient refused) will never pass; one about our login (535)
 * is an operator's mistake that is fixed without touching the message, so it is retried instead.
 */
function isPermanent(error: unknown): error is MailDeliveryError {
  return error instanceof MailDeliveryError && error.kind === 'permanent';
}

/** A refused login or a broken sendmail setup: the operator's to fix, retried meanwhile. */
function isOperatorError(error: unknown): boolean {
  return error instanceof MailDeliveryError && error.kind === 'operator';
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

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
