import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `systemd-analyze security --offline=yes` of a unit file's text: its overall exposure. */
export function exposureOf(unitText: string, extraArguments: readonly string[] = []): number {
  const dir = mkdtempSync(join(tmpdir(), 'unitwatch-analyze-'));
  const path = join(dir, 'unitwatch.service');
  writeFileSync(path, unitText);
  // It exits non-zero only above --threshold (default 100), so a failure here is a real error.
  // As a user manager it wants a runtime directory, even offline.
  const output = execFileSync(
    'systemd-analyze',
    ['security', '--offline=yes', '--no-pager', ...extraArguments, path],
    { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: dir } },
  );
  const score = /Overall exposure level for unitwatch\.service: (\d+\.\d)/.exec(output)?.[1];
  if (score === undefined) throw new Error(`no exposure in:\n${output}`);
  return Number(score);
}
