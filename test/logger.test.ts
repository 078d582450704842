import { censorNestedSecrets, pseudonymize } from '../src/logger.js';
import { capturingLogger } from './support/log-capture.js';

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.secret-value.signature';

function loggedLines() {
  const { lines, logger } = capturingLogger();
  return {
    logger,
    /** The one line logged by `log`, parsed, and its raw text. */
    line(log: () => void): { parsed: Record<string, unknown>; raw: string } {
      lines.length = 0;
      log();
      expect(lines).toHaveLength(1);
      const raw = lines[0] as string;
      return { parsed: JSON.parse(raw) as Record<string, unknown>, raw };
    },
  };
}

describe('log redaction (defence in depth: the code logs no credential on purpose)', () => {
  const { logger, line } = loggedLines();

  it.each(['authorization', 'apiKey', 'token', 'mobileUrl', 'captureUrl'])('censors %s at the top level and one level down', (key) => {
    const { parsed, raw } = line(() => logger.info({ [key]: SECRET, detail: { [key]: SECRET, kept: 'visible' } }, 'message'));
    expect(raw).not.toContain(SECRET);
    expect(parsed[key]).toBe('[redacted]');
    expect(parsed.detail).toEqual({ [key]: '[redacted]', kept: 'visible' });
  });

  it('censors request headers, as a request object would carry them', () => {
    const { parsed, raw } = line(() =>
      logger.info({ headers: { authorization: SECRET, accept: 'application/json' }, req: { method: 'POST', headers: { authorization: SECRET, host: 'gateway' } } }, 'request'),
    );
    expect(raw).not.toContain(SECRET);
    expect(parsed.headers).toEqual({ authorization: '[redacted]', accept: 'application/json' });
    expect(parsed.req).toEqual({ method: 'POST', headers: { authorization: '[redacted]', host: 'gateway' } });
  });

  it('censors an error logged with a credential on it, keeping its message and stack', () => {
    const error = Object.assign(new Error('upstream refused'), { token: SECRET });
    const { parsed, raw } = line(() => logger.error({ err: error }, 'failed'));
    expect(raw).not.toContain(SECRET);
    expect(parsed.err).toMatchObject({ type: 'Error', message: 'upstream refused', token: '[redacted]' });
    expect((parsed.err as { stack: string }).stack).toMatch(/^Error: upstream refused\n\s+at /);
  });

  it('leaves the logged object itself untouched', () => {
    const detail = { token: SECRET };
    const logged = { token: SECRET, detail };
    line(() => logger.info(logged, 'message'));
    expect(logged).toEqual({ token: SECRET, detail: { token: SECRET } });
    expect(logged.detail).toBe(detail);
  });

  it('keeps everything else as it was given: strings, numbers, arrays, nulls, nested objects', () => {
    const upstream = [{ step: 'device', status: 200, ms: 12 }];
    const { parsed } = line(() =>
      logger.info({ operation: 'StartVerification', durationMs: 34, upstream, user: null, outcome: 'OK', nested: { deeper: { kept: 'as given' } } }, 'graphql operation'),
    );
    expect(parsed).toMatchObject({
      msg: 'graphql operation',
      service: 'idv-gateway',
      operation: 'StartVerification',
      durationMs: 34,
      upstream,
      user: null,
      outcome: 'OK',
      nested: { deeper: { kept: 'as given' } },
    });
  });
});

describe('censorNestedSecrets', () => {
  it('returns a line with nothing to censor as it is, without a copy', () => {
    const line = { operation: 'StartVerification', upstream: [{ token: 'in an array, not an object' }], detail: { kept: true } };
    expect(censorNestedSecrets(line)).toBe(line);
  });

  it('censors a read-only property on a copy, without throwing', () => {
    const detail = Object.defineProperty({}, 'token', { value: SECRET, enumerable: true, writable: false });
    const censored = censorNestedSecrets({ detail });
    expect(JSON.stringify(censored)).toBe('{"detail":{"token":"[redacted]"}}');
    expect((detail as { token: string }).token).toBe(SECRET);
  });
});

describe('pseudonymize', () => {
  it('is stable, short and does not contain the user id', () => {
    const pseudonym = pseudonymize('user-1234');
    expect(pseudonym).toBe(pseudonymize('user-1234'));
    expect(pseudonym).not.toBe(pseudonymize('user-1235'));
    expect(pseudonym).toMatch(/^u_[A-Za-z0-9_-]{16}$/);
    expect(pseudonym).not.toContain('1234');
  });
});
