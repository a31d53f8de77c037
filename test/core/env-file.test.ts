import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/core/env-file.js';

function variablesOf(text: string): Record<string, string> {
  const result = parseEnvFile(text, 'unitwatch.env');
  expect(result.problems).toEqual([]);
  return result.variables;
}

describe('parseEnvFile', () => {
  it('reads KEY=VALUE lines', () => {
    expect(variablesOf('UNITWATCH_TO=ops@example.org\nUNITWATCH_LOG_LEVEL=debug\n')).toEqual({
      UNITWATCH_TO: 'ops@example.org',
      UNITWATCH_LOG_LEVEL: 'debug',
    });
  });

  it('skips blank lines and # or ; comments', () => {
    expect(variablesOf('# a comment\n\n   \n; another\n  # indented\nA=1\n')).toEqual({ A: '1' });
  });

  it('keeps a # inside a value, as systemd does', () => {
    expect(variablesOf('A=#not-a-comment\nB=x # y\n')).toEqual({ A: '#not-a-comment', B: 'x # y' });
  });

  it('trims spaces around the key and the value', () => {
    expect(variablesOf('  A =  spaced out  \n')).toEqual({ A: 'spaced out' });
  });

  it('splits on the first = only', () => {
    expect(variablesOf('A=b=c\n')).toEqual({ A: 'b=c' });
  });

  it('reads an empty value as the empty string', () => {
    expect(variablesOf('A=\n')).toEqual({ A: '' });
  });

  it('accepts an export prefix copied from a shell file', () => {
    expect(variablesOf('export A=1\nexport\tB=2\n')).toEqual({ A: '1', B: '2' });
  });

  it('strips double quotes and unescapes \\" \\\\ \\$ and \\` inside them', () => {
    expect(variablesOf('A="x \\"q\\" \\\\ \\$HOME \\`id\\`"\n')).toEqual({ A: 'x "q" \\ $HOME `id`' });
  });

  it('strips single quotes and keeps everything inside literally', () => {
    expect(variablesOf("A='it is \\n $HOME'\n")).toEqual({ A: 'it is \\n $HOME' });
  });

  it('keeps spaces inside quotes', () => {
    expect(variablesOf('A="  padded  "\n')).toEqual({ A: '  padded  ' });
  });

  it('reads CRLF line endings', () => {
    expect(variablesOf('A=1\r\nB=2\r\n')).toEqual({ A: '1', B: '2' });
  });

  it('lets a later line override an earlier one', () => {
    expect(variablesOf('A=1\nA=2\n')).toEqual({ A: '2' });
  });

  it('reports a line without = with file name and line number', () => {
    const result = parseEnvFile('A=1\n\nthis is not an assignment\n', '/etc/unitwatch.env');
    expect(result.problems).toEqual([{ key: '/etc/unitwatch.env:3', message: 'expected KEY=VALUE' }]);
    expect(result.variables).toEqual({ A: '1' });
  });

  it('reports a key that is not a variable name', () => {
    const result = parseEnvFile('=value\n1A=x\nA-B=x\n', 'f.env');
    expect(result.problems).toEqual([
      { key: 'f.env:1', message: 'expected KEY=VALUE' },
      { key: 'f.env:2', message: 'expected KEY=VALUE' },
      { key: 'f.env:3', message: 'expected KEY=VALUE' },
    ]);
  });

  it('reports an unterminated quote, naming the variable', () => {
    const result = parseEnvFile('A="open\nB=\'open\nC="\n', 'f.env');
    expect(result.problems).toEqual([
      { key: 'f.env:1', message: 'unterminated quote in the value of A' },
      { key: 'f.env:2', message: 'unterminated quote in the value of B' },
      { key: 'f.env:3', message: 'unterminated quote in the value of C' },
    ]);
    expect(result.variables).toEqual({});
  });

  it('reports every bad line, not the first only', () => {
    const result = parseEnvFile('bad one\nA=1\nbad two\n', 'f.env');
    expect(result.problems.map((problem) => problem.key)).toEqual(['f.env:1', 'f.env:3']);
  });

  it('never puts the value of a bad line into a problem', () => {
    const result = parseEnvFile('UNITWATCH_SMTP_PASSWORD="hunter2\n', 'f.env');
    expect(JSON.stringify(result.problems)).not.toContain('hunter2');
  });
});
