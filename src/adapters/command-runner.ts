import { spawn } from 'node:child_process';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** Bytes beyond the cap that were read and dropped. */
  readonly truncatedBytes: number;
  /** Set when the process could not be started at all (missing binary, no permission). */
  readonly spawnError: string | undefined;
}

export interface RunOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
}

/**
 * Runs a command with a deadline and a size cap on what it prints. Never rejects: a command that
 * hangs, fails or is missing is a result the mail reports, not an exception that loses the mail.
 */
export function runCommand(argv: readonly string[], options: RunOptions): Promise<CommandResult> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    if (file === undefined) throw new TypeError('runCommand needs a command');
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let kept = 0;
    let truncatedBytes = 0;
    let timedOut = false;
    let spawnError: string | undefined;

    const child = spawn(file, args, {
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      const room = options.maxBytes - kept;
      if (room <= 0) {
        truncatedBytes += chunk.length;
        return;
      }
      const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
      into.push(piece);
      kept += piece.length;
      truncatedBytes += chunk.length - piece.length;
    };
    child.stdout?.on('data', collect(stdout));
    child.stderr?.on('data', collect(stderr));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.stdin?.on('error', () => {
      // The command may exit without reading its input; its exit status says what happened.
    });

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (error) => {
      spawnError = error.message;
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: decode(stdout),
        stderr: decode(stderr),
        exitCode,
        signal,
        timedOut,
        truncatedBytes,
        spawnError,
      });
    });
  });
}

/** Invalid UTF-8 becomes U+FFFD instead of breaking the mail; a cut multi-byte character too. */
function decode(chunks: Buffer[]): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
}
