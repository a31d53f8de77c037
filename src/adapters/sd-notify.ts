import { runCommand } from './command-runner.js';
import type { Logger } from './logger.js';

/**
 * Talks to systemd's notify socket through the `systemd-notify` binary, because Node cannot send on
 * an AF_UNIX datagram socket without a native addon. The unit therefore needs NotifyAccess=all; by
 * default systemd-notify waits until PID 1 has read the message, so the short-lived sender is still
 * attributed to our unit. Without NOTIFY_SOCKET (not started by systemd) every call does nothing.
 */
export class SystemdNotifier {
  readonly #logger: Logger;
  readonly #socket: string | undefined;
  readonly #binary: string;
  #lastStatus = '';

  constructor(logger: Logger, env: NodeJS.ProcessEnv = process.env, binary = 'systemd-notify') {
    this.#logger = logger;
    this.#socket = env.NOTIFY_SOCKET;
    this.#binary = binary;
  }

  get enabled(): boolean {
    return this.#socket !== undefined && this.#socket !== '';
  }

  ready(status: string): Promise<void> {
    this.#lastStatus = status;
    return this.#send(['--ready', `--status=${status}`]);
  }

  status(status: string): Promise<void> {
    if (status === this.#lastStatus) return Promise.resolve();
    this.#lastStatus = status;
    return this.#send([`--status=${status}`]);
  }

  stopping(): Promise<void> {
    return this.#send(['STOPPING=1']);
  }

  watchdog(): Promise<void> {
    return this.#send(['WATCHDOG=1']);
  }

  async #send(args: string[]): Promise<void> {
    if (!this.enabled) return;
    const result = await runCommand([this.#binary, ...args], { timeoutMs: 5000, maxBytes: 4096 });
    if (result.spawnError !== undefined || result.exitCode !== 0) {
      const reason = result.spawnError ?? (result.stderr.trim() || `exit status ${result.exitCode}`);
      const what = args[0]?.startsWith('--status=') ? 'STATUS=' : (args[0] ?? '');
      this.#logger.warn(
        { args, exitCode: result.exitCode, error: reason },
        `systemd-notify ${what} failed: ${reason}; systemd did not get it, carrying on`,
      );
    }
  }
}
