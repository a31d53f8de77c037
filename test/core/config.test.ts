import { describe, expect, it } from 'vitest';
import {
  type Config,
  type ConfigContext,
  configuredChannels,
  describeVariables,
  parseConfig,
  parseConfigFor,
  parseMailbox,
  renderEffectiveConfig,
} from '../../src/core/config.js';
import { parseEnvFile } from '../../src/core/env-file.js';
import { ConfigError, type ConfigProblem } from '../../src/errors/config-error.js';

const outsideSystemd: ConfigContext = {
  hostname: 'web1',
  systemdStateDirectory: undefined,
  credentialsDirectory: undefined,
};

const underSystemd: ConfigContext = {
  hostname: 'web1',
  systemdStateDirectory: '/var/lib/unitwatch',
  credentialsDirectory: '/run/credentials/unitwatch.service',
};

/** The smallest valid configuration outside systemd; each test changes what it is about. */
const minimal = {
  UNITWATCH_TO: 'ops@example.org',
  UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587',
  UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch',
};

function problemsOf(
  env: Record<string, string | undefined>,
  context: ConfigContext = outsideSystemd,
  purpose: 'run' | 'test-email' | 'check-config' = 'run',
): ConfigProblem[] {
  try {
    parseConfigFor(purpose, env, context);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

function keysOf(problems: readonly ConfigProblem[]): string[] {
  return problems.map((problem) => problem.key);
}

describe('parseConfig: every problem at once', () => {
  it('reports all problems of one environment together, each naming its variable', () => {
    const problems = problemsOf({
      UNITWATCH_TO: 'ops@example.org, not-an-address',
      UNITWATCH_SMTP_URL: 'smtp://alerts:hunter2@mail.example.org',
      UNITWATCH_LOG_LEVEL: 'loud',
      UNITWATCH_COMMAND_TIMEOUT: 'ten parsecs',
      UNITWATCH_OUTPUT_LIMIT: '1G',
      UNITWATCH_TOO: 'typo@example.org',
    });
    expect(keysOf(problems).sort()).toEqual(
      [
        'UNITWATCH_COMMAND_TIMEOUT',
        'UNITWATCH_LOG_LEVEL',
        'UNITWATCH_OUTPUT_LIMIT',
        'UNITWATCH_SMTP_URL',
        'UNITWATCH_STATE_DIRECTORY',
        'UNITWATCH_TO',
        'UNITWATCH_TOO',
      ].sort(),
    );
  });

  it('says how many problems there are and lists each as "KEY: message" in the error text', () => {
    try {
      parseConfig({ UNITWATCH_LOG_LEVEL: 'loud' }, outsideSystemd);
      expect.unreachable('parseConfig accepted an empty configuration');
    } catch (error) {
      const message = (error as ConfigError).message;
      expect(message).toMatch(/^invalid configuration \(4 problems\):\n/);
      expect(message).toContain('\n  UNITWATCH_TO: is required');
      expect(message).toContain(
        '\n  UNITWATCH_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal',
      );
      expect(message).toContain('\n  UNITWATCH_SMTP_URL: is required unless UNITWATCH_SENDMAIL is set');
      expect(message).toContain('\n  UNITWATCH_STATE_DIRECTORY: is required outside systemd');
    }
  });

  it('quotes the one bad address of a list and accepts the others', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_TO: 'ops@example.org, on(call), dev@example.org' });
    expect(problems).toEqual([{ key: 'UNITWATCH_TO', message: '"on(call)" is not a mail address' }]);
  });

  it('reports each bad address of a list separately', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_TO: 'one@, two@' });
    expect(problems.map((problem) => problem.message)).toEqual([
      '"one@" is not a mail address',
      '"two@" is not a mail address',
    ]);
  });

  it('rejects a list holding only commas and spaces', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_TO: ' , ,' })).toEqual([
      { key: 'UNITWATCH_TO', message: 'needs at least one address' },
    ]);
  });

  it('quotes a bad value on one line, so CR/LF in it cannot forge another message line', () => {
    const [problem] = problemsOf({ ...minimal, UNITWATCH_TO: 'ops@example.org\r\nBcc: spy@example.org' });
    expect(problem?.key).toBe('UNITWATCH_TO');
    expect(problem?.message).not.toMatch(/[\r\n]/);
    expect(problem?.message).toContain('is not a mail address');
  });

  it('rejects a sender that is not one mail address', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_FROM: 'a@example.org, b@example.org' })).toEqual([
      { key: 'UNITWATCH_FROM', message: '"a@example.org, b@example.org" is not one mail address' },
    ]);
  });

  it('treats an empty value as unset, as systemd does', () => {
    expect(keysOf(problemsOf({ ...minimal, UNITWATCH_TO: '   ' }))).toEqual(['UNITWATCH_TO']);
    expect(parseConfig({ ...minimal, UNITWATCH_LOG_LEVEL: '' }, outsideSystemd).logLevel).toBe('info');
  });
});

describe('parseConfig: unknown variables', () => {
  it('rejects an unknown UNITWATCH_ variable and suggests the closest known name', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_LOGLEVEL: 'debug' })).toEqual([
      {
        key: 'UNITWATCH_LOGLEVEL',
        message: 'is not a unitwatch variable; did you mean UNITWATCH_LOG_LEVEL?',
      },
    ]);
  });

  it('makes no suggestion when nothing known is close', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_COMPLETELY_DIFFERENT: 'x' })).toEqual([
      { key: 'UNITWATCH_COMPLETELY_DIFFERENT', message: 'is not a unitwatch variable' },
    ]);
  });

  it('ignores variables without the UNITWATCH_ prefix', () => {
    expect(() =>
      parseConfig({ ...minimal, PATH: '/usr/bin', HOME: '/root', UNITWATCHER: 'x' }, outsideSystemd),
    ).not.toThrow();
  });
});

describe('parseConfig: transport', () => {
  it('rejects a password in the SMTP URL and points to the password file', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts:hunter2@mail.example.org' });
    expect(problems).toEqual([
      {
        key: 'UNITWATCH_SMTP_URL',
        message: 'must not contain a password: put it in a file named by UNITWATCH_SMTP_PASSWORD_FILE',
      },
    ]);
  });

  it('never repeats the password of a rejected SMTP URL', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts:hunter2@mail.example.org' });
    expect(JSON.stringify(problems)).not.toContain('hunter2');
  });

  it.each(['http://mail.example.org', 'https://mail.example.org', 'mailto:ops@example.org'])(
    'rejects the scheme of %s',
    (url) => {
      expect(problemsOf({ ...minimal, UNITWATCH_SMTP_URL: url })).toEqual([
        {
          key: 'UNITWATCH_SMTP_URL',
          message: 'scheme must be smtp:// (STARTTLS) or smtps:// (TLS from the start)',
        },
      ]);
    },
  );

  it('rejects something that is not a URL at all', () => {
    const [problem] = problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'mail.example.org:587' });
    expect(problem?.key).toBe('UNITWATCH_SMTP_URL');
  });

  it('rejects both SMTP and sendmail at once', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' })).toEqual([
      { key: 'UNITWATCH_SENDMAIL', message: 'cannot be combined with UNITWATCH_SMTP_URL: pick one' },
    ]);
  });

  it('requires one of SMTP and sendmail', () => {
    const { UNITWATCH_SMTP_URL: _, ...neither } = minimal;
    expect(problemsOf(neither)).toEqual([
      { key: 'UNITWATCH_SMTP_URL', message: 'is required unless UNITWATCH_SENDMAIL is set' },
    ]);
  });

  it('does not call a transport missing when it is set but invalid', () => {
    expect(keysOf(problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'http://mail.example.org' }))).toEqual([
      'UNITWATCH_SMTP_URL',
    ]);
  });

  it('rejects a password file when the SMTP URL names no user', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/smtp' })).toEqual([
      {
        key: 'UNITWATCH_SMTP_PASSWORD_FILE',
        message: 'is set but UNITWATCH_SMTP_URL names no user (smtp://USER@host:port)',
      },
    ]);
  });

  it('rejects a password file beside sendmail', () => {
    const { UNITWATCH_SMTP_URL: _, ...base } = minimal;
    expect(
      problemsOf({
        ...base,
        UNITWATCH_SENDMAIL: '/usr/sbin/sendmail',
        UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/smtp',
      }),
    ).toEqual([{ key: 'UNITWATCH_SMTP_PASSWORD_FILE', message: 'has no use with UNITWATCH_SENDMAIL' }]);
  });

  it('requires absolute paths for sendmail, the password file and the state directory', () => {
    const problems = problemsOf({
      UNITWATCH_TO: 'ops@example.org',
      UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org',
      UNITWATCH_SMTP_PASSWORD_FILE: 'secrets/smtp',
      UNITWATCH_STATE_DIRECTORY: 'state',
    });
    expect(problems).toEqual([
      { key: 'UNITWATCH_SMTP_PASSWORD_FILE', message: 'must be an absolute path' },
      { key: 'UNITWATCH_STATE_DIRECTORY', message: 'must be an absolute path' },
    ]);
    expect(
      problemsOf({ UNITWATCH_TO: 'ops@example.org', UNITWATCH_SENDMAIL: 'sendmail' }, underSystemd),
    ).toEqual([{ key: 'UNITWATCH_SENDMAIL', message: 'must be an absolute path' }]);
  });

  it('reads smtp:// as STARTTLS on port 25 by default, without credentials in the printable URL', () => {
    const config = parseConfig({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://mail.example.org' }, outsideSystemd);
    expect(config.transport).toEqual({
      kind: 'smtp',
      url: 'smtp://mail.example.org',
      secure: false,
      host: 'mail.example.org',
      port: 25,
      user: undefined,
      startTls: 'require',
      caFile: undefined,
      passwordFile: undefined,
      passwordSource: undefined,
    });
  });

  it('reads smtps:// as implicit TLS on port 465 by default', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_SMTP_URL: 'smtps://mail.example.org' },
      outsideSystemd,
    );
    expect(config.transport).toMatchObject({ secure: true, port: 465 });
  });

  it('takes the user from the URL, decoding percent escapes', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts%40example.org@mail.example.org:587' },
      underSystemd,
    );
    expect(config.transport).toMatchObject({ user: 'alerts@example.org', port: 587 });
  });

  it('unwraps an IPv6 literal host', () => {
    const config = parseConfig({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://[::1]:2525' }, outsideSystemd);
    expect(config.transport).toMatchObject({ host: '::1', port: 2525 });
  });

  it('uses sendmail when only UNITWATCH_SENDMAIL is set', () => {
    const { UNITWATCH_SMTP_URL: _, ...base } = minimal;
    const config = parseConfig({ ...base, UNITWATCH_SENDMAIL: '/run/wrappers/bin/sendmail' }, outsideSystemd);
    expect(config.transport).toEqual({ kind: 'sendmail', path: '/run/wrappers/bin/sendmail' });
  });
});

describe('parseConfig: durations, sizes, numbers and levels', () => {
  it.each([
    ['UNITWATCH_COMMAND_TIMEOUT', 'soon', '"soon" is not a duration (e.g. 500ms, 10s, 5min, 1h)'],
    ['UNITWATCH_COMMAND_TIMEOUT', '10ms', 'must be between 100ms and 5min'],
    ['UNITWATCH_COMMAND_TIMEOUT', '1h', 'must be between 100ms and 5min'],
    ['UNITWATCH_JOURNAL_SETTLE', '11s', 'must be between 0s and 10s'],
    ['UNITWATCH_OUTPUT_LIMIT', '1G', '"1G" is not a size (e.g. 65536, 64K, 1M)'],
    ['UNITWATCH_OUTPUT_LIMIT', '512', 'must be between 1K and 16M'],
    ['UNITWATCH_OUTPUT_LIMIT', '17M', 'must be between 1K and 16M'],
    ['UNITWATCH_STATUS_LINES', '-1', '"-1" is not a whole number'],
    ['UNITWATCH_STATUS_LINES', '2.5', '"2.5" is not a whole number'],
    ['UNITWATCH_STATUS_LINES', '1001', 'must be between 0 and 1000'],
    ['UNITWATCH_LOG_LEVEL', 'verbose', 'must be one of trace, debug, info, warn, error, fatal'],
    ['UNITWATCH_LOG_LEVEL', 'INFO', 'must be one of trace, debug, info, warn, error, fatal'],
    ['UNITWATCH_HOSTNAME', 'web 1', 'must be a host name (letters, digits, dots, dashes)'],
  ])('rejects %s=%s: %s', (name, value, message) => {
    expect(problemsOf({ ...minimal, [name]: value })).toEqual([{ key: name, message }]);
  });

  it('accepts systemd-style durations, sizes with K and M, and whole numbers', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_COMMAND_TIMEOUT: '1min 30s',
        UNITWATCH_JOURNAL_SETTLE: '1.5',
        UNITWATCH_OUTPUT_LIMIT: '256K',
        UNITWATCH_STATUS_LINES: '0',
        UNITWATCH_LOG_LEVEL: 'debug',
      },
      outsideSystemd,
    );
    expect(config).toMatchObject({
      commandTimeoutMs: 90_000,
      journalSettleMs: 1500,
      outputLimitBytes: 262_144,
      statusLines: 0,
      logLevel: 'debug',
    });
  });
});

describe('parseConfig: defaults', () => {
  it('fills every optional setting with its documented default', () => {
    const config = parseConfig(minimal, outsideSystemd);
    expect(config).toMatchObject<Partial<Config>>({
      to: ['ops@example.org'],
      from: 'unitwatch@web1',
      hostname: 'web1',
      transport: {
        kind: 'smtp',
        url: 'smtp://mail.example.org:587',
        secure: false,
        host: 'mail.example.org',
        port: 587,
        user: undefined,
        startTls: 'require',
        caFile: undefined,
        passwordFile: undefined,
        passwordSource: undefined,
      },
      stateDirectory: '/var/lib/unitwatch',
      logLevel: 'info',
      statusLines: 20,
      commandTimeoutMs: 10_000,
      outputLimitBytes: 65_536,
      journalSettleMs: 250,
      logFormat: 'text',
    });
  });

  it('sends from unitwatch@<hostname>', () => {
    expect(parseConfig(minimal, { ...outsideSystemd, hostname: 'db3' }).from).toBe('unitwatch@db3');
  });

  it('sends from unitwatch@<UNITWATCH_HOSTNAME> when the host name is overridden', () => {
    const config = parseConfig({ ...minimal, UNITWATCH_HOSTNAME: 'db3.example.org' }, outsideSystemd);
    expect(config.hostname).toBe('db3.example.org');
    expect(config.from).toBe('unitwatch@db3.example.org');
  });

  it('splits and trims the recipient list', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_TO: ' ops@example.org ,, dev@example.org ' },
      outsideSystemd,
    );
    expect(config.to).toEqual(['ops@example.org', 'dev@example.org']);
  });

  it('takes the state directory from $STATE_DIRECTORY under systemd', () => {
    const { UNITWATCH_STATE_DIRECTORY: _, ...base } = minimal;
    expect(parseConfig(base, underSystemd).stateDirectory).toBe('/var/lib/unitwatch');
  });

  it('takes the first entry when $STATE_DIRECTORY lists several', () => {
    const { UNITWATCH_STATE_DIRECTORY: _, ...base } = minimal;
    const context = { ...underSystemd, systemdStateDirectory: '/var/lib/unitwatch:/var/lib/other' };
    expect(parseConfig(base, context).stateDirectory).toBe('/var/lib/unitwatch');
  });

  it('prefers UNITWATCH_STATE_DIRECTORY over $STATE_DIRECTORY', () => {
    const config = parseConfig({ ...minimal, UNITWATCH_STATE_DIRECTORY: '/srv/unitwatch' }, underSystemd);
    expect(config.stateDirectory).toBe('/srv/unitwatch');
  });

  it('reads the password from the smtp-password credential when the URL names a user', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587' },
      underSystemd,
    );
    expect(config.transport).toMatchObject({
      user: 'alerts',
      passwordFile: '/run/credentials/unitwatch.service/smtp-password',
    });
  });

  it('prefers UNITWATCH_SMTP_PASSWORD_FILE over the credential', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
        UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/smtp',
      },
      underSystemd,
    );
    expect(config.transport).toMatchObject({ passwordFile: '/run/secrets/smtp' });
  });

  it('uses no password at all when the URL names no user, credential or not', () => {
    expect(parseConfig(minimal, underSystemd).transport).toMatchObject({ passwordFile: undefined });
  });

  it('refuses a user in the URL with neither a password file nor a credentials directory, naming both ways', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org' });
    expect(keysOf(problems)).toEqual(['UNITWATCH_SMTP_URL']);
    expect(problems[0]?.message).toContain('names the user "alerts" but no password is supplied');
    expect(problems[0]?.message).toContain('UNITWATCH_SMTP_PASSWORD_FILE=');
    expect(problems[0]?.message).toContain('LoadCredential=smtp-password:');
  });

  it('lets check-config through a user without a visible password source: the service may have the credential', () => {
    const config = parseConfigFor(
      'check-config',
      { ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org' },
      outsideSystemd,
    );
    expect(config.transport).toMatchObject({ user: 'alerts', passwordFile: undefined });
  });

  it('marks where the password comes from', () => {
    const url = { ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org' };
    expect(parseConfig(url, underSystemd).transport).toMatchObject({ passwordSource: 'credential' });
    expect(
      parseConfig({ ...url, UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/smtp' }, outsideSystemd).transport,
    ).toMatchObject({ passwordSource: 'file' });
  });
});

describe('renderEffectiveConfig', () => {
  const config = parseConfig(
    {
      UNITWATCH_TO: 'ops@example.org,dev@example.org',
      UNITWATCH_SMTP_URL: 'smtps://alerts@mail.example.org:465',
      UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/unitwatch-smtp',
      UNITWATCH_COMMAND_TIMEOUT: '2min',
    },
    underSystemd,
  );
  const text = renderEffectiveConfig(config);

  it('prints the effective configuration as an environment file, defaults filled in', () => {
    const lines = text.split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'UNITWATCH_TO=ops@example.org,dev@example.org',
        'UNITWATCH_FROM=unitwatch@web1',
        'UNITWATCH_SMTP_URL=smtps://alerts@mail.example.org:465',
        'UNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/unitwatch-smtp',
        'UNITWATCH_STATE_DIRECTORY=/var/lib/unitwatch',
        'UNITWATCH_HOSTNAME=web1',
        'UNITWATCH_LOG_LEVEL=info',
        'UNITWATCH_STATUS_LINES=20',
        'UNITWATCH_COMMAND_TIMEOUT=2min',
        'UNITWATCH_OUTPUT_LIMIT=64K',
        'UNITWATCH_LOG_FORMAT=text',
        'UNITWATCH_JOURNAL_SETTLE=250ms',
      ]),
    );
    expect(text.endsWith('\n')).toBe(true);
  });

  it('mentions every documented variable except the unused transport and the webhook settings', () => {
    for (const { name } of describeVariables(underSystemd)) {
      if (name === 'UNITWATCH_SENDMAIL') continue;
      // Without UNITWATCH_WEBHOOK_URL, only that one is named (its own spec below renders the rest).
      if (name.startsWith('UNITWATCH_WEBHOOK_') && name !== 'UNITWATCH_WEBHOOK_URL') continue;
      if (name === 'UNITWATCH_NTFY_TOKEN_FILE') continue;
      expect(text, name).toContain(name);
    }
  });

  it('names the password file but holds no secret', () => {
    // Config never carries the password itself; the rendering can only show where it comes from.
    expect(Object.keys(config.transport ?? {})).not.toContain('password');
    expect(text).toContain(
      '# the SMTP password is read from this file; its contents are not shown\nUNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/unitwatch-smtp\n',
    );
  });

  it('says when SMTP runs without authentication', () => {
    expect(renderEffectiveConfig(parseConfig(minimal, outsideSystemd))).toContain(
      '# UNITWATCH_SMTP_PASSWORD_FILE unset: no SMTP authentication',
    );
  });

  it('prints sendmail instead of SMTP, and no password line', () => {
    const { UNITWATCH_SMTP_URL: _, ...base } = minimal;
    const rendered = renderEffectiveConfig(
      parseConfig({ ...base, UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' }, outsideSystemd),
    );
    expect(rendered).toContain('UNITWATCH_SENDMAIL=/usr/sbin/sendmail\n');
    expect(rendered).not.toContain('SMTP');
  });

  /** check-config's output through the project's env-file parser and back into parseConfig. */
  function roundTrip(env: Record<string, string>, context: ConfigContext, purpose: 'run' | 'check-config') {
    const original = parseConfigFor(purpose, env, context);
    const rendered = renderEffectiveConfig(original);
    const parsed = parseEnvFile(rendered, 'check-config output');
    expect(parsed.problems).toEqual([]);
    return { original, rendered, reread: parseConfigFor(purpose, parsed.variables, context) };
  }

  it.each<[string, Record<string, string>, ConfigContext]>([
    [
      'smtps with a password file',
      {
        UNITWATCH_TO: 'ops@example.org,dev@example.org',
        UNITWATCH_SMTP_URL: 'smtps://alerts@mail.example.org:465',
        UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/unitwatch-smtp',
        UNITWATCH_COMMAND_TIMEOUT: '2min',
      },
      { ...underSystemd, hostname: 'web1.example.org' },
    ],
    [
      'the credential, a CA file, display names, odd sizes and durations',
      {
        UNITWATCH_TO: '"Ops, Team" <ops@example.org>, Dev <dev@example.org>',
        UNITWATCH_FROM: 'unitwatch <unitwatch@web1.example.org>',
        UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
        UNITWATCH_SMTP_CA_FILE: '/etc/unitwatch/ca.pem',
        UNITWATCH_OUTPUT_LIMIT: '1500',
        UNITWATCH_JOURNAL_SETTLE: '1.5',
        UNITWATCH_CRITICAL: 'myapp, backup-*',
        UNITWATCH_LOG_FORMAT: 'json',
        UNITWATCH_RECOVERY: 'off',
      },
      underSystemd,
    ],
    [
      'sendmail with local names',
      { UNITWATCH_TO: 'root, Admin <admin>', UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' },
      underSystemd,
    ],
    [
      'opportunistic STARTTLS to a relay on loopback',
      { UNITWATCH_TO: 'ops@example.org', UNITWATCH_SMTP_URL: 'smtp://127.0.0.1:25' },
      underSystemd,
    ],
  ])(
    'prints a configuration that the env-file parser reads back to the same Config: %s',
    (_, env, context) => {
      const { original, reread } = roundTrip(env, context, 'run');
      expect(reread).toEqual(original);
    },
  );

  it('round-trips check-config without a state directory or a visible password source', () => {
    const { original, rendered, reread } = roundTrip(
      { UNITWATCH_TO: 'ops@example.org', UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587' },
      outsideSystemd,
      'check-config',
    );
    expect(original.stateDirectory).toBeUndefined();
    expect(rendered).toContain('# UNITWATCH_STATE_DIRECTORY unset');
    expect(reread).toEqual(original);
  });

  it('puts every comment on a line of its own, since a # after a value is part of the value', () => {
    const { rendered } = roundTrip(
      {
        UNITWATCH_TO: 'ops@example.org',
        UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
        UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/smtp',
      },
      underSystemd,
      'run',
    );
    for (const line of rendered.split('\n').filter((l) => !l.startsWith('#')))
      expect(line).not.toContain('#');
  });

  it('prints sizes and durations as the docs write them', () => {
    const rendered = renderEffectiveConfig(
      parseConfig(
        { ...minimal, UNITWATCH_OUTPUT_LIMIT: '1048576', UNITWATCH_STORM_WINDOW: '120' },
        outsideSystemd,
      ),
    );
    expect(rendered).toContain('UNITWATCH_OUTPUT_LIMIT=1M\n');
    expect(rendered).toContain('UNITWATCH_STORM_WINDOW=2min\n');
  });

  it('quotes a value that starts with a quote, so it reads back whole', () => {
    const config = parseConfig({ ...minimal, UNITWATCH_TO: '"Ops, Team" <ops@example.org>' }, outsideSystemd);
    expect(renderEffectiveConfig(config)).toContain('UNITWATCH_TO="\\"Ops, Team\\" <ops@example.org>"\n');
  });
});

describe('parseConfig: TLS for SMTP', () => {
  const smtp = (url: string, extra: Record<string, string> = {}) =>
    parseConfig({ ...minimal, UNITWATCH_SMTP_URL: url, ...extra }, underSystemd).transport;

  it('requires STARTTLS for a relay on the network, even without credentials', () => {
    expect(smtp('smtp://mail.example.org:587')).toMatchObject({ startTls: 'require' });
    expect(smtp('smtp://192.0.2.1:25')).toMatchObject({ startTls: 'require' });
  });

  it.each(['smtp://127.0.0.1:25', 'smtp://127.8.9.10:2525', 'smtp://[::1]:25', 'smtp://localhost'])(
    'takes STARTTLS when offered from a relay on loopback (%s)',
    (url) => {
      expect(smtp(url)).toMatchObject({ startTls: 'opportunistic' });
    },
  );

  it('lets UNITWATCH_SMTP_STARTTLS choose either way without credentials', () => {
    expect(smtp('smtp://127.0.0.1:25', { UNITWATCH_SMTP_STARTTLS: 'require' })).toMatchObject({
      startTls: 'require',
    });
    expect(smtp('smtp://mail.example.org:25', { UNITWATCH_SMTP_STARTTLS: 'opportunistic' })).toMatchObject({
      startTls: 'opportunistic',
    });
  });

  it('always requires STARTTLS with a user in the URL, also on loopback', () => {
    expect(smtp('smtp://alerts@127.0.0.1:25')).toMatchObject({ startTls: 'require' });
  });

  it('refuses opportunistic STARTTLS with a user, saying credentials only go over TLS', () => {
    const problems = problemsOf(
      {
        ...minimal,
        UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org:587',
        UNITWATCH_SMTP_STARTTLS: 'opportunistic',
      },
      underSystemd,
    );
    expect(keysOf(problems)).toEqual(['UNITWATCH_SMTP_STARTTLS']);
    expect(problems[0]?.message).toContain('credentials are only ever sent over TLS');
  });

  it('refuses UNITWATCH_SMTP_STARTTLS with smtps:// and with sendmail, and unknown policies', () => {
    expect(
      problemsOf({
        ...minimal,
        UNITWATCH_SMTP_URL: 'smtps://mail.example.org',
        UNITWATCH_SMTP_STARTTLS: 'require',
      }),
    ).toEqual([
      {
        key: 'UNITWATCH_SMTP_STARTTLS',
        message: 'has no effect with smtps://, which is TLS from the start: remove it',
      },
    ]);
    const { UNITWATCH_SMTP_URL: _, ...base } = minimal;
    expect(
      problemsOf({
        ...base,
        UNITWATCH_SENDMAIL: '/usr/sbin/sendmail',
        UNITWATCH_SMTP_STARTTLS: 'require',
        UNITWATCH_SMTP_CA_FILE: '/etc/ca.pem',
      }),
    ).toEqual([
      { key: 'UNITWATCH_SMTP_STARTTLS', message: 'has no use with UNITWATCH_SENDMAIL' },
      { key: 'UNITWATCH_SMTP_CA_FILE', message: 'has no use with UNITWATCH_SENDMAIL' },
    ]);
    expect(problemsOf({ ...minimal, UNITWATCH_SMTP_STARTTLS: 'never' })).toEqual([
      { key: 'UNITWATCH_SMTP_STARTTLS', message: 'must be one of require, opportunistic' },
    ]);
  });

  it('takes a CA file as an absolute path', () => {
    expect(
      smtp('smtps://mail.example.org', { UNITWATCH_SMTP_CA_FILE: '/etc/unitwatch/ca.pem' }),
    ).toMatchObject({
      caFile: '/etc/unitwatch/ca.pem',
    });
    expect(problemsOf({ ...minimal, UNITWATCH_SMTP_CA_FILE: 'ca.pem' })).toEqual([
      { key: 'UNITWATCH_SMTP_CA_FILE', message: 'must be an absolute path' },
    ]);
  });
});

describe('parseConfig: what the SMTP URL may hold', () => {
  it('names every query parameter, with the variable to use instead', () => {
    const problems = problemsOf({
      ...minimal,
      UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587?secure=true&rejectUnauthorized=false&pool=yes',
    });
    expect(problems).toEqual([
      {
        key: 'UNITWATCH_SMTP_URL',
        message:
          'query parameter "secure" is not supported: use smtps:// for TLS from the start, or smtp:// with UNITWATCH_SMTP_STARTTLS',
      },
      {
        key: 'UNITWATCH_SMTP_URL',
        message:
          'query parameter "rejectUnauthorized" is not supported: certificates are always verified; for a private CA, set UNITWATCH_SMTP_CA_FILE to its certificate',
      },
      {
        key: 'UNITWATCH_SMTP_URL',
        message:
          'query parameter "pool" is not supported: remove it: unitwatch reads its settings from UNITWATCH_* variables, not from the URL',
      },
    ]);
  });

  it('never repeats the value of a query parameter, which may be a password', () => {
    const problems = problemsOf({
      ...minimal,
      UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org?password=hunter2',
    });
    expect(JSON.stringify(problems)).not.toContain('hunter2');
    expect(problems[0]?.message).toContain('UNITWATCH_SMTP_PASSWORD_FILE');
  });

  it('refuses a path', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587/relay' })).toEqual([
      { key: 'UNITWATCH_SMTP_URL', message: 'must be just scheme, user, host and port: remove "/relay"' },
    ]);
  });

  it.each(['99999', '65536', '0'])('says port %s is out of range rather than "not a URL"', (port) => {
    expect(problemsOf({ ...minimal, UNITWATCH_SMTP_URL: `smtp://mail.example.org:${port}` })).toEqual([
      { key: 'UNITWATCH_SMTP_URL', message: `port ${port} is out of range (1-65535)` },
    ]);
  });

  it('accepts a trailing slash and the highest port', () => {
    expect(
      parseConfig({ ...minimal, UNITWATCH_SMTP_URL: 'smtp://mail.example.org:65535/' }, outsideSystemd)
        .transport,
    ).toMatchObject({
      port: 65535,
      url: 'smtp://mail.example.org:65535',
    });
  });
});

describe('parseConfig: recipients', () => {
  it('accepts the display-name form and keeps it for the header', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_TO: 'Ops <ops@example.org>, "Night, Shift" <night@example.org>, dev@example.org',
      },
      outsideSystemd,
    );
    expect(config.to).toEqual([
      'Ops <ops@example.org>',
      '"Night, Shift" <night@example.org>',
      'dev@example.org',
    ]);
  });

  it('accepts bare local names with sendmail, which qualifies them', () => {
    const { UNITWATCH_SMTP_URL: _, ...base } = minimal;
    const config = parseConfig(
      { ...base, UNITWATCH_TO: 'root, Admin <admin>', UNITWATCH_SENDMAIL: '/usr/sbin/sendmail' },
      outsideSystemd,
    );
    expect(config.to).toEqual(['root', 'Admin <admin>']);
  });

  it('refuses bare local names with SMTP, suggesting the qualified address and sendmail', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_TO: 'root', UNITWATCH_FROM: 'unitwatch' });
    expect(keysOf(problems)).toEqual(['UNITWATCH_TO', 'UNITWATCH_FROM']);
    expect(problems[0]?.message).toContain('"root" has no domain');
    expect(problems[0]?.message).toContain('root@web1');
    expect(problems[0]?.message).toContain('UNITWATCH_SENDMAIL');
    expect(problems[1]?.message).toContain('unitwatch@web1');
  });

  it.each(['ops@example.org; dev@example.org', 'ops@example.org dev@example.org'])(
    'hints at commas for %j',
    (value) => {
      expect(problemsOf({ ...minimal, UNITWATCH_TO: value })).toEqual([
        { key: 'UNITWATCH_TO', message: `"${value}" is not a mail address; separate addresses with commas` },
      ]);
    },
  );

  it.each(['-oQ/tmp', 'Evil <-f@example.org>'])(
    'refuses %j, which sendmail would take as an option',
    (value) => {
      const [problem] = problemsOf({ ...minimal, UNITWATCH_TO: value });
      expect(problem?.key).toBe('UNITWATCH_TO');
      expect(problem?.message).toContain('starts with "-", which sendmail would take as an option');
    },
  );

  it.each(['Ops\u001b[31m <ops@example.org>', '"Ops\u0000" <ops@example.org>', 'ops\u0007@example.org'])(
    'refuses control characters anywhere in %j',
    (value) => {
      expect(typeof parseMailbox(value)).toBe('string');
    },
  );

  it('parses one mailbox into header text, envelope address and whether it is local', () => {
    expect(parseMailbox(' Ops  <ops@example.org> ')).toEqual({
      text: 'Ops <ops@example.org>',
      address: 'ops@example.org',
      local: false,
    });
    expect(parseMailbox('<root>')).toEqual({ text: 'root', address: 'root', local: true });
    expect(parseMailbox('Ops <ops@example.org')).toBe(
      '"Ops <ops@example.org" is not a mail address; separate addresses with commas',
    );
  });
});

describe('parseConfig: unit names', () => {
  it('appends .service to a name without a unit suffix, as systemctl does, in all three lists', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_CRITICAL: 'myapp,nginx.service',
        UNITWATCH_INCLUDE: 'backup,*.timer',
        UNITWATCH_EXCLUDE: 'getty@tty1',
      },
      outsideSystemd,
    );
    expect(config.critical).toEqual(['myapp.service', 'nginx.service']);
    expect(config.include).toEqual(['backup.service', '*.timer']);
    expect(config.exclude).toEqual(['getty@tty1.service']);
  });

  it('shows the normalised names in check-config', () => {
    expect(
      renderEffectiveConfig(parseConfig({ ...minimal, UNITWATCH_CRITICAL: 'myapp' }, outsideSystemd)),
    ).toContain('UNITWATCH_CRITICAL=myapp.service\n');
  });

  it('keeps a glob that ends in a wildcard as written, so * still means every unit', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_INCLUDE: '*,backup-*,db-?,foo.[st]*' },
      outsideSystemd,
    );
    expect(config.include).toEqual(['*', 'backup-*', 'db-?', 'foo.[st]*']);
  });

  it('hints at commas for units separated otherwise', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_CRITICAL: 'nginx.service; postgresql.service' })).toEqual([
      {
        key: 'UNITWATCH_CRITICAL',
        message: '"nginx.service; postgresql.service" is not a unit name or glob; separate units with commas',
      },
    ]);
  });
});

describe('parseConfigFor: each command validates what it needs', () => {
  const { UNITWATCH_STATE_DIRECTORY: _, ...stateless } = minimal;

  it('requires a state directory for run only', () => {
    expect(keysOf(problemsOf(stateless))).toEqual(['UNITWATCH_STATE_DIRECTORY']);
    expect(parseConfigFor('test-email', stateless, outsideSystemd).stateDirectory).toBeUndefined();
    expect(parseConfigFor('check-config', stateless, outsideSystemd).stateDirectory).toBeUndefined();
  });

  it('requires a password source for test-email as for run', () => {
    const env = { ...stateless, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org' };
    expect(keysOf(problemsOf(env, outsideSystemd, 'test-email'))).toEqual(['UNITWATCH_SMTP_URL']);
  });
});

describe('parseConfig: log format', () => {
  it('defaults to text and takes json', () => {
    expect(parseConfig(minimal, outsideSystemd).logFormat).toBe('text');
    expect(parseConfig({ ...minimal, UNITWATCH_LOG_FORMAT: 'json' }, outsideSystemd).logFormat).toBe('json');
    expect(problemsOf({ ...minimal, UNITWATCH_LOG_FORMAT: 'yaml' })).toEqual([
      { key: 'UNITWATCH_LOG_FORMAT', message: 'must be one of text, json' },
    ]);
  });
});

describe('describeVariables', () => {
  const variables = describeVariables(outsideSystemd);

  it('documents every variable that parseConfig accepts, and only those', () => {
    for (const { name } of variables) {
      // A documented variable must not be reported as unknown.
      const problems = problemsOf({ [name]: 'x' });
      expect(problems.find((problem) => problem.message.startsWith('is not a unitwatch variable'))).toBe(
        undefined,
      );
    }
    expect(variables.map((variable) => variable.name)).toEqual(
      expect.arrayContaining([
        'UNITWATCH_TO',
        'UNITWATCH_FROM',
        'UNITWATCH_SMTP_URL',
        'UNITWATCH_SMTP_PASSWORD_FILE',
        'UNITWATCH_SENDMAIL',
        'UNITWATCH_STATE_DIRECTORY',
        'UNITWATCH_LOG_LEVEL',
      ]),
    );
  });

  it('gives each variable a description and an example that the validator accepts', () => {
    for (const variable of variables) {
      expect(variable.description, variable.name).not.toBe('');
      // The webhook settings are checked with a webhook to apply to (the token file with ntfy).
      const base =
        variable.name.includes('WEBHOOK') || variable.name.includes('NTFY')
          ? { UNITWATCH_WEBHOOK_URL: 'https://hooks.example.org/x', UNITWATCH_WEBHOOK_FORMAT: 'ntfy' }
          : {};
      const env = { ...base, [variable.name]: variable.example };
      // A webhook alone is a whole configuration: nothing to report at all is fine too.
      let problems: ConfigProblem[] = [];
      try {
        parseConfigFor('run', env, underSystemd);
      } catch (error) {
        problems = [...(error as ConfigError).problems];
      }
      expect(
        problems.filter((problem) => problem.key === variable.name),
        `${variable.name}=${variable.example}`,
      ).toEqual([]);
    }
  });

  it('shows the default sender with the host name of the context', () => {
    const from = describeVariables({ ...outsideSystemd, hostname: '<hostname>' }).find(
      (variable) => variable.name === 'UNITWATCH_FROM',
    );
    expect(from?.defaultText).toBe('unitwatch@<hostname>');
  });
});

describe('channels: mail and webhooks', () => {
  const webhookOnly = {
    UNITWATCH_WEBHOOK_URL: 'https://hooks.example.org/a, https://ntfy.example.org/b',
    UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch',
  };

  it('lists the configured channels, mail first, and mail alone when nothing is configured', () => {
    const set = (names: string[]) => (name: string) => names.includes(name);
    expect(configuredChannels(set([]))).toEqual(['mail']);
    expect(configuredChannels(set(['UNITWATCH_TO']))).toEqual(['mail']);
    expect(configuredChannels(set(['UNITWATCH_WEBHOOK_URL']))).toEqual(['webhook']);
    expect(configuredChannels(set(['UNITWATCH_SMTP_URL', 'UNITWATCH_WEBHOOK_URL']))).toEqual([
      'mail',
      'webhook',
    ]);
  });

  it('runs with webhooks only: no recipient, no transport, mail not a channel', () => {
    const config = parseConfig(webhookOnly, outsideSystemd);
    expect(config.channels).toEqual(['webhook']);
    expect(config.transport).toBeUndefined();
    expect(config.to).toEqual([]);
    expect(config.webhook).toEqual({
      urls: [
        { url: 'https://hooks.example.org/a', display: 'https://hooks.example.org/…' },
        { url: 'https://ntfy.example.org/b', display: 'https://ntfy.example.org/…' },
      ],
      format: 'json',
      secretFile: undefined,
      secretSource: undefined,
      tokenFile: undefined,
      tokenSource: undefined,
      allowHttp: false,
      timeoutMs: 10_000,
    });
  });

  it('takes space- and comma-separated URLs, and sends mail too when mail is configured', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_WEBHOOK_URL: 'https://a.example.org/x https://b.example.org/y,https://c.example.org',
      },
      outsideSystemd,
    );
    expect(config.channels).toEqual(['mail', 'webhook']);
    expect(config.webhook?.urls.map((url) => url.url)).toEqual([
      'https://a.example.org/x',
      'https://b.example.org/y',
      'https://c.example.org/',
    ]);
  });

  it('still wants a recipient and a transport when half of mail is configured beside a webhook', () => {
    expect(problemsOf({ ...webhookOnly, UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587' })).toEqual([
      {
        key: 'UNITWATCH_TO',
        message:
          'is required: who gets the mail? (to notify through the other channels only, unset UNITWATCH_SMTP_URL and UNITWATCH_SENDMAIL too)',
      },
    ]);
  });

  it('names the webhook and Alertmanager as the ways out when no channel at all is configured', () => {
    const problems = problemsOf({ UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch' });
    expect(problems).toContainEqual({
      key: 'UNITWATCH_TO',
      message:
        'is required: who gets the mail? (or set UNITWATCH_WEBHOOK_URL or UNITWATCH_ALERTMANAGER_URL to notify through those only)',
    });
  });

  it('runs with Alertmanager only, as a fleet host that leaves mail to Alertmanager', () => {
    const config = parseConfig(
      {
        UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch',
        UNITWATCH_ALERTMANAGER_URL: 'http://127.0.0.1:9093',
      },
      outsideSystemd,
    );
    expect(config.channels).toEqual(['alertmanager']);
    expect(config.transport).toBeUndefined();
    expect(config.alertmanager?.urls).toHaveLength(1);
    const set = (names: string[]) => (name: string) => names.includes(name);
    expect(configuredChannels(set(['UNITWATCH_ALERTMANAGER_URL', 'UNITWATCH_TO']))).toEqual([
      'mail',
      'alertmanager',
    ]);
  });

  it('reports every bad webhook URL at once, each with its fix, never showing a path or a secret', () => {
    const problems = problemsOf({
      ...webhookOnly,
      UNITWATCH_WEBHOOK_URL:
        'ftp://files.example.org/x https://user:hunter2@hooks.example.org/secret-path http://hooks.example.org/t0ken not-a-url https://a.example.org/x https://a.example.org/x',
    });
    expect(problems).toEqual([
      {
        key: 'UNITWATCH_WEBHOOK_URL',
        message: 'ftp://files.example.org/…: scheme must be https:// (or http:// to loopback)',
      },
      {
        key: 'UNITWATCH_WEBHOOK_URL',
        message:
          'https://hooks.example.org/…: must not contain credentials (user:password@): sign with UNITWATCH_WEBHOOK_SECRET_FILE, or for ntfy put the access token in UNITWATCH_NTFY_TOKEN_FILE',
      },
      {
        key: 'UNITWATCH_WEBHOOK_URL',
        message: '"not-a-url" is not a URL (e.g. https://hooks.example.org/unitwatch)',
      },
      { key: 'UNITWATCH_WEBHOOK_URL', message: 'https://a.example.org/… is listed twice' },
      {
        key: 'UNITWATCH_WEBHOOK_URL',
        message:
          'http://hooks.example.org/… is plain http:// to a host that is not loopback: notifications would cross the network unencrypted. Use https://, or set UNITWATCH_WEBHOOK_ALLOW_HTTP=yes to accept that',
      },
    ]);
    expect(JSON.stringify(problems)).not.toContain('hunter2');
    expect(JSON.stringify(problems)).not.toContain('t0ken');
  });

  it('allows http:// to loopback always, and elsewhere only when told to', () => {
    for (const url of ['http://127.0.0.1:8080/hook', 'http://localhost/hook', 'http://[::1]:9/x']) {
      expect(
        parseConfig({ ...webhookOnly, UNITWATCH_WEBHOOK_URL: url }, outsideSystemd).webhook?.urls,
      ).toHaveLength(1);
    }
    const allowed = parseConfig(
      { ...webhookOnly, UNITWATCH_WEBHOOK_URL: 'http://hooks.lan/x', UNITWATCH_WEBHOOK_ALLOW_HTTP: 'yes' },
      outsideSystemd,
    );
    expect(allowed.webhook?.allowHttp).toBe(true);
  });

  it('refuses webhook settings without a webhook, and an ntfy token with another format', () => {
    expect(
      problemsOf({ ...minimal, UNITWATCH_WEBHOOK_FORMAT: 'slack', UNITWATCH_WEBHOOK_SECRET_FILE: '/run/s' }),
    ).toEqual([
      { key: 'UNITWATCH_WEBHOOK_FORMAT', message: 'has no use without UNITWATCH_WEBHOOK_URL' },
      { key: 'UNITWATCH_WEBHOOK_SECRET_FILE', message: 'has no use without UNITWATCH_WEBHOOK_URL' },
    ]);
    expect(problemsOf({ ...webhookOnly, UNITWATCH_NTFY_TOKEN_FILE: '/run/token' })).toEqual([
      {
        key: 'UNITWATCH_NTFY_TOKEN_FILE',
        message:
          'has no use with UNITWATCH_WEBHOOK_FORMAT=json: set UNITWATCH_WEBHOOK_FORMAT=ntfy, or remove it',
      },
    ]);
    expect(problemsOf({ ...webhookOnly, UNITWATCH_WEBHOOK_FORMAT: 'teams' })).toEqual([
      { key: 'UNITWATCH_WEBHOOK_FORMAT', message: 'must be one of json, slack, ntfy' },
    ]);
  });

  it('reads the secret and the ntfy token from files, or else from the systemd credentials', () => {
    const named = parseConfig(
      {
        ...webhookOnly,
        UNITWATCH_WEBHOOK_FORMAT: 'ntfy',
        UNITWATCH_WEBHOOK_SECRET_FILE: '/run/secrets/hook',
        UNITWATCH_NTFY_TOKEN_FILE: '/run/secrets/ntfy',
      },
      underSystemd,
    ).webhook;
    expect(named).toMatchObject({
      secretFile: '/run/secrets/hook',
      secretSource: 'file',
      tokenFile: '/run/secrets/ntfy',
      tokenSource: 'file',
    });
    const credentials = parseConfig(
      { ...webhookOnly, UNITWATCH_WEBHOOK_FORMAT: 'ntfy' },
      underSystemd,
    ).webhook;
    expect(credentials).toMatchObject({
      secretFile: '/run/credentials/unitwatch.service/webhook-secret',
      secretSource: 'credential',
      tokenFile: '/run/credentials/unitwatch.service/ntfy-token',
      tokenSource: 'credential',
    });
    // No token for formats that have none.
    expect(parseConfig(webhookOnly, underSystemd).webhook?.tokenFile).toBeUndefined();
  });

  it('prints webhooks in check-config by scheme and host only, secrets by where they come from', () => {
    const text = renderEffectiveConfig(
      parseConfig(
        {
          ...webhookOnly,
          UNITWATCH_WEBHOOK_URL: 'https://hooks.slack.com/services/T000/B000/XXXXsecret',
          UNITWATCH_WEBHOOK_FORMAT: 'slack',
        },
        underSystemd,
      ),
    );
    expect(text).toContain('# channels: webhook\n');
    expect(text).toContain('# mail is not a channel');
    expect(text).toContain(
      '# UNITWATCH_WEBHOOK_URL: https://hooks.slack.com/… (paths not shown: they may hold a token)',
    );
    expect(text).not.toContain('XXXXsecret');
    expect(text).toContain('UNITWATCH_WEBHOOK_FORMAT=slack\n');
    expect(text).toContain('the webhook secret is the systemd credential webhook-secret');
    expect(text).toContain('UNITWATCH_WEBHOOK_ALLOW_HTTP=no\nUNITWATCH_WEBHOOK_TIMEOUT=10s\n');
  });
});
