import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './wait.js';

/** Debian's package installs the binary under this name (upstream calls it `alertmanager`). */
const BINARIES = ['prometheus-alertmanager', 'alertmanager'];

/** The first Alertmanager binary on PATH, or undefined. */
export function alertmanagerBinary(): string | undefined {
  for (const name of BINARIES) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // next name
    }
  }
  return undefined;
}

/**
 * Why the Alertmanager suite cannot run here, or undefined. With CI set, a missing binary is a
 * failure, never a skip, like a missing systemd: a green run must mean the suite ran.
 */
export function alertmanagerSkipReason(): string | undefined {
  const reason =
    alertmanagerBinary() === undefined
      ? 'no Alertmanager binary (apt-get install prometheus-alertmanager)'
      : undefined;
  const ci = process.env.CI;
  if (reason !== undefined && ci !== undefined && ci !== '' && ci !== 'false') {
    throw new Error(`CI must run the Alertmanager suite, but it cannot: ${reason}`);
  }
  if (reason !== undefined) process.stderr.write(`skipping the Alertmanager suite: ${reason}\n`);
  return reason;
}

/** Alertmanager's gettableAlert, the parts the tests read. */
export interface GettableAlert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly startsAt: string;
  readonly endsAt: string;
  readonly fingerprint: string;
  readonly status: { readonly state: string };
}

export interface AlertmanagerPeer {
  readonly url: string;
  readonly webPort: number;
  readonly clusterPort: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ClusterOptions {
  /** The test SMTP sink's port; Alertmanager's email receiver sends there. */
  readonly smtpPort: number;
  /** Where Alertmanager's receiver sends its mail. */
  readonly mailTo: string;
}

/**
 * Two real Alertmanagers clustered on loopback (each the other's `--cluster.peer`), each with its
 * own web port and storage, routing everything to an email receiver that delivers to the test SMTP
 * sink. Short group_wait/group_interval so a test sees the notification in seconds.
 */
export class AlertmanagerCluster {
  readonly peers: AlertmanagerPeer[] = [];
  readonly #options: ClusterOptions;
  readonly #processes: ChildProcess[] = [];
  readonly #output: string[] = [];
  #scratch: string | undefined;

  constructor(options: ClusterOptions) {
    this.#options = options;
  }

  /** Starts both, and resolves once both answer /-/ready and each sees a cluster of 2. */
  async start(timeoutMs = 30_000): Promise<void> {
    const binary = alertmanagerBinary();
    if (binary === undefined) throw new Error('no Alertmanager binary on PATH');
    const scratch = mkdtempSync(join(tmpdir(), 'unitwatch-alertmanager-'));
    this.#scratch = scratch;
    const configFile = join(scratch, 'alertmanager.yml');
    writeFileSync(configFile, this.#config());
    const ports = [
      { web: await freePort(), cluster: await freePort() },
      { web: await freePort(), cluster: await freePort() },
    ];
    for (const [index, port] of ports.entries()) {
      const other = ports[1 - index];
      if (other === undefined) throw new Error('two peers expected');
      const storage = join(scratch, `peer${index}`);
      const child = spawn(
        binary,
        [
          `--config.file=${configFile}`,
          `--storage.path=${storage}`,
          `--web.listen-address=127.0.0.1:${port.web}`,
          `--cluster.listen-address=127.0.0.1:${port.cluster}`,
          `--cluster.advertise-address=127.0.0.1:${port.cluster}`,
          `--cluster.peer=127.0.0.1:${other.cluster}`,
          // Quick to settle and to hand a notification over to the other peer, for a test's patience.
          '--cluster.settle-timeout=5s',
          '--cluster.peer-timeout=2s',
          '--log.level=info',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const keep = (chunk: Buffer) => {
        this.#output.push(`peer${index}: ${chunk.toString()}`);
        if (this.#output.length > 400) this.#output.shift();
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      this.#processes.push(child);
      this.peers.push({ url: `http://127.0.0.1:${port.web}`, webPort: port.web, clusterPort: port.cluster });
    }
    try {
      await waitUntil(
        'both Alertmanagers ready in a cluster of 2',
        async () => {
          for (const child of this.#processes) {
            if (child.exitCode !== null) throw new Error(`an Alertmanager exited with ${child.exitCode}`);
          }
          const states = await Promise.all(this.peers.map((peer) => this.#readyInCluster(peer)));
          return states.every(Boolean);
        },
        timeoutMs,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.output()}`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#processes.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              resolve();
              return;
            }
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    this.#processes.length = 0;
    if (this.#scratch !== undefined) rmSync(this.#scratch, { recursive: true, force: true });
  }

  /** What the Alertmanagers logged, for a failing test's message. */
  output(): string {
    return this.#output.join('');
  }

  /** `GET /api/v2/alerts` of one peer: the alerts active there (resolved ones are not listed). */
  async alerts(peer: AlertmanagerPeer): Promise<GettableAlert[]> {
    const response = await fetch(`${peer.url}/api/v2/alerts`, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`GET ${peer.url}/api/v2/alerts: ${response.status}`);
    return (await response.json()) as GettableAlert[];
  }

  async #readyInCluster(peer: AlertmanagerPeer): Promise<boolean> {
    try {
      const ready = await fetch(`${peer.url}/-/ready`, { signal: AbortSignal.timeout(2000) });
      if (!ready.ok) return false;
      const status = await fetch(`${peer.url}/api/v2/status`, { signal: AbortSignal.timeout(2000) });
      if (!status.ok) return false;
      const body = (await status.json()) as { cluster?: { status?: string; peers?: unknown[] } };
      return body.cluster?.status === 'ready' && body.cluster.peers?.length === 2;
    } catch {
      return false;
    }
  }

  #config(): string {
    return [
      'global:',
      `  smtp_smarthost: '127.0.0.1:${this.#options.smtpPort}'`,
      "  smtp_from: 'alertmanager@example.org'",
      "  smtp_hello: 'alertmanager.test'",
      '  smtp_require_tls: false',
      'route:',
      '  receiver: fleet-mail',
      "  group_by: ['alertname', 'instance']",
      '  group_wait: 1s',
      '  group_interval: 2s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: fleet-mail',
      '    email_configs:',
      `      - to: '${this.#options.mailTo}'`,
      '        send_resolved: true',
      '',
    ].join('\n');
  }
}
