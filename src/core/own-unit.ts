/**
 * The unit unitwatch itself runs in, from /proc/self/cgroup (`0::/system.slice/unitwatch.service`, or
 * the name=systemd line on hybrid hierarchies). Undefined outside a service (a shell, a test runner).
 */
export function ownUnitFromCgroup(cgroupFile: string): string | undefined {
  for (const line of cgroupFile.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    const leaf = path.split('/').findLast((part) => /\.(service|scope)$/.test(part));
    if (leaf?.endsWith('.service')) return leaf;
  }
  return undefined;
}

export const SELF_NOTIFICATION_INTERVAL_MS = 3_600_000;

export interface SelfNotificationState {
  /** NRestarts of our own unit when we last looked, so each restart is counted once. */
  readonly restartsSeen: number;
  readonly lastMailMs: number;
}

/**
 * A crash loop of unitwatch must not become a mail loop: at most one mail about itself per hour,
 * remembered across restarts in the state directory.
 */
export function mayNotifyAboutSelf(state: SelfNotificationState | undefined, nowMs: number): boolean {
  return state === undefined || nowMs - state.lastMailMs >= SELF_NOTIFICATION_INTERVAL_MS;
}
