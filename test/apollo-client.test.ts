import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { StartVerificationDocument } from '../src/generated/operations.js';
import { startStack, type TestStack } from './support/stack.js';

// The typed document web clients use, generated from operations/StartVerification.graphql.
const START_VERIFICATION = StartVerificationDocument;

function client(stack: TestStack, token: string | null, links: ApolloLink[] = [], fetchImpl: typeof fetch = fetch): ApolloClient {
  return new ApolloClient({
    link: ApolloLink.from([
      ...links,
      new HttpLink({ uri: stack.url, headers: token ? { authorization: `Bearer ${token}` } : {}, fetch: fetchImpl }),
    ]),
    cache: new InMemoryCache(),
  });
}

describe('Apollo Client as the caller', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  it('gets a handoff bound to its user', async () => {
    const apollo = client(stack, await stack.token('apollo-user'));
    const { data } = await apollo.mutate({ mutation: START_VERIFICATION, variables: { input: { workflow: 'age' } } });
    const handoff = data?.startVerification;
    expect(handoff?.workflow).toBe('age');
    expect(stack.emulator.sessions.get(handoff?.sessionId ?? '')?.metadata).toEqual({ externalUserId: 'apollo-user' });
    expect(new URL(handoff?.captureUrl ?? '').searchParams.get('url')).toBe(handoff?.mobileUrl);
    expect(handoff?.qrCodeSvg).toMatch(/^<svg /);
  });

  it('sees coded errors it can branch on', async () => {
    // A gateway of its own: the platform's Retry-After holds every later call of this one.
    const busy = await startStack();
    try {
      busy.emulator.inject('device', { kind: 'status', status: 503, headers: { 'retry-after': '3' } });
      const apollo = client(busy, await busy.token('apollo-user'));
      const failure = await apollo.mutate({ mutation: START_VERIFICATION }).catch((error: unknown) => error);
      expect(CombinedGraphQLErrors.is(failure)).toBe(true);
      const [first] = (failure as CombinedGraphQLErrors).errors;
      expect(first?.extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 3 });
    } finally {
      await busy.close();
    }
  });

  it('sees UNAUTHENTICATED without a token', async () => {
    const failure = await client(stack, null)
      .mutate({ mutation: START_VERIFICATION })
      .catch((error: unknown) => error);
    // Apollo Client 4 reports GraphQL errors in a 401 body as GraphQL errors, not as a network failure.
    expect(CombinedGraphQLErrors.is(failure)).toBe(true);
    expect((failure as CombinedGraphQLErrors).errors[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('uses automatic persisted queries: the query text is sent once, then only its hash', async () => {
    // Real requests, recorded on their way out, to see what went over the wire.
    const sent: { query?: string; extensions?: { persistedQuery?: { sha256Hash: string } } }[] = [];
    const recordingFetch: typeof fetch = (input, init) => {
      sent.push(JSON.parse(String(init?.body)));
      return fetch(input, init);
    };
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const apollo = client(stack, await stack.token('apq-user'), [new PersistedQueryLink({ sha256 })], recordingFetch);
    stack.emulator.resetRecords();

    const first = await apollo.mutate({ mutation: START_VERIFICATION });
    const second = await apollo.mutate({ mutation: START_VERIFICATION });

    expect(first.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    expect(second.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    const hash = sent[0]?.extensions?.persistedQuery?.sha256Hash;
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    // Hash only → PERSISTED_QUERY_NOT_FOUND → hash and text (registered) → hash only.
    expect(sent.map((body) => [body.query !== undefined, body.extensions?.persistedQuery?.sha256Hash])).toEqual([
      [false, hash],
      [true, hash],
      [false, hash],
    ]);
    // The unknown-hash round trip never ran the mutation: exactly one session per call.
    expect(stack.emulator.callCount('session')).toBe(2);
  });
});

describe('persisted queries as Apollo Kotlin and Apollo iOS send them', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  // Apollo Kotlin sends hashed queries by GET by default. Apollo Kotlin 4 marks every GET with
  // Apollo-Require-Preflight (it dropped X-APOLLO-OPERATION-NAME, apollo-kotlin#5533); Apollo iOS
  // still adds X-APOLLO-OPERATION-NAME to every request.
  const QUERY = 'query Workflows { workflows }';
  const persistedQuery = { version: 1, sha256Hash: createHash('sha256').update(QUERY).digest('hex') };
  const hashedGet = async (headers: Record<string, string>) => {
    const url = new URL(stack.url);
    url.searchParams.set('operationName', 'Workflows');
    url.searchParams.set('extensions', JSON.stringify({ persistedQuery }));
    const response = await fetch(url, { headers: { authorization: `Bearer ${await stack.token()}`, ...headers } });
    return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] } };
  };

  it('answers a hashed GET with either mobile client\'s header, once the query is registered', async () => {
    const kotlin = { 'apollo-require-preflight': 'true' };
    const ios = { 'x-apollo-operation-name': 'Workflows' };
    for (const headers of [kotlin, ios]) {
      const unknown = await hashedGet(headers);
      expect(unknown.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    }

    const registered = await stack.post(
      { query: QUERY, operationName: 'Workflows', extensions: { persistedQuery } },
      { authorization: `Bearer ${await stack.token()}` },
    );
    expect(registered.body).toEqual({ data: { workflows: ['kyc', 'age'] } });

    for (const headers of [kotlin, ios]) {
      const hashed = await hashedGet(headers);
      expect(hashed).toEqual({ status: 200, body: { data: { workflows: ['kyc', 'age'] } } });
    }
  });

  it('refuses a GET without a non-simple header (CSRF prevention)', async () => {
    const response = await hashedGet({});
    expect(response.status).toBe(400);
    expect(response.body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });
});
