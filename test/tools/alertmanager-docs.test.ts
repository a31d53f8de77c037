import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alertmanagerSkipReason } from '../harness/alertmanager.js';

const skip = alertmanagerSkipReason();

describe.skipIf(skip !== undefined)('docs/alertmanager.md', () => {
  it('prints an Alertmanager configuration that amtool check-config accepts, as the page says', () => {
    const doc = readFileSync(new URL('../../docs/alertmanager.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(yaml).toContain('SystemdUnitFailed');
    const file = join(mkdtempSync(join(tmpdir(), 'unitwatch-am-')), 'alertmanager.yml');
    writeFileSync(file, yaml ?? '');
    const result = spawnSync('amtool', ['check-config', file], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});
