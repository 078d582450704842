import { SignJWT, UnsecuredJWT } from 'jose';
import { FAULTS } from './support/faults.js';
import { FLOWS, startFlowStack } from './support/flows.js';
import { START_VERIFICATION, TEST_API_KEY, TEST_JWT_SECRET, type GraphQLResponse } from './support/stack.js';

const HANDOFF_FIELDS = ['mobileUrl', 'captureUrl'] as const;

/**
 * Every scenario of the suite (success, every upstream fault at every step, every auth failure,
 * bad input) against one gateway, with every log line and every response captured. The API key,
 * each issued ephemeral token and each caller's bearer token may appear nowhere, except the
 * ephemeral token inside the handoff URLs of its own caller's successful response.
 */
describe.each(FLOWS)('no secret leaks, IDV_FLOW $name', (flow) => {
  it('holds across success, upstream faults, auth failures and bad input', async () => {
    const stack = await startFlowStack(flow, { IDV_TIMEOUT_MS: '300', LOG_LEVEL: 'trace', IDV_BREAKER_FAILURES: '10000' });
    const responses: GraphQLResponse[] = [];
    const bearers: string[] = [];
    const call = async (token: string | null, workflow?: string) => {
      if (token !== null) bearers.push(token);
      const response = await stack.startVerification({ token, ...(workflow === undefined ? {} : { workflow }) });
      responses.push(response);
      return response;
    };
    try {
      for (const user of ['leak-a', 'leak-b', 'leak-c']) await call(await stack.token(user));
      for (const step of flow.steps) {
        for (const [, fault] of FAULTS) {
          stack.emulator.inject(step, fault, Infinity);
          await call(await stack.token(`fault-${step}`));
          stack.emulator.clearFaults();
        }
      }
      const secret = new TextEncoder().encode(TEST_JWT_SECRET);
      await call(null);
      await call(await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(secret));
      await call(await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(40))));
      await call(new UnsecuredJWT({ sub: 'x' }).setExpirationTime('5m').encode());
      await call(await new SignJWT({ name: 'no-subject' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(secret));
      await call(await stack.token('bad-input'), 'no-such-workflow');
      const malformed = await stack.post({ query: START_VERIFICATION, variables: { input: { workflow: 7 } } }, { authorization: `Bearer ${bearers[0]}` });
      responses.push(malformed);
    } finally {
      await stack.close();
    }

    const issued = stack.emulator.issuedTokens();
    expect(issued.length).toBeGreaterThanOrEqual(3);
    // The distinctive part of each secret, found in any of its encodings (raw, %20, %2520).
    const tokenSecrets = issued.map((token) => token.replace(/^Token /, ''));
    const bearerSecrets = bearers.flatMap((bearer) => [bearer, bearer.split('.')[2] ?? bearer]).filter((value) => value.length > 20);
    const secrets = [TEST_API_KEY, ...tokenSecrets, ...bearerSecrets];

    // Collected, then asserted once: a leak report names where each secret was seen.
    const leaks: string[] = [];
    const check = (where: string, text: string) => {
      for (const value of secrets) if (text.includes(value)) leaks.push(`${where}: …${value.slice(-12)}`);
    };
    const log = stack.logs.join('');
    expect(log.length).toBeGreaterThan(0);
    check('log', log);

    let handoffs = 0;
    for (const response of responses) {
      const handoff = response.body?.data?.startVerification;
      let visible = response.text;
      if (handoff) {
        handoffs += 1;
        // The caller's own handoff URLs carry their token: that is the one allowed place.
        for (const field of HANDOFF_FIELDS) visible = visible.split(JSON.stringify(handoff[field])).join('""');
        expect(tokenSecrets.filter((token) => JSON.stringify(handoff).includes(token))).toHaveLength(1);
      }
      check(`response ${responses.indexOf(response)}`, visible);
      check(`headers of response ${responses.indexOf(response)}`, [...response.headers.values()].join('\n'));
    }
    expect(leaks).toEqual([]);
    expect(handoffs).toBe(3);
  });
});
