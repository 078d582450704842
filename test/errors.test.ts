import { ApolloServer } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { GatewayContext } from '../src/context.js';
import { ErrorCode, INTERNAL_ERROR_MESSAGE, gatewayError, logUnexpectedErrors, maskError } from '../src/errors.js';
import { GatewayMetrics } from '../src/metrics.js';
import { operationObserver } from '../src/operation-log.js';
import { parseRetryAfter } from '../src/idv/client.js';
import { IdvError, mayHaveCreatedSession } from '../src/idv/platform.js';
import { toClientError } from '../src/verification.js';
import { capturingLogger } from './support/log-capture.js';

describe('maskError', () => {
  it.each([
    ['UNAUTHENTICATED', false],
    ['AUTH_UNAVAILABLE', true],
    ['BAD_USER_INPUT', false],
    ['IDV_UNAVAILABLE', true],
    ['IDV_FAILED', false],
    ['RATE_LIMITED', true],
    ['GRAPHQL_PARSE_FAILED', false],
    ['GRAPHQL_VALIDATION_FAILED', false],
    ['BAD_REQUEST', false],
    ['PERSISTED_QUERY_NOT_FOUND', false],
  ])('passes %s through with retryable=%s', (code, retryable) => {
    const { logger, lines } = capturingLogger();
    const masked = maskError({ message: 'what to do', extensions: { code } }, undefined, logger);
    expect(masked).toEqual({ message: 'what to do', extensions: { code, retryable } });
    expect(lines).toEqual([]);
  });

  it('keeps extra extensions such as retryAfterSeconds', () => {
    const { logger } = capturingLogger();
    const masked = maskError({ message: 'm', extensions: { code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 5 } }, undefined, logger);
    expect(masked.extensions).toEqual({ code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 5 });
  });

  it.each([
    ['an unexpected error', { message: 'Cannot read properties of undefined (reading "x") at /srv/app.js', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    ['an unknown code', { message: 'connect ECONNREFUSED 10.0.0.5:443', extensions: { code: 'DOWNSTREAM_SERVICE_ERROR' } }],
    ['no code at all', { message: 'secret internals', path: ['startVerification'] }],
  ])('masks %s and logs its cause', (_name, formatted) => {
    const { logger, lines } = capturingLogger();
    const masked = maskError(formatted, new Error(formatted.message), logger);
    expect(masked.message).toBe(INTERNAL_ERROR_MESSAGE);
    expect(masked.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', retryable: false });
    expect(JSON.stringify(masked)).not.toContain(formatted.message);
    expect(lines.join('')).toContain(JSON.stringify(formatted.message).slice(1, -1));
  });
});

describe('logUnexpectedErrors', () => {
  it('logs the unexpected ones with the request id, and maskError then does not log them again', () => {
    const { logger, lines } = capturingLogger();
    const unexpected = new GraphQLError('secret internals', { path: ['startVerification'] });
    const expected = gatewayError(ErrorCode.IDV_UNAVAILABLE, 'retry');
    logUnexpectedErrors([unexpected, expected], logger, 'req-7');
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ requestId: 'req-7', cause: 'secret internals', path: ['startVerification'], msg: 'unexpected error, masked for the client' }),
    ]);
    maskError({ message: 'secret internals', extensions: { code: 'INTERNAL_SERVER_ERROR' } }, unexpected, logger);
    expect(lines).toHaveLength(1);
  });

  it("is wired so that a resolver's unexpected error is logged once, with its request id, and masked", async () => {
    const { logger, lines } = capturingLogger();
    const apollo = new ApolloServer<GatewayContext>({
      typeDefs: 'type Query { broken: String }',
      resolvers: {
        Query: {
          broken: () => {
            throw new Error('secret internals');
          },
        },
      },
      formatError: (formatted, error) => maskError(formatted, error, logger),
      plugins: [operationObserver({ logUserIds: false, metrics: new GatewayMetrics({ workflows: [] }) })],
    });
    await apollo.start();
    const scope = { requestId: 'req-8', started: performance.now(), upstream: [], workflow: null };
    const contextValue = { auth: { ok: false }, logger, requestId: scope.requestId, scope } as unknown as GatewayContext;
    const response = await apollo.executeOperation({ query: '{ broken }' }, { contextValue });
    await apollo.stop();
    await new Promise((resolve) => setImmediate(resolve));
    expect(response.body.kind === 'single' && response.body.singleResult.errors).toEqual([
      { message: INTERNAL_ERROR_MESSAGE, path: ['broken'], locations: undefined, extensions: { code: 'INTERNAL_SERVER_ERROR', retryable: false } },
    ]);
    const written = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(written.filter((line) => line.msg === 'unexpected error, masked for the client')).toEqual([
      expect.objectContaining({ requestId: 'req-8', cause: 'secret internals' }),
    ]);
    expect(written.find((line) => line.msg === 'graphql operation')).toMatchObject({ requestId: 'req-8', outcome: 'INTERNAL_SERVER_ERROR' });
  });
});

describe('toClientError', () => {
  it.each([
    [new IdvError('unavailable', 'device', 'HTTP 503', { status: 503 }), { code: 'IDV_UNAVAILABLE', retryable: true }],
    [new IdvError('unavailable', 'session', 'HTTP 429', { status: 429, retryAfterSeconds: 12 }), { code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 12 }],
    [new IdvError('rejected', 'device', 'HTTP 401: check IDV_API_KEY', { status: 401 }), { code: 'IDV_FAILED', retryable: false }],
    [new IdvError('invalid-response', 'session', 'no id'), { code: 'IDV_FAILED', retryable: false }],
  ])('maps %s', (error, extensions) => {
    const clientError = toClientError(error);
    expect(clientError.extensions).toEqual(extensions);
    expect(clientError.message).not.toContain(error.message);
  });
});

describe('mayHaveCreatedSession (what the per-caller limit counts)', () => {
  it.each([
    [new IdvError('unavailable', 'device', 'HTTP 503', { status: 503 }), false],
    [new IdvError('unavailable', 'bulkhead', 'full', { cause: 'queue-full' }), false],
    [new IdvError('unavailable', 'session', 'open', { cause: 'circuit-open' }), false],
    [new IdvError('unavailable', 'deeplink', 'held', { cause: 'retry-after' }), false],
    [new IdvError('unavailable', 'session', 'no time', { cause: 'deadline', sent: false }), false],
    [new IdvError('unavailable', 'session', 'refused', { errorCode: 'ECONNREFUSED' }), false],
    [new IdvError('unavailable', 'session', 'HTTP 429', { status: 429 }), false],
    [new IdvError('rejected', 'session', 'HTTP 404', { status: 404 }), false],
    [new IdvError('unavailable', 'session', 'HTTP 500', { status: 500 }), true],
    [new IdvError('unavailable', 'deeplink', 'timeout', { errorCode: 'ETIMEDOUT' }), true],
    [new IdvError('unavailable', 'session', 'deadline exceeded', { cause: 'deadline' }), true],
    [new IdvError('invalid-response', 'session', 'no id'), true],
  ])('%s: %s', (error, expected) => {
    expect(mayHaveCreatedSession(error)).toBe(expected);
  });
});

describe('gatewayError', () => {
  it('gives UNAUTHENTICATED an HTTP 401', () => {
    const error = gatewayError(ErrorCode.UNAUTHENTICATED, 'sign in');
    expect((error.extensions.http as { status: number }).status).toBe(401);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-27T12:00:00Z');
  it.each([
    [undefined, undefined],
    ['120', 120],
    [' 0 ', 0],
    ['Fri, 27 Nov 2026 12:00:30 GMT', 30],
    ['Fri, 27 Nov 2026 11:00:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    // At most an hour reaches a client, whatever the platform says.
    ['999999999999', 3600],
    ['Thu, 01 Jan 2099 00:00:00 GMT', 3600],
  ])('reads %j as %j', (value, seconds) => {
    expect(parseRetryAfter(value, now)).toBe(seconds);
  });
});
