/**
 * Apollo Server 5 over the same upstream calls as the bare baselines (bare-handoff.ts) and nothing
 * else: the gateway's schema, one resolver, no auth, no duplicate protection, no resilience, no
 * logging, no metrics; on a bare `node:http` handler that reads the body as the bare baseline does,
 * Apollo's cache-control plugin and landing page off, as in the gateway. What any gateway built on
 * Apollo Server and got costs at the least: the gateway over it is the price of its own features,
 * it over the got baseline the price of the GraphQL layer itself.
 * Prints one JSON line {"ready": "<url>"} on stdout once it listens.
 */
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { apolloRequestOf } from '../src/graphql-http.js';
import { loadTypeDefs } from '../src/schema.js';
import { handoff, listenAndAnnounce, readBody, send } from './bare-handoff.js';

const apollo = new ApolloServer({
  // Compiled into dist-bench/bench/: the schema is the project's own, two folders up.
  typeDefs: loadTypeDefs(fileURLToPath(new URL('../../schema/', import.meta.url))),
  resolvers: { Mutation: { startVerification: () => handoff('bench-user') } },
  introspection: false,
  plugins: [ApolloServerPluginCacheControlDisabled(), ApolloServerPluginLandingPageDisabled()],
});
await apollo.start();

const server = http.createServer((req, res) => {
  readBody(req, (body) => {
    // Handed to Apollo as the gateway hands it (graphql-http.ts), the parsed body on the request.
    const request: http.IncomingMessage & { body?: unknown } = req;
    request.body = JSON.parse(body) as unknown;
    apollo
      .executeHTTPGraphQLRequest({
        httpGraphQLRequest: apolloRequestOf(request, ''),
        context: () => Promise.resolve({}),
      })
      .then(
        (answer) => {
          if (answer.body.kind !== 'complete') throw new Error('expected a complete answer');
          send(res, answer.status ?? 200, answer.body.string, answer.headers.get('content-type'));
        },
      )
      .catch((error: unknown) => send(res, 502, JSON.stringify({ errors: [{ message: String(error) }] })));
  });
});
listenAndAnnounce(server);
