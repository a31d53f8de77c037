import type { MemoryBreakdown } from './memory.js';
import type { Summary } from './stats.js';

export type SetupName = 'unitwatch' | 'template';

export interface LatencyResult {
  /** Failure (InactiveEnterTimestamp) to the SMTP sink holding the parsed mail, ms. */
  readonly samplesMs: readonly number[];
  readonly summary: Summary;
  /** The same, counted from ExecMainExitTimestamp. */
  readonly fromExecMainExit: Summary;
  readonly lost: readonly string[];
  /** What the whole series cost, divided by the failures mailed. */
  readonly cpu?: SeriesCpu;
}

/** Processes that exited inside the instance during a series, counted by BSD process accounting. */
export interface SpawnedCount {
  /** The notifier's own processes: unitwatch's children, or the template's email@ units and theirs. */
  readonly total: number;
  readonly perFailure: number;
  readonly byProgram: Readonly<Record<string, number>>;
}

export interface SeriesCpu {
  readonly notified: number;
  /** bench-notifier.slice, cgroup v2 cpu.stat, over the whole series and a 1 s tail. */
  readonly notifierUs: number;
  readonly perNotificationUs: number | undefined;
  /** PID 1, dbus-daemon and journald over the same span, apart. */
  readonly systemUs: Readonly<Record<string, number>>;
  readonly systemPerNotificationUs: number | undefined;
  /** unitwatch only: its node process and the commands it reaped (/proc ticks), ms. */
  readonly daemonCpuMs: { readonly self: number; readonly children: number } | undefined;
  readonly spawned: SpawnedCount | undefined;
  /**
   * unitwatch only: failures whose first journal read did not yet hold the unit's own line, so the
   * journal was read again after the settle pause (journalctl runs beyond one per failure).
   */
  readonly journalRereads: number | undefined;
}

export interface StartupResult {
  /** ExecMainStart → READY=1 (ActiveEnter). */
  readonly readyMs: number;
  /** ExecMainStart → the last `Properties.Get` unitwatch sent in its start-up catch-up. */
  readonly catchUpEndMs: number | undefined;
  /** `Get` calls unitwatch made during start-up, as a bus monitor saw them. */
  readonly getCalls: number;
  readonly runningServices: number;
  /** unitwatch's cgroup CPU from its start to READY=1, and to the end of the catch-up, ms (10 ms samples). */
  readonly cpuToReadyMs: number | undefined;
  readonly cpuToCatchUpEndMs: number | undefined;
  /** Its CPU over the first 5 s. */
  readonly cpuFirst5sMs: number;
}

export interface StormRun {
  readonly size: number;
  readonly repeat: number;
  /**
   * unitwatch only: the daemon had already mailed a storm of the same size (past the storm window),
   * so its JIT is warm. Every other run starts on a daemon restarted for it.
   */
  readonly daemonWarm: boolean;
  readonly failedUnits: number;
  /** Last failure minus first failure, by InactiveEnterTimestamp. */
  readonly failureSpreadMs: number;
  /** First failure to the last unit named in a received mail; undefined when some never were. */
  readonly timeToAccountAllMs: number | undefined;
  /** Last failure to the last unit named in a received mail: how long the digest waited after the storm. */
  readonly afterLastFailureMs: number | undefined;
  readonly waitedMs: number;
  readonly mails: number;
  readonly lost: number;
  readonly lostExamples: readonly string[];
  /** The notifier slice's CPU over the storm plus a 2 s tail (cgroup v2 cpu.stat). */
  readonly cpuUs: number;
  readonly cpuV1Us: number | undefined;
  readonly cpuPerNotifiedFailureUs: number | undefined;
  readonly systemCpuUs: Readonly<Record<string, number>>;
  readonly memoryPeakBytes: number | undefined;
  readonly rssSumPeakKb: number;
  /** unitwatch only: its node process (self) and the commands it spawned and reaped (children), /proc ticks. */
  readonly daemonCpuMs: { readonly self: number; readonly children: number } | undefined;
  readonly spawned?: SpawnedCount | undefined;
}

export interface IdleResult {
  readonly seconds: number;
  readonly loadedUnits: number;
  /** CPU between READY=1 + the ready-time restarts and the idle window (15 s). */
  readonly startupTailCpuMs: number;
  readonly cpuMsPerMinute: number;
  readonly cpuMsPerMinuteProc: number;
  readonly voluntaryWakeupsPerSecond: number;
  readonly involuntarySwitchesPerSecond: number;
  readonly threads: number;
  readonly rssIdleKb: number;
  readonly memory?: MemoryBreakdown | undefined;
  /** The window right after the first, as long: the idle cost once start-up's GCs are done. */
  readonly secondWindowCpuMsPerMinute?: number;
  readonly secondWindowCpuMsPerMinuteProc?: number;
  readonly secondWindowWakeupsPerSecond?: number;
  readonly secondWindowRssKb?: number;
}

export interface FloodResult {
  readonly seconds: number;
  readonly flipCycles: number;
  readonly signalsEmitted: number;
  readonly signalsPerSecond: number;
  readonly unitwatchCpuUs: number;
  readonly unitwatchCpuShareOfOneCore: number;
  readonly cpuUsPerSignal: number | undefined;
  readonly digestCapacityPerCoreSecond: number | undefined;
  readonly maxSocketRecvQueueBytes: number;
  readonly injectedFailures: number;
  readonly injectedLost: number;
  readonly injectedLatency: Summary;
  readonly busLost: boolean;
  readonly systemCpuUs: Readonly<Record<string, number>>;
}

export interface BenchResults {
  startedAt: string;
  quick: boolean;
  plan: unknown;
  machine: {
    nproc: number;
    cpuModel: string;
    kernel: string;
    systemd: string;
    node: string;
    msmtp: string;
    memTotalKb: number;
  };
  loadavgBefore: number[];
  loadavgAfter: number[];
  durationS: number;
  cpuSource: string;
  unitwatchSettings: {
    oneAtATime: Record<string, string>;
    storms: Record<string, string>;
    settleZero: Record<string, string>;
  };
  latency: Record<string, LatencyResult>;
  storms: { unitwatch: StormRun[]; template: StormRun[] };
  unitwatchMemory: {
    size: number;
    repeat: number;
    rssAfterKb: number;
    peakRssKb: number;
    memory?: MemoryBreakdown | undefined;
  }[];
  unitwatchMemoryLater?: { size: number; afterS: number; memory: MemoryBreakdown };
  unitwatchReadyMs: Summary;
  startup?: StartupResult[];
  idle: IdleResult | undefined;
  flood: FloodResult | undefined;
}
