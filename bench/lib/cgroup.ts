import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Kernel clock ticks per second, the unit of /proc's CPU times. */
export const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/**
 * Reads an instance's cgroups from the host. The instance runs in its own subtree of every hierarchy
 * (see test/harness/boot-systemd.sh); on this hybrid layout systemd leaves `CPUUsageNSec` unset, so
 * CPU is read from the files directly: cgroup v2 `cpu.stat` on the unified hierarchy first (it counts
 * every task of the subtree, no controller needed), v1 `cpuacct.usage` otherwise.
 */
export class InstanceCgroups {
  /** `/unitwatch-test-…`: the instance's root in every hierarchy. */
  readonly base: string;

  constructor(instancePid: number) {
    const lines = readFileSync(`/proc/${instancePid}/cgroup`, 'utf8').split('\n');
    const named =
      lines.find((line) => line.includes(':name=systemd:')) ?? lines.find((l) => l.startsWith('0::'));
    const path = named?.slice(named.indexOf(':/') + 1) ?? '';
    this.base = path.replace(/\/init\.scope$/, '');
    if (this.base === '' || this.base === '/')
      throw new Error(`cannot tell the instance's cgroup from ${path}`);
  }

  /** CPU time used so far by everything under `relative` (e.g. `bench.slice/bench-notifier.slice`). */
  cpuUs(relative: string): { readonly us: number; readonly source: string } | undefined {
    const unified = this.#file('unified', relative, 'cpu.stat');
    if (unified !== undefined) {
      const match = /^usage_usec (\d+)$/m.exec(readFileSync(unified, 'utf8'));
      if (match?.[1] !== undefined)
        return { us: Number(match[1]), source: 'cgroup v2 cpu.stat usage_usec (unified hierarchy)' };
    }
    for (const hierarchy of ['cpu,cpuacct', 'cpuacct']) {
      const v1 = this.#file(hierarchy, relative, 'cpuacct.usage');
      if (v1 !== undefined) {
        return {
          us: Number(readFileSync(v1, 'utf8').trim()) / 1000,
          source: `cgroup v1 ${hierarchy}/cpuacct.usage`,
        };
      }
    }
    return undefined;
  }

  /** Both readings where both exist, to cross-check the one used. */
  cpuAllSources(relative: string): Record<string, number> {
    const out: Record<string, number> = {};
    const unified = this.#file('unified', relative, 'cpu.stat');
    if (unified !== undefined) {
      const match = /^usage_usec (\d+)$/m.exec(readFileSync(unified, 'utf8'));
      if (match?.[1] !== undefined) out.unifiedCpuStatUs = Number(match[1]);
    }
    const v1 = this.#file('cpu,cpuacct', relative, 'cpuacct.usage');
    if (v1 !== undefined) out.v1CpuacctUs = Number(readFileSync(v1, 'utf8').trim()) / 1000;
    return out;
  }

  /** v1 memory peak of the subtree (RSS and page cache charged to it), bytes; reset with resetMemoryPeak. */
  memoryPeakBytes(relative: string): number | undefined {
    const file = this.#file('memory', relative, 'memory.max_usage_in_bytes');
    return file === undefined ? undefined : Number(readFileSync(file, 'utf8').trim());
  }

  resetMemoryPeak(relative: string): boolean {
    const file = this.#file('memory', relative, 'memory.max_usage_in_bytes');
    if (file === undefined) return false;
    try {
      writeFileSync(file, '0');
      return true;
    } catch {
      return false;
    }
  }

  /** Host PIDs of every process under `relative`, from the unified (or name=systemd) hierarchy. */
  pids(relative: string): number[] {
    for (const hierarchy of ['unified', 'systemd']) {
      const root = join('/sys/fs/cgroup', hierarchy, this.base, relative);
      if (existsSync(root)) return collectPids(root);
    }
    return [];
  }

  #file(hierarchy: string, relative: string, name: string): string | undefined {
    const file = join('/sys/fs/cgroup', hierarchy, this.base, relative, name);
    return existsSync(file) ? file : undefined;
  }
}

function collectPids(dir: string): number[] {
  const pids: number[] = [];
  try {
    for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) {
      if (line.trim() !== '') pids.push(Number(line));
    }
    for (const entry of readdirSync(dir)) {
      const child = join(dir, entry);
      if (statSync(child).isDirectory()) pids.push(...collectPids(child));
    }
  } catch {
    // a unit's cgroup can vanish while we walk it
  }
  return pids;
}

export interface ProcessSample {
  readonly cpuTicks: number;
  /** utime+stime of children it waited for (the commands it spawned). */
  readonly childTicks: number;
  readonly rssKb: number;
  readonly hwmKb: number;
  readonly voluntarySwitches: number;
  readonly involuntarySwitches: number;
  readonly threads: number;
}

/** utime+stime of all threads, RSS and its high-water mark, and context switches summed over threads. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(fields[11]) + Number(fields[12]);
    const childTicks = Number(fields[13]) + Number(fields[14]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    let voluntarySwitches = 0;
    let involuntarySwitches = 0;
    const tasks = readdirSync(`/proc/${pid}/task`);
    for (const task of tasks) {
      try {
        const taskStatus = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
        voluntarySwitches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(taskStatus)?.[1] ?? 0);
        involuntarySwitches += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(taskStatus)?.[1] ?? 0);
      } catch {
        // thread exited
      }
    }
    return {
      cpuTicks,
      childTicks,
      rssKb: kb('VmRSS'),
      hwmKb: kb('VmHWM'),
      voluntarySwitches,
      involuntarySwitches,
      threads: tasks.length,
    };
  } catch {
    return undefined;
  }
}

/** Sum of VmRSS over the given processes, kB. */
export function rssSumKb(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      total += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return total;
}

/**
 * CPU ticks of a process's threads, user and system apart: its main thread, and the others by name.
 * Node's helper threads (V8's compiler and GC workers, libuv's pool) are all called `node` too.
 */
export function threadTicks(pid: number): Map<string, number> {
  const totals = new Map<string, number>();
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return totals;
  }
  for (const task of tasks) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      for (const [mode, ticks] of [
        ['user', Number(fields[11])],
        ['system', Number(fields[12])],
      ] as const) {
        const key = `${task === String(pid) ? 'main thread' : `other threads named ${name}`} (${mode})`;
        totals.set(key, (totals.get(key) ?? 0) + ticks);
      }
    } catch {
      // thread exited
    }
  }
  return totals;
}
