import type { FlightCodec } from '../../src/state/flight.js';
import type { IdvEmulator } from '../../src/emulator/index.js';
import type { GraphQLResponse, TestStack } from './stack.js';

/** Waits until `condition` holds, polling; fails after `timeoutMs` (a bound, never an assertion on timing). */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** How many of a stack's log lines carry this message. */
export function logCount(stack: TestStack, message: string): number {
  return stack.logs.filter((line) => (JSON.parse(line) as { msg?: string }).msg === message).length;
}

/** Flight values that are already text, as the single-flight tests use. */
export const TEXT: FlightCodec<string> = { encode: (value) => value, decode: (stored) => stored };

export const JOINED = 'joined an identical start in flight on this instance';
export const FOLLOWING = 'waiting for an identical start in flight on another instance';

/** A promise the test settles itself: holds an upstream call open (the emulator's `hold` fault). */
export function gate(): { until: Promise<void>; open: () => void } {
  let open!: () => void;
  const until = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { until, open };
}

export function handoffOf(response: GraphQLResponse) {
  if (!response.body?.data?.startVerification) throw new Error(`expected a handoff, got ${response.text}`);
  return response.body.data.startVerification as { sessionId: string; mobileUrl: string; captureUrl: string; expiresAt: string; workflow: string; reused: boolean };
}

export function errorOf(response: GraphQLResponse) {
  if (!response.body?.errors?.[0]) throw new Error(`expected an error, got ${response.text}`);
  return response.body.errors[0] as { message: string; extensions: Record<string, unknown> };
}

/** Every response is the same handoff, new to exactly one of them, from one device and one session call. */
export function expectOneSession(responses: readonly GraphQLResponse[], emulator: IdvEmulator): void {
  const handoffs = responses.map(handoffOf);
  expect(new Set(handoffs.map((handoff) => handoff.sessionId)).size).toBe(1);
  expect(handoffs.filter((handoff) => !handoff.reused)).toHaveLength(1);
  expect(emulator.callCount('device')).toBe(1);
  expect(emulator.callCount('session')).toBe(1);
}
