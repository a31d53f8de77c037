import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { webhookQueueDirectory } from './adapters/channel-queues.js';
import { readStateReadOnly } from './adapters/state-log.js';
import { listUnitsOnce } from './adapters/systemd-bus.js';
import type { StatelessConfig } from './core/config.js';
import { isWatched, unitFilter } from './core/globs.js';
import { type GlobalPolicyState, NotificationPolicy, type UnitPolicyState } from './core/policy.js';
import { type ServiceManager, scopeArguments } from './core/service-manager.js';
import type { StatusSnapshot } from './core/status-report.js';

const run = promisify(execFile);
const UNIT = 'unitwatch.service';
/** Where StateDirectory=unitwatch puts it for a DynamicUser service (a link into /var/lib/private). */
const SERVICE_STATE_DIRECTORY = '/var/lib/unitwatch';

async function daemonFacts(
  problems: string[],
  manager: ServiceManager | undefined,
): Promise<StatusSnapshot['daemon']> {
  try {
    const { stdout } = await run(
      'systemctl',
      [
        ...scopeArguments(manager?.scope ?? 'system'),
        'show',
        '--timestamp=unix',
        '--property=ActiveState,SubState,MainPID,ActiveEnterTimestamp,StatusText,NRestarts',
        '--',
        UNIT,
      ],
      { timeout: 10_000 },
    );
    const values = new Map(
      stdout.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    const since = /^@(\d+)$/.exec(values.get('ActiveEnterTimestamp') ?? '')?.[1];
    const pid = Number(values.get('MainPID'));
    const restarts = Number(values.get('NRestarts'));
    return {
      activeState: values.get('ActiveState') ?? 'unknown',
      subState: values.get('SubState') ?? 'unknown',
      sinceMs: since === undefined ? undefined : Number(since) * 1000,
      mainPid: pid > 0 ? pid : undefined,
      statusText: values.get('StatusText') ?? '',
      restarts: Number.isFinite(restarts) ? restarts : undefined,
    };
  } catch (error) {
    problems.push(`systemctl show ${UNIT} failed: ${error instanceof Error ? error.message : String(error)}`);
    return {
      activeState: 'unknown',
      subState: 'unknown',
      sinceMs: undefined,
      mainPid: undefined,
      statusText: '',
      restarts: undefined,
    };
  }
}

async function failedNow(
  config: StatelessConfig,
  problems: string[],
  manager: ServiceManager | undefined,
): Promise<string[] | undefined> {
  try {
    const filter = unitFilter(config);
    return (await listUnitsOnce(10_000, manager))
      .filter((unit) => unit.activeState === 'failed' && isWatched(unit.unit, filter))
      .map((unit) => unit.unit)
      .sort();
  } catch (error) {
    problems.push(`cannot ask systemd: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

/**
 * Every channel's queue (`outbox` for mail, `outbox-webhook-*` for each webhook), named as the
 * configuration names it where it can. Entries are named `<created ms, 15 digits>-<seq>-<random>.json`.
 */
async function outboxFacts(directory: string, config: StatelessConfig): Promise<StatusSnapshot['outbox']> {
  const labels = new Map<string, string>([['outbox', 'mail']]);
  for (const target of config.webhook?.urls ?? [])
    labels.set(basename(webhookQueueDirectory(directory, target)), `webhook ${target.display}`);
  const queues = (await readdir(directory).catch(() => [] as string[]))
    .filter((name) => /^outbox(-webhook-[0-9a-f]+)?$/.test(name))
    .sort();
  const channels = await Promise.all(
    queues.map(async (queue) => {
      const names = (await readdir(join(directory, queue)).catch(() => [] as string[]))
        .filter((name) => /^\d{15}-.*\.json$/.test(name))
        .sort();
      const oldest = names[0];
      return {
        // A queue of a URL no longer configured still holds what it had; it is shown by its name.
        channel: labels.get(queue) ?? `webhook no longer configured (${queue})`,
        pending: names.length,
        oldestCreatedMs: oldest === undefined ? undefined : Number(oldest.slice(0, 15)),
      };
    }),
  );
  const oldest = channels
    .map((channel) => channel.oldestCreatedMs)
    .filter((ms) => ms !== undefined)
    .sort((a, b) => a - b)[0];
  return {
    pending: channels.reduce((sum, channel) => sum + channel.pending, 0),
    oldestCreatedMs: oldest,
    channels,
  };
}

async function lastDelivery(manager: ServiceManager | undefined): Promise<string | undefined> {
  try {
    const { stdout } = await run(
      'journalctl',
      [
        ...scopeArguments(manager?.scope ?? 'system'),
        '--no-pager',
        '-o',
        'cat',
        '-u',
        UNIT,
        '-n',
        '2000',
        '--boot',
      ],
      { timeout: 10_000, maxBuffer: 8 * 1024 * 1024 },
    );
    return stdout
      .split('\n')
      .reverse()
      .find((line) => /^(mail sent|webhook \S+ sent|notification (NOT|LOST|rejected))/.test(line));
  } catch {
    return undefined;
  }
}

/** Everything `unitwatch status` shows, read from systemd, the journal and the state directory. */
export async function gatherStatus(
  config: StatelessConfig,
  nowMs: number,
  /** `--user`: the user's manager, its unitwatch.service and its journal; PID 1's otherwise. */
  manager?: ServiceManager,
): Promise<StatusSnapshot> {
  const problems: string[] = [];
  const directory = config.stateDirectory ?? SERVICE_STATE_DIRECTORY;
  const state = await readStateReadOnly(directory);
  if (state.size === 0)
    problems.push(`no saved state in ${directory} (set UNITWATCH_STATE_DIRECTORY if it is elsewhere)`);
  const policy = new NotificationPolicy(config.policy, () => '');
  const units: Array<[string, UnitPolicyState]> = [];
  for (const [key, value] of state) {
    if (key.startsWith('u:') && typeof value === 'object' && value !== null)
      units.push([key.slice(2), value as UnitPolicyState]);
  }
  policy.restore(units, state.get('g') as GlobalPolicyState | undefined);
  const [daemon, failed, outbox, delivery] = await Promise.all([
    daemonFacts(problems, manager),
    failedNow(config, problems, manager),
    outboxFacts(directory, config),
    lastDelivery(manager),
  ]);
  return {
    daemon,
    failedNow: failed,
    incidents: policy.incidentViews(),
    cap: policy.capUse(nowMs),
    outbox,
    lastDelivery: delivery,
    problems,
  };
}
