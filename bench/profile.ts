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
const PROFILE_DIR = '/var/lib/unitwatch';
const HOST_PROFILE_DIR = (pid: number) => `/proc/${pid}/root/var/lib/private/unitwatch`;

function log(message: string): void {
  process.stderr.write(`[profile] ${message}\n`);
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
    await installBenchUnitwatch(instance, unitwatchEnv(smtp.url, {}).env);
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
    await sleep(3000);
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
    await instance.run(['systemctl', 'start', '--no-block', ...units]);
    await accountant.waitFor(units, 120_000, 50);
    await sleep(2000);
    const stormEndUs = Number(process.hrtime.bigint() / 1000n);
    const cpuUs = (cgroups.cpuUs(NOTIFIER_CGROUP)?.us ?? 0) - cpuBefore;
    log(
      `${UNITS} units, ${accountant.missing(units).length} unaccounted, ${smtp.mails.length} mails, ` +
        `service cgroup CPU ${(cpuUs / 1000).toFixed(0)} ms (${(cpuUs / 1000 / UNITS).toFixed(2)} ms per failure)`,
    );
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
