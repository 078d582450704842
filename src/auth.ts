import { webcrypto } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { AuthSettings } from './config.js';
import { ErrorCode, gatewayError } from './errors.js';
import type { GraphQLError } from 'graphql';

export interface Caller {
  /** The IDV session's externalUserId: the configured claim of the caller's verified token. */
  readonly userId: string;
}

export type AuthResult = { readonly ok: true; readonly caller: Caller } | { readonly ok: false; readonly error: GraphQLError; readonly reason: string };

export type Authenticate = (authorizationHeader: string | undefined) => Promise<AuthResult>;

// A JWT far past any real one's size is refused before parsing; it is the caller's mistake or an attack.
const MAX_TOKEN_LENGTH = 8192;
const MAX_USER_ID_LENGTH = 256;
const JWKS_TIMEOUT_MS = 3000;
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/**
 * Verifies `Authorization: Bearer <JWT>`. The algorithm list is pinned per key type, so a token
 * cannot pick its own (no `none`, no HS256 signed with a public key).
 */
export function createAuthenticator(settings: AuthSettings, secret?: Uint8Array): Authenticate {
  const options: JWTVerifyOptions = {
    requiredClaims: ['exp'],
    clockTolerance: settings.clockToleranceSeconds,
    ...(settings.issuer ? { issuer: settings.issuer } : {}),
    ...(settings.audience ? { audience: settings.audience } : {}),
  };
  let verify: (token: string) => Promise<{ payload: Record<string, unknown> }>;
  if (settings.key.kind === 'jwks') {
    const keySet: JWTVerifyGetKey = createRemoteJWKSet(new URL(settings.key.url), { timeoutDuration: JWKS_TIMEOUT_MS });
    verify = (token) => jwtVerify(token, keySet, { ...options, algorithms: ['RS256', 'ES256'] });
  } else {
    const material = settings.key.kind === 'secret' ? new TextEncoder().encode(settings.key.secret) : secret;
    if (!material) throw new Error('createAuthenticator needs the generated development secret');
    // Imported once: given the raw bytes, jose imports them into a WebCrypto key on every verify.
    const key = webcrypto.subtle.importKey('raw', material, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    verify = async (token) => jwtVerify(token, await key, { ...options, algorithms: ['HS256'] });
  }

  return async (header) => {
    if (header === undefined || header.trim() === '') {
      return unauthenticated('missing', 'Sign-in required: send "Authorization: Bearer <token>".');
    }
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (!token || token.length > MAX_TOKEN_LENGTH) {
      return unauthenticated('malformed', 'The Authorization header must be "Bearer <token>" with one JSON Web Token.');
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await verify(token));
    } catch (error) {
      return classify(error);
    }
    const userId = payload[settings.userClaim];
    if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH || CONTROL_CHARACTERS.test(userId)) {
      return unauthenticated('no-user-claim', 'The bearer token does not identify a user. Sign in again.');
    }
    return { ok: true, caller: { userId } };
  };
}

function classify(error: unknown): AuthResult {
  if (error instanceof joseErrors.JWTExpired) {
    return unauthenticated('expired', 'The bearer token has expired. Refresh it and retry.');
  }
  if (isKeySetFailure(error)) {
    return {
      ok: false,
      reason: 'jwks-unavailable',
      error: gatewayError(ErrorCode.AUTH_UNAVAILABLE, 'Sign-in could not be checked right now. Retry in a moment.'),
    };
  }
  const reason = error instanceof joseErrors.JOSEError ? error.code : 'invalid';
  return unauthenticated(reason, 'The bearer token is not valid for this gateway. Sign in again.');
}

/**
 * Not the caller's fault: the key set could not be fetched or read (timeout, network error,
 * non-200, not JSON, not a JWKS). jose reports the fetch problems as a bare JOSEError.
 */
function isKeySetFailure(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true;
  return (
    error instanceof joseErrors.JWKSTimeout ||
    error instanceof joseErrors.JWKSInvalid ||
    error.constructor === joseErrors.JOSEError
  );
}

function unauthenticated(reason: string, message: string): AuthResult {
  return {
    ok: false,
    reason,
    error: gatewayError(ErrorCode.UNAUTHENTICATED, message, { headers: { 'www-authenticate': 'Bearer' } }),
  };
}
