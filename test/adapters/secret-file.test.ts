import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSecretFile } from '../../src/adapters/secret-file.js';
import { ConfigError } from '../../src/errors/config-error.js';

describe('readSecretFile', () => {
  const folder = mkdtempSync(join(tmpdir(), 'unitwatch-secret-'));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));
  const spec = (file: string | undefined, source: 'file' | 'credential' | undefined) => ({
    file,
    source,
    variable: 'UNITWATCH_WEBHOOK_SECRET_FILE',
    credential: 'webhook-secret',
  });

  it('reads a named file without its trailing newline', async () => {
    const file = join(folder, 'secret');
    writeFileSync(file, 'k3y\n');
    await expect(readSecretFile(spec(file, 'file'))).resolves.toBe('k3y');
  });

  it('takes an absent systemd credential as no secret, and nothing configured as none', async () => {
    await expect(readSecretFile(spec(join(folder, 'no-credential'), 'credential'))).resolves.toBeUndefined();
    await expect(readSecretFile(spec(undefined, undefined))).resolves.toBeUndefined();
  });

  it('refuses a named file that is missing or empty, naming the variable', async () => {
    const missing = join(folder, 'missing');
    await expect(readSecretFile(spec(missing, 'file'))).rejects.toThrow(
      `UNITWATCH_WEBHOOK_SECRET_FILE: cannot read ${missing} (ENOENT)`,
    );
    const empty = join(folder, 'empty');
    writeFileSync(empty, '\n');
    const error = await readSecretFile(spec(empty, 'credential')).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      { key: 'UNITWATCH_WEBHOOK_SECRET_FILE', message: `${empty} is empty` },
    ]);
  });
});
