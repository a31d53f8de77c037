import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  KEPT_CORRUPT_COPIES,
  readJson,
  readJsonFile,
  removeTemporaryFiles,
  writeJsonAtomic,
} from '../../src/adapters/json-file.js';
import { memoryLogger } from '../harness/memory-logger.js';

const listOfStrings = (value: unknown) =>
  Array.isArray(value) && value.every((item) => typeof item === 'string') ? undefined : 'not a list of keys';

describe('readJson (issue 11: bad state never stops monitoring)', () => {
  let directory: string;
  let path: string;
  let log: ReturnType<typeof memoryLogger>;
  let nowMs: number;
  const now = () => nowMs;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'unitwatch-json-'));
    path = join(directory, 'reported.json');
    log = memoryLogger();
    nowMs = Date.UTC(2026, 11, 1, 23, 40, 5, 123);
  });

  afterEach(() => rm(directory, { recursive: true, force: true }));

  const aside = async () =>
    (await readdir(directory)).filter((name) => name.startsWith('reported.json.corrupt-'));
  const errors = () => log.lines.filter((line) => line.level === 50);

  it('reads back what writeJsonAtomic wrote, and leaves no temporary file', async () => {
    await writeJsonAtomic(path, ['a', 'b']);
    expect(await readJson(path, { logger: log.logger, validate: listOfStrings })).toEqual(['a', 'b']);
    expect(await readdir(directory)).toEqual(['reported.json']);
    expect(log.lines).toEqual([]);
  });

  it('reads a missing file as undefined, quietly', async () => {
    expect(await readJsonFile(path, { logger: log.logger })).toEqual({ status: 'missing' });
    expect(log.lines).toEqual([]);
  });

  it.each([
    ['truncated JSON', '["unit-a.service|inv|failed', 'not valid JSON'],
    ['an empty file', '', 'the file is empty'],
    ['whitespace only', '\n  \n', 'the file is empty'],
    ['the wrong type', '{"unit":"a"}\n', 'not a list of keys'],
  ])(
    'moves %s aside, logs at error naming the file and the problem, and reads undefined',
    async (_, content, problem) => {
      await writeFile(path, content);
      expect(await readJsonFile(path, { logger: log.logger, validate: listOfStrings, now })).toEqual({
        status: 'set-aside',
      });
      expect(await aside()).toEqual(['reported.json.corrupt-20261201T234005123Z']);
      expect(await readFile(join(directory, 'reported.json.corrupt-20261201T234005123Z'), 'utf8')).toBe(
        content,
      );
      expect(errors()).toHaveLength(1);
      expect(errors()[0]?.msg).toContain(`state file ${path} is unusable (${problem}`);
      expect(errors()[0]?.msg).toContain(
        'moved aside to reported.json.corrupt-20261201T234005123Z, carrying on without it',
      );
      expect(errors()[0]?.file).toBe(path);
    },
  );

  it('moves a directory in the file’s place aside', async () => {
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    expect(await readJson(path, { logger: log.logger, now })).toBeUndefined();
    expect(await aside()).toHaveLength(1);
    expect(errors()[0]?.msg).toContain('it is a directory, not a file');
  });

  it(`keeps only the newest ${KEPT_CORRUPT_COPIES} set-aside copies`, async () => {
    for (let n = 0; n < KEPT_CORRUPT_COPIES + 3; n++) {
      await writeFile(path, `{${n}`);
      nowMs += 1000;
      await readJson(path, { logger: log.logger, now });
    }
    const kept = (await aside()).sort();
    expect(kept).toHaveLength(KEPT_CORRUPT_COPIES);
    // The newest ones: the last written content is in the last copy.
    expect(await readFile(join(directory, kept.at(-1) ?? ''), 'utf8')).toBe(`{${KEPT_CORRUPT_COPIES + 2}`);
    expect(await readFile(join(directory, kept[0] ?? ''), 'utf8')).toBe('{3');
  });

  it('does not overwrite a copy set aside in the same millisecond', async () => {
    await writeFile(path, '{1');
    await readJson(path, { logger: log.logger, now });
    await writeFile(path, '{2');
    await readJson(path, { logger: log.logger, now });
    expect((await aside()).sort()).toEqual([
      'reported.json.corrupt-20261201T234005123Z',
      'reported.json.corrupt-20261201T234005123Z-1',
    ]);
  });
});

describe('removeTemporaryFiles', () => {
  it('removes half-written NAME.<pid>.tmp files left by a crash and nothing else', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'unitwatch-json-'));
    const log = memoryLogger();
    try {
      await writeFile(join(directory, 'reported.json'), '[]\n');
      await writeFile(join(directory, 'reported.json.4242.tmp'), '["a');
      await writeFile(join(directory, 'self.json.17.tmp'), '');
      expect((await removeTemporaryFiles(directory, log.logger)).sort()).toEqual([
        'reported.json.4242.tmp',
        'self.json.17.tmp',
      ]);
      expect(await readdir(directory)).toEqual(['reported.json']);
      expect(log.lines.map((line) => line.msg)).toEqual(['removed half-written state files left by a crash']);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
