/**
 * Which systemd instance unitwatch watches: the system manager (PID 1, on the system bus) or, with
 * `--user`, the invoking user's manager (`systemd --user`, started as `user@UID.service`, on that
 * user's session bus). Pure: the environment and a file test are passed in.
 */

export type ManagerScope = 'system' | 'user';

export interface ServiceManager {
  readonly scope: ManagerScope;
  /** The D-Bus address of the bus that manager is on. */
  readonly busAddress: string;
  /** `system bus` or `session bus`, as log lines and errors name it. */
  readonly busName: string;
}

export const DEFAULT_SYSTEM_BUS = 'unix:path=/var/run/dbus/system_bus_socket';

type Environment = Readonly<Record<string, string | undefined>>;

/** The system manager, on `DBUS_SYSTEM_BUS_ADDRESS` or the standard socket. */
export function systemManager(env: Environment): ServiceManager {
  return {
    scope: 'system',
    busAddress: env.DBUS_SYSTEM_BUS_ADDRESS || DEFAULT_SYSTEM_BUS,
    busName: 'system bus',
  };
}

/**
 * A path as a D-Bus address value: bytes outside the spec's "optionally escaped" set become `%XX`,
 * so a runtime directory with `,`, `;` or `=` in it cannot split the address.
 */
export function escapeAddressValue(value: string): string {
  return [...Buffer.from(value, 'utf8')]
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[-0-9A-Za-z_/.\\*]/.test(char) ? char : `%${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
}

/** The reverse of escapeAddressValue: each `%XX` back to its byte, the whole read as UTF-8. */
export function unescapeAddressValue(value: string): string {
  const parts = value.split(/(%[0-9a-fA-F]{2})/);
  return Buffer.concat(
    parts.map((part) =>
      /^%[0-9a-fA-F]{2}$/.test(part)
        ? Buffer.from([Number.parseInt(part.slice(1), 16)])
        : Buffer.from(part, 'utf8'),
    ),
  ).toString('utf8');
}

/**
 * The user's manager, on `DBUS_SESSION_BUS_ADDRESS`, else on `$XDG_RUNTIME_DIR/bus` (the socket the
 * user's `dbus.socket` listens on, from Debian's dbus-user-session). When neither is there, the
 * problem naming both, as one sentence.
 */
export function userManager(env: Environment, exists: (path: string) => boolean): ServiceManager | string {
  const fromEnv = env.DBUS_SESSION_BUS_ADDRESS?.trim();
  if (fromEnv !== undefined && fromEnv !== '') {
    return { scope: 'user', busAddress: fromEnv, busName: 'session bus' };
  }
  const runtime = env.XDG_RUNTIME_DIR;
  const hint =
    "--user watches your own service manager (systemd --user) on your session bus: run it as a user unit, or from a login session, where systemd sets both; the user's dbus.socket (Debian: dbus-user-session) provides the bus";
  if (runtime === undefined || runtime === '') {
    return `no session bus: DBUS_SESSION_BUS_ADDRESS is not set, and neither is XDG_RUNTIME_DIR (whose bus socket would be used). ${hint}`;
  }
  if (!runtime.startsWith('/')) {
    return `no session bus: DBUS_SESSION_BUS_ADDRESS is not set, and XDG_RUNTIME_DIR (${runtime}) is not an absolute path. ${hint}`;
  }
  const socket = `${runtime.replace(/\/+$/, '')}/bus`;
  if (!exists(socket)) {
    return `no session bus: DBUS_SESSION_BUS_ADDRESS is not set, and ${socket} (from XDG_RUNTIME_DIR) does not exist. ${hint}`;
  }
  return { scope: 'user', busAddress: `unix:path=${escapeAddressValue(socket)}`, busName: 'session bus' };
}

/**
 * Where a user's unitwatch keeps its state when neither UNITWATCH_STATE_DIRECTORY nor
 * `$STATE_DIRECTORY` (a user unit's StateDirectory=, which systemd puts under `$XDG_STATE_HOME`) is
 * set: `$XDG_STATE_HOME/unitwatch`, else `~/.local/state/unitwatch` (the XDG default of that variable).
 */
export function userStateDirectory(env: Environment): string | undefined {
  const stateHome = env.XDG_STATE_HOME;
  // The XDG spec says a relative $XDG_STATE_HOME is invalid and to be ignored.
  if (stateHome?.startsWith('/')) return `${stateHome.replace(/\/+$/, '')}/unitwatch`;
  const home = env.HOME;
  if (home?.startsWith('/')) return `${home.replace(/\/+$/, '')}/.local/state/unitwatch`;
  return undefined;
}

/**
 * Where a user's unitwatch may have left its state, for `status --user` run outside the unit (no
 * `$STATE_DIRECTORY` there): the default above, then `$XDG_CONFIG_HOME/unitwatch`, where systemd 252's
 * StateDirectory=unitwatch puts it for a user unit (measured in the integration suite).
 */
export function userStateDirectoryCandidates(env: Environment): string[] {
  const candidates: string[] = [];
  const state = userStateDirectory(env);
  if (state !== undefined) candidates.push(state);
  const configHome = env.XDG_CONFIG_HOME?.startsWith('/')
    ? env.XDG_CONFIG_HOME.replace(/\/+$/, '')
    : env.HOME?.startsWith('/')
      ? `${env.HOME.replace(/\/+$/, '')}/.config`
      : undefined;
  if (configHome !== undefined) candidates.push(`${configHome}/unitwatch`);
  return candidates;
}

/** `--user` for systemctl and journalctl when the user's manager is watched, nothing otherwise. */
export function scopeArguments(scope: ManagerScope): readonly string[] {
  return scope === 'user' ? ['--user'] : [];
}
