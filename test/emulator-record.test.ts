import { startStack, type TestStack } from './support/stack.js';

// The benchmark runs the emulator with `record: false` so that its memory and cost per call stay
// flat under load; both flows must still work end to end without the records.
describe.each(['ephemeral', 'deeplink'])('the emulator with record: false (IDV_FLOW=%s)', (flow) => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ IDV_FLOW: flow }, { record: false });
  });
  afterAll(() => stack.close());

  it('still answers every flow, and keeps no request log, no session and no used token', async () => {
    for (let i = 0; i < 3; i++) {
      const { body } = await stack.startVerification();
      expect(body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
    }
    expect(stack.emulator.requests).toHaveLength(0);
    expect(stack.emulator.sessions.size).toBe(0);
    expect(stack.emulator.callCount(flow === 'deeplink' ? 'deeplink' : 'session')).toBe(3);
    // A used (or never stored) token no longer opens the hosted page.
    const { body } = await stack.startVerification();
    const page = await fetch(body.data.startVerification.mobileUrl);
    expect(page.status).toBe(401);
  });
});
