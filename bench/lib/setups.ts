import { readFileSync } from 'node:fs';
import type { SystemdInstance } from '../../test/harness/systemd-instance.js';
import { repoRoot } from '../../test/harness/systemd-instance.js';
import { installUnitwatch, startUnitwatch, writeEnvFile } from '../../test/harness/unitwatch-service.js';
import type { InstanceCgroups } from './cgroup.js';

/** Both notifiers run in this slice, so its cgroup holds exactly the processes a setup costs. */
export const NOTIFIER_SLICE = 'bench-notifier.slice';
export const NOTIFIER_CGROUP = 'bench.slice/bench-notifier.slice';
export const UNITWATCH_CGROUP = `${NOTIFIER_CGROUP}/unitwatch.service`;
export const MAIL_TO = 'ops@example.org';
/** Past the default UNITWATCH_STORM_WINDOW (1 min), so a second storm is mailed as a first one is. */
export const STORM_WINDOW_PASSED_MS = 65_000;
export const HOSTNAME = 'benchhost';
/** One failure at a time must be mailed one by one: lift the storm policy for those scenarios only. */
export const ONE_BY_ONE = { UNITWATCH_STORM_THRESHOLD: '1000', UNITWATCH_MAX_MAILS_PER_HOUR: '100000' };

/** Units both setups share: the slice, the failing template, idle units to load, targets to flip. */
export async function installCommonUnits(instance: SystemdInstance): Promise<void> {
  await instance.writeFile(
    `/etc/systemd/system/${NOTIFIER_SLICE}`,
    '[Unit]\nDescription=What a notifier costs\n[Slice]\nCPUAccounting=yes\nMemoryAccounting=yes\n',
  );
  await instance.writeFile(
    '/etc/systemd/system/bench-fail@.service',
    '[Unit]\nDescription=Bench failure %i\n[Service]\nExecStart=/bin/sh -c \'echo "bench failure %i: exiting 3"; exit 3\'\n',
  );
  await instance.writeFile(
    '/etc/systemd/system/bench-idle@.service',
    '[Unit]\nDescription=Idle bench unit %i\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n',
  );
  // Targets change state without forking anything: the cheapest way to make systemd emit signals.
  await instance.writeFile('/etc/systemd/system/bench-flip@.target', '[Unit]\nDescription=Flip %i\n');
  await instance.systemctl('daemon-reload');
}

export async function loadIdleUnits(instance: SystemdInstance, count: number): Promise<void> {
  const names = Array.from({ length: count }, (_, i) => `bench-idle@${i + 1}.service`);
  await instance.run(['systemctl', 'start', ...names]);
}

/** The UNITWATCH_* names the built daemon accepts: it rejects unknown ones, and the set is growing. */
export function knownVariables(): Set<string> {
  const source = readFileSync(`${repoRoot}dist/core/config.js`, 'utf8');
  return new Set([...source.matchAll(/'(UNITWATCH_[A-Z_]+)'/g)].map((match) => match[1] ?? ''));
}

export function unitwatchEnv(
  smtpUrl: string,
  overrides: Readonly<Record<string, string>>,
): { env: Record<string, string>; applied: Record<string, string> } {
  const known = knownVariables();
  const applied: Record<string, string> = {};
  for (const [key, value] of Object.entries(overrides)) if (known.has(key)) applied[key] = value;
  return {
    env: { UNITWATCH_TO: MAIL_TO, UNITWATCH_SMTP_URL: smtpUrl, UNITWATCH_HOSTNAME: HOSTNAME, ...applied },
    applied,
  };
}

/** The unitwatch node process, by host PID, found in its service's cgroup. */
export function unitwatchPid(cgroups: InstanceCgroups): number | undefined {
  for (const pid of cgroups.pids(UNITWATCH_CGROUP)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dist/cli.js')) return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}

export async function installBenchUnitwatch(instance: SystemdInstance, env: Record<string, string>) {
  await installUnitwatch(instance, env, { Slice: NOTIFIER_SLICE });
}

/** Stops unitwatch, writes a new environment, forgets its state, and starts it again. */
export async function restartUnitwatch(
  instance: SystemdInstance,
  env: Record<string, string>,
  beforeStart?: () => Promise<void>,
): Promise<void> {
  await instance.systemctl('stop', 'unitwatch.service');
  await writeEnvFile(instance, env);
  // A fresh daemon on a healthy system: without this it would (rightly) catch up on every unit the
  // previous scenarios left failed, since its memory of what it reported is wiped too.
  await instance.exec(['systemctl', 'reset-failed', 'bench-fail@*']);
  await instance.exec(['sh', '-c', 'rm -rf /var/lib/private/unitwatch/* /var/lib/private/unitwatch/.[!.]*']);
  await instance.exec(['systemctl', 'reset-failed', 'unitwatch.service']);
  await beforeStart?.();
  await startUnitwatch(instance);
}

/** The script NixOS users attach through `email@%n.service`: the unit's status piped to sendmail. */
export const TEMPLATE_SCRIPT = `#!/bin/sh
# email@.service: mail the status of the unit that failed, as the OnFailure= recipe does.
unit="$1"
{
  printf 'To: %s\\n' '${MAIL_TO}'
  printf 'From: systemd <root@${HOSTNAME}>\\n'
  printf 'Subject: [${HOSTNAME}] %s failed\\n' "$unit"
  printf 'Content-Type: text/plain; charset=UTF-8\\n'
  printf 'Content-Transfer-Encoding: 8bit\\n'
  printf '\\n'
  systemctl status --full "$unit"
} | /usr/sbin/sendmail -t
`;

/**
 * The template, reproduced: a oneshot email@.service running the script, attached to every service
 * by a service.d/ drop-in, reset for email@ itself (drop-ins apply in file-name order across
 * directories, so 90- wins over 10-). msmtp, Debian's sendmail, delivers to the sink.
 */
export async function installTemplate(instance: SystemdInstance, smtpPort: number): Promise<void> {
  await instance.writeFile(
    '/etc/msmtprc',
    `defaults\nauth off\ntls off\nsyslog off\n\naccount sink\nhost 127.0.0.1\nport ${smtpPort}\nfrom root@${HOSTNAME}\n\naccount default : sink\n`,
  );
  await instance.writeFile('/usr/local/bin/unit-status-mail', TEMPLATE_SCRIPT, '0755');
  await instance.writeFile(
    '/etc/systemd/system/email@.service',
    `[Unit]\nDescription=Status mail for %i\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/unit-status-mail %i\nSlice=${NOTIFIER_SLICE}\n`,
  );
  await instance.writeFile(
    '/etc/systemd/system/service.d/10-onfailure-mail.conf',
    '[Unit]\nOnFailure=email@%n.service\n',
  );
  await instance.writeFile(
    '/etc/systemd/system/email@.service.d/90-no-onfailure.conf',
    '[Unit]\nOnFailure=\n',
  );
  await instance.systemctl('daemon-reload');
  const onFailure = await instance.property('bench-fail@probe.service', 'OnFailure');
  const own = await instance.property('email@probe.service', 'OnFailure');
  if (onFailure !== 'email@bench-fail@probe.service.service' || own !== '') {
    throw new Error(
      `template not attached as intended: OnFailure=${onFailure}, email@'s own OnFailure=${own}`,
    );
  }
}
