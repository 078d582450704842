import { ApolloClient, ApolloLink, CombinedGraphQLErrors, gql, HttpLink, InMemoryCache } from '@apollo/client';
import { startStack, type TestStack } from './support/stack.js';

const START_VERIFICATION = gql`
  mutation StartVerification($input: StartVerificationInput) {
    startVerification(input: $input) {
      sessionId
      captureUrl
      mobileUrl
      expiresAt
      workflow
    }
  }
`;

function client(stack: TestStack, token: string | null): ApolloClient {
  return new ApolloClient({
    link: ApolloLink.from([new HttpLink({ uri: stack.url, headers: token ? { authorization: `Bearer ${token}` } : {} })]),
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
    const handoff = (data as { startVerification: Record<string, string> }).startVerification;
    expect(handoff.__typename).toBe('Handoff');
    expect(handoff.workflow).toBe('age');
    expect(stack.emulator.sessions.get(handoff.sessionId ?? '')?.metadata).toEqual({ externalUserId: 'apollo-user' });
    expect(new URL(handoff.captureUrl ?? '').searchParams.get('url')).toBe(handoff.mobileUrl);
  });

  it('sees coded errors it can branch on', async () => {
    stack.emulator.inject('device', { kind: 'status', status: 503, headers: { 'retry-after': '3' } });
    const apollo = client(stack, await stack.token('apollo-user'));
    const failure = await apollo.mutate({ mutation: START_VERIFICATION }).catch((error: unknown) => error);
    expect(CombinedGraphQLErrors.is(failure)).toBe(true);
    const [first] = (failure as CombinedGraphQLErrors).errors;
    expect(first?.extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 3 });
  });

  it('sees UNAUTHENTICATED without a token', async () => {
    const failure = await client(stack, null)
      .mutate({ mutation: START_VERIFICATION })
      .catch((error: unknown) => error);
    // Apollo Client 4 reports GraphQL errors in a 401 body as GraphQL errors, not as a network failure.
    expect(CombinedGraphQLErrors.is(failure)).toBe(true);
    expect((failure as CombinedGraphQLErrors).errors[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
