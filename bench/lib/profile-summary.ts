/** The parts of V8's `.cpuprofile` (written by `node --cpu-prof`) that a summary needs. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SummaryWindow {
  /** CLOCK_MONOTONIC microseconds, the clock V8 stamps samples with on Linux. */
  readonly fromUs: number;
  readonly toUs: number;
  readonly top: number;
}

/** Where a frame's code comes from: an npm package, unitwatch itself, Node, or V8's own buckets. */
export function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName === '' ? '(anonymous native)' : functionName;
  const nodeModules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nodeModules?.[1] !== undefined) return nodeModules[1];
  if (url.startsWith('node:')) return 'node internals';
  if (/\/dist\//.test(url)) return 'unitwatch';
  return url;
}

function frameLabel(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const file = frame.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1');
  return `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`;
}

function table(title: string, totals: Map<string, number>, allUs: number, top: number): string {
  const rows = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = rows.map(
    ([label, us]) =>
      `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / allUs).toFixed(1).padStart(5)}%  ${label}`,
  );
  return `\n## ${title}\n${lines.join('\n')}\n`;
}

/**
 * Self time by package and by function, and inclusive time of unitwatch's own functions, over the
 * samples inside the window. Idle samples are left out, so percentages are of CPU actually spent.
 */
export function summarizeProfile(profile: CpuProfile, window: SummaryWindow): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const inWindow = window.fromUs >= profile.startTime && window.fromUs <= profile.endTime;
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const inclusiveOwn = new Map<string, number>();
  const inclusiveAll = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  let at = profile.startTime;
  let busyUs = 0;
  const busyPerSecond: number[] = [];
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (inWindow && (at < window.fromUs || at > window.toUs)) continue;
    const node = byId.get(profile.samples[i] ?? -1);
    if (node === undefined || node.callFrame.functionName === '(idle)') continue;
    busyUs += delta;
    const second = Math.floor((at - (inWindow ? window.fromUs : profile.startTime)) / 1e6);
    busyPerSecond[second] = (busyPerSecond[second] ?? 0) + delta;
    add(byPackage, packageOf(node.callFrame.url, node.callFrame.functionName), delta);
    add(byFunction, frameLabel(node.callFrame), delta);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (frame === undefined) continue;
      const label = frameLabel(frame);
      if (seen.has(label)) continue;
      seen.add(label);
      add(inclusiveAll, label, delta);
      if (packageOf(frame.url, frame.functionName) === 'unitwatch') add(inclusiveOwn, label, delta);
    }
  }
  const scope = inWindow
    ? `${((window.toUs - window.fromUs) / 1e6).toFixed(1)} s storm window`
    : 'whole profile (its clock did not match the window)';
  return [
    `# unitwatch CPU profile: ${(busyUs / 1000).toFixed(0)} ms busy in the ${scope}\n`,
    `\nBusy ms in each second: ${Array.from(busyPerSecond, (us) => ((us ?? 0) / 1000).toFixed(0)).join(' ')}\n`,
    table('self time by package', byPackage, busyUs, window.top),
    table('self time by function', byFunction, busyUs, window.top),
    table("inclusive time of unitwatch's functions", inclusiveOwn, busyUs, window.top),
    table('inclusive time of every function', inclusiveAll, busyUs, window.top),
  ].join('');
}
