import { describeFailure, formatRemaining } from '../demo/src/messages.js';
import { ErrorCode } from '../src/errors.js';

describe('the demo page messages', () => {
  it.each(Object.values(ErrorCode))('has its own readable message for %s, and its retryable answer', (code) => {
    const message = describeFailure({ code });
    expect(message.code).toBe(code);
    expect(message.title.length).toBeGreaterThan(10);
    expect(message.detail).toMatch(/\.$/);
    expect(message.detail).not.toContain(code);
    // The same answer the gateway sends in extensions.retryable.
    expect(message.retryable).toBe(code === 'AUTH_UNAVAILABLE' || code === 'IDV_UNAVAILABLE' || code === 'RATE_LIMITED');
  });

  it('gives every code a different message', () => {
    const titles = Object.values(ErrorCode).map((code) => describeFailure({ code }).title);
    expect(new Set(titles).size).toBe(titles.length);
  });

  it.each([
    [{ code: 'IDV_UNAVAILABLE', retryAfterSeconds: 7 }, 'Try again in 7 seconds.'],
    [{ code: 'IDV_UNAVAILABLE', retryAfterSeconds: 1 }, 'Try again in 1 second.'],
    [{ code: 'IDV_UNAVAILABLE' }, 'Try again in a moment.'],
    [{ code: 'IDV_UNAVAILABLE', retryAfterSeconds: 'soon' }, 'Try again in a moment.'],
    [{ code: 'RATE_LIMITED', retryAfterSeconds: 120 }, 'You have started several verifications in a short time. Try again in 120 seconds.'],
  ])('tells when to retry: %j', (extensions, detail) => {
    expect(describeFailure(extensions).detail).toBe(detail);
  });

  it('tells apart no answer at all and an unknown code', () => {
    expect(describeFailure(null)).toMatchObject({ code: 'NETWORK', title: "Can't reach the server", retryable: true });
    expect(describeFailure({ code: 'SOMETHING_NEW' })).toMatchObject({ code: 'SOMETHING_NEW', title: 'Something went wrong' });
    expect(describeFailure({})).toMatchObject({ code: 'INTERNAL_SERVER_ERROR' });
  });

  it.each([
    [3_600_000, '1:00:00'],
    [3_599_001, '1:00:00'],
    [3_599_000, '59:59'],
    [61_000, '1:01'],
    [9_000, '0:09'],
    [0, '0:00'],
    [-5_000, '0:00'],
    [86_400_000, '24:00:00'],
  ])('formats %d ms left as %s', (ms, text) => {
    expect(formatRemaining(ms)).toBe(text);
  });
});
