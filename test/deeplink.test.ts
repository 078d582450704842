import { DEEPLINK_FLOWS, startFlowStack } from './support/flows.js';
import type { TestStack } from './support/stack.js';

const SESSION_ID = '68a72388660070d96275a8c2';

describe.each(DEEPLINK_FLOWS)('the one-call deeplink answer, IDV_FLOW $name', (flow) => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startFlowStack(flow);
  });
  afterAll(() => stack.close());
  beforeEach(() => {
    stack.emulator.clearFaults();
    stack.emulator.resetRecords();
  });

  it('hands the returned url over exactly, with the capture URL on its origin and the returned expiry', async () => {
    // Not what a URL parser would print (upper-case scheme and host, %7E): it must come back untouched.
    const url = `HTTPS://Phones.Example.com/idv/mobile?authorization=Token%20tr-%7Eab&sessionId=${SESSION_ID}`;
    stack.emulator.inject('deeplink', {
      kind: 'json',
      body: { url, createdAt: '2030-01-01T00:00:00Z', expiresAt: '2030-01-01T02:00:00+01:00', workflowIds: ['wf'] },
    });
    const response = await stack.startVerification();
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data.startVerification).toEqual({
      sessionId: SESSION_ID,
      mobileUrl: url,
      captureUrl: `https://phones.example.com/idv/capture?url=${encodeURIComponent(url)}`,
      expiresAt: '2030-01-01T01:00:00.000Z',
      workflow: 'kyc',
      reused: false,
    });
    expect(stack.emulator.requests.map((request) => request.step)).toEqual(['deeplink']);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a url without sessionId', { url: 'https://idv.example.com/mobile?authorization=Token%20tr-x', expiresAt: '2030-01-01T00:00:00Z' }],
    ['a url with an empty sessionId', { url: 'https://idv.example.com/mobile?sessionId=', expiresAt: '2030-01-01T00:00:00Z' }],
    ['a url with two sessionIds', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}&sessionId=other`, expiresAt: '2030-01-01T00:00:00Z' }],
    ['a relative url', { url: `/mobile?authorization=Token%20tr-x&sessionId=${SESSION_ID}`, expiresAt: '2030-01-01T00:00:00Z' }],
    ['a url that is not http(s)', { url: `javascript:alert(1)//?sessionId=${SESSION_ID}`, expiresAt: '2030-01-01T00:00:00Z' }],
    ['a url with a space', { url: `https://idv.example.com/mobile?a=b c&sessionId=${SESSION_ID}`, expiresAt: '2030-01-01T00:00:00Z' }],
    ['no url', { expiresAt: '2030-01-01T00:00:00Z' }],
    ['an unparseable expiresAt', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}`, expiresAt: 'tomorrow' }],
    ['an impossible expiresAt', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}`, expiresAt: '2030-02-30T00:00:00Z' }],
    // In UTC, the year 10000: no RFC 3339 DateTime can carry it.
    ['an expiresAt past the year 9999', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}`, expiresAt: '9999-12-31T23:30:00-01:00' }],
    ['a numeric expiresAt', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}`, expiresAt: 1893456000 }],
    ['no expiresAt', { url: `https://idv.example.com/mobile?sessionId=${SESSION_ID}` }],
  ])('refuses %s as IDV_FAILED, without falling back', async (_name, body) => {
    stack.emulator.inject('deeplink', { kind: 'json', body });
    const logStart = stack.logs.length;
    const response = await stack.startVerification();
    expect(response.body.data).toBeNull();
    expect(response.body.errors[0].extensions).toEqual({ code: 'IDV_FAILED', retryable: false });
    expect(response.text).not.toContain('idv.example.com');
    expect(stack.emulator.requests.map((request) => request.step)).toEqual(['deeplink']);
    const failure = stack.logs.slice(logStart).filter((line) => line.includes('call failed'));
    expect(failure).toHaveLength(1);
    expect(JSON.parse(failure[0] ?? '{}')).toMatchObject({ step: 'deeplink', kind: 'invalid-response' });
  });
});
