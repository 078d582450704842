import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { ErrorCode } from './errors.js';
import { sendGraphqlErrors } from './http-answers.js';

export const OVERLOAD_MESSAGE = 'The identity verification service is busy. Retry in a moment.';

/** Takes a slot for the request until its response ends; false when refused (the 503 is sent). */
export type Admit = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Load shedding at the door: at most `limit` GraphQL requests in progress in this process (the
 * bulkhead's slots plus its queue, see idv/upstream-guard.ts). Beyond that a request is answered
 * at once, before its body is read, its token verified or its document validated: the cheapest
 * refusal there is. Without it, a burst of thousands queues in the event loop, where every
 * refusal still costs a full GraphQL request, and answers arrive long after the deadline.
 */
export function admission(limit: number, arrivals?: ConnectionArrivals): Admit {
  let inProgress = 0;
  return (req, res) => {
    // CORS preflights cost nothing and must keep answering.
    if (req.method === 'OPTIONS') return true;
    if (inProgress >= limit || arrivals?.waitedTooLong(req)) {
      refuse(res);
      return false;
    }
    inProgress += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inProgress -= 1;
    };
    res.once('finish', release);
    res.once('close', release);
    return true;
  };
}

/**
 * How long a new connection's first request waited inside this process, between the connection
 * being accepted and the request reaching the door. A burst of thousands of new connections is
 * accepted at once and then handled one after another; once the wait is long, the request is
 * refused at once (cheap) rather than run (dear), so the backlog drains within the deadline
 * instead of every later request growing later still (queue-time shedding, as in CoDel).
 * The wait is the event loop's busy time since the accept, not the wall time: a client that
 * connects early (a browser's preconnect, a pool warming up) and sends later waited on itself.
 * Only first requests count: a keep-alive connection's next request may come whenever its client likes.
 */
export class ConnectionArrivals {
  readonly #acceptedAt = new WeakMap<Socket, EventLoopUtilization>();
  readonly #late = new WeakSet<IncomingMessage>();

  /** Make it before the server's request handler is added: it judges each request as it arrives. */
  constructor(server: Server, maxWaitMs: number) {
    if (maxWaitMs <= 0) return;
    server.on('connection', (socket: Socket) => this.#acceptedAt.set(socket, performance.eventLoopUtilization()));
    // Every first request settles its connection, whatever route it is for.
    server.on('request', (req: IncomingMessage) => {
      const acceptedAt = this.#acceptedAt.get(req.socket);
      if (acceptedAt === undefined) return;
      this.#acceptedAt.delete(req.socket);
      if (performance.eventLoopUtilization(acceptedAt).active > maxWaitMs) this.#late.add(req);
    });
  }

  waitedTooLong(req: IncomingMessage): boolean {
    return this.#late.has(req);
  }
}

function refuse(res: ServerResponse): void {
  res.setHeader('retry-after', '1');
  sendGraphqlErrors(res, 503, {
    errors: [{ message: OVERLOAD_MESSAGE, extensions: { code: ErrorCode.IDV_UNAVAILABLE, retryable: true, retryAfterSeconds: 1 } }],
  });
}
