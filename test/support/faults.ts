import type { Fault } from '../../src/emulator/index.js';

export type Expected = { code: 'IDV_UNAVAILABLE' | 'IDV_FAILED'; retryAfterSeconds?: number };
const unavailable: Expected = { code: 'IDV_UNAVAILABLE' };
const failed: Expected = { code: 'IDV_FAILED' };

// The README's error table, as the emulator produces each case. Every row is run for every
// upstream step of every flow.
export const FAULTS: [string, Fault, Expected][] = [
  ['500', { kind: 'status', status: 500, body: 'Internal Server Error' }, unavailable],
  ['502', { kind: 'status', status: 502, body: '<html>Bad Gateway</html>' }, unavailable],
  ['503', { kind: 'status', status: 503 }, unavailable],
  ['503 with Retry-After', { kind: 'status', status: 503, headers: { 'retry-after': '7' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 7 }],
  ['429 with Retry-After', { kind: 'status', status: 429, body: { message: 'Too many requests' }, headers: { 'retry-after': '30' } }, { code: 'IDV_UNAVAILABLE', retryAfterSeconds: 30 }],
  ['429 without Retry-After', { kind: 'status', status: 429 }, unavailable],
  ['timeout (no answer)', { kind: 'hang' }, unavailable],
  ['connection reset before the answer', { kind: 'reset' }, unavailable],
  ['connection reset mid-body', { kind: 'truncated' }, unavailable],
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
];
