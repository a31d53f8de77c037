import { lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { cleanLine } from '../core/text.js';
import { readJson, readJsonFile, setAside, syncDirectory, writeJsonAtomic } from './json-file.js';
import type { Logger } from './logger.js';
import { BoundedMemoryQueue } from './memory-queue.js';

/**
 * The outbox's durable queue: one JSON file per notification in one directory, written with fsync
 * before the first delivery attempt and deleted after the server accepted it. Knows nothing about
 * when to send; that is the Outbox's business.
 *
 * Degraded mode: when an entry cannot be written (ENOSPC, EROFS, EACCES, a file in the way) it is
 * kept in a bounded memory queue instead; the directory is probed every PROBE_MS and at every new
 * mail, and what memory holds is written back once the directory takes writes again. A restart loses
 * what only memory held. Every method but remove() never throws: a disk problem becomes degraded
 * mode, logged once.
 */

export const ENTRY_SUFFIX = '.json';
const TEMPORARY_SUFFIX = '.tmp';
/** Written and removed to learn whether a degraded directory takes writes again; not an entry. */
const WRITE_PROBE = '.write-probe';
const DEFAULT_MEMORY_CAPACITY = 200;
/** How often a directory that refused a write is tried again. */
const PROBE_MS = 30_000;

export const STORED_ENTRY = z.object({
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
  /** The structured notification (src/core/notification.ts), for channels that are not mail. */
  notification: z.record(z.string(), z.unknown()).optional(),
});

export type StoredEntry = z.infer<typeof STORED_ENTRY>;

/** The outbox cannot write its directory; mail waits in memory meanwhile. */
export interface DegradedState {
  readonly sinceMs: number;
  readonly reason: string;
  /** Messages waiting in memory only. */
  readonly inMemory: number;
}

/** Arms a timer; returns a function that disarms it. Injected so tests decide when time passes. */
export type Schedule = (callback: () => void, delayMs: number) => () => void;

export interface OutboxStoreOptions {
  readonly directory: string;
  readonly logger: Logger;
  readonly now: () => number;
  readonly schedule: Schedule;
  /** Mails kept in memory while the directory cannot be written; beyond it the oldest is dropped. */
  readonly memoryCapacity?: number;
  /** Told about an entry dropped from memory at the bound (after it was logged as lost). */
  readonly onDrop: (name: string) => void;
}

export class OutboxStore {
  readonly #directory: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #schedule: Schedule;
  readonly #memory: BoundedMemoryQueue<StoredEntry>;
  #degraded: { sinceMs: number; reason: string } | undefined;
  #cancelProbe: (() => void) | undefined;
  #flushing: Promise<void> | undefined;
  #running = false;

  constructor(options: OutboxStoreOptions) {
    this.#directory = options.directory;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#schedule = options.schedule;
    this.#memory = new BoundedMemoryQueue(
      options.memoryCapacity ?? DEFAULT_MEMORY_CAPACITY,
      (name, entry) => {
        this.#logLost(entry);
        options.onDrop(name);
      },
    );
  }

  get directory(): string {
    return this.#directory;
  }

  /** Why the directory cannot be written and how much waits in memory; undefined when all is on disk. */
  get degraded(): DegradedState | undefined {
    if (this.#degraded === undefined) return undefined;
    return { ...this.#degraded, inMemory: this.#memory.size };
  }

  /**
   * Every readable entry, oldest first. Removes half-written temporary files, moves unreadable
   * entries aside, and moves away a regular file where the directory should be.
   */
  async scan(): Promise<{ readonly name: string; readonly entry: StoredEntry }[]> {
    let names: string[];
    try {
      await this.#ensureDirectory();
      names = (await readdir(this.#directory)).sort();
    } catch (error) {
      this.#enterDegraded(error);
      return [];
    }
    const found: { name: string; entry: StoredEntry }[] = [];
    let changedDirectory = false;
    for (const name of names) {
      if (name.endsWith(TEMPORARY_SUFFIX)) {
        // A write that a crash interrupted before its rename; enqueue() had not resolved for it.
        await unlinkIfPresent(join(this.#directory, name)).catch(() => undefined);
        this.#logger.info({ file: name }, 'removed a half-written outbox file left by a crash');
        changedDirectory = true;
        continue;
      }
      if (!name.endsWith(ENTRY_SUFFIX)) continue;
      const entry = await this.read(name);
      if (entry === undefined) changedDirectory = true;
      else found.push({ name, entry });
    }
    try {
      if (changedDirectory) await syncDirectory(this.#directory);
    } catch (error) {
      this.#enterDegraded(error);
    }
    return found;
  }

  /** Stores a new entry: on disk when it can, in memory otherwise. Resolves once it is stored. */
  async create(name: string, entry: StoredEntry): Promise<void> {
    try {
      // Degraded: the directory itself may be what went missing, and what came back.
      if (this.#degraded !== undefined || !this.#running) await this.#ensureDirectory();
      await writeJsonAtomic(join(this.#directory, name), entry);
    } catch (error) {
      this.#enterDegraded(error);
      this.#memory.put(name, entry);
      return;
    }
    // Written while degraded: the directory is back, so what memory holds goes there too.
    if (this.#degraded !== undefined) void this.flush();
  }

  /** Writes an updated entry where it lives: in memory if it is held there or the disk refuses it. */
  async rewrite(name: string, entry: StoredEntry): Promise<void> {
    if (this.#memory.has(name)) {
      this.#memory.put(name, entry);
      return;
    }
    try {
      await writeJsonAtomic(join(this.#directory, name), entry);
    } catch (error) {
      this.#enterDegraded(error);
      this.#memory.put(name, entry);
    }
  }

  /**
   * Stores an entry that is never sent again (rejected) only on disk, if the disk takes it: memory
   * is for mail still to be delivered. False when it is not on disk.
   */
  async keepOnDisk(name: string, entry: StoredEntry): Promise<boolean> {
    this.#memory.delete(name);
    try {
      await writeJsonAtomic(join(this.#directory, name), entry);
      return true;
    } catch (error) {
      this.#enterDegraded(error);
      return false;
    }
  }

  /** Reads one entry; a missing file is undefined (logged), an unreadable one is moved aside and undefined. */
  async read(name: string): Promise<StoredEntry | undefined> {
    const held = this.#memory.get(name);
    if (held !== undefined) return held;
    const read = await readJsonFile(join(this.#directory, name), {
      logger: this.#logger,
      now: this.#now,
      validate: entryProblem,
      consequence: 'the notification in it was not sent',
    });
    if (read.status === 'missing') {
      this.#logger.warn({ file: name }, 'outbox entry vanished before it was sent');
      return undefined;
    }
    const parsed = read.status === 'ok' ? STORED_ENTRY.safeParse(read.value) : undefined;
    return parsed?.success ? parsed.data : undefined;
  }

  /** Reads an entry from disk only, quietly; for rewriting a rejected entry's mark. */
  async readFromDisk(name: string): Promise<StoredEntry | undefined> {
    const value = await readJson(join(this.#directory, name), { logger: this.#logger, now: this.#now });
    const parsed = STORED_ENTRY.safeParse(value);
    return parsed.success ? parsed.data : undefined;
  }

  /** Removes an entry, from memory or from disk (with the directory fsynced). Throws on a disk error. */
  async remove(name: string): Promise<void> {
    if (this.#memory.delete(name)) return;
    await unlinkIfPresent(join(this.#directory, name));
    await syncDirectory(this.#directory);
  }

  /** Probes a degraded directory every PROBE_MS until stop(). */
  startProbing(): void {
    this.#running = true;
    this.#armProbe();
  }

  /** Stops probing, waits for a write-back under way, and logs what memory still holds as lost. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#cancelProbe?.();
    this.#cancelProbe = undefined;
    await this.#flushing;
    if (this.#memory.size === 0) return;
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

  /** Writes what memory holds back to the directory, oldest first; leaves degraded mode if all went. */
  flush(): Promise<void> {
    this.#flushing ??= (async () => {
      try {
        await this.#ensureDirectory();
        for (const [name, entry] of this.#memory.entries()) {
          await writeJsonAtomic(join(this.#directory, name), entry);
          // Delivered or dropped meanwhile: the file written for it must go again.
          if (!this.#memory.delete(name)) await this.remove(name);
        }
        if (this.#degraded === undefined) return;
        // Memory may have been empty: make sure the directory takes a write before saying so.
        await writeJsonAtomic(join(this.#directory, WRITE_PROBE), {});
        await this.remove(WRITE_PROBE);
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
    // Once, not per mail: the status line says it for as long as it lasts.
    this.#logger.error(
      { directory: this.#directory, err: error },
      `cannot write the outbox in ${this.#directory} (${reason}); mail is sent directly and kept in memory (at most ${this.#memory.capacity}) until the directory takes writes again`,
    );
    this.#armProbe();
  }

  #armProbe(): void {
    if (this.#cancelProbe !== undefined || !this.#running || this.#degraded === undefined) return;
    this.#cancelProbe = this.#schedule(() => {
      this.#cancelProbe = undefined;
      void this.flush().then(() => this.#armProbe());
    }, PROBE_MS);
  }

  #logLost(entry: StoredEntry): void {
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
      if (found.isDirectory()) return;
      await setAside(this.#directory, 'it is not a directory', this.#logger, {
        now: this.#now,
        consequence: 'creating an empty outbox directory',
      });
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
}

/** What is wrong with a parsed outbox entry, or undefined when it is one. */
function entryProblem(value: unknown): string | undefined {
  const parsed = STORED_ENTRY.safeParse(value);
  if (parsed.success) return undefined;
  return parsed.error.issues
    .map((issue) => `${issue.path.join('.') || '(entry)'}: ${issue.message}`)
    .join('; ');
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
