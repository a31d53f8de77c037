import { readFileSync } from 'node:fs';

/** A process's resident memory, split the way the kernel accounts it, kB. */
export interface MemoryBreakdown {
  readonly rssKb: number;
  readonly hwmKb: number;
  readonly anonKb: number;
  readonly fileKb: number;
  /** The brk heap (glibc's main arena). */
  readonly brkHeapKb: number;
  /** Anonymous mappings of exactly 64 MiB reserve or less inside one: glibc's other malloc arenas. */
  readonly arenaKb: number;
  /** Every other anonymous mapping: V8's heap pages and code space, thread stacks, Node's buffers. */
  readonly otherAnonKb: number;
  /** Resident kB of the largest anonymous mappings, by mapping size (kB), to tell V8 pages apart. */
  readonly largestAnon: readonly { readonly sizeKb: number; readonly rssKb: number }[];
}

/** Arena reserve of glibc on 64-bit: each arena is a 64 MiB mapping, split into rw and --- parts. */
const ARENA_KB = 65_536;

/**
 * Reads /proc/PID/status and /proc/PID/smaps. glibc's extra arenas are the anonymous mappings that
 * come as a readable part plus a PROT_NONE remainder adding up to 64 MiB.
 */
export function memoryBreakdown(pid: number): MemoryBreakdown | undefined {
  let status: string;
  let smaps: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
    smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  interface Mapping {
    start: number;
    end: number;
    perms: string;
    name: string;
    rssKb: number;
  }
  const mappings: Mapping[] = [];
  let current: Mapping | undefined;
  for (const line of smaps.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header !== null) {
      current = {
        start: Number.parseInt(header[1] ?? '0', 16),
        end: Number.parseInt(header[2] ?? '0', 16),
        perms: header[3] ?? '',
        name: (header[5] ?? '').trim(),
        rssKb: 0,
      };
      mappings.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && current !== undefined) current.rssKb = Number(rss[1]);
  }
  let brkHeapKb = 0;
  let arenaKb = 0;
  let otherAnonKb = 0;
  const anon: { sizeKb: number; rssKb: number }[] = [];
  for (let i = 0; i < mappings.length; i++) {
    const m = mappings[i];
    if (m === undefined) continue;
    if (m.name === '[heap]') {
      brkHeapKb += m.rssKb;
      continue;
    }
    if (m.name !== '') continue;
    const sizeKb = (m.end - m.start) / 1024;
    const next = mappings[i + 1];
    const pairedKb =
      next !== undefined && next.start === m.end && next.perms.startsWith('---') && next.name === ''
        ? sizeKb + (next.end - next.start) / 1024
        : sizeKb;
    if (m.perms.startsWith('rw') && pairedKb === ARENA_KB) arenaKb += m.rssKb;
    else otherAnonKb += m.rssKb;
    if (m.rssKb > 0) anon.push({ sizeKb, rssKb: m.rssKb });
  }
  anon.sort((a, b) => b.rssKb - a.rssKb);
  return {
    rssKb: kb('VmRSS'),
    hwmKb: kb('VmHWM'),
    anonKb: kb('RssAnon'),
    fileKb: kb('RssFile') + kb('RssShmem'),
    brkHeapKb,
    arenaKb,
    otherAnonKb,
    largestAnon: anon.slice(0, 8),
  };
}

export function memoryLine(m: MemoryBreakdown | undefined): string {
  if (m === undefined) return 'unreadable';
  const mib = (value: number) => (value / 1024).toFixed(1);
  return (
    `RSS ${mib(m.rssKb)} MiB (HWM ${mib(m.hwmKb)}): anon ${mib(m.anonKb)} = brk heap ${mib(m.brkHeapKb)} + ` +
    `malloc arenas ${mib(m.arenaKb)} + other anon ${mib(m.otherAnonKb)}; file ${mib(m.fileKb)}`
  );
}
