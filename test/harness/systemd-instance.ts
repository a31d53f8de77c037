import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const bootScript = fileURLToPath(new URL('./boot-systemd.sh', import.meta.url));
const SYSTEMD = '/lib/systemd/systemd';

/**
 * Why the real-systemd suite cannot run here, or undefined when it can. CI must not accept a skip:
 * see `requireRealSystemd`.
 */
export function realSystemdUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (booting systemd in a namespace needs root)';
  if (!existsSync(SYSTEMD)) return `${SYSTEMD} is missing`;
  for (const tool of ['unshare', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is missing`;
    }
  }
  return undefined;
}

/** In CI a missing prerequisite is a failure, not a skip: a green run must mean the suite ran. */
export function integrationSkipReason(): string | undefined {
  const reason = realSystemdUnavailableReason();
  if (
    reason !== undefined &&
    process.env.CI !== undefined &&
    process.env.CI !== '' &&
    process.env.CI !== 'false'
  ) {
    throw new Error(`CI must run the real-systemd integration suite, but it cannot: ${reason}`);
  }
  if (reason !== undefined) process.stderr.write(`skipping the real-systemd suite: ${reason}\n`);
  return reason;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

/**
 * A genuine systemd booted as PID 1 of its own PID and mount namespace (see boot-systemd.sh), with
 * its own system bus and journal. Everything is driven from outside with nsenter.
 */
export class SystemdInstance {
  readonly pid: number;
  readonly #launcher: ChildProcess;
  readonly #scratch: string;
  readonly #cgroupName: string;

  private constructor(pid: number, launcher: ChildProcess, scratch: string, cgroupName: string) {
    this.pid = pid;
    this.#launcher = launcher;
    this.#scratch = scratch;
    this.#cgroupName = cgroupName;
  }

  static async boot(bindDirectories: readonly string[] = [repoRoot]): Promise<SystemdInstance> {
    const scratch = mkdtempSync(join(tmpdir(), 'unitwatch-systemd-'));
    const cgroupName = `unitwatch-test-${process.pid}-${Date.now().toString(36)}`;
    const launcher = spawn(
      'unshare',
      [
        '--pid',
        '--fork',
        '--mount',
        '--propagation',
        'private',
        'bash',
        bootScript,
        scratch,
        cgroupName,
        ...bindDirectories,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const launcherPid = launcher.pid;
    if (launcherPid === undefined) throw new Error('could not start unshare');
    let pid: number | undefined;
    const deadline = Date.now() + 30_000;
    while (pid === undefined && Date.now() < deadline) {
      if (launcher.exitCode !== null) throw new Error(`systemd boot script exited with ${launcher.exitCode}`);
      pid = childPid(launcherPid);
      if (pid === undefined) await sleep(20);
    }
    if (pid === undefined) throw new Error('systemd did not start within 30 s');
    const instance = new SystemdInstance(pid, launcher, scratch, cgroupName);
    await instance.#waitUntilBooted(deadline);
    return instance;
  }

  /** Runs a command inside the instance's namespaces. Never throws on a non-zero exit. */
  exec(argv: readonly string[], input?: string): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', ['-t', String(this.pid), '-m', '-p', '--', ...argv], {
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ stdout, stderr, code }));
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  /** Like exec, but a non-zero exit is an error that shows what the command printed. */
  async run(argv: readonly string[], input?: string): Promise<string> {
    const result = await this.exec(argv, input);
    if (result.code !== 0) {
      throw new Error(`${argv.join(' ')} exited with ${result.code}:\n${result.stdout}\n${result.stderr}`);
    }
    return result.stdout;
  }

  async writeFile(path: string, content: string, mode = '0644'): Promise<void> {
    await this.run(
      ['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', 'sh', path, mode],
      content,
    );
  }

  async systemctl(...args: string[]): Promise<string> {
    return this.run(['systemctl', '--no-pager', ...args]);
  }

  async property(unit: string, name: string): Promise<string> {
    return (await this.run(['systemctl', 'show', '--value', `--property=${name}`, '--', unit])).trim();
  }

  async journal(...args: string[]): Promise<string> {
    return this.run(['journalctl', '--no-pager', ...args]);
  }

  async poweroff(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.#launcher.exitCode !== null) resolve();
      else this.#launcher.once('exit', () => resolve());
    });
    await this.exec(['systemctl', 'poweroff', '--no-block']).catch(() => undefined);
    const stopped = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
    if (!stopped) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
    removeCgroups(this.#cgroupName);
    rmSync(this.#scratch, { recursive: true, force: true });
  }

  async #waitUntilBooted(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const state = await this.exec(['systemctl', 'is-system-running']).catch(() => undefined);
      const answer = state?.stdout.trim();
      if (answer === 'running' || answer === 'degraded') return;
      await sleep(50);
    }
    throw new Error('systemd did not finish booting within 30 s');
  }
}

function childPid(parent: number): number | undefined {
  try {
    const children = execFileSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const pid = Number(children[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** systemd removes its own sub-cgroups on the way down; whatever it left, and our root, go here. */
function removeCgroups(name: string): void {
  const removeTree = (path: string) => {
    if (!existsSync(path)) return;
    for (const entry of readdirSync(path)) {
      const child = join(path, entry);
      if (statSync(child).isDirectory()) removeTree(child);
    }
    try {
      rmdirSync(path);
    } catch {
      // a cgroup still holding a process cannot go; it is empty once that process exits
    }
  };
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) removeTree(join('/sys/fs/cgroup', hierarchy, name));
}
