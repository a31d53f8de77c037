const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses systemd-style time spans (`250ms`, `10s`, `5min`, `1h 30min`); a bare number means seconds. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const parts = trimmed.split(/\s+/);
  let total = 0;
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)([a-z]+)$/.exec(part);
    const factor = match?.[2] === undefined ? undefined : DURATION_UNITS[match[2]];
    if (match?.[1] === undefined || factor === undefined) return undefined;
    total += Number(match[1]) * factor;
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 * 1024 };

/** Bytes as the docs write them: `1M`, `64K`, or a bare count when neither divides it. */
export function formatSize(bytes: number): string {
  if (bytes > 0 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}M`;
  if (bytes > 0 && bytes % 1024 === 0) return `${bytes / 1024}K`;
  return String(bytes);
}

/** Parses `65536`, `64K` or `1M` into bytes. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)([KM]?)$/.exec(text.trim());
  const factor = match?.[2] === undefined ? undefined : SIZE_UNITS[match[2]];
  if (match?.[1] === undefined || factor === undefined) return undefined;
  return Number(match[1]) * factor;
}
