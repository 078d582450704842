import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { admission, ConnectionArrivals, type Admit } from '../src/admission.js';
import { rawConnection } from './support/raw-http.js';

/** A real server whose only handler is the door: 204 when admitted (after `holdMs`), the door's own answer when refused. */
async function serve(doorOf: (server: http.Server) => Admit, holdMs: number, server = http.createServer()): Promise<{ url: string; close: () => Promise<void> }> {
  const door = doorOf(server);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!door(req, res)) return;
    setTimeout(() => res.writeHead(204).end(), holdMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The status of one request sent over `agent` (a kept-alive connection when the agent keeps one). */
function statusOf(url: string, method: string, agent: http.Agent): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const request = http.request(url, { method, agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
    request.end();
  });
}

/** Keeps the process busy for `ms` right after each connection is accepted (while `busy()` says so), as a burst of thousands would. */
function stallOnConnection(server: http.Server, ms: number, busy: () => boolean = () => true): void {
  server.on('connection', () => {
    if (!busy()) return;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // Busy with the connections accepted before this one.
    }
  });
}

describe('the door', () => {
  it('refuses beyond the in-progress limit with 503 and IDV_UNAVAILABLE, and takes requests again as they finish', async () => {
    const door = await serve(() => admission(2), 300);
    try {
      const answers = await Promise.all(Array.from({ length: 3 }, () => fetch(door.url, { method: 'POST' })));
      expect(answers.map((answer) => answer.status).sort()).toEqual([204, 204, 503]);
      const refused = answers.find((answer) => answer.status === 503);
      expect(refused?.headers.get('retry-after')).toBe('1');
      expect(await refused?.json()).toEqual({
        errors: [{ message: expect.any(String), extensions: { code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 1 } }],
      });
      expect((await fetch(door.url, { method: 'POST' })).status).toBe(204);
    } finally {
      await door.close();
    }
  });
});

describe('queue-time shedding of new connections', () => {
  it('refuses the first request of a connection that waited too long in the process, and nothing after it', async () => {
    const server = http.createServer();
    let stall = true;
    const door = await serve((s) => admission(100, new ConnectionArrivals(s, 150)), 0, server);
    // After the door has seen the connection accepted: the process is busy, as in a burst of thousands.
    stallOnConnection(server, 300, () => stall);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = () => statusOf(door.url, 'POST', agent);
    try {
      expect(await post()).toBe(503);
      stall = false;
      // The next request on the same connection came when its client chose: admitted.
      expect(await post()).toBe(204);
      agent.destroy();
      // A new connection handled at once: admitted.
      expect((await fetch(door.url, { method: 'POST' })).status).toBe(204);
    } finally {
      agent.destroy();
      await door.close();
    }
  });

  it('judges only the first request of a connection, whatever it was for', async () => {
    const server = http.createServer();
    const door = await serve((s) => admission(100, new ConnectionArrivals(s, 150)), 0, server);
    stallOnConnection(server, 300);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string) => statusOf(door.url, method, agent);
    try {
      // A preflight is never refused; it was this connection's first request all the same.
      expect(await send('OPTIONS')).toBe(204);
      expect(await send('POST')).toBe(204);
    } finally {
      agent.destroy();
      await door.close();
    }
  });

  it('does not count the time a client took to send its first request (a preconnect), only the time the process was busy', async () => {
    const door = await serve((s) => admission(100, new ConnectionArrivals(s, 150)), 0);
    const { host } = new URL(door.url);
    try {
      const { socket, answer } = await rawConnection(door.url);
      await new Promise((resolve) => setTimeout(resolve, 400));
      socket.write(`POST /graphql HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(await answer).toMatch(/^HTTP\/1\.1 204 /);
    } finally {
      await door.close();
    }
  });

  it('never sheds on waiting when the limit is 0', async () => {
    const server = http.createServer();
    const door = await serve((s) => admission(100, new ConnectionArrivals(s, 0)), 0, server);
    stallOnConnection(server, 100);
    try {
      expect((await fetch(door.url, { method: 'POST' })).status).toBe(204);
    } finally {
      await door.close();
    }
  });
});
