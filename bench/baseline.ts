/**
 * A bare `node:http` handler doing the same upstream calls as the gateway (bare-handoff.ts), with
 * nothing else: no GraphQL, no auth, no validation, no logging. The floor the gateway is compared
 * against. Prints one JSON line {"ready": "<url>"} on stdout once it listens.
 */
import http from 'node:http';
import { handoff, listenAndAnnounce, readBody, send } from './bare-handoff.js';

const server = http.createServer((req, res) => {
  readBody(req, (body) => {
    // Read the request as the gateway must (it is a GraphQL body here, but nothing checks it).
    JSON.parse(body);
    handoff('bench-user').then(
      (startVerification) => send(res, 200, JSON.stringify({ data: { startVerification } })),
      (error: unknown) => send(res, 502, JSON.stringify({ errors: [{ message: String(error) }] })),
    );
  });
});
listenAndAnnounce(server);
