import { loadServiceDefinition, renderUnitFile } from '../../src/tools/service-unit.js';
import { repoRoot, type SystemdInstance } from './systemd-instance.js';

export const ENV_FILE = '/etc/unitwatch/unitwatch.env';

/**
 * Installs unitwatch inside a booted instance exactly as users run it: the unit rendered from
 * nix/service.json (hardening, DynamicUser, Type=notify), plus only what a test host needs to
 * reach the code under test.
 */
export async function installUnitwatch(
  instance: SystemdInstance,
  env: Readonly<Record<string, string>>,
  extraService: Readonly<Record<string, string | string[]>> = {},
): Promise<void> {
  const definition = loadServiceDefinition();
  const user = definition.service.User;
  if (typeof user === 'string') {
    // dbus-daemon needs a resolvable account for the connection; the NixOS module declares one.
    await instance.exec(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
  }
  await instance.writeFile(
    ENV_FILE,
    `${Object.entries(env)
      .map(([key, value]) => `${key}=${value}`)
      .join('\n')}\n`,
    '0600',
  );
  const unit = renderUnitFile(definition, {
    execStart: `${process.execPath} -- ${repoRoot}dist/cli.js run`,
    environmentFile: ENV_FILE,
    // The code under test may live under /tmp, which PrivateTmp= hides; bind it back read-only.
    extraService: { BindReadOnlyPaths: repoRoot.replace(/\/$/, ''), ...extraService },
  });
  await instance.writeFile('/etc/systemd/system/unitwatch.service', unit);
  await instance.systemctl('daemon-reload');
}

export async function startUnitwatch(instance: SystemdInstance): Promise<void> {
  const result = await instance.exec(['systemctl', 'start', 'unitwatch.service']);
  if (result.code !== 0) {
    const log = await instance.journal('-u', 'unitwatch.service', '-o', 'cat', '-n', '50');
    throw new Error(`unitwatch did not start (${result.code}): ${result.stderr}\n${log}`);
  }
}
