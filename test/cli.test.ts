import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type SelfSignedCertificate, SmtpSink, selfSignedCertificate } from './harness/smtp-sink.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const EX_USAGE = 64;
const EX_CONFIG = 78;

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The unprivileged user the hardened unit's DynamicUser= stands for in these tests. */
const NOBODY = 65_534;

/** Runs the built CLI as a real process with only PATH and what the test gives, so no developer setting leaks in. */
function unitwatch(
  args: readonly string[],
  env: Record<string, string> = {},
  uid: number | undefined = undefined,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--', cli, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(uid === undefined ? {} : { uid, gid: uid }),
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
/** World-readable, for the tests that run the CLI as an unprivileged user. */
let shared: string;
let cert: SelfSignedCertificate;

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
  shared = mkdtempSync(join(tmpdir(), 'unitwatch-cli-shared-'));
  chmodSync(shared, 0o755);
  cert = selfSignedCertificate(folder);
});

afterAll(() => {
  rmSync(folder, { recursive: true, force: true });
  rmSync(shared, { recursive: true, force: true });
});

/** An env file anyone may read, in a directory anyone may enter. */
function sharedEnvFile(name: string, lines: readonly string[]): string {
  const path = join(shared, name);
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o644 });
  chmodSync(path, 0o644);
  return path;
}

/** Whether this process may start others as another user (root, as the integration suite runs). */
const canSwitchUser = process.getuid?.() === 0;

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
    expect(stderr).toContain('UNITWATCH_TO: "not-an-address" has no domain');
    expect(stderr).toContain('UNITWATCH_SMTP_URL: scheme must be smtp://');
    expect(stderr).toContain('UNITWATCH_LOG_LEVEL: must be one of');
    expect(stderr).toContain(
      'UNITWATCH_LOGLEVEL: is not a unitwatch variable; did you mean UNITWATCH_LOG_LEVEL?',
    );
    // check-config writes no state, so it does not ask for a state directory.
    expect(stderr).not.toContain('UNITWATCH_STATE_DIRECTORY');
  });

  it('says a port is out of range, naming the variable', async () => {
    const file = envFile('port.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SMTP_URL=smtp://mail.example.org:99999',
    ]);
    const { code, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('UNITWATCH_SMTP_URL: port 99999 is out of range (1-65535)');
    expect(stderr).not.toContain('is not a URL');
  });

  it('exits 78 for a query in the SMTP URL, naming the parameter', async () => {
    const file = envFile('query.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SMTP_URL=smtp://mail.example.org:587?starttls=always',
    ]);
    const { code, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain(
      'UNITWATCH_SMTP_URL: query parameter "starttls" is not supported: set UNITWATCH_SMTP_STARTTLS',
    );
  });

  it('exits 78 from run when the state directory is a file, before it touches D-Bus', async () => {
    const file = join(folder, 'state-is-a-file');
    writeFileSync(file, '');
    const { code, stderr } = await unitwatch(['run'], {
      UNITWATCH_TO: 'ops@example.org',
      UNITWATCH_SENDMAIL: '/usr/sbin/sendmail',
      UNITWATCH_STATE_DIRECTORY: file,
    });
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain(`UNITWATCH_STATE_DIRECTORY: ${file} is a file, not a directory`);
  });

  it.skipIf(!canSwitchUser)(
    'exits 78 from run when the state directory is not writable by the service user',
    async () => {
      const state = join(shared, 'root-owned-state');
      mkdirSync(state, { mode: 0o755 });
      const { code, stderr } = await unitwatch(
        ['run'],
        {
          UNITWATCH_TO: 'ops@example.org',
          UNITWATCH_SENDMAIL: '/usr/sbin/sendmail',
          UNITWATCH_STATE_DIRECTORY: state,
        },
        NOBODY,
      );
      expect(stderr).toContain(
        `UNITWATCH_STATE_DIRECTORY: ${state} is not writable by this process (uid ${NOBODY})`,
      );
      expect(code).toBe(EX_CONFIG);
    },
  );

  it.skipIf(!canSwitchUser)(
    'says the service user cannot read a root-only password file and how LoadCredential= hands it over',
    async () => {
      const passwordFile = join(shared, 'root-only-password');
      writeFileSync(passwordFile, 'sesame\n', { mode: 0o600 });
      const file = sharedEnvFile('eacces.env', [
        'UNITWATCH_TO=ops@example.org',
        'UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587',
        `UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}`,
      ]);
      const { code, stderr } = await unitwatch(['test-email', '--env-file', file], {}, NOBODY);
      expect(stderr).toContain(`UNITWATCH_SMTP_PASSWORD_FILE: cannot read ${passwordFile} (EACCES)`);
      expect(stderr).toContain('DynamicUser=');
      expect(stderr).toContain(
        `LoadCredential=smtp-password:${passwordFile} (NixOS: services.unitwatch.smtpPasswordFile), and unset UNITWATCH_SMTP_PASSWORD_FILE`,
      );
      expect(code).toBe(EX_CONFIG);
    },
  );

  it('reports an unreadable password file, CA file and state directory of run together', async () => {
    const file = join(folder, 'state-file-too');
    writeFileSync(file, '');
    const { code, stderr } = await unitwatch(['run'], {
      UNITWATCH_TO: 'ops@example.org',
      UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
      UNITWATCH_SMTP_PASSWORD_FILE: join(folder, 'absent-password'),
      UNITWATCH_SMTP_CA_FILE: join(folder, 'absent-ca.pem'),
      UNITWATCH_STATE_DIRECTORY: file,
    });
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('invalid configuration (3 problems)');
    expect(stderr).toContain(
      `UNITWATCH_SMTP_PASSWORD_FILE: cannot read ${join(folder, 'absent-password')} (ENOENT)`,
    );
    expect(stderr).toContain(`UNITWATCH_SMTP_CA_FILE: cannot read ${join(folder, 'absent-ca.pem')} (ENOENT)`);
    expect(stderr).toContain(`UNITWATCH_STATE_DIRECTORY: ${file} is a file, not a directory`);
  });

  it('exits 78 from test-email for a user in the URL without a password source, naming both ways', async () => {
    const file = envFile('no-source.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587',
    ]);
    const { code, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('UNITWATCH_SMTP_URL: names the user "alerts" but no password is supplied');
    expect(stderr).toContain('UNITWATCH_SMTP_PASSWORD_FILE=');
    expect(stderr).toContain('LoadCredential=smtp-password:');
  });

  it('exits 78 for a bad configuration in the environment, with no env file', async () => {
    const { code, stderr } = await unitwatch(['check-config'], { UNITWATCH_TO: 'no body' });
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('UNITWATCH_TO: "no body" is not a mail address; separate addresses with commas');
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
    expect(stdout).toContain(
      `# the SMTP password is read from this file; its contents are not shown\nUNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}\n`,
    );
    expect(lines).toContain(`UNITWATCH_STATE_DIRECTORY=${folder}`);
    expect(lines).toContain('UNITWATCH_LOG_LEVEL=info');
    expect(stdout + stderr).not.toContain(SECRET);
  });

  it('prints an env file that check-config reads back to the same output', async () => {
    const first = await unitwatch([
      'check-config',
      '--env-file',
      envFile('first.env', [
        'UNITWATCH_TO=Ops <ops@example.org>, "Night, Shift" <night@example.org>',
        'UNITWATCH_SMTP_URL=smtp://mail.example.org:587',
        'UNITWATCH_CRITICAL=myapp',
        'UNITWATCH_OUTPUT_LIMIT=131072',
      ]),
    ]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('UNITWATCH_CRITICAL=myapp.service\n');
    expect(first.stdout).toContain('UNITWATCH_OUTPUT_LIMIT=128K\n');
    const second = await unitwatch(['check-config', '--env-file', envFile('second.env', [first.stdout])]);
    expect(second.stderr).toBe('');
    expect(second.stdout).toBe(first.stdout);
  });

  it('needs no state directory and no visible password source: the service may have both', async () => {
    const file = envFile('stateless.env', [
      'UNITWATCH_TO=ops@example.org',
      'UNITWATCH_SMTP_URL=smtp://alerts@mail.example.org:587',
    ]);
    const { code, stdout, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('# UNITWATCH_STATE_DIRECTORY unset');
    expect(stdout).toContain('LoadCredential=smtp-password:/path');
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

describe('unitwatch --user', () => {
  const mailEnv = { UNITWATCH_TO: 'me@example.org', UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' };

  it('run exits 78 when there is no session bus, naming both places, with the other problems', async () => {
    const { code, stderr } = await unitwatch(['run', '--user'], {
      HOME: folder,
      UNITWATCH_TO: 'me@example.org',
    });
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain('invalid configuration (2 problems)');
    expect(stderr).toMatch(
      /--user: no session bus: DBUS_SESSION_BUS_ADDRESS is not set, and neither is XDG_RUNTIME_DIR/,
    );
    expect(stderr).toContain('UNITWATCH_SMTP_URL: is required unless UNITWATCH_SENDMAIL is set');
    const missing = await unitwatch(['run', '--user'], { ...mailEnv, HOME: folder, XDG_RUNTIME_DIR: folder });
    expect(missing.code).toBe(EX_CONFIG);
    expect(missing.stderr).toContain(`and ${folder}/bus (from XDG_RUNTIME_DIR) does not exist`);
  });

  it('check is UNKNOWN without a session bus, and says why', async () => {
    const { code, stdout } = await unitwatch(['check', '--user'], { HOME: folder });
    expect(code).toBe(3);
    expect(stdout).toMatch(/^UNITWATCH UNKNOWN - no session bus: DBUS_SESSION_BUS_ADDRESS is not set/);
  });

  it('keeps state under $XDG_STATE_HOME, else ~/.local/state, unless the unit or the env file says', async () => {
    const line = async (env: Record<string, string>) =>
      (await unitwatch(['check-config', '--user'], { ...mailEnv, ...env })).stdout
        .split('\n')
        .find((text) => text.startsWith('UNITWATCH_STATE_DIRECTORY='));
    expect(await line({ HOME: '/home/me' })).toBe(
      'UNITWATCH_STATE_DIRECTORY=/home/me/.local/state/unitwatch',
    );
    expect(await line({ HOME: '/home/me', XDG_STATE_HOME: '/srv/me' })).toBe(
      'UNITWATCH_STATE_DIRECTORY=/srv/me/unitwatch',
    );
    expect(await line({ HOME: '/home/me', STATE_DIRECTORY: '/home/me/.config/unitwatch' })).toBe(
      'UNITWATCH_STATE_DIRECTORY=/home/me/.config/unitwatch',
    );
    expect(await line({ HOME: '/home/me', UNITWATCH_STATE_DIRECTORY: '/elsewhere' })).toBe(
      'UNITWATCH_STATE_DIRECTORY=/elsewhere',
    );
    // Without --user, nothing is made up: run needs $STATE_DIRECTORY or the variable.
    const system = (await unitwatch(['check-config'], { ...mailEnv, HOME: '/home/me' })).stdout;
    expect(system).not.toContain('/home/me');
  });
});

describe('unitwatch test-email', () => {
  const sink = new SmtpSink();
  const logins: { username: string | undefined; password: string | null | undefined; secure: boolean }[] = [];

  beforeAll(async () => {
    // A relay as on the network: STARTTLS with a certificate that UNITWATCH_SMTP_CA_FILE trusts.
    await sink.start({
      disabledCommands: [],
      key: cert.key,
      cert: cert.cert,
      onAuth: (auth, session, callback) => {
        logins.push({ username: auth.username, password: auth.password, secure: session.secure });
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

  it('sends one mail through SMTP, marked as automatic, and exits 0, with no state directory', async () => {
    const file = envFile('smtp.env', [
      `UNITWATCH_SMTP_CA_FILE=${cert.certFile}`,
      'UNITWATCH_TO=ops@example.org,oncall@example.org',
      `UNITWATCH_SMTP_URL=${sink.url}`,
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
      `UNITWATCH_SMTP_CA_FILE=${cert.certFile}`,
      'UNITWATCH_TO=ops@example.org',
      `UNITWATCH_SMTP_URL=smtp://alerts@127.0.0.1:${sink.port}`,
      `UNITWATCH_SMTP_PASSWORD_FILE=${passwordFile}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stdout, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(logins).toEqual([{ username: 'alerts', password: 'sesame-7f3a', secure: true }]);
    expect(sink.mails).toHaveLength(1);
    expect(stdout).not.toContain('sesame-7f3a');
  });

  it('exits non-zero with the SMTP answer when the server refuses the login', async () => {
    const passwordFile = join(folder, 'wrong-password');
    writeFileSync(passwordFile, 'not-the-password\n', { mode: 0o600 });
    const file = envFile('smtp-wrong.env', [
      `UNITWATCH_SMTP_CA_FILE=${cert.certFile}`,
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
    expect(stderr).toContain(`nothing accepts connections at 127.0.0.1:${port}`);
    expect(stderr).toContain('ECONNREFUSED');
  });
});

describe('unitwatch with webhooks', () => {
  it('checks a webhook-only configuration: mail is not a channel, the URL shown by host only', async () => {
    const file = envFile('webhook-only.env', [
      'UNITWATCH_WEBHOOK_URL=https://hooks.example.org/services/t0ken',
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stdout, stderr } = await unitwatch(['check-config', '--env-file', file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('# channels: webhook\n');
    expect(stdout).toContain('# UNITWATCH_WEBHOOK_URL: https://hooks.example.org/…');
    expect(stdout).not.toContain('t0ken');
  });

  it('refuses to start the daemon when the named webhook secret file cannot be read (exit 78)', async () => {
    const file = envFile('webhook-secret.env', [
      'UNITWATCH_WEBHOOK_URL=https://hooks.example.org/x',
      `UNITWATCH_WEBHOOK_SECRET_FILE=${join(folder, 'absent-secret')}`,
      `UNITWATCH_STATE_DIRECTORY=${folder}`,
    ]);
    const { code, stderr } = await unitwatch(['run', '--env-file', file]);
    expect(code).toBe(EX_CONFIG);
    expect(stderr).toContain(
      `UNITWATCH_WEBHOOK_SECRET_FILE: cannot read ${join(folder, 'absent-secret')} (ENOENT)`,
    );
  });

  it('says test-email has nothing to send when mail is not a channel', async () => {
    const file = envFile('webhook-test-email.env', ['UNITWATCH_WEBHOOK_URL=https://hooks.example.org/x']);
    const { code, stderr } = await unitwatch(['test-email', '--env-file', file]);
    expect(code).toBe(1);
    expect(stderr).toContain('mail is not configured');
  });
});
