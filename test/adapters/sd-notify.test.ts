import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SystemdNotifier } from '../../src/adapters/sd-notify.js';
import { memoryLogger } from '../harness/memory-logger.js';

describe('SystemdNotifier', () => {
  let directory: string;
  let binary: string;
  let calls: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'unitwatch-notify-'));
    binary = join(directory, 'systemd-notify');
    calls = join(directory, 'calls');
    // A stand-in for systemd-notify that records its arguments, one call a line.
    await writeFile(binary, `#!/bin/sh\necho "$*" >> '${calls}'\n`);
    await chmod(binary, 0o755);
  });

  afterEach(() => rm(directory, { recursive: true, force: true }));

  const recorded = async () => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean);

  it('does nothing without NOTIFY_SOCKET (not started by systemd)', async () => {
    const notifier = new SystemdNotifier(memoryLogger().logger, {}, binary);
    await notifier.ready('watching');
    await notifier.watchdog();
    expect(notifier.enabled).toBe(false);
    expect(await recorded()).toEqual([]);
  });

  it('sends READY with the status, then only status lines that changed', async () => {
    const notifier = new SystemdNotifier(memoryLogger().logger, { NOTIFY_SOCKET: '/run/notify' }, binary);
    await notifier.ready('watching 3 active units');
    await notifier.status('watching 3 active units');
    await notifier.status('reconnecting to the system bus since 10:02:03 (attempt 1)');
    await notifier.watchdog();
    await notifier.stopping();
    expect(await recorded()).toEqual([
      '--ready --status=watching 3 active units',
      '--status=reconnecting to the system bus since 10:02:03 (attempt 1)',
      'WATCHDOG=1',
      'STOPPING=1',
    ]);
  });

  it('logs a failing systemd-notify as a warning and does not throw', async () => {
    await writeFile(binary, '#!/bin/sh\necho "no socket" >&2\nexit 1\n');
    const log = memoryLogger();
    const notifier = new SystemdNotifier(log.logger, { NOTIFY_SOCKET: '/run/notify' }, binary);
    await notifier.watchdog();
    expect(log.lines.filter((line) => line.level === 40).map((line) => line.msg)).toEqual([
      'systemd-notify WATCHDOG=1 failed: no socket; systemd did not get it, carrying on',
    ]);
  });
});
