import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { WebhookUrl } from '../core/config.js';
import type { ComposedMail } from '../core/message.js';
import type { Outbox, OutboxMeta } from './outbox.js';

/**
 * Fan-out: every notification goes to every channel, each through its own Outbox (own directory,
 * own retries, own pause), so one channel's outage never delays, blocks or loses another's.
 */

/** One channel's queue: its label for logs and the status line, and its Outbox. */
export interface ChannelQueue {
  readonly label: string;
  readonly outbox: Outbox;
}

/**
 * Hands one notification to every channel's queue that does not hold it yet; resolves once each has
 * it durably (an Outbox's enqueue never rejects: a disk that refuses keeps it in memory). A queue
 * that already knows the Message-ID (queued before a crash) is skipped, so a decided notification
 * re-queued at start reaches exactly the channels that lack it.
 */
export async function fanOut(
  queues: readonly ChannelQueue[],
  composed: ComposedMail,
  meta: OutboxMeta,
): Promise<void> {
  await Promise.all(
    queues
      .filter((queue) => !queue.outbox.knownMessageIds().has(composed.messageId))
      .map((queue) => queue.outbox.enqueue(composed, meta)),
  );
}

/** Whether every channel has the notification (in its queue now, or sent since its queue was loaded). */
export function queuedEverywhere(queues: readonly ChannelQueue[], messageId: string): boolean {
  return queues.every((queue) => queue.outbox.knownMessageIds().has(messageId));
}

/**
 * Each webhook's own queue directory, named after its URL so that reordering
 * UNITWATCH_WEBHOOK_URL keeps every queue with its URL. Mail keeps `outbox`, as before channels.
 */
export function webhookQueueDirectory(stateDirectory: string, target: WebhookUrl): string {
  const digest = createHash('sha256').update(target.url).digest('hex').slice(0, 12);
  return join(stateDirectory, `outbox-webhook-${digest}`);
}
