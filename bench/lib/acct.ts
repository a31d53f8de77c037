import { readFileSync, statSync } from 'node:fs';
import type { SystemdInstance } from '../../test/harness/systemd-instance.js';

/** acct(2) on x86_64; the bench boots systemd on the host's kernel, so the host's number. */
const ACCT_SYSCALL = 163;
/** struct acct_v3 (linux/acct.h): 64 bytes a record, written when a process exits. */
const RECORD_BYTES = 64;
const FILE = '/run/bench-acct';

export interface ExitedProcess {
  /** Name of the last program it ran (16 bytes, cut), e.g. `systemctl`, `journalctl`. */
  readonly comm: string;
  /** PID and parent PID as the instance's PID namespace numbers them; 0 for a parent outside it. */
  readonly pid: number;
  readonly ppid: number;
}

/**
 * BSD process accounting switched on inside an instance's PID namespace: the kernel appends one
 * record per process of that namespace when it exits, with its PID and parent PID as the namespace
 * numbers them. That counts every command a notifier spawns, however short-lived, at no cost to it.
 */
export class ProcessAccounting {
  readonly #instance: SystemdInstance;
  readonly #hostPath: string;

  constructor(instance: SystemdInstance) {
    this.#instance = instance;
    this.#hostPath = `/proc/${instance.pid}/root${FILE}`;
  }

  /** Turns accounting on; false (and nothing counted) where the kernel or the sandbox refuses it. */
  async start(): Promise<boolean> {
    const result = await this.#instance.exec([
      'perl',
      '-e',
      `open(my $f, '>', $ARGV[0]) or die "$!"; close($f); syscall(${ACCT_SYSCALL}, $ARGV[0]) == 0 or die "acct: $!\\n"`,
      FILE,
    ]);
    return result.code === 0;
  }

  async stop(): Promise<void> {
    await this.#instance.exec(['perl', '-e', `syscall(${ACCT_SYSCALL}, 0)`]);
  }

  /** Bytes written so far: records after this offset are processes that exited since. */
  mark(): number {
    try {
      return statSync(this.#hostPath).size;
    } catch {
      return 0;
    }
  }

  /** Processes that exited between two marks. */
  exitedBetween(from: number, to: number): ExitedProcess[] {
    let data: Buffer;
    try {
      data = readFileSync(this.#hostPath);
    } catch {
      return [];
    }
    const out: ExitedProcess[] = [];
    for (let offset = from; offset + RECORD_BYTES <= Math.min(to, data.length); offset += RECORD_BYTES) {
      if (data.readUInt8(offset + 1) !== 3) continue; // not a v3 record
      const comm = data.subarray(offset + 48, offset + 64);
      const end = comm.indexOf(0);
      out.push({
        comm: comm.subarray(0, end === -1 ? 16 : end).toString('latin1'),
        pid: data.readUInt32LE(offset + 16),
        ppid: data.readUInt32LE(offset + 20),
      });
    }
    return out;
  }
}

/** `{ systemctl: 30, journalctl: 41 }`: how many of the processes ran each program. */
export function countByComm(processes: readonly ExitedProcess[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const process of processes) counts[process.comm] = (counts[process.comm] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}
