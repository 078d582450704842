import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';

/**
 * The identity provider's key set (AUTH_JWKS_URL), for jose's jwtVerify. jose's own remote key set
 * fails every request once its cached copy is 10 minutes old and a fetch fails, and refetches for
 * each unknown key id while the provider is down, each request waiting up to the timeout. Here:
 *
 * - keys are refreshed in the background once `maxAgeMs` old: no request waits on a routine fetch;
 * - a failed fetch keeps the last key set in use for up to `maxStaleMs` (an outage of the provider
 *   signs no one out), and is not retried for `retryAfterFailureMs` (requests meanwhile do not each
 *   wait on a fetch, and the provider is not hammered);
 * - an unknown key id refetches at most every `cooldownMs`, as jose does; while fetches fail, a
 *   token with a key id not in the last set cannot be checked (the provider may have rotated):
 *   a key-set failure, AUTH_UNAVAILABLE, not a refusal;
 * - the answer is read up to `maxBytes`: jose reads any answer whole and parses it on the request's
 *   thread (a 300 MB one took 1.6 GB of memory and blocked the event loop for seconds).
 *
 * Failures are jose's key-set errors (JWKSTimeout, JWKSInvalid, a bare JOSEError) or the network's,
 * which auth.ts reports as AUTH_UNAVAILABLE.
 */
export interface KeySetTimings {
  readonly timeoutMs: number;
  readonly maxAgeMs: number;
  readonly maxStaleMs: number;
  readonly cooldownMs: number;
  readonly retryAfterFailureMs: number;
  readonly maxBytes: number;
}

export const KEY_SET_TIMINGS: KeySetTimings = {
  timeoutMs: 3000,
  // jose's defaults for the first two.
  maxAgeMs: 10 * 60_000,
  cooldownMs: 30_000,
  maxStaleMs: 24 * 60 * 60_000,
  retryAfterFailureMs: 10_000,
  // A key set is a few KiB, certificate chains included.
  maxBytes: 1024 * 1024,
};

export function remoteKeySet(url: URL, logger?: Logger, timings: KeySetTimings = KEY_SET_TIMINGS): JWTVerifyGetKey {
  let keys: { find: JWTVerifyGetKey; fetchedAt: number } | undefined;
  let failure: { error: unknown; at: number } | undefined;
  let pending: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    if (failure && Date.now() - failure.at < timings.retryAfterFailureMs) return Promise.reject(failure.error);
    pending ??= fetchKeySet(url, timings)
      .then(
        (jwks) => {
          // Checks the shape: JWKSInvalid for an answer that is not a key set, a failure like any other.
          keys = { find: createLocalJWKSet(jwks as JSONWebKeySet), fetchedAt: Date.now() };
          if (failure) logger?.info('JWKS fetched again: the key set is current');
          failure = undefined;
        },
      )
      .catch((error: unknown) => {
        if (!failure) {
          logger?.warn(
            { cause: describeKeySetFailure(error), keySetAgeSeconds: keys ? Math.round((Date.now() - keys.fetchedAt) / 1000) : null },
            keys ? 'JWKS fetch failed: tokens are checked with the last key set fetched' : 'JWKS fetch failed: no key set to check tokens with',
          );
        }
        failure = { error, at: Date.now() };
        throw error;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };

  return async (header, token) => {
    const age = keys ? Date.now() - keys.fetchedAt : Infinity;
    if (age > timings.maxStaleMs) await refresh();
    else if (age > timings.maxAgeMs) refresh().catch(() => {});
    const current = keys as NonNullable<typeof keys>;
    try {
      return await current.find(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // A key id not in the set: the provider may have added it since. A fetch under way may bring it.
      await pending?.catch(() => {});
      // Refused only while the set is known to be current; while the provider cannot be reached,
      // that is its failure, not the token's.
      if (keys === current && !failure && Date.now() - current.fetchedAt < timings.cooldownMs) throw error;
    }
    if (keys === current) await refresh();
    return (keys as NonNullable<typeof keys>).find(header, token);
  };
}

/** GET with a timeout that covers the body too, no redirects, and the answer read up to `maxBytes`. */
async function fetchKeySet(url: URL, timings: KeySetTimings): Promise<unknown> {
  const signal = AbortSignal.timeout(timings.timeoutMs);
  try {
    const response = await fetch(url, {
      signal,
      redirect: 'manual',
      headers: { accept: 'application/json, application/jwk-set+json', 'user-agent': 'idv-gateway' },
    });
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel();
      throw new joseErrors.JOSEError('Expected 200 OK from the JSON Web Key Set HTTP response');
    }
    const tooLarge = () => new joseErrors.JWKSInvalid(`The JSON Web Key Set HTTP response is larger than ${timings.maxBytes} bytes`);
    if (Number(response.headers.get('content-length')) > timings.maxBytes) {
      await response.body.cancel();
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    // Leaving the loop early (a throw) cancels the body.
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > timings.maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      throw new joseErrors.JOSEError('Failed to parse the JSON Web Key Set HTTP response as JSON');
    }
  } catch (error) {
    if (signal.aborted) throw new joseErrors.JWKSTimeout();
    throw error;
  }
}

/**
 * Why the key set failed, for log lines: jose's message (its own constant text), or a network
 * error's code (ECONNREFUSED, ENOTFOUND, a TLS code); never the URL or a response body.
 */
export function describeKeySetFailure(error: unknown): string {
  if (error instanceof joseErrors.JOSEError) return error.message;
  const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.message.slice(0, 200) : 'unknown';
}
