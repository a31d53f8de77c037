import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { cleanLine } from '../core/text.js';
import type { Logger } from './logger.js';

/** Set-aside copies of one state file kept for an operator to read; older ones are deleted. */
export const KEPT_CORRUPT_COPIES = 5;

const CORRUPT_MARK = '.corrupt-';
const TEMPORARY_SUFFIX = '.tmp';

export interface ReadJsonOptions {
  readonly logger: Logger;
  /** Says what is wrong with a parsed value, or undefined when it has the expected shape. */
  readonly validate?: (value: unknown) => string | undefined;
  readonly now?: () => number;
  /** What carrying on without the file means, for the log line; "carrying on without it" by default. */
  readonly consequence?: string;
}

export type JsonRead =
  | { readonly status: 'ok'; readonly value: unknown }
  | { readonly status: 'missing' }
  | { readonly status: 'set-aside' };

/**
 * Reads a JSON file written by writeJsonAtomic. A missing file is `undefined`. A file that cannot be
 * used (empty, truncated, not JSON, the wrong shape, a directory) is moved aside as
 * `NAME.corrupt-<timestamp>`, logged at error, and read as `undefined` too: bad state must never stop
 * monitoring. Never throws.
 */
export async function readJson(path: string, options: ReadJsonOptions): Promise<unknown> {
  const read = await readJsonFile(path, options);
  return read.status === 'ok' ? read.value : undefined;
}

/** readJson, saying whether the file was missing or moved aside. Never throws. */
export async function readJsonFile(path: string, options: ReadJsonOptions): Promise<JsonRead> {
  let problem: string;
  try {
    const text = await readFile(path, 'utf8');
    if (text.trim() === '') {
      problem = 'the file is empty';
    } else {
      const value = JSON.parse(text) as unknown;
      const wrong = options.validate?.(value);
      if (wrong === undefined) return { status: 'ok', value };
      problem = wrong;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { status: 'missing' };
    problem =
      code === 'EISDIR'
        ? 'it is a directory, not a file'
        : error instanceof SyntaxError
          ? `not valid JSON (${error.message})`
          : error instanceof Error
            ? error.message
            : String(error);
  }
  await setAside(path, problem, options.logger, options);
  return { status: 'set-aside' };
}

/**
 * Moves an unusable state file (or directory) out of the way as `NAME.corrupt-<timestamp>` and logs
 * at error what was wrong; keeps the newest KEPT_CORRUPT_COPIES copies of the same name. Kept rather
 * than deleted: it may hold something an operator wants to read. Never throws; returns where it went.
 */
export async function setAside(
  path: string,
  problem: string,
  logger: Logger,
  options: { readonly now?: () => number; readonly consequence?: string } = {},
): Promise<string | undefined> {
  const now = options.now ?? Date.now;
  const consequence = options.consequence ?? 'carrying on without it';
  const what = cleanLine(problem, 300);
  const stamp = new Date(now()).toISOString().replace(/[-:]/g, '').replace('.', '');
  let target = `${path}${CORRUPT_MARK}${stamp}`;
  try {
    // Two set-asides in one millisecond must not overwrite each other.
    for (let n = 1; await exists(target); n++) target = `${path}${CORRUPT_MARK}${stamp}-${n}`;
    await rename(path, target);
    await syncDirectory(dirname(path));
  } catch (error) {
    logger.error(
      { file: path, problem: what, err: error },
      `state file ${path} is unusable (${what}) and could not be moved aside; ${consequence}`,
    );
    return undefined;
  }
  logger.error(
    { file: path, movedTo: target, problem: what },
    `state file ${path} is unusable (${what}); moved aside to ${basename(target)}, ${consequence}`,
  );
  await pruneCorrupt(path, logger);
  return target;
}

/** Deletes all but the newest KEPT_CORRUPT_COPIES set-aside copies of `path`. */
async function pruneCorrupt(path: string, logger: Logger): Promise<void> {
  const directory = dirname(path);
  const prefix = `${basename(path)}${CORRUPT_MARK}`;
  try {
    const copies = (await readdir(directory)).filter((name) => name.startsWith(prefix)).sort();
    for (const name of copies.slice(0, Math.max(0, copies.length - KEPT_CORRUPT_COPIES))) {
      await rm(join(directory, name), { recursive: true, force: true });
    }
  } catch (error) {
    logger.warn({ file: path, err: error }, `could not delete old set-aside copies of ${path}`);
  }
}

/**
 * Removes `NAME.<pid>.tmp` files that writeJsonAtomic left when a crash interrupted it before its
 * rename; returns their names. One process per state directory, so none of them is being written.
 */
export async function removeTemporaryFiles(directory: string, logger: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(directory)).filter((name) => name.endsWith(TEMPORARY_SUFFIX));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    try {
      await rm(join(directory, name), { force: true });
      removed.push(name);
    } catch (error) {
      logger.warn({ file: join(directory, name), err: error }, 'could not remove a half-written state file');
    }
  }
  if (removed.length > 0) {
    logger.info({ directory, files: removed }, 'removed half-written state files left by a crash');
  }
  return removed;
}

/**
 * Replaces a file so that a crash at any moment leaves either the old or the new content:
 * write a temporary file, fsync it, rename it over the target, fsync the directory.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const temporary = `${path}.${process.pid}${TEMPORARY_SUFFIX}`;
  const file = await open(temporary, 'w', 0o600);
  try {
    await file.writeFile(`${JSON.stringify(value)}\n`);
    await file.sync();
  } catch (error) {
    // A full disk must not leave a half-written file behind to be cleaned up at the next start.
    await file.close();
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
  await file.close();
  await rename(temporary, path);
  await syncDirectory(dirname(path));
}

/** Makes a create, rename or unlink in `directory` survive a power loss. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
