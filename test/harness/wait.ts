import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it holds; throws naming `what` after `timeoutMs`. For conditions read from the
 * booted systemd (a property, the journal), where there is no event to wait for.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
