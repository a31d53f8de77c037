import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userStateDirectoryCandidates } from '../../src/core/service-manager.js';
import { type ReceivedMail, SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, repoRoot, SystemdInstance } from '../harness/systemd-instance.js';
import { shutDown } from '../harness/unitwatch-service.js';
import { UserManager } from '../harness/user-manager.js';
import { waitUntil } from '../harness/wait.js';

const skip = integrationSkipReason();
const MAIL_WAIT_MS = 20_000;
const NAME = 'alice';
const UID = 1500;

function textOf(mail: ReceivedMail | undefined): string {
  return mail?.parsed.text ?? '';
}

/**
 * Issue 13, item 4: unitwatch as a unit of a user's own manager. The booted systemd starts a real
 * `user@1500.service` (systemd --user, PAM session, the user's dbus.socket from dbus-user-session);
 * unitwatch runs in it as the unit rendered from nix/user-service.json, `run --user`, unprivileged.
 */
describe.skipIf(skip !== undefined)("unitwatch in a real user's manager (user@UID.service)", () => {
  let instance: SystemdInstance;
  let alice: UserManager;
  const smtp = new SmtpSink();

  async function failUserUnit(unit: string, words: string): Promise<void> {
    await alice.run([
      'systemd-run',
      '--user',
      '--quiet',
      `--unit=${unit}`,
      '-p',
      'Restart=no',
      '/bin/sh',
      '-c',
      // The pause lets journald read the process's cgroup, so its line carries the invocation id.
      `echo "${words}"; sleep 0.3; exit 4`,
    ]);
  }

  beforeAll(async () => {
    await smtp.start();
    instance = await SystemdInstance.boot();
    alice = await UserManager.start(instance, NAME, UID);
    await alice.installUnitwatch({
      UNITWATCH_TO: 'alice@example.org',
      UNITWATCH_SMTP_URL: smtp.url,
      UNITWATCH_HOSTNAME: 'desk',
      UNITWATCH_LOG_LEVEL: 'debug',
    });
    // Type=notify: this returns once the daemon is subscribed on the session bus and said READY=1.
    await alice.startUnitwatch();
  }, 120_000);

  afterAll(() => shutDown(instance, smtp));

  it('runs unprivileged as the user, on the session bus, with its state in $STATE_DIRECTORY', {
    timeout: 30_000,
  }, async () => {
    const pid = await alice.property('unitwatch.service', 'MainPID');
    expect(Number(pid)).toBeGreaterThan(0);
    expect((await instance.run(['ps', '-o', 'user=', '-p', pid])).trim()).toBe(NAME);
    await waitUntil(
      'STATUS= naming the session bus',
      async () =>
        (await alice.property('unitwatch.service', 'StatusText')).startsWith('on the session bus since'),
      10_000,
    );
    const environ = (await instance.run(['cat', `/proc/${pid}/environ`])).split('\0');
    const stateDirectory = environ.find((entry) => entry.startsWith('STATE_DIRECTORY='))?.slice(16) ?? '';
    // Where systemd put StateDirectory= for a user unit; `status --user` looks in the same places.
    expect(userStateDirectoryCandidates({ HOME: alice.home })).toContain(stateDirectory);
    const listing = await instance.run(['ls', '-ln', stateDirectory]);
    expect(listing).toMatch(/^d\S+ +\d+ 1500 1500 .* outbox$/m);
    process.stdout.write(`user unit: pid ${pid}, STATE_DIRECTORY=${stateDirectory}\n`);
  });

  it('mails a failed user unit by name, with its own line, its journal and --user commands', {
    timeout: 60_000,
  }, async () => {
    await failUserUnit('sync-notes.service', 'sync-notes: cannot reach notes.example.org');
    await smtp.waitForMailAbout('sync-notes.service', MAIL_WAIT_MS);
    const [mail, ...more] = smtp.mailsAbout('sync-notes.service');
    expect(more).toEqual([]);
    expect(mail?.parsed.subject).toBe('[unitwatch] sync-notes.service failed on desk (exit-code)');
    expect(mail?.envelopeTo).toEqual(['alice@example.org']);
    const text = textOf(mail);
    expect(text).toContain('It said: sync-notes: cannot reach notes.example.org');
    expect(text).toContain('── status: systemctl --user status --full -- sync-notes.service');
    expect(text).toMatch(
      /── journal of this invocation: journalctl --user _SYSTEMD_INVOCATION_ID=([0-9a-f]{32}) \+ USER_INVOCATION_ID=\1\n/,
    );
    // systemd --user's own closing line, found through USER_INVOCATION_ID.
    expect(text).toMatch(/systemd\[\d+\]: sync-notes\.service: Failed with result 'exit-code'\./);
    expect(text).toContain('  systemctl --user reset-failed -- sync-notes.service   # once handled');
    process.stdout.write(`mail from the user manager:\n${text}\n`);
  });

  it('answers check and status for the user manager from a login-like shell', {
    timeout: 30_000,
  }, async () => {
    const cli = [process.execPath, '--', `${repoRoot}dist/cli.js`];
    const env = ['--env-file', `${alice.home}/.config/unitwatch/unitwatch.env`];
    const check = await alice.exec([...cli, 'check', '--user', ...env]);
    expect(check.stdout).toMatch(/^UNITWATCH WARNING - failed: sync-notes\.service \|/);
    expect(check.code).toBe(1);
    const status = await alice.exec([...cli, 'status', '--user', '--json', ...env]);
    const report = JSON.parse(status.stdout) as { daemon?: { activeState?: string }; problems?: string[] };
    expect(report.daemon?.activeState).toBe('active');
    expect(report.problems ?? []).toEqual([]);
  });

  it('reconnects when the session bus restarts, and mails a failure after it', {
    timeout: 90_000,
  }, async () => {
    await alice.systemctl('restart', 'dbus.service');
    await waitUntil(
      'unitwatch reconnected to the session bus',
      async () =>
        /reconnected to the session bus/.test(await alice.journal('-u', 'unitwatch.service', '-o', 'cat')),
      45_000,
    );
    await failUserUnit('after-bus-restart.service', 'after-bus-restart: real');
    await smtp.waitForMailAbout('after-bus-restart.service', MAIL_WAIT_MS);
    expect(await alice.property('unitwatch.service', 'NRestarts')).toBe('0');
  });

  it("drops signals on the session bus that do not come from the user's manager", {
    timeout: 60_000,
  }, async () => {
    const pid = await alice.property('unitwatch.service', 'MainPID');
    const listing = await alice.run(['busctl', '--user', 'list', '--unique', '--no-legend']);
    const unitwatchName =
      listing
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .find((columns) => columns[1] === pid)?.[0] ?? '';
    expect(unitwatchName).toMatch(/^:1\.\d+$/);
    // Another process of the same user, on the same session bus, claiming a unit failed.
    for (const destination of [unitwatchName, '-']) {
      const out = await alice.run(
        [
          process.execPath,
          `${repoRoot}test/fixtures/forge-signals.mjs`,
          destination,
          'ghost.service',
          'failed',
          'failed',
        ],
        { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${alice.runtimeDirectory}/bus` },
      );
      expect(out).toContain('sent 1 forged signal');
    }
    // The barrier: a real failure after the forged ones.
    await failUserUnit('after-forgery.service', 'after-forgery: real');
    await smtp.waitForMailAbout('after-forgery.service', MAIL_WAIT_MS);
    expect(smtp.mailsAbout('ghost.service')).toEqual([]);
    const log = await alice.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(log).toMatch(
      /dropped 1 D-Bus message not sent by systemd \(last: PropertiesChanged from :1\.\d+\)/,
    );
  });
});
