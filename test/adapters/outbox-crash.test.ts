import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../harness/smtp-sink.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/outbox-writer.mjs');
const MAILS = 50;
/** The fixture's outbox sends this many at once: the most that can be accepted-but-not-yet-unlinked. */
const MAX_PARALLEL = 2;
/**
 * When each writer is killed: once the server holds `afterMails` mails, either when the next
 * recipient arrives (`rcpt`: the other connection may be anywhere) or right after the server
 * answered 250 (`accepted`: squarely in the window between acceptance and unlink).
 */
const KILLS: readonly { readonly afterMails: number; readonly at: 'rcpt' | 'accepted' }[] = [
  { afterMails: 12, at: 'rcpt' },
  { afterMails: 25, at: 'accepted' },
  { afterMails: 38, at: 'rcpt' },
];

interface Run {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly stderr: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runWriter(directory: string, port: number, count: number): Run {
  const child = spawn(process.execPath, [FIXTURE, directory, String(port), String(count)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, lines, stderr, exited };
}

const sentBy = (run: Run) => run.lines.filter((line) => line.includes('"mail sent')).length;

async function entryFiles(directory: string): Promise<number> {
  return (await readdir(directory)).filter((name) => name.endsWith('.json')).length;
}

describe('outbox under kill -9 (real processes, real SMTP)', () => {
  const sink = new SmtpSink();
  let killTarget: { run: Run; afterMails: number; at: 'rcpt' | 'accepted' } | undefined;

  function killIfDue(at: 'rcpt' | 'accepted'): void {
    const target = killTarget;
    if (target === undefined || target.at !== at || sink.mails.length < target.afterMails) return;
    killTarget = undefined;
    target.run.child.kill('SIGKILL');
  }

  let root: string;

  beforeAll(async () => {
    const [built, source] = await Promise.all([
      stat(join(ROOT, 'dist/adapters/outbox.js')).catch(() => undefined),
      stat(join(ROOT, 'src/adapters/outbox.ts')),
    ]);
    if (built === undefined || built.mtimeMs < source.mtimeMs) {
      throw new Error('dist/ is missing or older than src/: run `npm run build` before this test');
    }
    root = await mkdtemp(join(tmpdir(), 'unitwatch-outbox-crash-'));
    await sink.start({
      // A slow RCPT spreads delivery over about half a second, so a kill lands in the middle of it.
      onRcptTo: (_address, _session, callback) => {
        killIfDue('rcpt');
        setTimeout(() => callback(), 20);
      },
      // The sink's own storage, plus a kill just after the 250 went out.
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw).then(
            (parsed) => {
              const envelopeTo = session.envelope.rcptTo.map((rcpt) => rcpt.address);
              sink.mails.push({ parsed, raw, envelopeTo, receivedAtMs: Date.now() });
              callback();
              setImmediate(() => killIfDue('accepted'));
            },
            (error: Error) => callback(error),
          );
        });
      },
    });
  });

  afterAll(async () => {
    await sink.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it(`delivers all ${MAILS} queued mails across ${KILLS.length} kill -9s, none lost, duplicates only from mails in flight`, async () => {
    const directory = join(root, 'outbox');
    const report: Record<string, number>[] = [];
    let window = 0;

    for (const [index, kill] of KILLS.entries()) {
      const run = runWriter(directory, sink.port, index === 0 ? MAILS : 0);
      killTarget = { run, ...kill };
      const { signal } = await run.exited;
      // A message whose final dot left before the kill may still be in the server's hands.
      await sleep(200);
      const receivedAtKill = sink.mails.length;
      expect(signal, `writer ${index + 1} was to be killed; stderr: ${run.stderr.join('')}`).toBe('SIGKILL');
      if (index === 0) expect(run.lines.some((line) => line.includes('"enqueued"'))).toBe(true);
      const left = await entryFiles(directory);
      const distinctAtKill = new Set(sink.mails.map((mail) => mail.parsed.messageId)).size;
      // Accepted by the server but still on disk: these, and only these, will be sent again.
      const acceptedButKept = distinctAtKill - (MAILS - left);
      window += acceptedButKept;
      report.push({
        run: index + 1,
        killAfter: kill.afterMails,
        receivedAtKill,
        sentLogged: sentBy(run),
        filesLeft: left,
        acceptedButKept,
      });
      expect(left).toBeGreaterThan(0);
      expect(acceptedButKept).toBeGreaterThanOrEqual(0);
      expect(acceptedButKept).toBeLessThanOrEqual(MAX_PARALLEL);
    }

    const last = runWriter(directory, sink.port, 0);
    const { code } = await last.exited;
    expect(code, last.stderr.join('')).toBe(0);

    const ids = sink.mails.map((mail) => mail.parsed.messageId ?? '');
    const distinct = new Set(ids);
    const expected = Array.from({ length: MAILS }, (_, index) => `<crash-${index + 1}@testhost>`);
    const lost = expected.filter((id) => !distinct.has(id)).length;
    const duplicates = ids.length - distinct.size;
    const counts = { queued: MAILS, received: ids.length, distinct: distinct.size, lost, duplicates, window };
    console.log(`outbox kill -9: ${JSON.stringify({ ...counts, runs: report })}`);

    expect(lost).toBe(0);
    expect(distinct.size).toBe(MAILS);
    expect([...distinct].every((id) => expected.includes(id))).toBe(true);
    expect(duplicates).toBe(window);
    expect(duplicates).toBeLessThanOrEqual(MAX_PARALLEL * KILLS.length);
    expect(await entryFiles(directory)).toBe(0);
  });
});
