import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, type SystemdInstance } from '../harness/systemd-instance.js';
import { bootWithUnitwatch, shutDown, startUnitwatch } from '../harness/unitwatch-service.js';

const skip = integrationSkipReason();
const STATE = '/var/lib/unitwatch';
const DROP_IN = '/etc/systemd/system/unitwatch.service.d/lifecycle-test.conf';

/** Issue 11: the daemon's start, stop and bad state, as systemd sees them. */
describe.skipIf(skip !== undefined)('unitwatch lifecycle in a real systemd', () => {
  let instance: SystemdInstance;
  const smtp = new SmtpSink();

  /** The unit's journal, one entry a line; tests slice off what came before their action. */
  /** The unit's journal, each line as `PRIORITY MESSAGE` (3 is err, 4 warning, 6 info). */
  async function journalLines(): Promise<string[]> {
    const json = await instance.journal(
      '-u',
      'unitwatch.service',
      '-o',
      'json',
      '--output-fields=PRIORITY,MESSAGE',
    );
    return json
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as { PRIORITY?: string; MESSAGE?: unknown })
      .map((entry) => `${entry.PRIORITY ?? '?'} ${typeof entry.MESSAGE === 'string' ? entry.MESSAGE : ''}`);
  }

  async function waitForProperty(
    name: string,
    predicate: (value: string) => boolean,
    timeoutMs: number,
  ): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await instance.property('unitwatch.service', name);
      if (predicate(value)) return value;
      if (Date.now() > deadline)
        throw new Error(`unitwatch.service ${name} is still "${value}" after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    instance = await bootWithUnitwatch(smtp, { env: { UNITWATCH_HOSTNAME: 'lifecyclehost' } });
  });

  afterAll(() => shutDown(instance, smtp));

  it('starts over a truncated reported.json and state.json and an outbox that is a regular file, says so, and still mails a failure', {
    timeout: 90_000,
  }, async () => {
    await instance.systemctl('stop', 'unitwatch.service');
    await instance.run([
      'sh',
      '-c',
      `printf '["truncated.service|' > ${STATE}/reported.json && rm -rf ${STATE}/outbox && echo oops > ${STATE}/outbox && printf '{"version":1,"gener' > ${STATE}/state.json`,
    ]);
    const before = (await journalLines()).length;
    await startUnitwatch(instance);
    await instance.run([
      'systemd-run',
      '--no-block',
      '--quiet',
      '--unit=after-corrupt.service',
      '/bin/false',
    ]);
    await smtp.waitForMailAbout('after-corrupt.service', 30_000);

    const lines = (await journalLines()).slice(before);
    const errors = lines.filter((line) => line.startsWith('3 '));
    expect(
      errors.some((line) => line.includes(`state file ${STATE}/reported.json is unusable (not valid JSON`)),
    ).toBe(true);
    expect(
      errors.some((line) => line.includes(`state file ${STATE}/outbox is unusable (it is not a directory)`)),
    ).toBe(true);
    expect(
      errors.some((line) =>
        line.includes(
          `state file ${STATE}/state.json is unusable (not a unitwatch state snapshot); moved aside`,
        ),
      ),
    ).toBe(true);
    expect(await instance.property('unitwatch.service', 'NRestarts')).toBe('0');
    const listing = await instance.run(['ls', '-A', STATE]);
    expect(listing).toMatch(/^reported\.json\.corrupt-\d{8}T\d{9}Z$/m);
    expect(listing).toMatch(/^outbox\.corrupt-\d{8}T\d{9}Z$/m);
    expect((await instance.run(['stat', '-c', '%F', `${STATE}/outbox`])).trim()).toBe('directory');
  });

  it('with a read-only outbox, sends mail directly, retries it from memory while the relay refuses, and says so', {
    timeout: 90_000,
  }, async () => {
    // The real path: with DynamicUser= the state directory lives under /var/lib/private.
    await instance.writeFile(DROP_IN, '[Service]\nReadOnlyPaths=/var/lib/private/unitwatch/outbox\n');
    await instance.systemctl('daemon-reload');
    await instance.systemctl('restart', 'unitwatch.service');
    const before = (await journalLines()).length;
    try {
      smtp.refuseWith = 451;
      const refusedBefore = smtp.refused;
      await instance.run(['systemd-run', '--no-block', '--quiet', '--unit=readonly-1.service', '/bin/false']);
      await smtp.waitFor(() => smtp.refused > refusedBefore, 30_000, 'the first, refused, attempt');
      const status = await waitForProperty(
        'StatusText',
        (text) => /state directory not writable since/.test(text),
        10_000,
      );
      expect(status).toMatch(/mail sent directly, 1 kept in memory/);
      smtp.refuseWith = undefined;
      // Retried from memory with the outbox's backoff (2–4 s for the first retry).
      await smtp.waitForMailAbout('readonly-1.service', 30_000);
      await instance.run(['systemd-run', '--no-block', '--quiet', '--unit=readonly-2.service', '/bin/false']);
      await smtp.waitForMailAbout('readonly-2.service', 30_000);
      const lines = (await journalLines()).slice(before);
      // Logged once, not per mail.
      expect(lines.filter((line) => line.includes('cannot write the outbox in'))).toHaveLength(1);
      expect(lines.some((line) => line.includes('EROFS'))).toBe(true);
    } finally {
      smtp.refuseWith = undefined;
      await instance.run(['rm', '-f', DROP_IN]);
      await instance.systemctl('daemon-reload');
      await instance.systemctl('restart', 'unitwatch.service');
    }
  });

  it('on SIGHUP says configuration is read only at start and goes on watching, same process', {
    timeout: 60_000,
  }, async () => {
    const pid = await instance.property('unitwatch.service', 'MainPID');
    const before = (await journalLines()).length;
    await instance.systemctl('kill', '--signal=SIGHUP', 'unitwatch.service');
    // The barrier: a failure after the signal is mailed by the same process.
    await instance.run(['systemd-run', '--no-block', '--quiet', '--unit=after-sighup.service', '/bin/false']);
    await smtp.waitForMailAbout('after-sighup.service', 30_000);
    expect(await instance.property('unitwatch.service', 'MainPID')).toBe(pid);
    expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('active');
    const lines = (await journalLines()).slice(before);
    expect(
      lines.filter((line) =>
        line.includes('SIGHUP received; unitwatch reads its configuration only at start'),
      ),
    ).toHaveLength(1);
  });

  it('exits promptly on SIGTERM while waiting to reconnect to the system bus', {
    timeout: 90_000,
  }, async () => {
    const before = (await journalLines()).length;
    await instance.systemctl('stop', 'dbus.socket', 'dbus.service');
    try {
      // Attempt 5 waits 5 s before trying again: a stop then falls inside a wait.
      await waitForProperty(
        'StatusText',
        (text) => /reconnecting to the system bus since .* \(attempt [5-9]\)/.test(text),
        30_000,
      );
      const startedMs = Date.now();
      await instance.systemctl('stop', 'unitwatch.service');
      const stopMs = Date.now() - startedMs;
      process.stdout.write(`stop during a reconnect wait took ${stopMs} ms\n`);
      expect(stopMs).toBeLessThan(3000);
      expect(await instance.property('unitwatch.service', 'ActiveState')).toBe('inactive');
      expect(await instance.property('unitwatch.service', 'ExecMainStatus')).toBe('0');
      const lines = (await journalLines()).slice(before);
      const stopped = lines.findIndex((line) => line.includes('unitwatch stopped'));
      expect(stopped).toBeGreaterThan(-1);
      expect(lines.slice(stopped + 1).filter((line) => line.includes('reconnect'))).toEqual([]);
    } finally {
      await instance.systemctl('start', 'dbus.socket', 'dbus.service');
    }
  });

  it('exits non-zero within the bound when the system bus cannot be reached, one line per attempt', {
    timeout: 90_000,
  }, async () => {
    // Restart=no only here, so the exit status is the one the first process left.
    await instance.writeFile(
      DROP_IN,
      '[Service]\nEnvironment=DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/nonexistent\nRestart=no\n',
    );
    await instance.systemctl('daemon-reload');
    try {
      const before = (await journalLines()).length;
      const startedMs = Date.now();
      const start = await instance.exec(['systemctl', 'start', 'unitwatch.service']);
      const elapsedMs = Date.now() - startedMs;
      process.stdout.write(`start without a bus gave up after ${elapsedMs} ms\n`);
      expect(start.code).not.toBe(0);
      expect(elapsedMs).toBeLessThan(40_000);
      expect(await instance.property('unitwatch.service', 'ExecMainStatus')).toBe('1');
      const lines = (await journalLines()).slice(before);
      const attempts = lines.filter((line) =>
        /cannot connect to the system bus at unix:path=\/run\/nonexistent: .*; is dbus running\? retrying in [\d.]+ s \(attempt \d of 8\)/.test(
          line,
        ),
      );
      expect(attempts).toHaveLength(7);
      expect(
        lines.some((line) => line.includes('unitwatch could not start: cannot connect to the system bus')),
      ).toBe(true);
    } finally {
      await instance.run(['rm', '-f', DROP_IN]);
      await instance.systemctl('daemon-reload');
    }
  });
});
