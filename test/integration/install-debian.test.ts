import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainUnitExtras } from '../../src/tools/write-unit-docs.js';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, repoRoot, SystemdInstance } from '../harness/systemd-instance.js';

const skip = integrationSkipReason();
const DOC = new URL('../../docs/install-debian.md', import.meta.url);
const MARKER = '<!-- test: run -->';
/** Where the test puts the checkout: under /root, which the unit's ProtectHome= hides. */
const CHECKOUT = '/root/unitwatch';

/** The ```sh blocks that follow a `<!-- test: run -->` line, in order, exactly as written. */
function runBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const pattern = /^<!-- test: run -->\n```sh\n([\s\S]*?)^```$/gm;
  for (const match of markdown.matchAll(pattern)) blocks.push(match[1] ?? '');
  return blocks;
}

/** The one value the test may change: the relay in the env-file block becomes the test's sink. */
function withSmtpUrl(script: string, url: string): string {
  const assignments = script.match(/^UNITWATCH_SMTP_URL=\S+$/gm) ?? [];
  if (assignments.length !== 1) {
    throw new Error(`expected one UNITWATCH_SMTP_URL= line in the run blocks, found ${assignments.length}`);
  }
  return script.replace(/^UNITWATCH_SMTP_URL=\S+$/m, `UNITWATCH_SMTP_URL=${url}`);
}

describe('docs/install-debian.md', () => {
  const markdown = readFileSync(DOC, 'utf8');
  const blocks = runBlocks(markdown);

  it('marks every step from the build to the failing demo unit for the test to run', () => {
    // A marker line not followed by a ```sh block would silently leave a step untested.
    expect(markdown.split('\n').filter((line) => line === MARKER)).toHaveLength(blocks.length);
    const script = blocks.join('\n');
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    for (const step of [
      'npm pack',
      'npm install --global --prefix /opt/unitwatch',
      'useradd --system',
      '/etc/unitwatch/unitwatch.env',
      'install -m 0644 docs/unitwatch.service /etc/systemd/system/unitwatch.service',
      'systemctl enable --now unitwatch',
      'test-email',
      'systemd-run --unit=unitwatch-demo',
    ]) {
      expect(script).toContain(step);
    }
  });

  it('installs to where the unit runs it from', () => {
    expect(plainUnitExtras.execStart).toBe('/opt/unitwatch/bin/unitwatch run');
    expect(plainUnitExtras.environmentFile).toBe('/etc/unitwatch/unitwatch.env');
  });
});

describe.skipIf(skip !== undefined)('docs/install-debian.md, run word for word in a real systemd', () => {
  let instance: SystemdInstance | undefined;
  const smtp = new SmtpSink();

  beforeAll(async () => {
    await smtp.start();
    instance = await SystemdInstance.boot();
  });

  afterAll(async () => {
    await instance?.poweroff();
    await smtp.stop();
  });

  it('from a checkout under /root, leaves a running unitwatch that mails a test mail and a failure', {
    timeout: 900_000,
  }, async () => {
    const box = instance as SystemdInstance;
    // Step 1 (installing Node) is the host's Node here; the doc's own check must hold.
    const nodeVersion = (await box.run(['node', '--version'])).trim();
    expect(Number(/^v(\d+)\./.exec(nodeVersion)?.[1])).toBeGreaterThanOrEqual(20);

    // A fresh checkout: the working tree without node_modules, dist or .git, copied under /root.
    await box.run([
      'sh',
      '-c',
      `mkdir -p ${CHECKOUT} && tar -C "$1" --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude='./unitwatch-*.tgz' -cf - . | tar -C ${CHECKOUT} -xf -`,
      'sh',
      repoRoot,
    ]);

    const script = withSmtpUrl(runBlocks(readFileSync(DOC, 'utf8')).join('\n'), smtp.url);
    const result = await box.exec(['bash', '-euxo', 'pipefail', '-c', `cd ${CHECKOUT}\n${script}`]);
    if (result.code !== 0) {
      const log = await box.exec(['journalctl', '--no-pager', '-u', 'unitwatch.service', '-n', '50']);
      throw new Error(
        `the doc's steps failed (${result.code}):\n${result.stdout}\n${result.stderr.slice(-8000)}\n${log.stdout}`,
      );
    }

    // A real copy under /opt, not a link back into the checkout that ProtectHome= would hide.
    await box.run([
      'sh',
      '-c',
      'test -d "$1" && ! test -L "$1"',
      'sh',
      '/opt/unitwatch/lib/node_modules/unitwatch',
    ]);
    expect((await box.run(['readlink', '-f', '/opt/unitwatch/bin/unitwatch'])).trim()).toBe(
      '/opt/unitwatch/lib/node_modules/unitwatch/dist/cli.js',
    );
    expect(await box.run(['ls', '/opt/unitwatch/lib/node_modules/unitwatch'])).toMatch(/LICENSE/);

    expect(await box.property('unitwatch.service', 'ActiveState')).toBe('active');
    expect(await box.property('unitwatch.service', 'ExecStart')).toContain('/opt/unitwatch/bin/unitwatch');
    expect(await box.property('unitwatch.service', 'WatchdogUSec')).toBe('2min');

    await smtp.waitFor(
      (mails) => mails.some((mail) => mail.parsed.subject?.startsWith('[unitwatch] test mail from') === true),
      30_000,
      'the test mail',
    );
    await smtp.waitForMailAbout('unitwatch-demo.service', 30_000);
    const mail = smtp.mailsAbout('unitwatch-demo.service')[0];
    expect(mail?.envelopeTo).toEqual(['ops@example.org']);

    // The journal reads as text (issue 12): no JSON records, and the priority prefix was consumed.
    const journal = await box.journal('-u', 'unitwatch.service', '-o', 'cat');
    expect(journal.trim()).not.toBe('');
    for (const line of journal.trim().split('\n')) {
      expect(line).not.toMatch(/^\{|^<\d>/);
    }
  });
});
