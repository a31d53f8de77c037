/**
 * `npm run bench:profile`: where unitwatch's CPU goes in a storm. Boots the bench's systemd, runs
 * unitwatch with V8's sampling profiler on, fails BENCH_PROFILE_UNITS units at once, waits until
 * every one is in a received mail, stops unitwatch (the profile is written at exit) and prints the
 * samples taken during the storm, grouped by package and by function.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SmtpSink } from '../test/harness/smtp-sink.js';
import { repoRoot, SystemdInstance } from '../test/harness/systemd-instance.js';
import { startUnitwatch } from '../test/harness/unitwatch-service.js';
import { MailAccountant } from './lib/accounting.js';
import { InstanceCgroups, TICKS_PER_SECOND, threadTicks } from './lib/cgroup.js';
import { memoryBreakdown, memoryLine } from './lib/memory.js';
import { type CpuProfile, summarizeProfile } from './lib/profile-summary.js';
import {
  installBenchUnitwatch,
  installCommonUnits,
  loadIdleUnits,
  NOTIFIER_CGROUP,
  ONE_BY_ONE,
  STORM_WINDOW_PASSED_MS,
  unitwatchEnv,
  unitwatchPid,
} from './lib/setups.js';

const UNITS = Number(process.env.BENCH_PROFILE_UNITS ?? 200);
/** BENCH_PROFILE=0 runs the same storm without the profiler, whose sampling costs CPU of its own. */
const PROFILING = process.env.BENCH_PROFILE !== '0';
/** Node or V8 flags to try on the daemon, space-separated (BENCH_NODE_FLAGS='--max-semi-space-size=32'). */
const EXTRA_NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
/** Units failed (and mailed) before the measured storm, to tell JIT warm-up from steady cost. */
const WARMUP = Number(process.env.BENCH_PROFILE_WARMUP ?? 0);
/** Environment for the daemon beyond its settings, space-separated (BENCH_ENV='MALLOC_ARENA_MAX=2'). */
const EXTRA_ENV = (process.env.BENCH_ENV ?? '').split(' ').filter((pair) => pair.includes('='));
/** Seconds after the storm at which the daemon's memory is read again. */
const MEMORY_AFTER_S = [0, 10, 30];
/**
 * BENCH_PROFILE_ONE_AT_A_TIME=1: the units fail one after another, each 0.5 s after the previous
 * mail arrived, with the storm policy lifted, as in the bench's latency series.
 */
const ONE_AT_A_TIME = process.env.BENCH_PROFILE_ONE_AT_A_TIME === '1';
/** How long after READY=1 the units start failing; 0 lands the storm in the start-up catch-up. */
const START_DELAY_MS = Number(process.env.BENCH_PROFILE_START_DELAY_MS ?? 3000);
const PROFILE_DIR = '/var/lib/unitwatch';
const HOST_PROFILE_DIR = (pid: number) => `/proc/${pid}/root/var/lib/private/unitwatch`;

function log(message: string): void {
  process.stderr.write(`[profile] ${message}\n`);
}

/**
 * How long after each unit failed unitwatch logged its decision ("… failed (…); mail due now" or
 * "held back"). The watcher stamps a failure when the signal arrives and decides after reading the
 * unit's facts back, so this is the signal's delay plus the fact read: the age of a failure's
 * timestamp when the policy first sees it.
 */
async function logDecisionLag(instance: SystemdInstance, units: readonly string[]): Promise<void> {
  const failedAtUs = new Map<string, number>();
  for (let start = 0; start < units.length; start += 500) {
    const out = await instance.run([
      'systemctl',
      'show',
      '-p',
      'Id,InactiveEnterTimestampMonotonic',
      '--',
      ...units.slice(start, start + 500),
    ]);
    for (const block of out.split(/\n\n+/)) {
      const id = /^Id=(.*)$/m.exec(block)?.[1];
      const at = /^InactiveEnterTimestampMonotonic=(\d+)/m.exec(block)?.[1];
      if (id !== undefined && at !== undefined) failedAtUs.set(id, Number(at));
    }
  }
  const lagsMs: number[] = [];
  const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'json', '--output-fields=MESSAGE');
  for (const line of journal.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { MESSAGE?: string; __MONOTONIC_TIMESTAMP?: string };
    const message = entry.MESSAGE ?? '';
    const unit = /(bench-fail@\S+\.service) failed/.exec(message)?.[1];
    const failedAt = unit === undefined ? undefined : failedAtUs.get(unit);
    if (failedAt !== undefined && failedAt > 0) {
      // Both CLOCK_MONOTONIC of the same kernel: the instance has no time namespace.
      lagsMs.push((Number(entry.__MONOTONIC_TIMESTAMP ?? 0) - failedAt) / 1000);
    }
  }
  const sorted = [...lagsMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]?.toFixed(0);
  log(
    `failure → decision logged, ${sorted.length} units (ms): ` +
      `median ${at(0.5)}, p90 ${at(0.9)}, max ${at(1)}`,
  );
}

async function main(): Promise<void> {
  const smtp = new SmtpSink();
  await smtp.start();
  const accountant = new MailAccountant(smtp.mails);
  const instance = await SystemdInstance.boot();
  try {
    const cgroups = new InstanceCgroups(instance.pid);
    await installCommonUnits(instance);
    await loadIdleUnits(instance, 1000);
    await installBenchUnitwatch(instance, unitwatchEnv(smtp.url, ONE_AT_A_TIME ? ONE_BY_ONE : {}).env);
    const nodeFlags = [
      ...(PROFILING ? [`--cpu-prof`, `--cpu-prof-dir=${PROFILE_DIR}`] : []),
      ...EXTRA_NODE_FLAGS,
    ];
    if (nodeFlags.length > 0 || EXTRA_ENV.length > 0) {
      const execStart =
        nodeFlags.length === 0
          ? ''
          : // Node refuses --cpu-prof in NODE_OPTIONS, so the command line itself is replaced.
            `ExecStart=\nExecStart=${process.execPath} ${nodeFlags.join(' ')} -- ${repoRoot}dist/cli.js run\n`;
      const environment = EXTRA_ENV.map((pair) => `Environment=${pair}\n`).join('');
      await instance.writeFile(
        '/etc/systemd/system/unitwatch.service.d/profile.conf',
        `[Service]\n${execStart}${environment}`,
      );
      await instance.systemctl('daemon-reload');
    }
    await startUnitwatch(instance);
    await sleep(START_DELAY_MS);
    if (WARMUP > 0) {
      const warmup = Array.from({ length: WARMUP }, (_, i) => `bench-fail@warmup-${i}.service`);
      await instance.run(['systemctl', 'start', '--no-block', ...warmup]);
      if (!(await accountant.waitFor(warmup, 120_000, 50)))
        throw new Error('the warm-up storm was not all mailed');
      await sleep(STORM_WINDOW_PASSED_MS);
    }
    const units = Array.from({ length: UNITS }, (_, i) => `bench-fail@prof-${i}.service`);
    const pid = unitwatchPid(cgroups);
    if (pid === undefined) throw new Error('unitwatch process not found in its cgroup');
    log(`before the storm: ${memoryLine(memoryBreakdown(pid))}`);
    const threadsBefore = threadTicks(pid);
    const cpuBefore = cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0;
    const stormStartUs = Number(process.hrtime.bigint() / 1000n);
    if (ONE_AT_A_TIME) {
      for (const unit of units) {
        await instance.run(['systemctl', 'start', '--no-block', unit]);
        await accountant.waitFor([unit], 30_000, 5);
        await sleep(500);
      }
    } else {
      await instance.run(['systemctl', 'start', '--no-block', ...units]);
      await accountant.waitFor(units, 120_000, 50);
    }
    await sleep(2000);
    const stormEndUs = Number(process.hrtime.bigint() / 1000n);
    const cpuUs = (cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0) - cpuBefore;
    log(
      `${UNITS} units, ${accountant.missing(units).length} unaccounted, ${smtp.mails.length} mails, ` +
        `service cgroup CPU ${(cpuUs / 1000).toFixed(0)} ms (${(cpuUs / 1000 / UNITS).toFixed(2)} ms per failure)`,
    );
    const events: Record<string, number> = {};
    for (const mail of accountant.mailsAbout(new Set(units)))
      events[mail.event] = (events[mail.event] ?? 0) + 1;
    log(`mails about the storm by kind: ${JSON.stringify(events)}`);
    await logDecisionLag(instance, units);
    const threadsAfter = threadTicks(pid);
    for (const [name, ticks] of threadsAfter) {
      const ms = ((ticks - (threadsBefore.get(name) ?? 0)) * 1000) / TICKS_PER_SECOND;
      if (ms > 0) log(`  ${name}: ${ms.toFixed(0)} ms`);
    }
    let waitedS = 0;
    for (const seconds of MEMORY_AFTER_S) {
      await sleep((seconds - waitedS) * 1000);
      waitedS = seconds;
      const memory = memoryBreakdown(pid);
      log(`${seconds + 2} s after the storm: ${memoryLine(memory)}`);
      if (seconds === 0) log(`  largest anonymous mappings: ${JSON.stringify(memory?.largestAnon ?? [])}`);
    }
    if (EXTRA_NODE_FLAGS.some((flag) => flag.startsWith('--trace-gc'))) {
      const gcLines = (await instance.journal('-u', 'unitwatch.service', '-o', 'cat'))
        .split('\n')
        .filter((line) => /Scavenge|Mark-Compact|Mark-sweep/i.test(line));
      const fullGcs = gcLines.filter((line) => !line.includes('Scavenge'));
      log(
        `GC trace: ${gcLines.length} collections, ${fullGcs.length} of them full; the full ones and the last 4:\n` +
          [...fullGcs, ...gcLines.slice(-4)].join('\n'),
      );
    }
    await instance.systemctl('stop', 'unitwatch.service');
    if (!PROFILING) return;
    const dir = HOST_PROFILE_DIR(instance.pid);
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error(`no .cpuprofile in ${dir}`);
    const profile = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as CpuProfile;
    process.stdout.write(summarizeProfile(profile, { fromUs: stormStartUs, toUs: stormEndUs, top: 40 }));
  } finally {
    await instance.poweroff();
    await smtp.stop();
  }
}

await main();
