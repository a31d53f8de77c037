import { loadServiceDefinition, renderUnitFile } from '../../src/tools/service-unit.js';
import type { SmtpSink } from './smtp-sink.js';
import { type ExecResult, repoRoot, SystemdInstance } from './systemd-instance.js';

export const ENV_FILE = '/etc/unitwatch/unitwatch.env';

/** `unitwatch ARGS --env-file ENV_FILE` as root inside the instance, as an operator types it. */
export function unitwatchCommand(instance: SystemdInstance, ...args: string[]): Promise<ExecResult> {
  return instance.exec([process.execPath, '--', `${repoRoot}dist/cli.js`, ...args, '--env-file', ENV_FILE]);
}

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
  await writeEnvFile(instance, env);
  const unit = renderUnitFile(definition, {
    execStart: `${process.execPath} -- ${repoRoot}dist/cli.js run`,
    environmentFile: ENV_FILE,
    // The code under test may live under /tmp, which PrivateTmp= hides; bind it back read-only.
    extraService: { BindReadOnlyPaths: repoRoot.replace(/\/$/, ''), ...extraService },
  });
  await instance.writeFile('/etc/systemd/system/unitwatch.service', unit);
  await instance.systemctl('daemon-reload');
}

/** The environment file the unit reads, replaced whole; secrets in it stay root-only. */
export async function writeEnvFile(
  instance: SystemdInstance,
  env: Readonly<Record<string, string>>,
): Promise<void> {
  const lines = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  await instance.writeFile(ENV_FILE, `${lines.join('\n')}\n`, '0600');
}

export async function startUnitwatch(instance: SystemdInstance): Promise<void> {
  const result = await instance.exec(['systemctl', 'start', 'unitwatch.service']);
  if (result.code !== 0) {
    const log = await instance.journal('-u', 'unitwatch.service', '-o', 'cat', '-n', '50');
    throw new Error(`unitwatch did not start (${result.code}): ${result.stderr}\n${log}`);
  }
}

export interface ScenarioOptions {
  /** UNITWATCH_* settings beyond the recipient and the sink's URL, which are always set. */
  readonly env?: Readonly<Record<string, string>>;
  readonly extraService?: Readonly<Record<string, string | string[]>>;
  /** Runs after installation and before unitwatch starts (units that must exist first). */
  readonly prepare?: (instance: SystemdInstance) => Promise<void>;
}

/** The setup every integration file shares: sink listening, systemd booted, unitwatch installed and started. */
export async function bootWithUnitwatch(
  smtp: SmtpSink,
  options: ScenarioOptions = {},
): Promise<SystemdInstance> {
  await smtp.start();
  const instance = await SystemdInstance.boot();
  await installUnitwatch(
    instance,
    { UNITWATCH_TO: 'ops@example.org', UNITWATCH_SMTP_URL: smtp.url, ...options.env },
    options.extraService,
  );
  await options.prepare?.(instance);
  await startUnitwatch(instance);
  return instance;
}

export async function shutDown(instance: SystemdInstance | undefined, smtp: SmtpSink): Promise<void> {
  await instance?.poweroff();
  await smtp.stop();
}
