import { describe, expect, it } from 'vitest';
import { runCommand } from '../../src/adapters/command-runner.js';

const LIMITS = { timeoutMs: 5000, maxBytes: 1000 };

describe('runCommand: capped, time-limited, never rejects', () => {
  it('returns what the command printed and its exit status', async () => {
    const result = await runCommand(['sh', '-c', 'echo out; echo err >&2; exit 3'], LIMITS);
    expect(result).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 3, timedOut: false });
    expect(result.spawnError).toBeUndefined();
  });

  it('keeps at most maxBytes of output and counts the rest', async () => {
    const result = await runCommand(['sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" x'], LIMITS);
    expect(result.stdout).toHaveLength(1000);
    expect(result.truncatedBytes).toBe(4000);
  });

  it('kills a command that hangs and says it timed out', async () => {
    const result = await runCommand(['sleep', '30'], { ...LIMITS, timeoutMs: 200 });
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
  });

  it('resolves with the reason for a command that does not exist', async () => {
    const result = await runCommand(['/nonexistent/systemctl', 'status'], LIMITS);
    expect(result.spawnError).toContain('ENOENT');
    expect(result.exitCode).not.toBe(0);
  });

  it('turns invalid UTF-8 into U+FFFD instead of failing', async () => {
    const result = await runCommand(['printf', 'a\\377b'], LIMITS);
    expect(result.stdout).toBe('a\uFFFDb');
  });

  it('passes input on stdin', async () => {
    const result = await runCommand(['cat'], { ...LIMITS, input: 'piped' });
    expect(result.stdout).toBe('piped');
  });
});
