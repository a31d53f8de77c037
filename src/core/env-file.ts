import type { ConfigProblem } from '../errors/config-error.js';

export interface EnvFileResult {
  readonly variables: Record<string, string>;
  readonly problems: readonly ConfigProblem[];
}

/**
 * Reads the subset of systemd's EnvironmentFile= syntax that people write by hand: `KEY=VALUE`,
 * `#`/`;` comments, single or double quotes, and `export ` prefixes copied from shell files.
 * Problems name the file and line so that `run --env-file` fails the way systemd would.
 */
export function parseEnvFile(text: string, fileName: string): EnvFileResult {
  const variables: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const withoutExport = line.replace(/^export\s+/, '');
    const equals = withoutExport.indexOf('=');
    const key = equals === -1 ? '' : withoutExport.slice(0, equals).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      problems.push({ key: `${fileName}:${index + 1}`, message: 'expected KEY=VALUE' });
      continue;
    }
    const value = unquote(withoutExport.slice(equals + 1).trim());
    if (value === undefined) {
      problems.push({
        key: `${fileName}:${index + 1}`,
        message: `unterminated quote in the value of ${key}`,
      });
      continue;
    }
    variables[key] = value;
  }
  return { variables, problems };
}

function unquote(value: string): string | undefined {
  const quote = value[0];
  if (quote !== '"' && quote !== "'") return value;
  if (value.length < 2 || !value.endsWith(quote)) return undefined;
  const inner = value.slice(1, -1);
  return quote === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner;
}
