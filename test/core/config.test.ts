import { describe, expect, it } from 'vitest';
import {
  type Config,
  type ConfigContext,
  describeVariables,
  parseConfig,
  renderEffectiveConfig,
} from '../../src/core/config.js';
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
): ConfigProblem[] {
  try {
    parseConfig(env, context);
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
    const problems = problemsOf({ ...minimal, UNITWATCH_TO: 'ops@example.org, oncall, dev@example.org' });
    expect(problems).toEqual([{ key: 'UNITWATCH_TO', message: '"oncall" is not a mail address' }]);
  });

  it('reports each bad address of a list separately', () => {
    const problems = problemsOf({ ...minimal, UNITWATCH_TO: 'one, two' });
    expect(problems.map((problem) => problem.message)).toEqual([
      '"one" is not a mail address',
      '"two" is not a mail address',
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
      { key: 'UNITWATCH_FROM', message: '"a@example.org, b@example.org" is not a mail address' },
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
          message: 'scheme must be smtp:// (STARTTLS when offered) or smtps:// (TLS)',
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
      passwordFile: undefined,
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
      outsideSystemd,
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
    ['UNITWATCH_OUTPUT_LIMIT', '512', 'must be between 1024 and 16777216 bytes'],
    ['UNITWATCH_OUTPUT_LIMIT', '17M', 'must be between 1024 and 16777216 bytes'],
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
        passwordFile: undefined,
      },
      stateDirectory: '/var/lib/unitwatch',
      logLevel: 'info',
      statusLines: 20,
      commandTimeoutMs: 10_000,
      outputLimitBytes: 65_536,
      journalSettleMs: 250,
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

  it('uses no password when the URL names a user but there is neither a file nor a credentials directory', () => {
    const config = parseConfig(
      { ...minimal, UNITWATCH_SMTP_URL: 'smtp://alerts@mail.example.org' },
      outsideSystemd,
    );
    expect(config.transport).toMatchObject({ user: 'alerts', passwordFile: undefined });
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
        'UNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/unitwatch-smtp  # contents not shown',
        'UNITWATCH_STATE_DIRECTORY=/var/lib/unitwatch',
        'UNITWATCH_HOSTNAME=web1',
        'UNITWATCH_LOG_LEVEL=info',
        'UNITWATCH_STATUS_LINES=20',
        'UNITWATCH_COMMAND_TIMEOUT=2min',
        'UNITWATCH_OUTPUT_LIMIT=65536',
        'UNITWATCH_JOURNAL_SETTLE=250ms',
      ]),
    );
    expect(text.endsWith('\n')).toBe(true);
  });

  it('mentions every documented variable except the unused transport', () => {
    for (const { name } of describeVariables(underSystemd)) {
      if (name === 'UNITWATCH_SENDMAIL') continue;
      expect(text, name).toContain(name);
    }
  });

  it('names the password file but holds no secret', () => {
    // Config never carries the password itself; the rendering can only show where it comes from.
    expect(Object.keys(config.transport)).not.toContain('password');
    expect(text).toContain('UNITWATCH_SMTP_PASSWORD_FILE=/run/secrets/unitwatch-smtp');
    expect(text).toContain('# contents not shown');
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

  it('prints a configuration that parses back to the same Config', () => {
    const context = { ...underSystemd, hostname: 'web1.example.org' };
    const original = parseConfig(
      {
        UNITWATCH_TO: 'ops@example.org,dev@example.org',
        UNITWATCH_SMTP_URL: 'smtps://alerts@mail.example.org:465',
        UNITWATCH_SMTP_PASSWORD_FILE: '/run/secrets/unitwatch-smtp',
        UNITWATCH_COMMAND_TIMEOUT: '2min',
      },
      context,
    );
    const env = Object.fromEntries(
      renderEffectiveConfig(original)
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('#'))
        .map((line) => {
          const [key = '', value = ''] = line.replace(/\s+#.*$/, '').split(/=(.*)/);
          return [key, value];
        }),
    );
    expect(parseConfig(env, context)).toEqual(original);
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
      const problems = problemsOf({ [variable.name]: variable.example });
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
