import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/systemd-instance.js';

/** The dist/cli.js `npm run build` wrote; a missing or stale build fails here rather than pass. */
function builtCli(): string {
  const built = statSync(`${repoRoot}dist/cli.js`, { throwIfNoEntry: false });
  const source = statSync(`${repoRoot}src/tools/bundle-cli.ts`);
  if (built === undefined || built.mtimeMs < source.mtimeMs) {
    throw new Error(
      'dist/cli.js is missing or older than src/tools/bundle-cli.ts: run `npm run build` first',
    );
  }
  return readFileSync(`${repoRoot}dist/cli.js`, 'utf8');
}

describe('the built dist/cli.js is one file (issue 14, item 6: start to READY=1)', () => {
  it('imports only Node itself at start, and nodemailer at the first send', () => {
    const cli = builtCli();
    const staticImports = [...cli.matchAll(/^import .* from ["']([^"']+)["'];$/gm)].map((match) => match[1]);
    expect(staticImports.length).toBeGreaterThan(0);
    expect(staticImports.filter((specifier) => !specifier?.startsWith('node:'))).toEqual([]);
    const dynamicImports = [...cli.matchAll(/\bimport\(["']([^"']+)["']\)/g)].map((match) => match[1]);
    expect(dynamicImports).toEqual(['nodemailer']);
  });

  it('carries English error messages from zod but none of its other locales', () => {
    const cli = builtCli();
    expect(cli).toContain('// node_modules/zod/v4/locales/en.js');
    expect(cli).not.toMatch(/\/\/ node_modules\/zod\/v4\/locales\/(?!en\.js)/);
  });
});
