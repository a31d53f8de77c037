import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exposureOf } from '../harness/exposure.js';
import { repoRoot } from '../harness/systemd-instance.js';

interface Evaluation {
  readonly failed: string[];
  readonly mkDefault: string[];
  readonly fixed: string[];
  readonly environment: Record<string, string>;
  readonly after: string[];
  readonly wants: string[];
  readonly packageDefault: string;
  readonly cli: string;
  readonly loadCredential: string[];
  readonly serviceValues: Record<string, unknown>;
  readonly systemEnabled: boolean;
  readonly userEnabled: boolean;
  readonly cliInstalled: boolean;
  readonly userFailed: string[];
  readonly user: {
    readonly after: string[];
    readonly wants: string[];
    readonly wantedBy: string[];
    readonly conditionUser: string[];
    readonly execStart: string;
    readonly launcher: string;
    readonly mkDefault: string[];
    readonly fixed: string[];
  } | null;
}

const USERS = `{
  alice = { settings = { UNITWATCH_TO = [ "alice@example.org" "me@example.org" ]; }; environmentFile = "/home/alice/.config/unitwatch/unitwatch.env"; };
  nobody = { settings = { UNITWATCH_TO = "nobody@example.org"; }; environmentFile = null; };
}`;

/** Only user services: the system daemon left off, as a desktop might. */
function evaluateUsers(users = USERS): Evaluation {
  return evaluate('{ }', ['--arg', 'enable', 'false', '--arg', 'userServices', users]);
}

/** A stand-in for the package that prints what it was given; readable by every user. */
function fakeUnitwatch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'unitwatch-cli-'));
  chmodSync(dir, 0o755);
  const fake = join(dir, 'unitwatch');
  writeFileSync(fake, '#!/bin/sh\necho "args=$*"\nenv | grep -E "^(UNITWATCH_|STATE_DIRECTORY)" | sort\n');
  chmodSync(fake, 0o755);
  return fake;
}

/** nix/module.nix evaluated by test/nix/eval-module.nix (a stub lib; no nixpkgs needed). */
function evaluate(settings: string, extra: string[] = []): Evaluation {
  const output = execFileSync(
    'nix-instantiate',
    ['--eval', '--strict', '--json', 'test/nix/eval-module.nix', '--arg', 'settings', settings, ...extra],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return JSON.parse(output) as Evaluation;
}

/** The [Service] section as NixOS writes it: a list is one line per item, booleans true/false. */
function renderedUnit(serviceValues: Record<string, unknown>): string {
  const lines = ['[Unit]', 'Description=unitwatch', '', '[Service]'];
  for (const [key, value] of Object.entries(serviceValues))
    for (const item of Array.isArray(value) ? value : [value]) lines.push(`${key}=${String(item)}`);
  return `${lines.join('\n')}\n`;
}

describe('nix/module.nix', () => {
  it('parses, as every .nix file must (CI runs the same)', () => {
    const files = execFileSync('git', ['ls-files', '*.nix'], { cwd: repoRoot, encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(files).toContain('nix/module.nix');
    for (const file of files)
      execFileSync('nix-instantiate', ['--parse', file], { cwd: repoRoot, stdio: 'ignore' });
  });

  it('accepts each variable written as its kind allows, and renders lists with commas', () => {
    const result = evaluate(
      '{ UNITWATCH_TO = [ "a@example.org" "b@example.org" ]; UNITWATCH_RECOVERY = false; UNITWATCH_STATUS_LINES = 5; UNITWATCH_SMTP_URL = "smtp://mail.example.org:587"; }',
    );
    expect(result.failed).toEqual([]);
    expect(result.environment).toEqual({
      UNITWATCH_TO: 'a@example.org,b@example.org',
      UNITWATCH_RECOVERY: 'false',
      UNITWATCH_STATUS_LINES: '5',
      UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587',
    });
  });

  it('fails evaluation on a name the validator does not know and on a value of the wrong type', () => {
    const result = evaluate(
      '{ UNITWATCH_TO = "a@example.org"; UNITWATCH_RECOVERY_GRAC = "1min"; UNITWATCH_SMTP_URL = [ "x" ]; UNITWATCH_RECOVERY = 1; }',
    );
    expect(result.failed).toHaveLength(2);
    expect(result.failed[0]).toMatch(
      /not a unitwatch variable: UNITWATCH_RECOVERY_GRAC \(known: .*UNITWATCH_RECOVERY_GRACE/,
    );
    expect(result.failed[1]).toBe(
      'services.unitwatch.settings: wrong type: UNITWATCH_RECOVERY must be a string or a boolean, UNITWATCH_SMTP_URL must be a string',
    );
  });

  it('accepts webhooks without mail, and asks for one of them when neither is given', () => {
    expect(
      evaluate('{ UNITWATCH_WEBHOOK_URL = [ "https://a.example.org/x" "https://b.example.org/y" ]; }'),
    ).toMatchObject({
      failed: [],
      environment: { UNITWATCH_WEBHOOK_URL: 'https://a.example.org/x,https://b.example.org/y' },
    });
    expect(evaluate('{ UNITWATCH_HOSTNAME = "web1"; }').failed).toEqual([
      'services.unitwatch: set settings.UNITWATCH_TO (mail), settings.UNITWATCH_WEBHOOK_URL or settings.UNITWATCH_ALERTMANAGER_URL, or provide them in environmentFile.',
    ]);
  });

  it('hands every secret file to the service as a systemd credential', () => {
    const { loadCredential } = evaluate('{ UNITWATCH_WEBHOOK_URL = "https://ntfy.example.org/ops"; }', [
      '--argstr',
      'smtpPasswordFile',
      '/run/secrets/pw',
      '--argstr',
      'webhookSecretFile',
      '/run/secrets/hook',
      '--argstr',
      'ntfyTokenFile',
      '/run/secrets/ntfy',
    ]);
    expect(loadCredential).toEqual([
      'smtp-password:/run/secrets/pw',
      'webhook-secret:/run/secrets/hook',
      'ntfy-token:/run/secrets/ntfy',
    ]);
    expect(evaluate('{ UNITWATCH_TO = "a@example.org"; }').loadCredential).toEqual([]);
  });

  it('lets a site relax the hardening with a plain assignment, but not what the daemon needs', () => {
    const { mkDefault, fixed } = evaluate('{ UNITWATCH_TO = "a@example.org"; }');
    expect(mkDefault).toEqual(
      expect.arrayContaining(['ProtectSystem', 'NoNewPrivileges', 'WatchdogSec', 'ProcSubset']),
    );
    expect(fixed).toEqual(
      expect.arrayContaining(['Type', 'NotifyAccess', 'User', 'Group', 'DynamicUser', 'ExecStart']),
    );
    expect(mkDefault).not.toEqual(expect.arrayContaining(['Type']));
  });

  it('renders a unit that scores 1.3 offline, and 1.1 with notify = false (Type=exec, no NotifyAccess=)', () => {
    const withNotify = evaluate('{ UNITWATCH_TO = "a@example.org"; }');
    expect(withNotify.serviceValues).toMatchObject({
      Type: 'notify',
      NotifyAccess: 'all',
      WatchdogSec: '2min',
    });
    const without = evaluate('{ UNITWATCH_TO = "a@example.org"; }', ['--arg', 'notify', 'false']);
    expect(without.serviceValues.Type).toBe('exec');
    expect(without.serviceValues).not.toHaveProperty('NotifyAccess');
    expect(without.serviceValues).not.toHaveProperty('WatchdogSec');
    // Everything else is the same unit.
    const rest = (values: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(values).filter(([key]) => !['Type', 'NotifyAccess', 'WatchdogSec'].includes(key)),
      );
    expect(rest(without.serviceValues)).toEqual(rest(withNotify.serviceValues));
    const scores = [
      exposureOf(renderedUnit(withNotify.serviceValues)),
      exposureOf(renderedUnit(without.serviceValues)),
    ];
    process.stdout.write(
      `offline exposure of the module's unit: notify ${scores[0]}, without ${scores[1]}\n`,
    );
    expect(scores[0]).toBeLessThanOrEqual(1.3);
    expect(scores[1]).toBeLessThanOrEqual(1.1);
  });

  it('orders after network.target only: the outbox retries until the network is there', () => {
    const { after, wants } = evaluate('{ UNITWATCH_TO = "a@example.org"; }');
    expect(after).toEqual(['network.target']);
    expect(wants).toEqual([]);
  });

  it('builds the package from this repository unless pkgs.unitwatch exists', () => {
    expect(evaluate('{ UNITWATCH_TO = "a@example.org"; }').packageDefault).toBe('/nix/store/stub-unitwatch');
  });

  it('puts one `unitwatch` on PATH that, as root, runs with the service’s settings, environment file and password', () => {
    const { cli } = evaluate('{ UNITWATCH_TO = "it\'s@example.org"; }', [
      '--argstr',
      'environmentFile',
      '/run/secrets/unitwatch.env',
      '--argstr',
      'smtpPasswordFile',
      '/run/secrets/pw',
    ]);
    expect(cli).toContain(`export UNITWATCH_TO='it'\\''s@example.org'`);
    expect(cli).toContain('export STATE_DIRECTORY=/var/lib/unitwatch');
    expect(cli).toContain("export UNITWATCH_SMTP_PASSWORD_FILE='/run/secrets/pw'");
    expect(cli).toContain(
      `exec /nix/store/stub-unitwatch/bin/unitwatch "$@" --env-file '/run/secrets/unitwatch.env'`,
    );
    // A second daemon as root beside the service would double every mail.
    expect(cli).toMatch(/= run \]; then[\s\S]*exit 64/);
  });

  it('runs no user service unless users are listed', () => {
    const result = evaluate('{ UNITWATCH_TO = "a@example.org"; }');
    expect(result).toMatchObject({ systemEnabled: true, userEnabled: false, cliInstalled: true, user: null });
  });

  it("runs unitwatch as a user service for the listed users only, with the user unit's hardening", () => {
    const { systemEnabled, userEnabled, cliInstalled, userFailed, user } = evaluateUsers();
    expect({ systemEnabled, userEnabled, cliInstalled, userFailed }).toEqual({
      systemEnabled: false,
      userEnabled: true,
      cliInstalled: true,
      userFailed: [],
    });
    expect(user?.conditionUser).toEqual(['|alice', '|nobody']);
    expect(user?.wantedBy).toEqual(['default.target']);
    expect(user?.after).toEqual(['dbus.service', 'network.target']);
    expect(user?.wants).toEqual(['dbus.service']);
    expect(user?.execStart).toBe('/nix/store/stub-unitwatch-user-service run --user');
    expect(user?.fixed).toEqual(
      expect.arrayContaining([
        'Type',
        'NotifyAccess',
        'StateDirectory',
        'RestartPreventExitStatus',
        'ExecStart',
      ]),
    );
    expect(user?.mkDefault).toEqual(
      expect.arrayContaining(['ProtectSystem', 'ProtectHome', 'SystemCallFilter']),
    );
    // What needs privileges is not asked of an unprivileged manager.
    for (const key of ['DynamicUser', 'User', 'Group', 'SupplementaryGroups'])
      expect([...(user?.fixed ?? []), ...(user?.mkDefault ?? [])]).not.toContain(key);
  });

  it("checks each user's settings like the system's, naming the user", () => {
    const { userFailed } = evaluateUsers(
      '{ alice = { settings = { UNITWATCH_TO = "a@example.org"; UNITWATCH_RECOVER = "no"; }; environmentFile = null; }; bob = { settings = { UNITWATCH_RECOVERY = 1; }; environmentFile = null; }; }',
    );
    expect(userFailed).toHaveLength(3);
    expect(userFailed[0]).toMatch(
      /^services\.unitwatch\.userServices\.alice\.settings: not a unitwatch variable: UNITWATCH_RECOVER \(known: /,
    );
    expect(userFailed[1]).toBe(
      'services.unitwatch.userServices.bob.settings: wrong type: UNITWATCH_RECOVERY must be a string or a boolean',
    );
    expect(userFailed[2]).toBe(
      'services.unitwatch.userServices.bob: set settings.UNITWATCH_TO (mail), settings.UNITWATCH_WEBHOOK_URL or settings.UNITWATCH_ALERTMANAGER_URL, or provide them in environmentFile.',
    );
  });

  it("starts each listed user's daemon with their own settings and file, and no one else's", () => {
    const { user } = evaluateUsers();
    const fake = fakeUnitwatch();
    const launcher = join(mkdtempSync(join(tmpdir(), 'unitwatch-launcher-')), 'launcher');
    writeFileSync(
      launcher,
      (user?.launcher ?? '').replaceAll('/nix/store/stub-unitwatch/bin/unitwatch', fake),
    );
    const as = (name: string) =>
      spawnSync('bash', [launcher, 'run', '--user'], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', USER: name },
      });
    const alice = as('alice');
    expect(alice.status).toBe(0);
    expect(alice.stdout.trim().split('\n')).toEqual([
      'args=run --user --env-file /home/alice/.config/unitwatch/unitwatch.env',
      'UNITWATCH_TO=alice@example.org,me@example.org',
    ]);
    expect(as('nobody').stdout.trim().split('\n')).toEqual([
      'args=run --user',
      'UNITWATCH_TO=nobody@example.org',
    ]);
    const stranger = as('carol');
    expect(stranger.status).toBe(78);
    expect(stranger.stderr).toMatch(/no services\.unitwatch\.userServices entry for user carol/);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "gives a listed user's `unitwatch … --user` that user's configuration, and refuses a second run",
    () => {
      const { cli } = evaluateUsers();
      const fake = fakeUnitwatch();
      const wrapper = join(dirname(fake), 'wrapper');
      writeFileSync(wrapper, cli.replaceAll('/nix/store/stub-unitwatch/bin/unitwatch', fake));
      chmodSync(wrapper, 0o755);
      const asNobody = (args: string[]) =>
        spawnSync('bash', [wrapper, ...args], {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          uid: 65_534,
          gid: 65_534,
        });
      expect(asNobody(['status', '--user']).stdout.trim().split('\n')).toEqual([
        'args=status --user',
        'UNITWATCH_TO=nobody@example.org',
      ]);
      const run = asNobody(['run', '--user']);
      expect(run.status).toBe(64);
      expect(run.stderr).toMatch(/your daemon is the user service unitwatch\.service/);
      // Without --user it is the plain CLI, as for any user.
      expect(asNobody(['check']).stdout.trim()).toBe('args=check');
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'runs that wrapper: as root it hands the CLI the settings, file and password, and refuses run',
    () => {
      const { cli } = evaluate('{ UNITWATCH_TO = [ "a@example.org" "b@example.org" ]; }', [
        '--argstr',
        'environmentFile',
        '/run/secrets/unitwatch.env',
        '--argstr',
        'smtpPasswordFile',
        '/run/secrets/pw',
      ]);
      // Stand in for the package: print what it was given.
      const dir = mkdtempSync(join(tmpdir(), 'unitwatch-cli-'));
      const fake = join(dir, 'unitwatch');
      writeFileSync(
        fake,
        '#!/bin/sh\necho "args=$*"\nenv | grep -E "^(UNITWATCH_|STATE_DIRECTORY)" | sort\n',
      );
      chmodSync(fake, 0o755);
      const wrapper = join(dir, 'wrapper');
      writeFileSync(wrapper, cli.replaceAll('/nix/store/stub-unitwatch/bin/unitwatch', fake));
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
      const checked = spawnSync('bash', [wrapper, 'check-config'], { encoding: 'utf8', env });
      expect(checked.status).toBe(0);
      expect(checked.stdout.trim().split('\n')).toEqual([
        'args=check-config --env-file /run/secrets/unitwatch.env',
        'STATE_DIRECTORY=/var/lib/unitwatch',
        'UNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/pw',
        'UNITWATCH_TO=a@example.org,b@example.org',
      ]);
      const run = spawnSync('bash', [wrapper, 'run'], { encoding: 'utf8', env });
      expect(run.status).toBe(64);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/runs as unitwatch\.service/);
    },
  );
});
