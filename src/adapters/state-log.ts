import { type FileHandle, open, readdir, readFile, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setAside, syncDirectory, writeJsonAtomic } from './json-file.js';
import type { Logger } from './logger.js';

/**
 * The durable key-value state of the daemon (the policy's incidents, held counts and digest, the
 * failures already reported, mails not yet queued), written incrementally: each change is one JSON
 * line appended to `state.N.log` and fdatasynced, and the whole state is rewritten to `state.json`
 * only when the log has grown well past it. A crash loop writes one short line per failure, not the
 * whole state each time.
 *
 * Files, in the state directory:
 * - `state.json`: `{"version":1,"generation":N,"entries":[[key,value],…]}`, replaced atomically.
 * - `state.N.log`: one `[key,value]` line per change since that snapshot; `null` deletes the key.
 *   A log of another generation is left over from a compaction cut short and is removed at start.
 *
 * Crash safety: flush() resolves only once its lines are on disk. A torn last line (power cut during
 * a write) is cut off at start; any other unreadable line, or an unreadable snapshot, is logged at
 * error and moved aside (`*.corrupt-<time>`), and the daemon carries on with what could be read.
 */

export interface StateLogOptions {
  readonly directory: string;
  readonly logger: Logger;
  readonly now?: () => number;
  /** The log is compacted into the snapshot once it is this large and larger than the snapshot. */
  readonly compactAtBytes?: number;
}

const SNAPSHOT = 'state.json';
const LOG_PATTERN = /^state\.(\d+)\.log$/;
const DEFAULT_COMPACT_AT_BYTES = 1024 * 1024;

interface Snapshot {
  readonly version: 1;
  readonly generation: number;
  readonly entries: ReadonlyArray<readonly [string, unknown]>;
}

function isSnapshot(value: unknown): value is Snapshot {
  const candidate = value as Partial<Snapshot> | undefined;
  return (
    candidate?.version === 1 &&
    Number.isSafeInteger(candidate.generation) &&
    Array.isArray(candidate.entries) &&
    candidate.entries.every((entry) => Array.isArray(entry) && typeof entry[0] === 'string')
  );
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/**
 * The state as the daemon last wrote it, read without changing anything (no cut, no move, no
 * append): for `unitwatch status` while the daemon runs. Unreadable parts are skipped.
 */
export async function readStateReadOnly(directory: string): Promise<Map<string, unknown>> {
  const state = new Map<string, unknown>();
  let generation: number | undefined;
  try {
    const snapshot = JSON.parse(await readFile(join(directory, SNAPSHOT), 'utf8')) as unknown;
    if (isSnapshot(snapshot)) {
      generation = snapshot.generation;
      for (const [key, value] of snapshot.entries) state.set(key, value);
    }
  } catch {
    // no snapshot yet, or unreadable: the log alone
  }
  generation ??= (await newestLogGeneration(directory).catch(() => undefined)) ?? 0;
  const text = await readFile(join(directory, `state.${generation}.log`), 'utf8').catch(() => '');
  // A torn last line, or one the daemon reports itself, is skipped here.
  for (const line of text.split('\n')) applyLogLine(state, line);
  return state;
}

/** Applies one `[key, value]` line (null deletes); false when the line is not one. */
function applyLogLine(state: Map<string, unknown>, line: string): boolean {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return false;
  }
  if (!Array.isArray(entry) || typeof entry[0] !== 'string') return false;
  if (entry[1] === null) state.delete(entry[0]);
  else state.set(entry[0], entry[1]);
  return true;
}

async function newestLogGeneration(directory: string): Promise<number | undefined> {
  const generations = (await readdir(directory))
    .map((name) => LOG_PATTERN.exec(name)?.[1])
    .filter((generation): generation is string => generation !== undefined)
    .map(Number);
  return generations.length === 0 ? undefined : Math.max(...generations);
}

export class StateLog {
  readonly #options: StateLogOptions;
  readonly #live = new Map<string, unknown>();
  /** Changes not yet on disk, newest value per key; null deletes. */
  #staged = new Map<string, unknown>();
  #generation = 0;
  #file: FileHandle | undefined;
  #logBytes = 0;
  #snapshotBytes = 0;
  #flushing: Promise<void> | undefined;
  #bytesWritten = 0;
  #lastError: string | undefined;

  constructor(options: StateLogOptions) {
    this.#options = options;
  }

  /** Bytes appended or rewritten since start, for the benchmark's write-amplification figure. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Why the last write failed (e.g. `ENOSPC`), or undefined while writes succeed. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Reads the snapshot and the log, cuts off a torn last line, and opens the log for appending. */
  async start(): Promise<ReadonlyMap<string, unknown>> {
    const { directory } = this.#options;
    const snapshot = await this.#readSnapshot();
    this.#generation = snapshot?.generation ?? (await newestLogGeneration(this.#options.directory)) ?? 0;
    for (const [key, value] of snapshot?.entries ?? []) this.#live.set(key, value);
    const logPath = this.#logPath(this.#generation);
    await this.#replay(logPath);
    for (const name of await readdir(directory)) {
      const generation = LOG_PATTERN.exec(name)?.[1];
      const leftover =
        (generation !== undefined && Number(generation) !== this.#generation) || name.endsWith('.tmp');
      if (leftover) await unlink(join(directory, name)).catch(() => undefined);
    }
    this.#file = await open(logPath, 'a', 0o600);
    await syncDirectory(directory);
    return this.#live;
  }

  get(key: string): unknown {
    return this.#live.get(key);
  }

  /** Stages a change; it is durable once a flush() called after it resolves. */
  set(key: string, value: unknown): void {
    this.#live.set(key, value);
    this.#staged.set(key, value);
  }

  delete(key: string): void {
    if (!this.#live.has(key) && !this.#staged.has(key)) return;
    this.#live.delete(key);
    this.#staged.set(key, null);
  }

  /**
   * Writes every staged change with one write and one fdatasync. Calls made while a write is under
   * way share the next one, so a burst of changes costs two syncs, not one each. Rejects when the
   * disk refuses; the changes stay staged and go with the next flush.
   */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing.catch(() => undefined);
    if (this.#staged.size === 0) return;
    const flushing = this.#write();
    this.#flushing = flushing;
    try {
      await flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  async stop(): Promise<void> {
    await this.flush().catch(() => undefined);
    await this.#file?.close();
    this.#file = undefined;
  }

  async #write(): Promise<void> {
    const file = this.#file;
    if (file === undefined) throw new Error('state log not started');
    const batch = this.#staged;
    this.#staged = new Map();
    const text = [...batch].map((entry) => `${JSON.stringify(entry)}\n`).join('');
    const before = this.#logBytes;
    try {
      await file.write(text);
      await file.datasync();
    } catch (error) {
      // A short write would leave half a line that glues onto the next one: cut back to before it.
      await file.truncate(before).catch(() => undefined);
      for (const [key, value] of batch) if (!this.#staged.has(key)) this.#staged.set(key, value);
      this.#lastError = errorCode(error);
      throw error;
    }
    this.#lastError = undefined;
    this.#logBytes += Buffer.byteLength(text);
    this.#bytesWritten += Buffer.byteLength(text);
    const limit = this.#options.compactAtBytes ?? DEFAULT_COMPACT_AT_BYTES;
    if (this.#logBytes >= limit && this.#logBytes > this.#snapshotBytes) await this.#compact();
  }

  /** The log becomes a snapshot of the next generation; a crash halfway leaves one of the two whole. */
  async #compact(): Promise<void> {
    const { directory } = this.#options;
    const generation = this.#generation + 1;
    const snapshot: Snapshot = { version: 1, generation, entries: [...this.#live] };
    await writeJsonAtomic(join(directory, SNAPSHOT), snapshot);
    const next = await open(this.#logPath(generation), 'a', 0o600);
    await syncDirectory(directory);
    const previous = this.#file;
    const previousPath = this.#logPath(this.#generation);
    this.#file = next;
    this.#generation = generation;
    this.#snapshotBytes = JSON.stringify(snapshot).length;
    this.#bytesWritten += this.#snapshotBytes;
    this.#logBytes = 0;
    await previous?.close();
    await unlink(previousPath).catch(() => undefined);
  }

  #logPath(generation: number): string {
    return join(this.#options.directory, `state.${generation}.log`);
  }

  async #readSnapshot(): Promise<Snapshot | undefined> {
    const path = join(this.#options.directory, SNAPSHOT);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      await this.#moveAside(path, `unreadable: ${errorCode(error)}`);
      return undefined;
    }
    try {
      const value = JSON.parse(text) as unknown;
      if (isSnapshot(value)) {
        this.#snapshotBytes = text.length;
        return value;
      }
    } catch {
      // reported below, like a snapshot of the wrong shape
    }
    await this.#moveAside(path, 'not a unitwatch state snapshot');
    return undefined;
  }

  async #replay(path: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return;
      await this.#moveAside(path, `unreadable: ${errorCode(error)}`);
      return;
    }
    const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
    if (complete.length < text.length) {
      // The one write a crash can tear is the last: cut it, so the next append starts a fresh line.
      await truncate(path, Buffer.byteLength(complete));
      this.#options.logger.warn(
        { file: path, bytes: Buffer.byteLength(text) - Buffer.byteLength(complete) },
        `${path}: cut off a torn last line left by a crash`,
      );
    }
    let unreadable = 0;
    for (const line of complete.split('\n')) {
      if (line !== '' && !applyLogLine(this.#live, line)) unreadable++;
    }
    this.#logBytes = Buffer.byteLength(complete);
    if (unreadable > 0) {
      this.#options.logger.error(
        { file: path, lines: unreadable },
        `${path}: skipped ${unreadable} unreadable line${unreadable === 1 ? '' : 's'}; the state they held is lost, the rest is used`,
      );
    }
  }

  async #moveAside(path: string, problem: string): Promise<void> {
    await setAside(path, problem, this.#options.logger, {
      ...(this.#options.now === undefined ? {} : { now: this.#options.now }),
      consequence: 'starting from an empty state',
    });
  }
}
