/**
 * Graceful shutdown of the HTTP listener: stop accepting connections, let the requests in flight
 * finish (each keep-alive connection is closed once its last request is answered), and after the
 * grace period close whatever is left.
 *
 * Like Apollo's ApolloServerPluginDrainHttpServer (which it replaces), but it reports what it
 * did, so the shutdown log says whether every request finished or some were cut off.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';

export interface DrainResult {
  /** Requests in flight when draining began. */
  readonly inFlight: number;
  /** Requests still unfinished when the grace period ran out (their connections were closed). */
  readonly cutOff: number;
}

/** How long a drain waits for the first request of a connection accepted just before it began. */
const FIRST_REQUEST_WAIT_MS = 1000;

export class HttpDrain {
  readonly #requestsPerSocket = new Map<Socket, number>();
  /** Responses not yet finished, to tell their clients the connection ends when draining begins. */
  readonly #unfinished = new Set<http.ServerResponse>();
  /** Bytes a connection had read when its last request was answered. */
  readonly #readWhenIdle = new WeakMap<Socket, number>();
  #draining = false;

  constructor(private readonly server: http.Server) {
    server.on('connection', (socket: Socket) => {
      this.#requestsPerSocket.set(socket, 0);
      socket.once('close', () => this.#requestsPerSocket.delete(socket));
    });
    // First, before the handlers that may answer at once: a request that arrives while draining is
    // answered with `Connection: close` too.
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket;
      this.#requestsPerSocket.set(socket, (this.#requestsPerSocket.get(socket) ?? 0) + 1);
      if (this.#draining) closingAfter(res);
      else this.#unfinished.add(res);
      res.once('close', () => this.#unfinished.delete(res));
      res.once('finish', () => {
        const pending = (this.#requestsPerSocket.get(socket) ?? 1) - 1;
        this.#requestsPerSocket.set(socket, pending);
        if (pending === 0) this.#readWhenIdle.set(socket, socket.bytesRead);
        if (this.#draining && pending === 0) socket.end();
      });
    });
  }

  /** Ends a connection that carried no request yet if none has begun arriving within `waitMs`. */
  #endIfNoRequest(socket: Socket, waitMs: number): void {
    const timer = setTimeout(() => {
      if ((this.#requestsPerSocket.get(socket) ?? 0) === 0 && socket.bytesRead === 0) socket.end();
    }, waitMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  get inFlight(): number {
    let total = 0;
    for (const count of this.#requestsPerSocket.values()) total += count;
    return total;
  }

  /**
   * From now on every answer says `Connection: close` (and its connection is ended after it), while
   * the listener still accepts: keep-alive clients retire their connections to this instance
   * themselves, after an answer, instead of having an idle one closed under a request they are
   * sending. drain() begins with it too.
   */
  announceClose(): void {
    if (this.#draining) return;
    this.#draining = true;
    // A keep-alive client (a load balancer's pool, an app's HTTP client) must not send its next
    // request on a connection that is ended once this answer is written. Told `keep-alive`, it
    // would, and that request would meet the close (a reset, a 502 from the load balancer)
    // without ever reaching a handler.
    for (const res of this.#unfinished) closingAfter(res);
    this.#unfinished.clear();
  }

  /**
   * Closes the listener at once (new connections are refused from here on), ends idle
   * connections, and resolves when every connection is closed, or closes them after `graceMs`.
   */
  async drain(graceMs: number): Promise<DrainResult> {
    this.announceClose();
    const inFlight = this.inFlight;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // A connection with no request in progress is ended now, unless a request has begun arriving
    // on it (headers on the way, bytes read since its last answer): that one is answered like any
    // request in flight, then ended as they are. A connection accepted that has not carried a
    // request yet was opened to send one (a load balancer's, just before the listener closed):
    // its request may be on the way, or read by the kernel but not yet by node. Ending it would
    // lose that request after it was sent; it gets a moment for it instead.
    for (const [socket, requests] of this.#requestsPerSocket) {
      if (requests !== 0 || socket.bytesRead !== (this.#readWhenIdle.get(socket) ?? 0)) continue;
      if (this.#readWhenIdle.has(socket)) socket.end();
      else this.#endIfNoRequest(socket, Math.min(graceMs, FIRST_REQUEST_WAIT_MS));
    }

    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(() => resolve('grace over'), graceMs);
    });
    const first = await Promise.race([closed, graceOver]);
    clearTimeout(timer);
    if (first !== 'grace over') return { inFlight, cutOff: 0 };

    const cutOff = this.inFlight;
    for (const socket of this.#requestsPerSocket.keys()) socket.destroy();
    await closed;
    return { inFlight, cutOff };
  }
}

/** Makes the answer, if it has not begun, say `Connection: close` (node then ends the connection after it). */
function closingAfter(res: http.ServerResponse): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
}
