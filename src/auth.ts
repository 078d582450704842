import { createVerifier, TokenError } from 'fast-jwt';
import { errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { Logger } from 'pino';
import type { AuthSettings } from './config.js';
import { ErrorCode, gatewayError } from './errors.js';
import { describeKeySetFailure, remoteKeySet, type KeySetTimings } from './key-set.js';
import type { GraphQLError } from 'graphql';

export interface Caller {
  /** The IDV session's externalUserId: the configured claim of the caller's verified token. */
  readonly userId: string;
}

export type AuthResult = { readonly ok: true; readonly caller: Caller } | { readonly ok: false; readonly error: GraphQLError; readonly reason: string };

/** Takes the request's Authorization header: its value, or every value when it came more than once. */
export type Authenticate = (authorizationHeader: string | readonly string[] | undefined) => Promise<AuthResult>;

// A JWT far past any real one's size is refused before parsing; it is the caller's mistake or an attack.
const MAX_TOKEN_LENGTH = 8192;
const MAX_USER_ID_LENGTH = 256;
// Control characters (C0, DEL, C1) and what is not well-formed text: a lone surrogate, or U+FFFD, which
// invalid UTF-8 in a token decodes to (so two different byte strings would name one user). Also what
// lets one id look like another where the platform's reviewers read it: invisible and direction
// characters (Unicode's format class: zero-width spaces and joiners, bidi overrides, the BOM; and
// the rest of what Unicode says to render as nothing, Default_Ignorable_Code_Point: Hangul fillers,
// variation selectors, the combining grapheme joiner), line and paragraph separators,
// noncharacters, and white space at either end or alone. With a claim users choose
// (AUTH_USER_CLAIM=preferred_username), "alice\u200B" or "alice\u3164" would pass for "alice".
const NOT_A_USER_ID = /[\u0000-\u001f\u007f-\u009f\uFFFD\uFFFE\uFFFF\uFDD0-\uFDEF]|\p{Cs}|\p{Cf}|\p{DI}|\p{Zl}|\p{Zp}|^\s|\s$/u;

/** One key mode's token check: the payload once signature and claims hold, or why not. */
interface TokenVerifier {
  verify(token: string): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** What the caller is told when `verify` throws. */
  refusal(error: unknown): AuthResult;
}

/**
 * Verifies `Authorization: Bearer <JWT>`. The algorithm list is pinned per key type, so a token
 * cannot pick its own (no `none`, no HS256 signed with a public key).
 */
export function createAuthenticator(
  settings: AuthSettings,
  options: { readonly secret?: Uint8Array | undefined; readonly logger?: Logger; readonly keySetTimings?: KeySetTimings | undefined } = {},
): Authenticate {
  const { key } = settings;
  const verifier =
    key.kind === 'jwks'
      ? keySetVerifier(settings, remoteKeySet(new URL(key.url), options.logger, options.keySetTimings))
      : sharedSecretVerifier(settings, key.kind === 'secret' ? new TextEncoder().encode(key.secret) : options.secret);

  return async (header) => {
    if (header === undefined || (typeof header === 'string' && header.trim() === '')) {
      return unauthenticated('missing', 'Sign-in required: send "Authorization: Bearer <token>".');
    }
    // Several: RFC 9110 allows one, and which one counts would depend on who reads them (node keeps
    // the first, a proxy in front may have checked the last).
    if (typeof header !== 'string') return malformed();
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const token = match?.[1];
    if (!token || token.length > MAX_TOKEN_LENGTH) return malformed();
    let payload: Record<string, unknown>;
    try {
      payload = await verifier.verify(token);
    } catch (error) {
      return verifier.refusal(error);
    }
    const timeClaim = badTimeClaim(payload, settings.clockToleranceSeconds);
    if (timeClaim) return invalidToken(`bad-time-claim: ${timeClaim}`);
    const userId = payload[settings.userClaim];
    if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH || NOT_A_USER_ID.test(userId)) {
      return unauthenticated('no-user-claim', 'The bearer token does not identify a user. Sign in again.');
    }
    return { ok: true, caller: { userId } };
  };
}

const TIME_CLAIMS = ['exp', 'nbf', 'iat'] as const;

/**
 * What neither verifier checks in the time claims, in both modes alike. JSON reads `"exp": 1e400`
 * as Infinity, which fast-jwt and jose both compare and take for a token that never expires; an
 * `iat` in the future passes both (jose checks it only when given a maxTokenAge, fast-jwt never).
 * Each, when present, must be a finite number, and `iat` not later than now and the clock
 * tolerance, in whole seconds as jose counts. The claim at fault, or null.
 */
function badTimeClaim(payload: Record<string, unknown>, toleranceSeconds: number): string | null {
  for (const claim of TIME_CLAIMS) {
    if (Object.hasOwn(payload, claim) && !Number.isFinite(payload[claim])) return claim;
  }
  if (Object.hasOwn(payload, 'iat') && (payload.iat as number) > Math.floor(Date.now() / 1000) + toleranceSeconds) return 'iat';
  return null;
}

/**
 * HS256 with fast-jwt, which checks the HMAC with node:crypto on the request's own thread. jose
 * checks it with WebCrypto, a job on libuv's thread pool: ~70 µs of CPU per token against
 * ~8 µs, measured as ~5 % of the gateway's CPU per mutation (README, Performance).
 */
function sharedSecretVerifier(settings: AuthSettings, material: Uint8Array | undefined): TokenVerifier {
  if (!material) throw new Error('createAuthenticator needs the generated development secret');
  // fast-jwt checks iss and aud only when present: required, as jose requires them once configured.
  const requiredClaims = ['exp', ...(settings.issuer ? ['iss'] : []), ...(settings.audience ? ['aud'] : [])];
  const verify = createVerifier({
    key: Buffer.from(material),
    algorithms: ['HS256'],
    requiredClaims,
    clockTolerance: settings.clockToleranceSeconds * 1000,
    ...(settings.issuer ? { allowedIss: settings.issuer } : {}),
    ...(settings.audience ? { allowedAud: settings.audience } : {}),
  });
  return {
    verify: (token) => {
      const payload = verify(token) as Record<string, unknown>;
      // fast-jwt finds claims with `in`, which an Object.prototype polluted elsewhere would answer;
      // jose looked at the token's own claims only.
      const missing = requiredClaims.find((claim) => !Object.hasOwn(payload, claim));
      if (missing) throw new TokenError(TokenError.codes.missingRequiredClaim, `The ${missing} claim is required.`);
      return payload;
    },
    refusal: (error) => {
      if (error instanceof TokenError && error.code === TokenError.codes.expired) return expired();
      return invalidToken(error instanceof TokenError ? error.code : 'invalid');
    },
  };
}

/** RS256/ES256 against the identity provider's key set (key-set.ts: fetched on demand, cached, refetched for an unknown key id). */
function keySetVerifier(settings: AuthSettings, keySet: JWTVerifyGetKey): TokenVerifier {
  const options: JWTVerifyOptions = {
    algorithms: ['RS256', 'ES256'],
    requiredClaims: ['exp'],
    clockTolerance: settings.clockToleranceSeconds,
    ...(settings.issuer ? { issuer: settings.issuer } : {}),
    ...(settings.audience ? { audience: settings.audience } : {}),
  };
  return {
    verify: async (token) => {
      try {
        return (await jwtVerify(token, keySet, options)).payload;
      } catch (error) {
        if (!(error instanceof joseErrors.JWKSMultipleMatchingKeys)) throw error;
        // A token without a key id (RFC 7515 makes it optional) matches every key of its type, as
        // while an identity provider rotates keys: jose leaves trying each one to its caller.
        for await (const key of error) {
          try {
            return (await jwtVerify(token, key, options)).payload;
          } catch (attempt) {
            if (!(attempt instanceof joseErrors.JWSSignatureVerificationFailed)) throw attempt;
          }
        }
        throw new joseErrors.JWSSignatureVerificationFailed();
      }
    },
    refusal: (error) => {
      if (error instanceof joseErrors.JWTExpired) return expired();
      if (isKeySetFailure(error)) {
        return {
          ok: false,
          reason: `jwks-unavailable: ${describeKeySetFailure(error)}`,
          error: gatewayError(ErrorCode.AUTH_UNAVAILABLE, 'Sign-in could not be checked right now. Retry in a moment.'),
        };
      }
      return invalidToken(error instanceof joseErrors.JOSEError ? error.code : 'invalid');
    },
  };
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

function expired(): AuthResult {
  return unauthenticated('expired', 'The bearer token has expired. Refresh it and retry.');
}

function malformed(): AuthResult {
  return unauthenticated('malformed', 'The Authorization header must be "Bearer <token>" with one JSON Web Token.');
}

function invalidToken(reason: string): AuthResult {
  return unauthenticated(reason, 'The bearer token is not valid for this gateway. Sign in again.');
}

function unauthenticated(reason: string, message: string): AuthResult {
  return {
    ok: false,
    reason,
    error: gatewayError(ErrorCode.UNAUTHENTICATED, message, { headers: { 'www-authenticate': 'Bearer' } }),
  };
}
