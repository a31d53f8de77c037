import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ChannelQueue, fanOut, queuedEverywhere } from '../../src/adapters/channel-queues.js';
import { MailTransport } from '../../src/adapters/mail-transport.js';
import { Outbox } from '../../src/adapters/outbox.js';
import { WebhookSender } from '../../src/adapters/webhook-sender.js';
import type { ComposedMail } from '../../src/core/message.js';
import type { Notification } from '../../src/core/notification.js';
import { HttpSink } from '../harness/http-sink.js';
import { type LogLine, memoryLogger } from '../harness/memory-logger.js';
import { SmtpSink } from '../harness/smtp-sink.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Short retries, so catching up takes milliseconds; the schedule is real. */
const RETRY = { baseMs: 50, capMs: 200 };
const WAIT_MS = 10_000;

function notificationOf(n: number): ComposedMail {
  const id = `<n-${n}@testhost>`;
  const notification: Notification = {
    schema: 1,
    event: 'failed',
    host: 'testhost',
    time: '2026-12-02T01:00:00.000Z',
    title: `unit${n}.service failed on testhost (exit-code)`,
    unit: `unit${n}.service`,
    units: [],
    critical: false,
    failures: 1,
    id,
    incident_id: id,
    notes: [],
  };
  return {
    subject: `[unitwatch] unit${n}.service failed on testhost (exit-code)`,
    text: `unit${n}.service failed on testhost.\n`,
    headers: { 'X-Unitwatch-Unit': `unit${n}.service`, 'X-Unitwatch-Event': 'failed' },
    messageId: id,
    notification,
  };
}

const meta = (n: number) => ({ unit: `unit${n}.service`, event: 'failed' });

/** The ids a webhook accepted, in order. */
function acceptedIds(sink: HttpSink): string[] {
  return sink.accepted().map((request) => (JSON.parse(request.body) as Notification).id);
}

describe('one queue per channel: mail and a webhook, real servers on loopback', () => {
  let root: string;
  let smtp: SmtpSink;
  let http: HttpSink;
  let mail: MailTransport;
  let log: { lines: LogLine[] };
  const started: Outbox[] = [];

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'unitwatch-channels-'));
    smtp = new SmtpSink();
    http = new HttpSink();
    await Promise.all([smtp.start(), http.start()]);
    mail = new MailTransport(
      {
        to: ['ops@example.org'],
        from: 'unitwatch@testhost',
        hostname: 'testhost',
        transport: {
          kind: 'smtp',
          url: smtp.url,
          secure: false,
          host: '127.0.0.1',
          port: smtp.port,
          user: undefined,
          startTls: 'opportunistic',
          caFile: undefined,
          passwordFile: undefined,
          passwordSource: undefined,
        },
      },
      undefined,
    );
    mail.start();
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((outbox) => outbox.stop()));
    mail.stop();
    await Promise.all([smtp.stop(), http.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  function queues(): ChannelQueue[] {
    const { logger, lines } = memoryLogger();
    log = { lines };
    const common = { logger, now: Date.now, random: () => 0.5, retry: RETRY };
    const webhook = new WebhookSender({
      target: { url: http.url('/hook'), display: `http://127.0.0.1:${http.port}/…` },
      format: 'json',
      secret: undefined,
      token: undefined,
      timeoutMs: 2000,
      now: Date.now,
    });
    const mailbox = new Outbox({ ...common, directory: join(root, 'outbox'), sender: mail });
    const hook = new Outbox({ ...common, directory: join(root, 'outbox-webhook'), channel: webhook });
    started.push(mailbox, hook);
    return [
      { label: 'mail', outbox: mailbox },
      { label: webhook.label, outbox: hook },
    ];
  }

  async function startAll(list: readonly ChannelQueue[]): Promise<void> {
    await Promise.all(list.map((queue) => queue.outbox.start()));
  }

  it('mails at once while the webhook answers 503, and the webhook catches up once it answers 200', async () => {
    http.fallback = { status: 503, body: 'down for maintenance' };
    const list = queues();
    await startAll(list);
    for (const n of [1, 2, 3]) await fanOut(list, notificationOf(n), meta(n));
    await smtp.waitFor((mails) => mails.length === 3, WAIT_MS, 'three mails');
    // Mail did not wait for the webhook: it has refused every attempt so far and accepted nothing.
    await http.waitFor((requests) => requests.length >= 2, WAIT_MS, 'retried webhook attempts');
    await waitFor(() => list[0]?.outbox.pending === 0, 'the mail queue to drain');
    expect(http.accepted()).toHaveLength(0);
    expect(list[1]?.outbox.pending).toBe(3);
    http.fallback = { status: 200 };
    await http.waitFor(() => http.accepted().length === 3, WAIT_MS, 'the webhook catching up');
    expect(acceptedIds(http).sort()).toEqual(['<n-1@testhost>', '<n-2@testhost>', '<n-3@testhost>']);
    expect(smtp.mails).toHaveLength(3);
    expect(
      log.lines.some((line) => line.msg.startsWith('notification not sent yet to webhook http://127.0.0.1')),
    ).toBe(true);
  });

  it('waits as long as a 429’s Retry-After asks before trying the webhook again', async () => {
    http.script.push({ status: 429, headers: { 'Retry-After': '1' } });
    const list = queues();
    await startAll(list);
    await fanOut(list, notificationOf(1), meta(1));
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the retried request');
    const [refused, accepted] = http.requests;
    expect(refused?.status).toBe(429);
    // The backoff alone would have retried after 50-100 ms.
    expect((accepted?.receivedAtMs ?? 0) - (refused?.receivedAtMs ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it('mails at once while the webhook’s port is closed, and delivers to it when it listens again', async () => {
    const port = http.port;
    await http.stop();
    const list = queues();
    await startAll(list);
    await fanOut(list, notificationOf(1), meta(1));
    await smtp.waitFor((mails) => mails.length === 1, WAIT_MS, 'the mail');
    expect(list[1]?.outbox.pending).toBe(1);
    await http.start(port);
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the webhook after its outage');
    expect(acceptedIds(http)).toEqual(['<n-1@testhost>']);
  });

  it('does not let a mail outage hold the webhook back either', async () => {
    smtp.refuseWith = 451;
    const list = queues();
    await startAll(list);
    await fanOut(list, notificationOf(1), meta(1));
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the webhook');
    expect(smtp.mails).toHaveLength(0);
    smtp.refuseWith = undefined;
    await smtp.waitFor((mails) => mails.length === 1, WAIT_MS, 'the mail after 451s');
  });

  it('reports a permanent refusal once, never retries it, and lists it in the next notification that passes', async () => {
    http.script.push({ status: 400, body: 'unknown field' });
    const list = queues();
    await startAll(list);
    await fanOut(list, notificationOf(1), meta(1));
    await http.waitFor((requests) => requests.length === 1, WAIT_MS, 'the refused request');
    const hook = list[1]?.outbox;
    await waitFor(() => hook?.rejected === 1, 'the rejection to be recorded');
    const rejected = log.lines.filter((line) => line.msg.includes('REJECTED'));
    expect(rejected.map((line) => line.msg)).toEqual([
      `notification REJECTED by the webhook http://127.0.0.1:${http.port}/…, not retrying: [unitwatch] unit1.service failed on testhost (exit-code)`,
    ]);
    expect(rejected[0]?.level).toBe(50);
    await fanOut(list, notificationOf(2), meta(2));
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the next notification');
    const next = JSON.parse(http.accepted()[0]?.body ?? '{}') as Notification;
    expect(next.id).toBe('<n-2@testhost>');
    expect(next.rejected_earlier).toHaveLength(1);
    expect(next.rejected_earlier?.[0]).toContain('unit1.service');
    // The refused one was tried once only.
    expect(http.requests.filter((request) => request.body.includes('<n-1@testhost>'))).toHaveLength(1);
    // Mail knew nothing of the webhook's refusal: both went out.
    await smtp.waitFor((mails) => mails.length === 2, WAIT_MS, 'both mails');
  });

  it('sends after a restart what was written before the stop, to the channels that lack it only', async () => {
    const first = queues();
    // Written durably, never sent: the process "died" before its outboxes started.
    await fanOut(first, notificationOf(1), meta(1));
    expect(await readdir(join(root, 'outbox-webhook'))).toHaveLength(1);
    await Promise.all(first.map((queue) => queue.outbox.stop()));

    const second = queues();
    await Promise.all(second.map((queue) => queue.outbox.load()));
    // Both queues found it: the watcher sees it queued everywhere and queues nothing again.
    expect(queuedEverywhere(second, '<n-1@testhost>')).toBe(true);
    await fanOut(second, notificationOf(1), meta(1));
    await startAll(second);
    await smtp.waitFor((mails) => mails.length === 1, WAIT_MS, 'the mail after the restart');
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the webhook after the restart');
    // Accepted, then removed from each queue (the removal follows the answer).
    await waitFor(() => second.every((queue) => queue.outbox.pending === 0), 'both queues to drain');
    expect(smtp.mails).toHaveLength(1);
    expect(acceptedIds(http)).toEqual(['<n-1@testhost>']);
  });

  it('re-queues a decided notification only to the channel that does not have it', async () => {
    const list = queues();
    await startAll(list);
    // Mail has it already (queued before a crash); the webhook's queue does not.
    await list[0]?.outbox.enqueue(notificationOf(1), meta(1));
    expect(queuedEverywhere(list, '<n-1@testhost>')).toBe(false);
    await fanOut(list, notificationOf(1), meta(1));
    expect(queuedEverywhere(list, '<n-1@testhost>')).toBe(true);
    await http.waitFor(() => http.accepted().length === 1, WAIT_MS, 'the webhook');
    await smtp.waitFor((mails) => mails.length === 1, WAIT_MS, 'the mail');
    await waitFor(() => list.every((queue) => queue.outbox.pending === 0), 'both queues to drain');
    expect(smtp.mails).toHaveLength(1);
  });
});

describe('webhook queue under kill -9 (a real writer process, a real HTTP server)', () => {
  const FIXTURE = join(ROOT, 'test/fixtures/webhook-writer.mjs');
  const COUNT = 5;

  it('re-sends, after the restart, the notification whose request was in flight at the kill; loses none', async () => {
    const [built, source] = await Promise.all([
      stat(join(ROOT, 'dist/adapters/webhook-sender.js')).catch(() => undefined),
      stat(join(ROOT, 'src/adapters/webhook-sender.ts')),
    ]);
    if (built === undefined || built.mtimeMs < source.mtimeMs) {
      throw new Error('dist/ is missing or older than src/: run `npm run build` before this test');
    }
    const root = await mkdtemp(join(tmpdir(), 'unitwatch-webhook-crash-'));
    const directory = join(root, 'outbox-webhook');
    const http = new HttpSink();
    await http.start();
    try {
      // The second request hangs; the writer is killed while it waits for the answer.
      http.script.push({ status: 200 }, { status: 200, hang: true });
      const first = spawn(process.execPath, [FIXTURE, directory, http.url('/hook'), String(COUNT)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const stderr: string[] = [];
      first.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        first.on('close', (_code, signal) => resolve(signal)),
      );
      await http.waitFor(() => http.hung.length === 1, WAIT_MS, 'the request to hang');
      first.kill('SIGKILL');
      expect(await exited, stderr.join('')).toBe('SIGKILL');
      const left = (await readdir(directory)).filter((name) => name.endsWith('.json')).length;
      expect(left).toBe(COUNT - 1);

      const second = spawn(process.execPath, [FIXTURE, directory, http.url('/hook'), '0'], {
        stdio: 'ignore',
      });
      const code = await new Promise<number | null>((resolve) => second.on('close', (exit) => resolve(exit)));
      expect(code).toBe(0);

      const ids = acceptedIds(http);
      const expected = Array.from({ length: COUNT }, (_, index) => `<hook-${index + 1}@testhost>`);
      expect([...new Set(ids)].sort()).toEqual(expected.sort());
      // Nothing was accepted twice: the hung request was never answered, so only it was sent again.
      expect(ids).toHaveLength(COUNT);
      const hungId = (JSON.parse(http.hung[0] ?? '{}') as Notification).id;
      expect(ids).toContain(hungId);
      expect((await readdir(directory)).filter((name) => name.endsWith('.json'))).toHaveLength(0);
    } finally {
      await http.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
