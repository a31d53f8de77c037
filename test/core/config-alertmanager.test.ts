import { describe, expect, it } from 'vitest';
import { type ConfigContext, parseConfig, renderEffectiveConfig } from '../../src/core/config.js';
import { parseEnvFile } from '../../src/core/env-file.js';
import { ConfigError, type ConfigProblem } from '../../src/errors/config-error.js';

const context: ConfigContext = {
  hostname: 'web1',
  systemdStateDirectory: undefined,
  credentialsDirectory: undefined,
};

const minimal = {
  UNITWATCH_TO: 'ops@example.org',
  UNITWATCH_SMTP_URL: 'smtp://mail.example.org:587',
  UNITWATCH_STATE_DIRECTORY: '/var/lib/unitwatch',
};

function problemsOf(env: Record<string, string>): ConfigProblem[] {
  try {
    parseConfig(env, context);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig: Alertmanager', () => {
  it('has no Alertmanager unless UNITWATCH_ALERTMANAGER_URL is set', () => {
    expect(parseConfig(minimal, context).alertmanager).toBeUndefined();
  });

  it('reads the URLs, the static labels and the interval (1 min by default)', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_ALERTMANAGER_URL: 'http://am1:9093, http://am2:9093/',
        UNITWATCH_ALERTMANAGER_LABELS: 'env=prod team=ops',
      },
      context,
    );
    expect(config.alertmanager).toEqual({
      urls: ['http://am1:9093', 'http://am2:9093'],
      labels: { env: 'prod', team: 'ops' },
      intervalMs: 60_000,
    });
    expect(
      parseConfig(
        { ...minimal, UNITWATCH_ALERTMANAGER_URL: 'http://am1:9093', UNITWATCH_ALERTMANAGER_INTERVAL: '20s' },
        context,
      ).alertmanager?.intervalMs,
    ).toBe(20_000);
  });

  it('reports bad labels and URLs under their variable, every problem at once', () => {
    expect(
      problemsOf({
        ...minimal,
        UNITWATCH_ALERTMANAGER_URL: 'http://am1:9093/api/v2/alerts',
        UNITWATCH_ALERTMANAGER_LABELS: 'unit=x 1bad=y',
      }).map((problem) => problem.key),
    ).toEqual([
      'UNITWATCH_ALERTMANAGER_URL',
      'UNITWATCH_ALERTMANAGER_LABELS',
      'UNITWATCH_ALERTMANAGER_LABELS',
    ]);
  });

  it('keeps the interval well inside what endsAt and resolve_timeout allow', () => {
    const problems = problemsOf({
      ...minimal,
      UNITWATCH_ALERTMANAGER_URL: 'http://am1',
      UNITWATCH_ALERTMANAGER_INTERVAL: '10min',
    });
    expect(problems).toEqual([
      { key: 'UNITWATCH_ALERTMANAGER_INTERVAL', message: 'must be between 1s and 5min' },
    ]);
  });

  it('says labels or an interval without a URL lack the URL', () => {
    expect(problemsOf({ ...minimal, UNITWATCH_ALERTMANAGER_LABELS: 'env=prod' })).toEqual([
      {
        key: 'UNITWATCH_ALERTMANAGER_URL',
        message:
          "is needed by UNITWATCH_ALERTMANAGER_LABELS: set it to the Alertmanagers' URLs, or remove UNITWATCH_ALERTMANAGER_LABELS",
      },
    ]);
  });

  it('check-config output reads back to the same Alertmanager settings', () => {
    const config = parseConfig(
      {
        ...minimal,
        UNITWATCH_ALERTMANAGER_URL: 'http://am1:9093,https://am2/prefix',
        UNITWATCH_ALERTMANAGER_LABELS: 'env=prod,team=ops',
        UNITWATCH_ALERTMANAGER_INTERVAL: '30s',
      },
      context,
    );
    const text = renderEffectiveConfig(config);
    expect(text).toContain('UNITWATCH_ALERTMANAGER_LABELS=env=prod team=ops\n');
    const reread = parseEnvFile(text, 'check-config output');
    expect(reread.problems).toEqual([]);
    expect(parseConfig(reread.variables, context).alertmanager).toEqual(config.alertmanager);
  });
});
