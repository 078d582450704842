import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Got } from 'got';
import { createUpstreamGot } from '../src/idv/client.js';

// The got instance of every upstream call (and of the benchmark's got baseline).
describe('createUpstreamGot', () => {
  let server: http.Server;
  let baseUrl: string;
  let agents: { http: http.Agent; https: https.Agent };
  let client: Got;
  const received: http.IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      received.push(req.headers);
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
    client = createUpstreamGot({ baseUrl, timeoutMs: 5000, agents });
  });

  afterAll(async () => {
    agents.http.destroy();
    agents.https.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  // got.extend freezes its defaults unless told otherwise; createUpstreamGot unfreezes them for one
  // setting and must freeze them again, so nothing can swap the headers of later calls.
  it('keeps its defaults frozen', () => {
    const own = createUpstreamGot({ baseUrl, timeoutMs: 5000, agents });
    expect(() => {
      own.defaults.options.headers = { accept: 'text/html' };
    }).toThrow(TypeError);
    expect(() => own.defaults.handlers.push((options, next) => next(options))).toThrow(TypeError);
    expect(own.defaults.options.headers.accept).toBe('application/json');
  });

  // Why it is empty: src/idv/client.ts and the README's "Where the tail comes from". A got release that filled
  // it again per request would bring back the garbage the benchmark measured; this says so first.
  it('sends each request with no cache settings to spread into its options', async () => {
    let seen: string[] | undefined;
    const response = await client.post('api/sessions', {
      json: { a: 1 },
      hooks: {
        beforeRequest: [
          (options) => {
            seen = Object.keys(options.cacheOptions);
          },
        ],
      },
    });
    expect(response.statusCode).toBe(200);
    expect(seen).toEqual([]);
    expect(received.at(-1)).toMatchObject({ accept: 'application/json', 'user-agent': 'idv-gateway', 'content-type': 'application/json' });
  });
});
