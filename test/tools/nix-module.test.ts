import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
      'services.unitwatch: set settings.UNITWATCH_TO (mail) or settings.UNITWATCH_WEBHOOK_URL, or provide them in environmentFile.',
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
