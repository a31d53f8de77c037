import { randomBytes } from 'node:crypto';
import { mkdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors/config-error.js';

const KEY = 'UNITWATCH_STATE_DIRECTORY';

/**
 * Checks at start-up that the state directory exists (creating it if need be) and that this
 * process can write in it, by writing and removing a probe file. Throws ConfigError naming
 * UNITWATCH_STATE_DIRECTORY, so that `run` exits 78 instead of failing at the first queued mail.
 */
export async function checkStateDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw problem(path, (error as NodeJS.ErrnoException).code, 'cannot be created');
  }
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw problem(path, error.code, 'cannot be read');
  });
  if (!info.isDirectory()) throw problem(path, 'ENOTDIR', 'cannot be used');
  const probe = join(path, `.unitwatch-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(probe, 'probe\n', { flag: 'wx', mode: 0o600 });
  } catch (error) {
    throw problem(path, (error as NodeJS.ErrnoException).code, 'is not writable');
  }
  await unlink(probe).catch((error: NodeJS.ErrnoException) => {
    throw problem(path, error.code, 'lets this process write but not remove files');
  });
}

function problem(path: string, code: string | undefined, what: string): ConfigError {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const reason: Record<string, string> = {
    ENOTDIR: 'is a file (or lies under one), not a directory',
    EEXIST: 'is a file, not a directory',
    EACCES: `is not writable by this process (uid ${uid ?? '?'})`,
    EPERM: `is not writable by this process (uid ${uid ?? '?'})`,
    EROFS: 'is on a read-only file system',
    ENOSPC: 'is on a full file system',
    EDQUOT: 'is over its disk quota',
  };
  const why = (code === undefined ? undefined : reason[code]) ?? `${what} (${code ?? 'unknown error'})`;
  return new ConfigError([
    {
      key: KEY,
      message:
        `${path} ${why}: point UNITWATCH_STATE_DIRECTORY at a directory this user can write, or under ` +
        'systemd let StateDirectory=unitwatch create one (with ProtectSystem=strict, only it and ReadWritePaths= are writable)',
    },
  ]);
}
