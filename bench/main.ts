import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import dbus from 'dbus-next';
import { SmtpSink } from '../test/harness/smtp-sink.js';
import { realSystemdUnavailableReason, repoRoot, SystemdInstance } from '../test/harness/systemd-instance.js';
import { startUnitwatch } from '../test/harness/unitwatch-service.js';
import { MailAccountant } from './lib/accounting.js';
import { countByComm, type ExitedProcess, ProcessAccounting } from './lib/acct.js';
import { InstanceCgroups, rssSumKb, sampleProcess, TICKS_PER_SECOND } from './lib/cgroup.js';
import { memoryBreakdown, memoryLine } from './lib/memory.js';
import { writeReport } from './lib/report.js';
import {
  installBenchUnitwatch,
  installCommonUnits,
  installTemplate,
  loadIdleUnits,
  NOTIFIER_CGROUP,
  ONE_BY_ONE,
  restartUnitwatch,
  STORM_WINDOW_PASSED_MS,
  unitwatchEnv,
  unitwatchPid,
} from './lib/setups.js';
import { summarize } from './lib/stats.js';
import type {
  BenchResults,
  FloodResult,
  IdleResult,
  LatencyResult,
  SeriesCpu,
  SetupName,
  SpawnedCount,
  StartupResult,
  StormRun,
} from './lib/types.js';

const QUICK = process.env.BENCH_QUICK === '1';
const PLAN = QUICK
  ? { latencyRuns: 6, storms: [50, 200], stormRepeats: 1, idleSeconds: 10, idleUnits: 1000, floodSeconds: 5 }
  : {
      latencyRuns: 30,
      storms: [50, 200, 1000],
      stormRepeats: Number(process.env.BENCH_STORM_REPEATS ?? 2),
      idleSeconds: 60,
      idleUnits: 1000,
      floodSeconds: 20,
    };

/** The storm the CPU bar is about, run again on a daemon that has mailed one before. */
const WARM_STORM = 200;
/** Seconds after the largest storm's 2 s tail at which unitwatch's memory is read once more. */
const LATER_MEMORY_S = QUICK ? 10 : 60;

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function prerequisites(): void {
  const problems: string[] = [];
  const reason = realSystemdUnavailableReason();
  if (reason !== undefined) problems.push(`cannot boot systemd: ${reason}`);
  if (!existsSync(`${repoRoot}dist/cli.js`)) problems.push('dist/cli.js is missing: run `npm run build`');
  let sendmail = '';
  try {
    sendmail = readlinkSync('/usr/sbin/sendmail');
  } catch {
    // absent or not a link
  }
  if (!existsSync('/usr/bin/msmtp') || !sendmail.endsWith('msmtp')) {
    problems.push('the template needs msmtp as /usr/sbin/sendmail; on Debian: apt-get install -y msmtp-mta');
  }
  if (problems.length > 0) {
    process.stderr.write(`npm run bench cannot run here:\n  ${problems.join('\n  ')}\n`);
    process.exit(2);
  }
}

/** Offset from CLOCK_MONOTONIC (systemd's *Monotonic timestamps; same kernel, no time namespace) to the wall clock. */
function monotonicToWallOffsetMs(): number {
  const offsets: number[] = [];
  for (let i = 0; i < 9; i++) {
    offsets.push(Date.now() - Number(process.hrtime.bigint() / 1000n) / 1000);
  }
  return summarize(offsets).median ?? 0;
}

interface UnitFacts {
  readonly id: string;
  readonly result: string;
  readonly activeState: string;
  readonly inactiveEnterMono: number;
  readonly execMainExitMono: number;
}

async function showUnits(instance: SystemdInstance, names: readonly string[]): Promise<UnitFacts[]> {
  const facts: UnitFacts[] = [];
  for (let start = 0; start < names.length; start += 500) {
    const out = await instance.run([
      'systemctl',
      'show',
      '-p',
      'Id,Result,ActiveState,InactiveEnterTimestampMonotonic,ExecMainExitTimestampMonotonic',
      '--',
      ...names.slice(start, start + 500),
    ]);
    for (const block of out.split(/\n\n+/)) {
      const props = new Map(
        block
          .split('\n')
          .filter((line) => line.includes('='))
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
      );
      if (!props.has('Id')) continue;
      facts.push({
        id: props.get('Id') ?? '',
        result: props.get('Result') ?? '',
        activeState: props.get('ActiveState') ?? '',
        inactiveEnterMono: Number(props.get('InactiveEnterTimestampMonotonic') ?? 0),
        execMainExitMono: Number(props.get('ExecMainExitTimestampMonotonic') ?? 0),
      });
    }
  }
  return facts;
}

async function readyMs(instance: SystemdInstance): Promise<number> {
  const start = Number(await instance.property('unitwatch.service', 'ExecMainStartTimestampMonotonic'));
  const active = Number(await instance.property('unitwatch.service', 'ActiveEnterTimestampMonotonic'));
  return (active - start) / 1000;
}

class Context {
  readonly smtp: SmtpSink;
  readonly accountant: MailAccountant;
  readonly offsetMs = monotonicToWallOffsetMs();

  constructor(smtp: SmtpSink) {
    this.smtp = smtp;
    this.accountant = new MailAccountant(smtp.mails);
  }

  wallMs(monotonicUs: number): number {
    return monotonicUs / 1000 + this.offsetMs;
  }
}

/** What one setup's processes are, among the processes that exited in the instance. */
function notifierProcesses(
  processes: readonly ExitedProcess[],
  daemonNsPid: number | undefined,
): ExitedProcess[] {
  if (daemonNsPid !== undefined) return processes.filter((p) => p.ppid === daemonNsPid);
  // The template: everything but the bench's own commands (their parent, nsenter, is outside the
  // namespace: ppid 0) and the failing units themselves (sh, started by PID 1).
  return processes.filter((p) => p.ppid !== 0 && !(p.comm === 'sh' && p.ppid === 1));
}

function spawnedCount(
  acct: ProcessAccounting | undefined,
  from: number,
  daemonNsPid: number | undefined,
  failures: number,
): SpawnedCount | undefined {
  if (acct === undefined) return undefined;
  const own = notifierProcesses(acct.exitedBetween(from, acct.mark()), daemonNsPid);
  return {
    total: own.length,
    perFailure: failures > 0 ? own.length / failures : 0,
    byProgram: countByComm(own),
  };
}

async function daemonNsPid(instance: SystemdInstance, setup: SetupName): Promise<number | undefined> {
  if (setup !== 'unitwatch') return undefined;
  const pid = Number(await instance.property('unitwatch.service', 'MainPID'));
  return pid > 0 ? pid : undefined;
}

async function latencyScenario(
  ctx: Context,
  instance: SystemdInstance,
  cgroups: InstanceCgroups,
  acct: ProcessAccounting | undefined,
  setup: SetupName,
  label: string,
  runs: number,
): Promise<LatencyResult> {
  const samplesMs: number[] = [];
  const fromExitMs: number[] = [];
  const lost: string[] = [];
  const nsPid = await daemonNsPid(instance, setup);
  const hostPid = setup === 'unitwatch' ? unitwatchPid(cgroups) : undefined;
  const daemonBefore = hostPid === undefined ? undefined : sampleProcess(hostPid);
  const cpuBefore = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
  const systemBefore = systemCpuUs(cgroups);
  const acctFrom = acct?.mark() ?? 0;
  for (let i = 0; i < runs; i++) {
    const unit = `bench-fail@lat-${label}-${i}.service`;
    await instance.run(['systemctl', 'start', '--no-block', unit]);
    const seen = await ctx.accountant.waitFor([unit], 30_000, 5);
    const [facts] = await showUnits(instance, [unit]);
    const seenMs = ctx.accountant.firstSeenMs(unit);
    if (!seen || seenMs === undefined || facts === undefined || facts.inactiveEnterMono === 0) {
      lost.push(unit);
      continue;
    }
    samplesMs.push(seenMs - ctx.wallMs(facts.inactiveEnterMono));
    fromExitMs.push(seenMs - ctx.wallMs(facts.execMainExitMono));
    // Let the notifier finish (the template's email@ unit exits after sendmail returns).
    await sleep(500);
  }
  // The last notifier's tail (a template unit exiting, a log line) belongs to the series.
  await sleep(1000);
  const notified = runs - lost.length;
  const notifierUs = (cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0) - cpuBefore;
  const systemAfter = systemCpuUs(cgroups);
  const systemUs = Object.fromEntries(
    Object.entries(systemAfter).map(([key, value]) => [key, value - (systemBefore[key] ?? 0)]),
  );
  const systemTotalUs = Object.values(systemUs).reduce((a, b) => a + b, 0);
  const daemonAfter = hostPid === undefined ? undefined : sampleProcess(hostPid);
  const spawned = spawnedCount(acct, acctFrom, nsPid, notified);
  const cpu: SeriesCpu = {
    notified,
    notifierUs,
    perNotificationUs: notified > 0 ? notifierUs / notified : undefined,
    systemUs,
    systemPerNotificationUs: notified > 0 ? systemTotalUs / notified : undefined,
    daemonCpuMs:
      daemonBefore === undefined || daemonAfter === undefined
        ? undefined
        : {
            self: ((daemonAfter.cpuTicks - daemonBefore.cpuTicks) * 1000) / TICKS_PER_SECOND,
            children: ((daemonAfter.childTicks - daemonBefore.childTicks) * 1000) / TICKS_PER_SECOND,
          },
    spawned,
    // One journalctl per failure is the plan; each one more is a re-read after the settle pause.
    journalRereads:
      setup === 'unitwatch' && spawned !== undefined
        ? (spawned.byProgram.journalctl ?? 0) - notified
        : undefined,
  };
  log(
    `${setup} one at a time (${label}): ${(notifierUs / 1000).toFixed(0)} ms notifier CPU for ${notified} mails; ` +
      `spawned ${JSON.stringify(spawned?.byProgram ?? {})}`,
  );
  return { samplesMs, summary: summarize(samplesMs), fromExecMainExit: summarize(fromExitMs), lost, cpu };
}

async function stormScenario(
  ctx: Context,
  instance: SystemdInstance,
  cgroups: InstanceCgroups,
  acct: ProcessAccounting | undefined,
  setup: SetupName,
  size: number,
  repeat: number,
  daemonWarm = false,
): Promise<StormRun> {
  const units = Array.from(
    { length: size },
    (_, i) => `bench-fail@s${size}-r${repeat}-${setup[0]}${daemonWarm ? 'w' : ''}-${i}.service`,
  );
  const unitSet = new Set(units);
  const memoryReset = cgroups.resetMemoryPeak(NOTIFIER_CGROUP);
  const cpuBefore = cgroups.cpuAllSources(NOTIFIER_CGROUP);
  const systemBefore = systemCpuUs(cgroups);
  let rssPeakKb = 0;
  const sampler = setInterval(() => {
    rssPeakKb = Math.max(rssPeakKb, rssSumKb(cgroups.pids(NOTIFIER_CGROUP)));
  }, 500);
  const daemonPid = setup === 'unitwatch' ? unitwatchPid(cgroups) : undefined;
  const daemonBefore = daemonPid === undefined ? undefined : sampleProcess(daemonPid);
  const nsPid = await daemonNsPid(instance, setup);
  const acctFrom = acct?.mark() ?? 0;
  const startedMs = Date.now();
  await instance.run(['systemctl', 'start', '--no-block', ...units]);
  const timeoutMs = 30_000 + size * 90;
  const complete = await ctx.accountant.waitFor(units, timeoutMs, 50);
  const accountedAtMs = Date.now();
  // A quiet tail so the notifier's last work (a template unit exiting, a log line) is counted.
  await sleep(2000);
  clearInterval(sampler);
  const cpuAfter = cgroups.cpuAllSources(NOTIFIER_CGROUP);
  const systemAfter = systemCpuUs(cgroups);
  const daemonAfter = daemonPid === undefined ? undefined : sampleProcess(daemonPid);
  const facts = await showUnits(instance, units);
  const failureTimes = facts
    .filter((f) => f.inactiveEnterMono > 0)
    .map((f) => ctx.wallMs(f.inactiveEnterMono));
  const firstFailureMs = Math.min(...failureTimes);
  const lastFailureMs = Math.max(...failureTimes);
  const seen = units.map((unit) => ctx.accountant.firstSeenMs(unit)).filter((ms) => ms !== undefined);
  const missing = ctx.accountant.missing(units);
  const mails = ctx.accountant.mailsAbout(unitSet);
  const cpuUs = (cpuAfter.unifiedCpuStatUs ?? 0) - (cpuBefore.unifiedCpuStatUs ?? 0);
  const cpuV1Us =
    cpuAfter.v1CpuacctUs === undefined || cpuBefore.v1CpuacctUs === undefined
      ? undefined
      : cpuAfter.v1CpuacctUs - cpuBefore.v1CpuacctUs;
  const notified = size - missing.length;
  const run: StormRun = {
    size,
    repeat,
    daemonWarm,
    failedUnits: facts.filter((f) => f.result === 'exit-code').length,
    failureSpreadMs: lastFailureMs - firstFailureMs,
    timeToAccountAllMs: complete ? Math.max(...seen) - firstFailureMs : undefined,
    afterLastFailureMs: complete ? Math.max(...seen) - lastFailureMs : undefined,
    waitedMs: accountedAtMs - startedMs,
    mails: mails.length,
    lost: missing.length,
    lostExamples: missing.slice(0, 5),
    cpuUs,
    cpuV1Us,
    cpuPerNotifiedFailureUs: notified > 0 ? cpuUs / notified : undefined,
    systemCpuUs: Object.fromEntries(
      Object.entries(systemAfter).map(([key, value]) => [key, value - (systemBefore[key] ?? 0)]),
    ),
    memoryPeakBytes: memoryReset ? cgroups.memoryPeakBytes(NOTIFIER_CGROUP) : undefined,
    rssSumPeakKb: rssPeakKb,
    daemonCpuMs:
      daemonBefore === undefined || daemonAfter === undefined
        ? undefined
        : {
            self: ((daemonAfter.cpuTicks - daemonBefore.cpuTicks) * 1000) / TICKS_PER_SECOND,
            children: ((daemonAfter.childTicks - daemonBefore.childTicks) * 1000) / TICKS_PER_SECOND,
          },
    spawned: spawnedCount(acct, acctFrom, nsPid, notified),
  };
  log(
    `${setup} storm ${size}#${repeat}${daemonWarm ? ' (daemon warm)' : ''}: ${run.failedUnits} failed over ${run.failureSpreadMs.toFixed(0)} ms, ` +
      `accounted ${complete ? `in ${run.timeToAccountAllMs?.toFixed(0)} ms` : `NOT all (${missing.length} lost)`}, ` +
      `${mails.length} mails ${JSON.stringify(countBy(mails.map((mail) => mail.event || 'plain')))}, ` +
      `last ${run.afterLastFailureMs?.toFixed(0) ?? '–'} ms after the last failure, CPU ${(cpuUs / 1000).toFixed(0)} ms`,
  );
  return run;
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** PID 1, the bus and the journal work for both setups; reported beside the notifier's own cost. */
function systemCpuUs(cgroups: InstanceCgroups): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, path] of [
    ['systemd (PID 1)', 'init.scope'],
    ['dbus-daemon', 'system.slice/dbus.service'],
    ['journald', 'system.slice/systemd-journald.service'],
  ] as const) {
    const reading = cgroups.cpuUs(path);
    if (reading !== undefined) out[key] = reading.us;
  }
  return out;
}

async function idleScenario(
  instance: SystemdInstance,
  cgroups: InstanceCgroups,
  seconds: number,
): Promise<IdleResult> {
  const pid = unitwatchPid(cgroups);
  if (pid === undefined) throw new Error('unitwatch process not found in its cgroup');
  // Start-up's tail (JIT, GC, the first status update) is not idleness: measured apart, then skipped.
  const tail0 = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
  await sleep(15_000);
  const cpu0 = cgroups.cpuUs(NOTIFIER_CGROUP);
  const p0 = sampleProcess(pid);
  await sleep(seconds * 1000);
  const cpu1 = cgroups.cpuUs(NOTIFIER_CGROUP);
  const p1 = sampleProcess(pid);
  const memory = memoryBreakdown(pid);
  // A second window of the same length: the first still holds the GCs V8 runs once a start's
  // allocations stop; the second is what a daemon that has been up a while costs.
  await sleep(seconds * 1000);
  const cpu2 = cgroups.cpuUs(NOTIFIER_CGROUP);
  const p2 = sampleProcess(pid);
  if (
    cpu0 === undefined ||
    cpu1 === undefined ||
    cpu2 === undefined ||
    p0 === undefined ||
    p1 === undefined ||
    p2 === undefined
  ) {
    throw new Error('could not read unitwatch CPU');
  }
  const loaded = (await instance.run(['systemctl', 'list-units', '--all', '--no-legend', '--plain']))
    .trim()
    .split('\n').length;
  return {
    seconds,
    loadedUnits: loaded,
    startupTailCpuMs: (cpu0.us - tail0) / 1000,
    cpuMsPerMinute: ((cpu1.us - cpu0.us) / 1000) * (60 / seconds),
    cpuMsPerMinuteProc: (((p1.cpuTicks - p0.cpuTicks) * 1000) / TICKS_PER_SECOND) * (60 / seconds),
    voluntaryWakeupsPerSecond: (p1.voluntarySwitches - p0.voluntarySwitches) / seconds,
    involuntarySwitchesPerSecond: (p1.involuntarySwitches - p0.involuntarySwitches) / seconds,
    threads: p1.threads,
    rssIdleKb: p1.rssKb,
    memory,
    secondWindowCpuMsPerMinute: ((cpu2.us - cpu1.us) / 1000) * (60 / seconds),
    secondWindowCpuMsPerMinuteProc:
      (((p2.cpuTicks - p1.cpuTicks) * 1000) / TICKS_PER_SECOND) * (60 / seconds),
    secondWindowWakeupsPerSecond: (p2.voluntarySwitches - p1.voluntarySwitches) / seconds,
    secondWindowRssKb: p2.rssKb,
  };
}

/**
 * How many PropertiesChanged signals unitwatch digests. A counter on the same bus, with unitwatch's
 * own match rule and filter, counts what systemd emits; flipping targets (no processes forked) makes
 * systemd emit as fast as it can here. unitwatch keeps up if its bus socket's receive queue stays
 * near empty and a failure injected mid-flood is still mailed promptly; its CPU per signal gives the
 * rate one core could digest.
 */
async function floodScenario(
  ctx: Context,
  instance: SystemdInstance,
  cgroups: InstanceCgroups,
  seconds: number,
): Promise<FloodResult> {
  const pid = unitwatchPid(cgroups);
  if (pid === undefined) throw new Error('unitwatch process not found');
  const counter = dbus.sessionBus({
    busAddress: `unix:path=/proc/${instance.pid}/root/run/dbus/system_bus_socket`,
  });
  let signals = 0;
  counter.on('message', (message: dbus.Message) => {
    if (message.type !== dbus.MessageType.SIGNAL || message.member !== 'PropertiesChanged') return;
    if (message.body?.[0] !== 'org.freedesktop.systemd1.Unit') return;
    const changed = (message.body[1] ?? {}) as Record<string, unknown>;
    if ('ActiveState' in changed || 'SubState' in changed) signals++;
  });
  await counter.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [
        "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',arg0='org.freedesktop.systemd1.Unit'",
      ],
    }),
  );
  const cpu0 = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
  const sys0 = systemCpuUs(cgroups);
  let maxRecvQ = 0;
  const queueSampler = setInterval(() => {
    maxRecvQ = Math.max(maxRecvQ, socketRecvQueue(pid));
  }, 250);
  const startMs = Date.now();
  const flood = instance.run([
    'bash',
    '-c',
    `end=$((SECONDS+${seconds})); n=0; while [ $SECONDS -lt $end ]; do systemctl start bench-flip@{1..100}.target; systemctl stop bench-flip@{1..100}.target; n=$((n+1)); done; echo $n`,
  ]);
  const injected: string[] = [];
  const injectedAt = new Map<string, number>();
  for (let k = 0; Date.now() - startMs < seconds * 1000 - 1500; k++) {
    await sleep(2500);
    const unit = `bench-fail@flood-${k}.service`;
    injected.push(unit);
    await instance.run(['systemctl', 'start', '--no-block', unit]);
    injectedAt.set(unit, Date.now());
  }
  const cycles = Number((await flood).trim());
  const floodMs = Date.now() - startMs;
  const signalsDuringFlood = signals;
  const cpu1 = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
  const sys1 = systemCpuUs(cgroups);
  await ctx.accountant.waitFor(injected, 30_000, 20);
  clearInterval(queueSampler);
  counter.disconnect();
  const facts = await showUnits(instance, injected);
  const latencies = facts
    .map((f) => {
      const seen = ctx.accountant.firstSeenMs(f.id);
      return seen === undefined || f.inactiveEnterMono === 0
        ? undefined
        : seen - ctx.wallMs(f.inactiveEnterMono);
    })
    .filter((ms) => ms !== undefined);
  const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'cat');
  const cpuUs = cpu1 - cpu0;
  return {
    seconds: floodMs / 1000,
    flipCycles: cycles,
    signalsEmitted: signalsDuringFlood,
    signalsPerSecond: signalsDuringFlood / (floodMs / 1000),
    unitwatchCpuUs: cpuUs,
    unitwatchCpuShareOfOneCore: cpuUs / 1000 / floodMs,
    cpuUsPerSignal: signalsDuringFlood > 0 ? cpuUs / signalsDuringFlood : undefined,
    digestCapacityPerCoreSecond: cpuUs > 0 ? signalsDuringFlood / (cpuUs / 1e6) : undefined,
    maxSocketRecvQueueBytes: maxRecvQ,
    injectedFailures: injected.length,
    injectedLost: ctx.accountant.missing(injected).length,
    injectedLatency: summarize(latencies),
    busLost: journal.includes('lost the system bus'),
    systemCpuUs: Object.fromEntries(
      Object.entries(sys1).map(([key, value]) => [key, value - (sys0[key] ?? 0)]),
    ),
  };
}

/**
 * One start of unitwatch with every loaded unit in place, watched from outside: a bus monitor in the
 * instance sees each `Properties.Get` unitwatch sends (its start-up catch-up reads `NRestarts` and
 * `InvocationID` of every running service), and the service's cgroup CPU is read every 10 ms.
 */
async function startupScenario(
  ctx: Context,
  instance: SystemdInstance,
  cgroups: InstanceCgroups,
  env: Record<string, string>,
): Promise<StartupResult> {
  const lines: { atMs: number; line: string }[] = [];
  let monitor: ChildProcess | undefined;
  const samples: { atMs: number; us: number }[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let startedAtMs = Date.now();
  await restartUnitwatch(instance, env, async () => {
    monitor = spawn(
      'nsenter',
      [
        '-t',
        String(instance.pid),
        '-m',
        '-p',
        '--',
        'timeout',
        '8',
        'busctl',
        'monitor',
        '--json=short',
        "--match=type='method_call',interface='org.freedesktop.DBus.Properties',member='Get'",
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let partial = '';
    monitor.stdout?.on('data', (chunk: Buffer) => {
      const atMs = Date.now();
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) lines.push({ atMs, line });
    });
    await sleep(700);
    const baseUs = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
    startedAtMs = Date.now();
    // Runs while `systemctl start` waits for READY=1, so the samples cover the whole start.
    sampler = setInterval(() => {
      samples.push({ atMs: Date.now(), us: (cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0) - baseUs });
    }, 10);
  });
  await sleep(Math.max(0, startedAtMs + 5000 - Date.now()));
  clearInterval(sampler);
  await new Promise<void>((resolve) => {
    if (monitor === undefined || monitor.exitCode !== null) resolve();
    else monitor.once('close', () => resolve());
  });
  const startMono = Number(await instance.property('unitwatch.service', 'ExecMainStartTimestampMonotonic'));
  const activeMono = Number(await instance.property('unitwatch.service', 'ActiveEnterTimestampMonotonic'));
  const startMs = ctx.wallMs(startMono);
  const readyAtMs = ctx.wallMs(activeMono);
  const bySender = new Map<string, number[]>();
  for (const { atMs, line } of lines) {
    if (!line.startsWith('{')) continue;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (message.member !== 'Get') continue;
    const stamp = Number(message['timestamp-realtime']);
    const when = Number.isFinite(stamp) && stamp > 0 ? stamp / 1000 : atMs;
    const sender = String(message.sender ?? '');
    bySender.set(sender, [...(bySender.get(sender) ?? []), when]);
  }
  // unitwatch is the client that sent the most Gets; systemctl and the bench send next to none.
  const gets = [...bySender.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  const lastGetMs = gets.length === 0 ? undefined : Math.max(...gets);
  const cpuAt = (ms: number | undefined) =>
    ms === undefined ? undefined : (samples.find((sample) => sample.atMs >= ms)?.us ?? Number.NaN) / 1000;
  const running = (
    await instance.run([
      'systemctl',
      'list-units',
      '--type=service',
      '--state=active',
      '--no-legend',
      '--plain',
    ])
  )
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '').length;
  return {
    readyMs: readyAtMs - startMs,
    catchUpEndMs: lastGetMs === undefined ? undefined : lastGetMs - startMs,
    getCalls: gets.length,
    runningServices: running,
    cpuToReadyMs: cpuAt(readyAtMs),
    cpuToCatchUpEndMs: cpuAt(lastGetMs),
    cpuFirst5sMs: (samples.at(-1)?.us ?? 0) / 1000,
  };
}

/** Bytes waiting in unitwatch's unix sockets (the bus connection among them) that it has not read yet. */
function socketRecvQueue(pid: number): number {
  try {
    const out = execFileSync('ss', ['-xpnH'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    let max = 0;
    for (const line of out.split('\n')) {
      if (!line.includes(`pid=${pid},`)) continue;
      const recvQ = Number(line.trim().split(/\s+/)[2]);
      if (Number.isFinite(recvQ)) max = Math.max(max, recvQ);
    }
    return max;
  } catch {
    return 0;
  }
}

async function benchUnitwatch(ctx: Context, results: BenchResults): Promise<void> {
  log('unitwatch: booting systemd');
  const instance = await SystemdInstance.boot();
  try {
    const cgroups = new InstanceCgroups(instance.pid);
    await installCommonUnits(instance);
    await loadIdleUnits(instance, PLAN.idleUnits);
    const oneByOne = unitwatchEnv(ctx.smtp.url, ONE_BY_ONE);
    const defaults = unitwatchEnv(ctx.smtp.url, {});
    const settleZero = unitwatchEnv(ctx.smtp.url, { ...ONE_BY_ONE, UNITWATCH_JOURNAL_SETTLE: '0ms' });
    results.unitwatchSettings = {
      oneAtATime: oneByOne.applied,
      storms: defaults.applied,
      settleZero: settleZero.applied,
    };
    await installBenchUnitwatch(instance, oneByOne.env);
    await startUnitwatch(instance);
    const ready = [await readyMs(instance)];
    for (let i = 0; i < (QUICK ? 1 : 4); i++) {
      await restartUnitwatch(instance, oneByOne.env);
      ready.push(await readyMs(instance));
    }
    results.unitwatchReadyMs = summarize(ready);
    log(`unitwatch: ready in ${results.unitwatchReadyMs.median?.toFixed(0)} ms (median)`);
    results.startup = [];
    for (let i = 0; i < (QUICK ? 1 : 3); i++) {
      const startup = await startupScenario(ctx, instance, cgroups, oneByOne.env);
      results.startup.push(startup);
      log(`unitwatch: start-up ${JSON.stringify(startup)}`);
    }
    log(`unitwatch: idle ${PLAN.idleSeconds} s`);
    results.idle = await idleScenario(instance, cgroups, PLAN.idleSeconds);
    results.cpuSource = cgroups.cpuUs(NOTIFIER_CGROUP)?.source ?? 'none';
    log(`unitwatch: idle ${JSON.stringify(results.idle)}`);

    const acct = new ProcessAccounting(instance);
    const counting = await acct.start();
    if (!counting) log('process accounting unavailable: spawned commands are not counted');
    const acctOrNone = counting ? acct : undefined;
    results.latency.unitwatch = await latencyScenario(
      ctx,
      instance,
      cgroups,
      acctOrNone,
      'unitwatch',
      'u',
      PLAN.latencyRuns,
    );
    log(`unitwatch: latency ${JSON.stringify(results.latency.unitwatch.summary)}`);
    await restartUnitwatch(instance, settleZero.env);
    // The start-up catch-up is over well within this; the series then costs only its failures.
    await sleep(5000);
    results.latency['unitwatch, journal settle 0'] = await latencyScenario(
      ctx,
      instance,
      cgroups,
      acctOrNone,
      'unitwatch',
      'u0',
      PLAN.latencyRuns,
    );
    log(
      `unitwatch settle 0: latency ${JSON.stringify(results.latency['unitwatch, journal settle 0'].summary)}`,
    );

    await restartUnitwatch(instance, oneByOne.env);
    results.flood = await floodScenario(ctx, instance, cgroups, PLAN.floodSeconds);
    log(`unitwatch: flood ${JSON.stringify(results.flood)}`);

    for (const size of PLAN.storms) {
      for (let repeat = 0; repeat < PLAN.stormRepeats; repeat++) {
        // A fresh daemon per storm with default policy: one storm's hourly cap must not spill into the next.
        await restartUnitwatch(instance, defaults.env);
        results.storms.unitwatch.push(
          await stormScenario(ctx, instance, cgroups, acctOrNone, 'unitwatch', size, repeat),
        );
        const pid = unitwatchPid(cgroups);
        const sample = pid === undefined ? undefined : sampleProcess(pid);
        if (sample !== undefined && pid !== undefined) {
          const memory = memoryBreakdown(pid);
          results.unitwatchMemory.push({
            size,
            repeat,
            rssAfterKb: sample.rssKb,
            peakRssKb: sample.hwmKb,
            memory,
          });
          log(`unitwatch after the ${size}-unit storm: ${memoryLine(memory)}`);
        }
        if (size === Math.max(...PLAN.storms) && repeat === PLAN.stormRepeats - 1 && pid !== undefined) {
          // V8 gives back the heap it grew in a storm only when a later GC reduces it: look again later.
          await sleep(LATER_MEMORY_S * 1000);
          const later = memoryBreakdown(pid);
          if (later !== undefined)
            results.unitwatchMemoryLater = { size, afterS: LATER_MEMORY_S + 2, memory: later };
          log(`unitwatch ${LATER_MEMORY_S + 2} s after the ${size}-unit storm: ${memoryLine(later)}`);
        }
      }
    }
    // The runs above each start on a fresh daemon: its first storm also pays for V8 compiling the
    // failure path. A daemon that has mailed a storm before shows the steady cost.
    for (let repeat = 0; repeat < PLAN.stormRepeats; repeat++) {
      await restartUnitwatch(instance, defaults.env);
      // The warming storm is one more run on a fresh daemon, counted with the others.
      results.storms.unitwatch.push(
        await stormScenario(
          ctx,
          instance,
          cgroups,
          acctOrNone,
          'unitwatch',
          WARM_STORM,
          PLAN.stormRepeats + repeat,
        ),
      );
      await sleep(STORM_WINDOW_PASSED_MS);
      results.storms.unitwatch.push(
        await stormScenario(ctx, instance, cgroups, acctOrNone, 'unitwatch', WARM_STORM, repeat, true),
      );
    }
  } finally {
    await instance.poweroff();
  }
}

async function benchTemplate(ctx: Context, results: BenchResults): Promise<void> {
  log('template: booting systemd');
  const instance = await SystemdInstance.boot();
  try {
    const cgroups = new InstanceCgroups(instance.pid);
    await installCommonUnits(instance);
    await loadIdleUnits(instance, PLAN.idleUnits);
    await installTemplate(instance, ctx.smtp.port);
    const acct = new ProcessAccounting(instance);
    const acctOrNone = (await acct.start()) ? acct : undefined;
    results.latency.template = await latencyScenario(
      ctx,
      instance,
      cgroups,
      acctOrNone,
      'template',
      't',
      PLAN.latencyRuns,
    );
    await instance.exec(['systemctl', 'reset-failed', 'bench-fail@*', 'email@*']);
    log(`template: latency ${JSON.stringify(results.latency.template.summary)}`);
    for (const size of PLAN.storms) {
      for (let repeat = 0; repeat < PLAN.stormRepeats; repeat++) {
        results.storms.template.push(
          await stormScenario(ctx, instance, cgroups, acctOrNone, 'template', size, repeat),
        );
        // Let every email@ unit finish, and clear the failed units as unitwatch's restarts do.
        await sleep(3000);
        await instance.exec(['systemctl', 'reset-failed', 'bench-fail@*', 'email@*']);
      }
    }
  } finally {
    await instance.poweroff();
  }
}

function machine(): BenchResults['machine'] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: cpus().length,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    systemd: execFileSync('/lib/systemd/systemd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '',
    node: process.version,
    msmtp: execFileSync('msmtp', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '',
    memTotalKb: Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0),
  };
}

async function main(): Promise<void> {
  prerequisites();
  const smtp = new SmtpSink();
  await smtp.start();
  const ctx = new Context(smtp);
  const started = new Date();
  const results: BenchResults = {
    startedAt: started.toISOString(),
    quick: QUICK,
    plan: PLAN,
    machine: machine(),
    loadavgBefore: loadavg(),
    loadavgAfter: [],
    durationS: 0,
    cpuSource: '',
    unitwatchSettings: { oneAtATime: {}, storms: {}, settleZero: {} },
    latency: {},
    storms: { unitwatch: [], template: [] },
    unitwatchMemory: [],
    unitwatchReadyMs: summarize([]),
    idle: undefined,
    flood: undefined,
  };
  try {
    await benchUnitwatch(ctx, results);
    await benchTemplate(ctx, results);
  } finally {
    await smtp.stop();
  }
  results.loadavgAfter = loadavg();
  results.durationS = (Date.now() - started.getTime()) / 1000;
  writeReport(results);
  log(`done in ${results.durationS.toFixed(0)} s`);
}

await main();
