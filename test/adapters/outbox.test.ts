import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as realSleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryReceipt, MailSender } from '../../src/adapters/mail-transport.js';
import { Outbox, type OutboxOptions, type Schedule } from '../../src/adapters/outbox.js';
import type { ComposedMail } from '../../src/core/message.js';
import { MailDeliveryError } from '../../src/errors/mail-error.js';
import { memoryLogger } from '../harness/memory-logger.js';

/** A clock and timers that move only when the test says so; file I/O stays real. */
class ManualClock {
  #nowMs = 1_790_000_000_000;
  #timers: { dueMs: number; callback: () => void; active: boolean }[] = [];

  readonly now = (): number => this.#nowMs;

  readonly schedule: Schedule = (callback, delayMs) => {
    const timer = { dueMs: this.#nowMs + delayMs, callback, active: true };
    this.#timers.push(timer);
    return () => {
      timer.active = false;
    };
  };

  /** Delays of the armed timers, from now, shortest first. */
  armed(): number[] {
    return this.#timers
      .filter((timer) => timer.active)
      .map((timer) => timer.dueMs - this.#nowMs)
      .sort((a, b) => a - b);
  }

  advance(ms: number): void {
    const target = this.#nowMs + ms;
    for (;;) {
      const due = this.#timers
        .filter((timer) => timer.active && timer.dueMs <= target)
        .sort((a, b) => a.dueMs - b.dueMs)[0];
      if (due === undefined) break;
      due.active = false;
      this.#nowMs = Math.max(this.#nowMs, due.dueMs);
      due.callback();
    }
    this.#nowMs = target;
  }
}

type Outcome = 'ok' | 'hang' | 'refused' | 'bad-login' | number;

interface Attempt {
  readonly messageId: string;
  readonly atMs: number;
  readonly outcome: Outcome;
}

/** An SMTP server in a list: per subject, the answers to give, then 250 for ever. */
class ScriptedSender implements MailSender {
  readonly attempts: Attempt[] = [];
  readonly delivered: ComposedMail[] = [];
  readonly #script = new Map<string, Outcome[]>();
  readonly #clock: ManualClock;
  readonly #hanging: (() => void)[] = [];
  active = 0;
  maxActive = 0;

  constructor(clock: ManualClock) {
    this.#clock = clock;
  }

  script(subject: string, ...outcomes: Outcome[]): void {
    this.#script.set(subject, outcomes);
  }

  /** Lets every hanging send through with 250. */
  releaseHanging(): void {
    for (const release of this.#hanging.splice(0)) release();
  }

  async send(mail: ComposedMail): Promise<DeliveryReceipt> {
    const outcome = this.#script.get(mail.subject)?.shift() ?? 'ok';
    this.attempts.push({ messageId: mail.messageId, atMs: this.#clock.now(), outcome });
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (outcome === 'hang') await new Promise<void>((resolve) => this.#hanging.push(resolve));
      else await realSleep(1);
      if (outcome === 'refused') {
        throw new MailDeliveryError(
          'smtp://127.0.0.1:2525',
          Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:2525'), { code: 'ECONNREFUSED' }),
        );
      }
      if (outcome === 'bad-login') {
        throw new MailDeliveryError(
          'smtp://127.0.0.1:2525',
          Object.assign(new Error('Invalid login: 535 5.7.8 Authentication failed'), {
            code: 'EAUTH',
            responseCode: 535,
          }),
        );
      }
      if (typeof outcome === 'number') {
        throw new MailDeliveryError(
          'smtp://127.0.0.1:2525',
          Object.assign(new Error(`Message failed: ${outcome} try something else`), {
            responseCode: outcome,
          }),
        );
      }
      this.delivered.push(mail);
      return { accepted: ['ops@example.org'], response: '250 OK: queued as 7F3A' };
    } finally {
      this.active--;
    }
  }
}

function mail(n: number): ComposedMail {
  return {
    subject: `[unitwatch] unit${n}.service failed on testhost (exit-code)`,
    text: `unit${n}.service failed on testhost.\n\n  Result:     exit-code\n\n-- \nunitwatch\n`,
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Unitwatch-Unit': `unit${n}.service` },
    messageId: `<message-${n}@testhost>`,
  };
}

const meta = (n: number) => ({ unit: `unit${n}.service`, event: 'failed' });

async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await realSleep(2);
  }
}

/** Lets file I/O that should NOT lead anywhere have its chance, before asserting that nothing happened. */
const settleIo = () => realSleep(50);

async function entryFiles(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.endsWith('.json')).sort();
}

async function readEntry(directory: string, name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(directory, name), 'utf8')) as Record<string, unknown>;
}

describe('Outbox', () => {
  let root: string;
  let directory: string;
  let clock: ManualClock;
  let sender: ScriptedSender;
  let log: ReturnType<typeof memoryLogger>;
  const outboxes: Outbox[] = [];

  function newOutbox(overrides: Partial<OutboxOptions> = {}): Outbox {
    const outbox = new Outbox({
      directory,
      sender,
      logger: log.logger,
      now: clock.now,
      random: () => 0.5,
      schedule: clock.schedule,
      ...overrides,
    });
    outboxes.push(outbox);
    return outbox;
  }

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'unitwatch-outbox-'));
    directory = join(root, 'state', 'outbox');
    clock = new ManualClock();
    sender = new ScriptedSender(clock);
    log = memoryLogger();
  });

  afterEach(async () => {
    sender.releaseHanging();
    for (const outbox of outboxes.splice(0)) {
      const stopping = outbox.stop();
      clock.advance(10_000);
      await stopping;
    }
    await rm(root, { recursive: true, force: true });
  });

  it('creates its directory private to the daemon (0700)', async () => {
    await newOutbox().start();
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
  });

  it('has the whole message on disk, readable only by the daemon, when enqueue() resolves', async () => {
    const outbox = newOutbox();
    await outbox.start();
    sender.script(mail(1).subject, 'hang');

    await outbox.enqueue(mail(1), meta(1));

    const [name, ...others] = await entryFiles(directory);
    expect(others).toEqual([]);
    expect(name).toMatch(/^\d{15}-\d{6}-[0-9a-f]{8}\.json$/);
    const entry = await readEntry(directory, name ?? '');
    expect(entry).toMatchObject({ unit: 'unit1.service', event: 'failed', attempts: 0, mail: mail(1) });
    expect((await stat(join(directory, name ?? ''))).mode & 0o777).toBe(0o600);
    expect(outbox.pending).toBe(1);
  });

  it('removes the entry once the server accepted it, and logs what went to whom', async () => {
    const outbox = newOutbox();
    await outbox.start();

    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => outbox.pending === 0, 'the delivery');

    expect(await entryFiles(directory)).toEqual([]);
    expect(sender.delivered).toEqual([mail(1)]);
    const sent = log.lines.filter((line) => line.msg.startsWith('mail sent'));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      level: 30,
      msg: `mail sent: ${mail(1).subject} (250 after 1 attempt)`,
      unit: 'unit1.service',
      event: 'failed',
      to: ['ops@example.org'],
      messageId: '<message-1@testhost>',
      response: '250 OK: queued as 7F3A',
    });
  });

  it('retries a refused connection and 4xx answers after growing delays, then delivers exactly once', async () => {
    const outbox = newOutbox();
    await outbox.start();
    sender.script(mail(1).subject, 451, 'refused', 421);

    await outbox.enqueue(mail(1), meta(1));
    const delays: number[] = [];
    for (let failures = 1; failures <= 3; failures++) {
      await waitFor(() => clock.armed().length === 1, `the retry timer after failure ${failures}`);
      const [delay = 0] = clock.armed();
      delays.push(delay);
      const [name = ''] = await entryFiles(directory);
      expect(await readEntry(directory, name)).toMatchObject({
        attempts: failures,
        nextAttemptMs: clock.now() + delay,
      });
      clock.advance(delay - 1);
      await settleIo();
      expect(sender.attempts).toHaveLength(failures);
      clock.advance(1);
      await waitFor(() => sender.attempts.length === failures + 1, `attempt ${failures + 1}`);
    }
    await waitFor(() => outbox.pending === 0, 'the delivery');

    // random() = 0.5: halfway between 2 s and a ceiling that doubles (4 s, 8 s, 16 s).
    expect(delays).toEqual([3_000, 5_000, 9_000]);
    expect(sender.delivered).toEqual([mail(1)]);
    expect(await entryFiles(directory)).toEqual([]);
    const warnings = log.lines.filter((line) => line.level === 40);
    expect(warnings.map((line) => line.responseCode)).toEqual([451, undefined, 421]);
    expect(warnings.map((line) => line.retryInMs)).toEqual(delays);
  });

  it('holds back the whole queue while the server refuses, and sends the rest once it is back', async () => {
    const outbox = newOutbox({ maxParallel: 1 });
    await outbox.start();
    sender.script(mail(1).subject, 'refused');

    for (const n of [1, 2, 3]) await outbox.enqueue(mail(n), meta(n));
    await waitFor(() => clock.armed().length === 1, 'the retry timer');
    await settleIo();
    expect(sender.attempts).toHaveLength(1);

    clock.advance(clock.armed()[0] ?? 0);
    await waitFor(() => outbox.pending === 0, 'the deliveries');
    expect(sender.delivered.map((sent) => sent.messageId)).toEqual([1, 2, 3].map((n) => mail(n).messageId));
  });

  it('retries a refused login (535) instead of rejecting every mail, and says so at error level', async () => {
    const outbox = newOutbox();
    await outbox.start();
    sender.script(mail(1).subject, 'bad-login');

    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => clock.armed().length === 1, 'the retry timer');
    expect(outbox.rejected).toBe(0);
    expect(log.lines.find((line) => line.level === 50)?.msg).toContain('refused unitwatch');

    clock.advance(clock.armed()[0] ?? 0);
    await waitFor(() => outbox.pending === 0, 'the delivery');
    expect(sender.delivered).toEqual([mail(1)]);
  });

  it('sends oldest first', async () => {
    const outbox = newOutbox({ maxParallel: 1 });
    await outbox.start();

    for (const n of [1, 2, 3, 4, 5]) await outbox.enqueue(mail(n), meta(n));
    await waitFor(() => outbox.pending === 0, 'the deliveries');

    expect(sender.attempts.map((attempt) => attempt.messageId)).toEqual(
      [1, 2, 3, 4, 5].map((n) => mail(n).messageId),
    );
  });

  it('never sends more than maxParallel (default 2) at once', async () => {
    const outbox = newOutbox();
    await outbox.start();
    for (const n of [1, 2, 3, 4, 5]) sender.script(mail(n).subject, 'hang');

    for (const n of [1, 2, 3, 4, 5]) await outbox.enqueue(mail(n), meta(n));
    await waitFor(() => sender.attempts.length === 2, 'two sends');
    await settleIo();
    expect(sender.attempts).toHaveLength(2);
    while (sender.delivered.length < 5) {
      sender.releaseHanging();
      await realSleep(2);
    }
    await waitFor(() => outbox.pending === 0, 'the deliveries');

    expect(sender.maxActive).toBe(2);
    expect(sender.delivered).toHaveLength(5);
  });

  it('keeps a 5xx-rejected mail on disk, never retries it, and reports it in the next delivered mail, once', async () => {
    const outbox = newOutbox();
    await outbox.start();
    sender.script(mail(1).subject, 550);

    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => outbox.rejected === 1, 'the rejection');

    expect(outbox.pending).toBe(0);
    const [rejectedFile = ''] = await entryFiles(directory);
    expect(await readEntry(directory, rejectedFile)).toMatchObject({
      mail: mail(1),
      attempts: 1,
      rejected: { responseCode: 550 },
    });
    const errors = log.lines.filter((line) => line.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ unit: 'unit1.service', responseCode: 550 });
    expect(errors[0]?.msg).toContain('REJECTED');
    const [summary, ...more] = outbox.rejectedSummaries();
    expect(more).toEqual([]);
    expect(summary).toContain('unit1.service (failed)');
    expect(summary).toContain(mail(1).subject);
    expect(summary).toContain('550');

    clock.advance(3_600_000);
    await settleIo();
    expect(sender.attempts).toHaveLength(1);

    await outbox.enqueue(mail(2), meta(2));
    await waitFor(() => outbox.pending === 0 && outbox.rejectedSummaries().length === 0, 'the report');
    const carrier = sender.delivered[0];
    expect(carrier?.messageId).toBe(mail(2).messageId);
    expect(carrier?.headers['X-Unitwatch-Rejected-Earlier']).toBe('1');
    expect(carrier?.text).toContain(
      '1 earlier notification was refused for good (a 5xx answer, or an address sendmail refused)',
    );
    expect(carrier?.text).toContain(summary);
    // The report sits above the signature, where mail clients do not fold it away.
    expect(carrier?.text.indexOf(summary ?? '')).toBeLessThan(carrier?.text.indexOf('\n-- \n') ?? 0);
    expect(log.lines.find((line) => line.msg.startsWith('mail sent'))).toMatchObject({
      reportedRejected: 1,
    });

    await outbox.enqueue(mail(3), meta(3));
    await waitFor(() => outbox.pending === 0, 'the third mail');
    expect(sender.delivered[1]?.text).toBe(mail(3).text);
    expect(outbox.rejected).toBe(1);
    expect(await readEntry(directory, rejectedFile)).toMatchObject({
      rejected: { reportedInMessageId: mail(2).messageId },
    });

    // A restart neither resends nor re-reports it.
    await outbox.stop();
    const restarted = newOutbox();
    await restarted.start();
    expect(restarted.rejected).toBe(1);
    expect(restarted.pending).toBe(0);
    expect(restarted.rejectedSummaries()).toEqual([]);
  });

  it('a new outbox over the same directory delivers what the old one left, none twice', async () => {
    const first = newOutbox();
    await first.start();
    for (const n of [3, 4]) sender.script(mail(n).subject, 'hang');
    for (const n of [1, 2, 3, 4, 5]) await first.enqueue(mail(n), meta(n));
    await waitFor(() => sender.delivered.length === 2 && sender.active === 2, 'two deliveries, two hanging');
    const stopping = first.stop();
    clock.advance(10_000);
    await stopping;
    expect(await entryFiles(directory)).toHaveLength(3);

    const firstDelivered = sender.delivered.map((sent) => sent.messageId);
    sender = new ScriptedSender(clock);
    const second = newOutbox();
    await second.start();
    expect(second.pending).toBe(3);
    await waitFor(() => second.pending === 0, 'the catch-up');

    const all = [...firstDelivered, ...sender.delivered.map((sent) => sent.messageId)];
    expect(all.sort()).toEqual([1, 2, 3, 4, 5].map((n) => mail(n).messageId).sort());
    expect(await entryFiles(directory)).toEqual([]);
  });

  it('stop() during a send that does not finish leaves the entry for the next start', async () => {
    const first = newOutbox({ stopTimeoutMs: 2_000 });
    await first.start();
    sender.script(mail(1).subject, 'hang');
    await first.enqueue(mail(1), meta(1));
    await waitFor(() => sender.active === 1, 'the send');

    const stopping = first.stop();
    let stopped = false;
    void stopping.then(() => {
      stopped = true;
    });
    clock.advance(1_999);
    await settleIo();
    expect(stopped).toBe(false);
    clock.advance(1);
    await stopping;

    expect(await entryFiles(directory)).toHaveLength(1);
    expect(log.lines.some((line) => line.level === 40 && line.msg.startsWith('stopped while mail'))).toBe(
      true,
    );
    const second = newOutbox();
    await second.start();
    await waitFor(() => second.pending === 0, 'the delivery after restart');
    expect(sender.delivered.map((sent) => sent.messageId)).toEqual([mail(1).messageId]);
  });

  it('stop() waits for a send that finishes in time, and that entry is gone', async () => {
    const outbox = newOutbox();
    await outbox.start();
    sender.script(mail(1).subject, 'hang');
    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => sender.active === 1, 'the send');

    const stopping = outbox.stop();
    sender.releaseHanging();
    await stopping;

    expect(await entryFiles(directory)).toEqual([]);
    expect(outbox.pending).toBe(0);
  });

  it('enqueue() after stop() still stores the mail, and the next start sends it', async () => {
    const outbox = newOutbox();
    await outbox.start();
    await outbox.stop();

    await outbox.enqueue(mail(1), meta(1));
    await settleIo();
    expect(sender.attempts).toEqual([]);
    expect(await entryFiles(directory)).toHaveLength(1);

    await newOutbox().start();
    await waitFor(() => sender.delivered.length === 1, 'the delivery');
  });

  it('removes half-written temporary files left by a crash, and delivers the complete entries', async () => {
    const writer = newOutbox();
    await writer.enqueue(mail(1), meta(1));
    const [complete = ''] = await entryFiles(directory);
    await writeFile(
      join(directory, `${complete.replace('000-', '001-')}.4242.tmp`),
      '{"version":1,"mail":{"subj',
    );

    const outbox = newOutbox();
    await outbox.start();
    await waitFor(() => outbox.pending === 0, 'the delivery');

    expect(await readdir(directory)).toEqual([]);
    expect(sender.delivered).toEqual([mail(1)]);
  });

  it('moves an unreadable entry aside as *.corrupt, logs it, and still delivers the others', async () => {
    await mkdir(directory, { recursive: true });
    await writeFile(join(directory, '000000000000001-000001-aaaaaaaa.json'), '{"version":1,"mail":{"subj');
    await writeFile(join(directory, '000000000000002-000001-bbbbbbbb.json'), '{"version":1,"unit":3}\n');
    const writer = newOutbox();
    await writer.enqueue(mail(1), meta(1));

    const outbox = newOutbox();
    await outbox.start();
    await waitFor(() => outbox.pending === 0, 'the delivery');

    expect(sender.delivered).toEqual([mail(1)]);
    const stamp = '20260921T141320000Z';
    expect((await readdir(directory)).sort()).toEqual([
      `000000000000001-000001-aaaaaaaa.json.corrupt-${stamp}`,
      `000000000000002-000001-bbbbbbbb.json.corrupt-${stamp}`,
    ]);
    const errors = log.lines.filter((line) => line.level === 50);
    expect(errors).toHaveLength(2);
    expect(errors.every((line) => line.msg.endsWith('the notification in it was not sent'))).toBe(true);
    expect(errors[0]?.msg).toContain('not valid JSON');
    expect(String(errors[1]?.problem)).toContain('unit');
  });

  it('issue 11: an outbox that is a regular file is moved aside, the directory recreated, and mail still delivered', async () => {
    await mkdir(join(root, 'state'), { recursive: true });
    await writeFile(directory, 'not a directory\n');
    const outbox = newOutbox();
    await outbox.start();
    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => outbox.pending === 0, 'the delivery');

    expect(sender.delivered).toEqual([mail(1)]);
    expect((await stat(directory)).isDirectory()).toBe(true);
    const aside = (await readdir(join(root, 'state'))).filter((name) => name.startsWith('outbox.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(await readFile(join(root, 'state', aside[0] ?? ''), 'utf8')).toBe('not a directory\n');
    const errors = log.lines.filter((line) => line.level === 50);
    expect(errors.map((line) => line.msg)).toEqual([
      `state file ${directory} is unusable (it is not a directory); moved aside to ${aside[0]}, creating an empty outbox directory`,
    ]);
  });

  it('load() indexes the directory without sending; knownMessageIds() keeps delivered ones', async () => {
    const writer = newOutbox();
    await writer.enqueue(mail(1), meta(1));
    sender.script(mail(9).subject, 500);
    const outbox = newOutbox();
    await outbox.load();
    await settleIo();
    expect(sender.attempts).toEqual([]);
    expect(outbox.pending).toBe(1);
    expect([...outbox.knownMessageIds()]).toEqual([mail(1).messageId]);

    await outbox.start();
    await outbox.enqueue(mail(2), meta(2));
    await waitFor(() => outbox.pending === 0, 'both deliveries');
    expect(sender.delivered.map((m) => m.messageId)).toEqual([mail(1).messageId, mail(2).messageId]);
    expect([...outbox.knownMessageIds()].sort()).toEqual([mail(1).messageId, mail(2).messageId]);
  });

  it('retries a sendmail that keeps failing for its setup (EX_CONFIG) but rejects an unknown user (EX_NOUSER) once', async () => {
    const failing = (status: number): MailSender => ({
      send: () =>
        Promise.reject(
          new MailDeliveryError(
            'sendmail /usr/sbin/sendmail',
            new Error(`Sendmail exited with code ${status}`),
          ),
        ),
    });
    const nouser = newOutbox({ sender: failing(67), directory: join(root, 'nouser') });
    await nouser.start();
    await nouser.enqueue(mail(1), meta(1));
    await waitFor(() => nouser.rejected === 1, 'the rejection');
    expect(nouser.pending).toBe(0);
    expect(clock.armed()).toEqual([]);

    const config = newOutbox({ sender: failing(78), directory: join(root, 'config') });
    await config.start();
    await config.enqueue(mail(2), meta(2));
    await waitFor(() => clock.armed().length === 1, 'the retry timer');
    expect(config.rejected).toBe(0);
    expect(config.pending).toBe(1);
    const lines = log.lines.filter((line) => line.level === 50).map((line) => line.msg);
    expect(lines.some((msg) => msg.startsWith('notification REJECTED by sendmail, not retrying'))).toBe(true);
    expect(lines.some((msg) => msg.includes('78 (EX_CONFIG)') && msg.includes('Will retry'))).toBe(true);
  });

  describe('with a state directory that cannot be written', () => {
    const breakDisk = async () => {
      await rm(join(root, 'state'), { recursive: true, force: true });
      // A file where the directory should be: every write under it fails (ENOTDIR), even as root.
      await writeFile(join(root, 'state'), '');
    };
    const repairDisk = () => rm(join(root, 'state'), { force: true });

    it('sends the mail directly, keeps it in memory, and logs the problem at error once', async () => {
      const outbox = newOutbox();
      await outbox.start();
      await breakDisk();
      await outbox.enqueue(mail(1), meta(1));
      await outbox.enqueue(mail(2), meta(2));
      await waitFor(() => sender.delivered.length === 2, 'both deliveries');
      await waitFor(() => outbox.pending === 0, 'the index to empty');

      expect(outbox.degraded?.inMemory).toBe(0);
      expect(outbox.degraded?.reason).toContain('ENOTDIR');
      const errors = log.lines.filter((line) => line.level === 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]?.msg).toContain('mail is sent directly and kept in memory');
    });

    it('retries a mail the relay refused with the outbox backoff until it is delivered', async () => {
      const outbox = newOutbox();
      await outbox.start();
      await breakDisk();
      sender.script(mail(1).subject, 'refused', 'refused');
      await outbox.enqueue(mail(1), meta(1));
      // Two timers: the retry and the probe of the disk.
      await waitFor(
        () => sender.attempts.length === 1 && clock.armed().length === 2,
        'the first retry timer',
      );
      expect(outbox.degraded?.inMemory).toBe(1);
      clock.advance(4_000);
      await waitFor(
        () => sender.attempts.length === 2 && clock.armed().length === 2,
        'the second retry timer',
      );
      clock.advance(8_000);
      await waitFor(() => outbox.pending === 0, 'the delivery');
      expect(sender.delivered.map((m) => m.messageId)).toEqual([mail(1).messageId]);
      expect(sender.attempts.map((a) => a.outcome)).toEqual(['refused', 'refused', 'ok']);
    });

    it('writes what memory holds back to the outbox once the disk takes writes again', async () => {
      const outbox = newOutbox();
      await outbox.start();
      await breakDisk();
      sender.script(mail(1).subject, 'refused');
      await outbox.enqueue(mail(1), meta(1));
      await waitFor(
        () => sender.attempts.length === 1 && clock.armed().length === 2,
        'the retry and the probe',
      );
      await repairDisk();
      clock.advance(30_000); // the probe; the retry, due after 2–4 s, is also let through
      await waitFor(() => outbox.degraded === undefined, 'the recovery');
      await waitFor(() => outbox.pending === 0, 'the delivery');
      expect(sender.delivered.map((m) => m.messageId)).toEqual([mail(1).messageId]);
      expect(log.lines.some((line) => line.level === 40 && line.msg.includes('takes writes again'))).toBe(
        true,
      );
    });

    it('writes a held mail to disk at recovery, where the next start finds it', async () => {
      const outbox = newOutbox();
      await outbox.start();
      await breakDisk();
      sender.script(mail(1).subject, 'refused', 'refused', 'refused');
      await outbox.enqueue(mail(1), meta(1));
      await waitFor(() => sender.attempts.length === 1, 'the first attempt');
      await repairDisk();
      clock.advance(1_000);
      await outbox.enqueue(mail(2), meta(2)); // a write that succeeds starts the flush at once
      await waitFor(() => outbox.degraded === undefined, 'the recovery');
      expect((await entryFiles(directory)).length).toBe(2);
      const entries = await Promise.all(
        (await entryFiles(directory)).map((name) => readEntry(directory, name)),
      );
      expect(entries.map((entry) => (entry.mail as { messageId: string }).messageId).sort()).toEqual(
        [mail(1).messageId, mail(2).messageId].sort(),
      );
    });

    it('drops the oldest beyond its bound and logs at error what was lost', async () => {
      const outbox = newOutbox({ memoryCapacity: 2 });
      await outbox.start();
      await breakDisk();
      for (const n of [1, 2, 3]) sender.script(mail(n).subject, 'refused', 'refused');
      for (const n of [1, 2, 3]) await outbox.enqueue(mail(n), meta(n));
      await settleIo();
      expect(outbox.pending).toBe(2);
      expect(outbox.degraded?.inMemory).toBe(2);
      const lost = log.lines.filter((line) => line.level === 50 && line.msg.startsWith('notification LOST'));
      expect(lost).toHaveLength(1);
      expect(lost[0]?.msg).toContain(mail(1).subject);
      expect(lost[0]?.messageId).toBe(mail(1).messageId);
    });
  });

  it('keeps only an index in memory and reads each mail from disk when its turn comes', async () => {
    const outbox = newOutbox();
    sender.script(mail(1).subject, 'refused');
    await outbox.start();
    await outbox.enqueue(mail(1), meta(1));
    await waitFor(() => clock.armed().length === 1, 'the retry timer');

    // What is sent is what the file says at the time of the attempt, not a copy held since enqueue.
    const [name = ''] = await entryFiles(directory);
    const entry = await readEntry(directory, name);
    await writeFile(
      join(directory, name),
      JSON.stringify({ ...entry, mail: { ...mail(1), text: 'read back from disk\n' } }),
    );
    clock.advance(clock.armed()[0] ?? 0);
    await waitFor(() => outbox.pending === 0, 'the delivery');
    expect(sender.delivered[0]?.text).toBe('read back from disk\n');
  });
});
