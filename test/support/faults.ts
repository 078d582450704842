import type { Fault } from '../../src/emulator/index.js';

export interface Expected {
  readonly code: 'IDV_UNAVAILABLE' | 'IDV_FAILED';
  readonly retryAfterSeconds?: number;
  /** Whether the ephemeral-device call is retried on it (the session and deeplink calls never are). */
  readonly retried: boolean;
}
const unavailable: Expected = { code: 'IDV_UNAVAILABLE', retried: true };
const failed: Expected = { code: 'IDV_FAILED', retried: false };

/**
 * The README's error table, as the emulator produces each case: what the client gets when the
 * platform keeps answering so, and whether the device call is retried before that answer.
 */
export const FAULTS: [string, Fault, Expected][] = [
  ['500', { kind: 'status', status: 500, body: 'Internal Server Error' }, unavailable],
  ['502', { kind: 'status', status: 502, body: '<html>Bad Gateway</html>' }, unavailable],
  ['503', { kind: 'status', status: 503 }, unavailable],
  // A Retry-After longer than the gateway waits out is passed on to the client instead.
  ['503 with Retry-After: 7', { kind: 'status', status: 503, headers: { 'retry-after': '7' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 7, retried: false }],
  ['429 with Retry-After: 30', { kind: 'status', status: 429, body: { message: 'Too many requests' }, headers: { 'retry-after': '30' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 30, retried: false }],
  ['429 without Retry-After', { kind: 'status', status: 429 }, unavailable],
  ['timeout (no answer)', { kind: 'hang' }, unavailable],
  ['connection reset before the answer', { kind: 'reset' }, unavailable],
  ['connection reset after the response head (truncated body)', { kind: 'truncated' }, unavailable],
  ['400', { kind: 'status', status: 400, body: { message: 'Bad request' } }, failed],
  ['401', { kind: 'status', status: 401, body: { message: 'Unauthorized' } }, failed],
  ['403', { kind: 'status', status: 403, body: 'Forbidden' }, failed],
  ['404', { kind: 'status', status: 404, body: { message: 'Not found' } }, failed],
  ['405', { kind: 'status', status: 405, body: { message: 'Method Not Allowed' } }, failed],
  ['302 redirect', { kind: 'status', status: 302, headers: { location: 'https://elsewhere.example.com/' } }, failed],
  ['HTML instead of JSON', { kind: 'html' }, failed],
  ['JSON without the expected fields', { kind: 'json', body: { status: 0 } }, failed],
  ['JSON that is not an object', { kind: 'json', body: ['Token tr-x'] }, failed],
  ['a field of the wrong type', { kind: 'json', body: { authorization: 42, id: 42, url: 42, expiresAt: 42 } }, failed],
  [
    'a value that cannot be used in a header or URL',
    { kind: 'json', body: { authorization: 'Token\r\nx: y', id: 'a\nb', url: 'https://idv.example.com/mobile?sessionId=a\nb', expiresAt: '2030-01-01T00:00:00Z' } },
    failed,
  ],
  ['a 10 MB body', { kind: 'oversized', bytes: 10 * 1024 * 1024 }, failed],
];
