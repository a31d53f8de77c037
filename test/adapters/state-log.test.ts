import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateLog } from '../../src/adapters/state-log.js';
import { type LogLine, memoryLogger } from '../harness/memory-logger.js';

describe('StateLog', () => {
  let directory: string;
  let lines: LogLine[];
  // Every reopened log writes into the same array: a spec reads what all of them said.
  const logger = () => memoryLogger(lines).logger;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'unitwatch-state-'));
    lines = [];
  });
  afterEach(() => rm(directory, { recursive: true, force: true }));

  async function reopen(compactAtBytes?: number): Promise<StateLog> {
    const log = new StateLog({
      directory,
      logger: logger(),
      ...(compactAtBytes === undefined ? {} : { compactAtBytes }),
    });
    await log.start();
    return log;
  }

  it('gives back after a restart exactly what was flushed, deletions included', async () => {
    const log = await reopen();
    log.set('u:a.service', { count: 1 });
    log.set('u:b.service', { count: 2 });
    log.set('u:a.service', { count: 3 });
    log.delete('u:b.service');
    log.set('g', [1, 2]);
    await log.flush();
    // Not stopped: as after a kill -9, only what flush() wrote counts.
    const again = await reopen();
    expect(again.get('u:a.service')).toEqual({ count: 3 });
    expect(again.get('u:b.service')).toBeUndefined();
    expect(again.get('g')).toEqual([1, 2]);
  });

  it('writes one short line per change, not the whole state', async () => {
    const log = await reopen();
    for (let i = 0; i < 1000; i++) log.set(`r:key-${i}`, 1);
    await log.flush();
    const before = log.bytesWritten;
    log.set('u:loop.service', { held: 5 });
    await log.flush();
    expect(log.bytesWritten - before).toBeLessThan(40);
  });

  it('cuts off a torn last line left by a crash, keeps the lines before it, and appends after them', async () => {
    const log = await reopen();
    log.set('a', 1);
    await log.flush();
    await appendFile(join(directory, 'state.0.log'), '["b",{"half');
    const again = await reopen();
    expect(again.get('a')).toBe(1);
    expect(again.get('b')).toBeUndefined();
    again.set('c', 3);
    await again.flush();
    const third = await reopen();
    expect([third.get('a'), third.get('c')]).toEqual([1, 3]);
    expect(lines.some((line) => line.level === 40 && line.msg.includes('torn last line'))).toBe(true);
  });

  it('skips an unreadable line in the middle, says so at error, and uses the rest', async () => {
    await writeFile(join(directory, 'state.0.log'), '["a",1]\nnot json\n["b",2]\n');
    const log = await reopen();
    expect([log.get('a'), log.get('b')]).toEqual([1, 2]);
    expect(lines.some((line) => line.level === 50 && line.msg.includes('skipped 1 unreadable line'))).toBe(
      true,
    );
  });

  it.each([
    ['truncated', '{"version":1,"generation":0,"entr'],
    ['empty', ''],
    ['of the wrong shape', '[1,2,3]'],
  ])('moves a %s snapshot aside, logs it at error, and starts', async (_what, content) => {
    await writeFile(join(directory, 'state.json'), content);
    const log = await reopen();
    log.set('a', 1);
    await log.flush();
    const names = await readdir(directory);
    expect(names.some((name) => name.startsWith('state.json.corrupt-'))).toBe(true);
    expect(lines.some((line) => line.level === 50 && line.msg.includes('moved aside'))).toBe(true);
    expect((await reopen()).get('a')).toBe(1);
  });

  it('moves aside a snapshot that is a directory', async () => {
    await mkdir(join(directory, 'state.json'));
    const log = await reopen();
    log.set('a', 1);
    await log.flush();
    expect((await readdir(directory)).some((name) => name.startsWith('state.json.corrupt-'))).toBe(true);
  });

  it('compacts a grown log into the snapshot, removes the old log and keeps every value', async () => {
    const log = await reopen(2000);
    for (let round = 0; round < 50; round++) {
      log.set('u:loop.service', { round });
      log.set(`r:${round}`, 1);
      await log.flush();
    }
    const names = await readdir(directory);
    expect(names).toContain('state.json');
    expect(names.filter((name) => /^state\.\d+\.log$/.test(name))).toHaveLength(1);
    expect(names).not.toContain('state.0.log');
    const again = await reopen(2000);
    expect(again.get('u:loop.service')).toEqual({ round: 49 });
    for (let round = 0; round < 50; round++) expect(again.get(`r:${round}`)).toBe(1);
    const snapshot = JSON.parse(await readFile(join(directory, 'state.json'), 'utf8')) as {
      generation: number;
    };
    expect(snapshot.generation).toBeGreaterThan(0);
  });

  it('removes a log of another generation and temporary files left by a cut-short compaction', async () => {
    await writeFile(
      join(directory, 'state.json'),
      JSON.stringify({ version: 1, generation: 3, entries: [['a', 1]] }),
    );
    await writeFile(join(directory, 'state.2.log'), '["a",0]\n');
    await writeFile(join(directory, 'state.json.123.tmp'), 'partial');
    const log = await reopen();
    expect(log.get('a')).toBe(1);
    expect((await readdir(directory)).sort()).toEqual(['state.3.log', 'state.json']);
  });

  it('shares one write among changes staged while another write is under way', async () => {
    const log = await reopen();
    log.set('a', 1);
    const first = log.flush();
    log.set('b', 2);
    const second = log.flush();
    log.set('c', 3);
    const third = log.flush();
    await Promise.all([first, second, third]);
    const text = await readFile(join(directory, 'state.0.log'), 'utf8');
    expect(text.trim().split('\n')).toHaveLength(3);
    const again = await reopen();
    expect([again.get('a'), again.get('b'), again.get('c')]).toEqual([1, 2, 3]);
  });
});
