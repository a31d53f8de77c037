import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The exact body bytes as text, as a signature is computed over them. */
  readonly body: string;
  /** The status it was answered with. */
  readonly status: number;
  readonly receivedAtMs: number;
}

export interface ScriptedAnswer {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Never answer (until stop()): a receiver that hangs. */
  readonly hang?: boolean;
}

/**
 * A real HTTP server on loopback that records every request and answers from a script (then 200
 * for ever). The systemd instance shares the host's network, so unitwatch inside reaches it at
 * 127.0.0.1, as it reaches the SMTP sink.
 */
export class HttpSink {
  readonly requests: ReceivedRequest[] = [];
  /** Answers to give in order; when empty, `fallback`. */
  readonly script: ScriptedAnswer[] = [];
  fallback: ScriptedAnswer = { status: 200, body: 'ok' };
  /** Called with each request's body as it arrives, before it is answered (fault injection). */
  onRequest: ((body: string) => void) | undefined;
  /** Requests that were left hanging. */
  readonly hung: string[] = [];
  #server: Server | undefined;
  #port = 0;

  get port(): number {
    return this.#port;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.#port}${path}`;
  }

  /** Listens on `port` (0 picks one); starting again after stop() on the old port models an outage. */
  async start(port = 0): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.onRequest?.(body);
        const answer = this.script.shift() ?? this.fallback;
        if (answer.hang === true) {
          this.hung.push(body);
          return;
        }
        this.requests.push({
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body,
          status: answer.status,
          receivedAtMs: Date.now(),
        });
        response.writeHead(answer.status, answer.headers);
        response.end(answer.body ?? '');
      });
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.#port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Requests answered 2xx. */
  accepted(): ReceivedRequest[] {
    return this.requests.filter((request) => request.status >= 200 && request.status < 300);
  }

  /** Waits until `predicate` holds for the requests so far; throws with what did arrive. */
  async waitFor(
    predicate: (requests: readonly ReceivedRequest[]) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.requests)) {
      if (Date.now() > deadline) {
        const seen = this.requests.map((request) => `${request.status} ${request.body.slice(0, 120)}`);
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; received:\n  ${seen.join('\n  ')}`,
        );
      }
      await sleep(20);
    }
  }
}
