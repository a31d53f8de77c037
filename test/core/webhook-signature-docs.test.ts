import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SIGNATURE_HEADER, signatureHeaders, TIMESTAMP_HEADER } from '../../src/core/webhook-signature.js';

/** The receiver's checks as docs/channels.md prints them, run as a reader would copy them. */
const doc = readFileSync(new URL('../../docs/channels.md', import.meta.url), 'utf8');

function snippet(language: string): string {
  const found = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(doc)?.[1];
  if (found === undefined) throw new Error(`docs/channels.md has no ${language} block`);
  return found;
}

const secret = 'a shared secret';
const body = '{"schema":1,"event":"failed","unit":"nginx.service","text":"it\'s 100% broken"}';
const headers = signatureHeaders(secret, body, Date.now());
const timestamp = headers[TIMESTAMP_HEADER] ?? '';
const signature = headers[SIGNATURE_HEADER] ?? '';

describe('docs/channels.md: verifying a webhook signature', () => {
  it('the shell lines accept what unitwatch signs, and refuse a changed body', () => {
    const check = (changedBody: string) =>
      spawnSync('bash', ['-c', snippet('sh')], {
        env: { ...process.env, timestamp, body: changedBody, secret, signature },
      }).status;
    expect(check(body)).toBe(0);
    expect(check(`${body} `)).toBe(1);
  });

  it('the Node.js function accepts what unitwatch signs, and refuses a changed body or an old timestamp', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unitwatch-docs-'));
    const file = join(dir, 'verify.mjs');
    writeFileSync(file, `${snippet('js')}\nexport { verified };\n`);
    const { verified } = (await import(file)) as {
      verified: (secret: string, headers: Record<string, string>, rawBody: string) => boolean;
    };
    const received = { 'x-unitwatch-timestamp': timestamp, 'x-unitwatch-signature': signature };
    expect(verified(secret, received, body)).toBe(true);
    expect(verified(secret, received, `${body} `)).toBe(false);
    const old = signatureHeaders(secret, body, Date.now() - 10 * 60_000);
    expect(
      verified(
        secret,
        {
          'x-unitwatch-timestamp': old[TIMESTAMP_HEADER] ?? '',
          'x-unitwatch-signature': old[SIGNATURE_HEADER] ?? '',
        },
        body,
      ),
    ).toBe(false);
  });
});
