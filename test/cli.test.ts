import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from './harness/smtp-sink.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const EX_USAGE = 64;
const EX_CONFIG = 78;

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI as a real process with only PATH and what the test gives, so no developer setting leaks in. */
function unitwatch(args: readonly string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--', cli, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let folder: string;

function envFile(name: string, lines: readonly string[]): string {
  const path = join(folder, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** A loopback port nobody listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(() => {
  // The test command builds first; this only helps a lone `vitest run test/cli.test.ts`.
  if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  folder = mkdtempSync(join(tmpdir(), 'unitwatch-cli-'));
});

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
});

describe('unitwatch --help and --version', () => {
  it('--help prints usage naming every command and exits 0', async () => {
    const { code, stdout, stderr } = await unitwatch(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^Usage: unitwatch <command>/);
    for (const command of ['run', 'check-config', 'test-email', '--env-file'])
      expect(stdout).toContain(command);
  });

  it('prints usage when called without a command', async () => {
    const { code, stdout } = await unitwatch([]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: unitwatch/);
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    const { code, stdout } = await unitwatch(['--version']);
    expect(code).toBe(0);
    expect(stdout).toBe(`unitwatch ${pkg.version}\n`);
  });
});

describe('unitwatch usage errors', () => {
  it('exits 64 on an unknown command, naming it', async () => {
    const { code, stdout, stderr } = await unitwatch(['frobnicate']);
    expect(code).toBe(EX_USAGE);
    expect(stdout).toBe('');
    expect(stderr).toContain('unknown command frobnicate');
    expect(stderr).toContain('Usage: unitwatch');
  });

  it('exits 64 on an unknown option', async () => {
    const { code, stderr } = await unitwatch(['check-config', '--verbose']);
    expect(code).toBe(EX_USAGE);
    expect(stderr).toContain('unknown option --verbose');
  });

  it('exits 64 when --env-file has no file name', async () => {
    const { code, stderr } = await unitwatch(['check-config', '--env-file']);
    expect(code).toBe(EX_USAGE);
    expect(stderr).toContain('--env-file needs a file name');
  });
});

describe('unitwatch with a bad configuration', () => {
  it('exits 78 and lists every problem on stderr, each naming its variable', async () => {
    const file = envFile('bad.env', [
      'UNITWATCH_TO=ops@example.org, not-an-address',
      'UNITWATCH_SMTP_URL=http://mail.example.org',
      'UNITWATCH_LOG_LEVEL=loud',
      'UNITWATCH_LOGLEVEL=debug',
    ]);
    const { code, stdout, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/invalid configuration \(\d+ problems\)/);
    expect(stderr).toContain('UNITWATCH_TO: "not-an-address" is not a mail address');
    expect(stderr).toContain('UNITWATCH_SMTP_URL: scheme must be smtp://');
    expect(stderr).toContain('UNITWATCH_LOG_LEVEL: must be one of');
    expect(stderr).toContain(
      'UNITWATCH_LOGLEVEL: is not a unitwatch variable; did you mean UNITWATCH_LOG_LEVEL?',
    );
    expect(stderr).toContain('UNITWATCH_STATE_DIRECTORY: is required outside systemd');
  });

  it('exits 78 for a bad configuration in the environment, with no env file', async () => {
    const { code, stderr } = await unitwatch(['check-config'], { UNITWATCH_TO: 'nobody' });
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('UNITWATCH_TO: "nobody" is not a mail address');
    expect(stderr).toContain('UNITWATCH_SMTP_URL: is required unless UNITWATCH_SENDMAIL is set');
  });

  it('exits 78 for the daemon too, before it touches D-Bus', async () => {
    const { code, stderr } = await unitwatch(['run'], {});
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('UNITWATCH_TO: is required');
  });

  it('exits 78 naming a missing env file, through the bin as installed (Node must not eat --env-file)', async () => {
    const missing = join(folder, 'absent.env');
    const result = await new Promise<Outcome>((resolve, reject) => {
      // Run the file itself, as `unitwatch` on PATH would: its shebang must keep Node off the option.
      const child = spawn(cli, ['check-config', '--env-file', missing], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: '', stderr }));
    });
    expect(result.stderr).toContain(`${missing}: cannot read (ENOENT)`);
    expect(result.code).toBe(78);
  });

  it('exits 78 naming file and line of a broken env file', async () => {
    const file = envFile('broken.env', ['UNITWATCH_TO=ops@example.org', 'this is not an assignment']);
    const { code, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain(`${file}:2: expected KEY=VALUE`);
  });

  it('exits 78 naming UNITWATCH_SMTP_PASSWORD_FILE when the password file cannot be read', async () => {
    const file = envFile('no-password.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SMTP_URL=smtp://alerts@127.0.0.1:25',
      `UNITWATCH_SMTP_PASSWORD_FILE=${join(folder, 'absent-password')}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain(
      `UNITWATCH_SMTP_PASSWORD_FILE: cannot read ${join(folder, 'absent-password')} (ENOENT)`,
    );
  });
});

describe('unitwatch check-config', () => {
  const SECRET = 'correct-horse-battery-staple-4711';

  it('prints the effective configuration and never the password', async () => {
    const passwordFile = join(folder, 'smtp-password');
    writeFileSync(passwordFile, `${SECRET}\n`, { mode: 0o600 });
    const file = envFile('good.env', [
      '# the production settings',
      'UNITWATCH_TO="ops@example.org, oncall@example.org"',
      'export UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587',
      `UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
      'UNITWATCH_HOSTNAME=web1.example.org',
    ]);
    const { code, stdout, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines).toContain('UNITWATCH_TO=ops@example.org,oncall@example.org');
    expect(lines).toContain('UNITWATCH_FROM=unitwatch@web1.example.org');
    expect(lines).toContain('UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587');
    expect(lines).toContain(`UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}  # contents not shown`);
    expect(lines).toContain(`UNITWATCH_STATE_DIRECTORY=${folder}`);
    expect(lines).toContain('UNITWATCH_LOG_LEVEL=info');
    expect(stdout + stderr).not.toContain(SECRET);
  });

  it('lets the env file override the environment', async () => {
    const file = envFile('override.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SENDMAIL=/usr/sbin/sendmail',
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
      'UNITWATCH_LOG_LEVEL=debug',
    ]);
    const { code, stdout } = await unitwatch(['check-config', '--env-file', file], {
      UNITWATCH_LOG_LEVEL: 'error',
    });
    expect(code).toBe(0);
    expect(stdout.split('\n')).toContain('UNITWATCH_LOG_LEVEL=debug');
  });

  it('takes the state directory from $STATE_DIRECTORY, as systemd sets it', async () => {
    const { code, stdout } = await unitwatch(['check-config'], {
      UNITWATCH_TO: 'ops@example.org',
      UNITWATCH_SENDMAIL: '/usr/sbin/sendmail',
      STATE_DIRECTORY: `${folder}:/var/lib/other`,
    });
    expect(code).toBe(0);
    expect(stdout.split('\n')).toContain(`UNITWATCH_STATE_DIRECTORY=${folder}`);
  });
});

describe('unitwatch test-email', () => {
  const sink = new SmtpSink();
  const logins: { username: string | undefined; password: string | null | undefined }[] = [];

  beforeAll(async () => {
    await sink.start({
      allowInsecureAuth: true,
      onAuth: (auth, _session, callback) => {
        logins.push({ username: auth.username, password: auth.password });
        if (auth.username === 'alerts' && auth.password === 'sesame-7f3a') callback(null, { user: 'alerts' });
        else callback(new Error('bad credentials'));
      },
    });
  });

  afterAll(async () => {
    await sink.stop();
  });

  afterEach(() => {
    sink.mails.length = 0;
    logins.length = 0;
  });

  it('sends one mail through SMTP, marked as automatic, and exits 0', async () => {
    const file = envFile('smtp.env', [
      'UNITWATCH_TO=ops@example.org,oncall@example.org',
      `UNITWATCH_SMTP_URL=${sink.url}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
      'UNITWATCH_HOSTNAME=web1.example.org',
    ]);
    const { code, stdout, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('sent to ops@example.org, oncall@example.org');
    expect(sink.mails).toHaveLength(1);
    const [mail] = sink.mails;
    expect(mail?.envelopeTo).toEqual(['ops@example.org', 'oncall@example.org']);
    expect(mail?.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail?.parsed.headers.get('x-unitwatch-host')).toBe('web1.example.org');
    expect(mail?.parsed.from?.text).toBe('unitwatch@web1.example.org');
    expect(mail?.parsed.subject).toBe('[unitwatch] test mail from web1.example.org');
    expect(mail?.parsed.messageId).toMatch(/@web1\.example\.org>$/);
  });

  it('logs in with the user of the URL and the password from the file', async () => {
    const passwordFile = join(folder, 'sink-password');
    writeFileSync(passwordFile, 'sesame-7f3a\n', { mode: 0o600 });
    const file = envFile('smtp-auth.env', [
      'UNITWATCH_TO=ops@example.org',
      `UNITWATCH_SMTP_URL=smtp://alerts@127.0.0.1:${sink.port}`,
      `UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stdout, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(logins).toEqual([{ username: 'alerts', password: 'sesame-7f3a' }]);
    expect(sink.mails).toHaveLength(1);
    expect(stdout).not.toContain('sesame-7f3a');
  });

  it('exits non-zero with the SMTP answer when the server refuses the login', async () => {
    const passwordFile = join(folder, 'wrong-password');
    writeFileSync(passwordFile, 'not-the-password\n', { mode: 0o600 });
    const file = envFile('smtp-wrong.env', [
      'UNITWATCH_TO=ops@example.org',
      `UNITWATCH_SMTP_URL=smtp://alerts@127.0.0.1:${sink.port}`,
      `UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(code).not.toBe(0);
    expect(code).not.toBe(EX_CONFIG);
    expect(stderr).toContain('mail delivery through');
    expect(stderr).toMatch(/535|Invalid login|bad credentials/i);
    expect(stderr).not.toContain('not-the-password');
    expect(sink.mails).toHaveLength(0);
  });

  it('exits non-zero with the connection error when the SMTP server is unreachable', async () => {
    const port = await closedPort();
    const file = envFile('unreachable.env', [
      'UNITWATCH_TO=ops@example.org',
      `UNITWATCH_SMTP_URL=smtp://127.0.0.1:${port}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stdout, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(code).not.toBe(0);
    expect(code).not.toBe(EX_CONFIG);
    expect(stdout).toBe('');
    expect(stderr).toContain(`mail delivery through smtp://127.0.0.1:${port} failed`);
    expect(stderr).toContain('ECONNREFUSED');
  });
});
