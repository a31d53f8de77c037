import {
  loadServiceDefinition,
  renderUnitFile,
  userServiceDefinitionPath,
} from '../../src/tools/service-unit.js';
import type { ExecResult, SystemdInstance } from './systemd-instance.js';
import { repoRoot } from './systemd-instance.js';
import { waitUntil } from './wait.js';

/** Where a system-wide user unit goes: every user's manager loads it, as on NixOS. */
export const USER_UNIT_PATH = '/etc/systemd/user/unitwatch.service';

/**
 * A real user of the booted instance with a running `user@UID.service` (a genuine `systemd --user`,
 * with the session bus of Debian's dbus-user-session), driven as that user from outside.
 */
export class UserManager {
  readonly instance: SystemdInstance;
  readonly name: string;
  readonly uid: number;

  private constructor(instance: SystemdInstance, name: string, uid: number) {
    this.instance = instance;
    this.name = name;
    this.uid = uid;
  }

  /** Creates the account (home in the instance's overlay) and starts its manager. */
  static async start(instance: SystemdInstance, name: string, uid: number): Promise<UserManager> {
    await instance.run(['useradd', '--create-home', '--uid', String(uid), '--shell', '/bin/sh', name]);
    const result = await instance.exec(['systemctl', 'start', `user@${uid}.service`]);
    if (result.code !== 0) {
      const log = await instance.journal('-u', `user@${uid}.service`, '-o', 'cat', '-n', '50');
      throw new Error(`user@${uid}.service did not start (${result.code}): ${result.stderr}\n${log}`);
    }
    return new UserManager(instance, name, uid);
  }

  get home(): string {
    return `/home/${this.name}`;
  }

  get runtimeDirectory(): string {
    return `/run/user/${this.uid}`;
  }

  /**
   * Runs a command as the user, with only what a login session gives: no DBUS_SESSION_BUS_ADDRESS
   * unless `env` sets one, so `--user` must find `$XDG_RUNTIME_DIR/bus` by itself.
   */
  exec(argv: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<ExecResult> {
    return this.instance.exec([
      'setpriv',
      `--reuid=${this.uid}`,
      `--regid=${this.uid}`,
      '--init-groups',
      'env',
      '-i',
      'PATH=/usr/local/bin:/usr/bin:/bin',
      `HOME=${this.home}`,
      `USER=${this.name}`,
      `XDG_RUNTIME_DIR=${this.runtimeDirectory}`,
      ...Object.entries(env).map(([key, value]) => `${key}=${value}`),
      ...argv,
    ]);
  }

  async run(argv: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<string> {
    const result = await this.exec(argv, env);
    if (result.code !== 0) {
      throw new Error(
        `${argv.join(' ')} as ${this.name} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`,
      );
    }
    return result.stdout;
  }

  systemctl(...args: string[]): Promise<string> {
    return this.run(['systemctl', '--user', '--no-pager', ...args]);
  }

  async property(unit: string, name: string): Promise<string> {
    return (await this.systemctl('show', '--value', `--property=${name}`, '--', unit)).trim();
  }

  journal(...args: string[]): Promise<string> {
    return this.run(['journalctl', '--user', '--no-pager', '--quiet', ...args]);
  }

  /** Writes a file owned by the user (parents too, below the home directory). */
  async writeFile(path: string, content: string, mode = '0600'): Promise<void> {
    await this.instance.writeFile(path, content, mode);
    if (path.startsWith(`${this.home}/`)) {
      await this.instance.run(['chown', '-R', `${this.name}:${this.name}`, this.home]);
    }
  }

  /**
   * unitwatch as that user's unit, rendered from nix/user-service.json like the system one, reading
   * the user's own environment file. Started, it must become ready (Type=notify) or this throws.
   */
  async installUnitwatch(env: Readonly<Record<string, string>>): Promise<void> {
    const envFile = `${this.home}/.config/unitwatch/unitwatch.env`;
    const lines = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    await this.writeFile(envFile, `${lines.join('\n')}\n`);
    const unit = renderUnitFile(loadServiceDefinition(userServiceDefinitionPath), {
      execStart: `${process.execPath} -- ${repoRoot}dist/cli.js run --user`,
      // %h: the user's home, so one unit file serves every user, each with their own file.
      environmentFile: '%h/.config/unitwatch/unitwatch.env',
      // The code under test may live under /tmp, which PrivateTmp= hides; bind it back read-only.
      extraService: { BindReadOnlyPaths: repoRoot.replace(/\/$/, '') },
    });
    await this.instance.writeFile(USER_UNIT_PATH, unit);
    await this.systemctl('daemon-reload');
  }

  async startUnitwatch(): Promise<void> {
    const result = await this.exec(['systemctl', '--user', 'start', 'unitwatch.service']);
    if (result.code !== 0) {
      const log = await this.journal('-u', 'unitwatch.service', '-o', 'cat', '-n', '50').catch(
        (error: unknown) => String(error),
      );
      throw new Error(
        `unitwatch did not start in ${this.name}'s manager (${result.code}): ${result.stderr}\n${log}`,
      );
    }
  }

  /** Waits until the user's manager reports the unit in `state` (ActiveState). */
  async waitForState(unit: string, state: string, timeoutMs: number): Promise<void> {
    await waitUntil(
      `${unit} ${state} in ${this.name}'s manager`,
      async () => (await this.property(unit, 'ActiveState')) === state,
      timeoutMs,
    );
  }
}
