import type { EmulatedStep, EmulatorOptions, RecordedRequest } from '../../src/emulator/index.js';
import { startStack, TEST_API_KEY, type TestStack } from './stack.js';

/**
 * The upstream flows the gateway can run (IDV_FLOW), each with the platform it runs against. The
 * acceptance tests run once per row, so every flow is held to the same guarantees.
 */
export interface FlowCase {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
  readonly emulator: Partial<EmulatorOptions>;
  /** The upstream calls one mutation makes, in order, once the flow is settled. */
  readonly steps: readonly EmulatedStep[];
}

export const FLOWS: readonly FlowCase[] = [
  { name: 'ephemeral (default)', env: {}, emulator: {}, steps: ['device', 'session'] },
  { name: 'deeplink', env: { IDV_FLOW: 'deeplink' }, emulator: {}, steps: ['deeplink'] },
  { name: 'auto, on a platform with the deeplink', env: { IDV_FLOW: 'auto' }, emulator: {}, steps: ['deeplink'] },
  { name: 'auto, on an older platform', env: { IDV_FLOW: 'auto' }, emulator: { deeplink: false }, steps: ['device', 'session'] },
];

/** The flows whose sessions come from the one-call deeplink. */
export const DEEPLINK_FLOWS = FLOWS.filter((flow) => flow.steps.includes('deeplink'));

/** Every step that reaches the platform's API (the health probe aside). */
export const API_STEPS: readonly EmulatedStep[] = ['device', 'session', 'deeplink'];

/**
 * A stack running this flow. With IDV_FLOW=auto one mutation is made first, so the flow is
 * decided and every later mutation is steady-state; auto's first calls are tested on their own.
 */
export async function startFlowStack(flow: FlowCase, env: Record<string, string> = {}, emulator: Partial<EmulatorOptions> = {}): Promise<TestStack> {
  const stack = await startStack({ ...flow.env, ...env }, { ...flow.emulator, ...emulator });
  if (flow.env.IDV_FLOW === 'auto') {
    const first = await stack.startVerification();
    if (!first.body?.data?.startVerification) {
      await stack.close();
      throw new Error(`IDV_FLOW=auto could not settle: ${first.text}`);
    }
    stack.emulator.resetRecords();
  }
  return stack;
}

export interface ExpectedUpstream {
  readonly userId: string;
  readonly workflowId: string;
  readonly ttl: number;
  /** The locale the platform must receive; undefined when none may be sent. */
  readonly locale?: string;
  /** The session's token, which the two-step flow sends on its second call. */
  readonly token: string | undefined;
  /** IDV_API_KEY_SCHEME, when the test sets one. */
  readonly apiKeyScheme?: string;
}

/** Asserts the exact requests one mutation sent upstream in this flow, per ../shared/idv-contract.md. */
export function expectContractRequests(flow: FlowCase, requests: readonly RecordedRequest[], expected: ExpectedUpstream): void {
  expect(requests.map((request) => request.step)).toEqual(flow.steps);
  // The contract: the device call sends the bare key unless a scheme is set; the deeplink call "ApiKey <key>".
  const deviceAuthorization = expected.apiKeyScheme ? `${expected.apiKeyScheme} ${TEST_API_KEY}` : TEST_API_KEY;
  const deeplinkAuthorization = `${expected.apiKeyScheme ?? 'ApiKey'} ${TEST_API_KEY}`;
  const locale = expected.locale === undefined ? {} : { locale: expected.locale };
  for (const request of requests) {
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toMatch(/^application\/json/);
    const body: unknown = JSON.parse(request.body);
    switch (request.step) {
      case 'device':
        expect(request).toMatchObject({ path: '/api/device/ephemeral', query: {} });
        expect(request.headers.authorization).toBe(deviceAuthorization);
        expect(body).toEqual({ ttl: expected.ttl });
        break;
      case 'session':
        expect(request).toMatchObject({ path: '/api/sessions', query: { workflowId: expected.workflowId } });
        expect(request.headers.authorization).toBe(expected.token);
        expect(body).toEqual({ metadata: { externalUserId: expected.userId }, ...locale });
        break;
      case 'deeplink':
        expect(request).toMatchObject({ path: '/api/v1/deeplink', query: { workflowId: expected.workflowId } });
        expect(request.headers.authorization).toBe(deeplinkAuthorization);
        expect(body).toEqual({ metadata: { externalUserId: expected.userId }, ttl: expected.ttl, ...locale });
        break;
      default:
        throw new Error(`unexpected upstream request: ${request.method} ${request.path}`);
    }
  }
}
