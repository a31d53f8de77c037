import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainUnitExtras } from '../../src/tools/write-unit-docs.js';
import { SmtpSink } from '../harness/smtp-sink.js';
import { integrationSkipReason, repoRoot, SystemdInstance } from '../harness/systemd-instance.js';
import { UserManager } from '../harness/user-manager.js';

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

const USER_DOC = new URL('../../docs/user-units.md', import.meta.url);
/** The relay the user-unit block writes into the user's env file; the test's sink takes its place. */
const EXAMPLE_RELAY = 'smtp://mail.example.org:587';

interface DocLine {
  /** Typed with `sudo`: run as root, after the user's shell expanded it. */
  readonly asRoot: boolean;
  readonly line: string;
}

/** docs/user-units.md's one run block, line by line, comments dropped. */
function userUnitLines(markdown: string): DocLine[] {
  const blocks = runBlocks(markdown);
  if (blocks.length !== 1)
    throw new Error(`expected one run block in docs/user-units.md, found ${blocks.length}`);
  return (blocks[0] ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) =>
      line.startsWith('sudo ') ? { asRoot: true, line: line.slice(5) } : { asRoot: false, line },
    );
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

  it("has docs/user-units.md's install lines marked for the test, with the relay to replace once", () => {
    const userDoc = readFileSync(USER_DOC, 'utf8');
    const lines = userUnitLines(userDoc);
    expect(userDoc.split(EXAMPLE_RELAY)).toHaveLength(2);
    expect(lines.filter((line) => line.asRoot).map((line) => line.line.split(' ')[0])).toEqual([
      'install',
      'loginctl',
    ]);
    expect(lines.map((line) => line.line).join('\n')).toContain('systemctl --user enable --now unitwatch');
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
  it("then docs/user-units.md's lines, typed by a user with a running manager, leave a user unitwatch that mails", {
    timeout: 120_000,
  }, async () => {
    const box = instance as SystemdInstance;
    // Depends on the install above; said plainly if that did not get as far.
    await box.run(['test', '-x', '/opt/unitwatch/bin/unitwatch']);
    const user = await UserManager.start(box, 'nora', 1600);
    for (const { asRoot, line } of userUnitLines(readFileSync(USER_DOC, 'utf8'))) {
      const typed = line.replace(EXAMPLE_RELAY, smtp.url);
      const result = asRoot
        ? await box.exec([
            'env',
            `USER=${user.name}`,
            'bash',
            '-euo',
            'pipefail',
            '-c',
            `cd ${CHECKOUT}\n${typed}`,
          ])
        : await user.exec(['bash', '-euo', 'pipefail', '-c', typed]);
      if (result.code !== 0) {
        const log = await user.journal('-u', 'unitwatch.service', '-o', 'cat', '-n', '30').catch(String);
        throw new Error(`"${line}" failed (${result.code}):\n${result.stdout}\n${result.stderr}\n${log}`);
      }
    }
    expect(await user.property('unitwatch.service', 'ActiveState')).toBe('active');
    expect(await user.property('unitwatch.service', 'ExecStart')).toContain('/opt/unitwatch/bin/unitwatch');
    expect((await box.run(['loginctl', 'show-user', user.name, '--property=Linger', '--value'])).trim()).toBe(
      'yes',
    );

    await user.run([
      'systemd-run',
      '--user',
      '--quiet',
      '--unit=user-doc-demo.service',
      'sh',
      '-c',
      'echo "user-doc-demo: cannot open ~/notes"; sleep 0.3; exit 1',
    ]);
    await smtp.waitForMailAbout('user-doc-demo.service', 30_000);
    expect(smtp.mailsAbout('user-doc-demo.service')[0]?.envelopeTo).toEqual(['me@example.org']);
  });
});
