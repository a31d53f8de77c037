import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeVariables } from '../../src/core/config.js';
import { configurationDocPath, renderConfigurationDoc } from '../../src/tools/write-config-docs.js';

const context = { hostname: '<hostname>', systemdStateDirectory: undefined, credentialsDirectory: undefined };

describe('docs/configuration.md', () => {
  const committed = readFileSync(configurationDocPath, 'utf8');
  const rendered = renderConfigurationDoc();

  it('is exactly what the configuration schema generates', () => {
    // If this fails, the schema in src/core/config.ts changed: run `npm run build && npm run docs`
    // and commit docs/configuration.md.
    expect(
      committed === rendered,
      'docs/configuration.md is stale: run `npm run build && npm run docs` and commit it',
    ).toBe(true);
  });

  it('documents every variable the validator knows, with its default and an example', () => {
    for (const variable of describeVariables(context)) {
      expect(rendered, variable.name).toContain(`### ${variable.name}\n`);
      expect(rendered, variable.name).toContain(`- Example: \`${variable.name}=${variable.example}\``);
      expect(rendered, variable.name).toContain(variable.description);
    }
  });

  it('does not depend on the machine that generates it', () => {
    expect(rendered).toContain('`unitwatch@<hostname>`');
    expect(renderConfigurationDoc()).toBe(rendered);
  });

  it('explains the environment file, check-config, exit status 78 and where secrets come from', () => {
    for (const phrase of [
      'EnvironmentFile=',
      'unitwatch run --env-file FILE',
      'unitwatch check-config',
      '78',
      'UNITWATCH_SMTP_PASSWORD_FILE',
      'smtp-password',
      'LoadCredential=',
    ]) {
      expect(rendered).toContain(phrase);
    }
  });
});
