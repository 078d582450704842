/**
 * Reading the one-call variant's answer (`POST /api/v1/deeplink`, end of ../shared/idv-contract.md):
 *   {"url": "<mobile URL>", "createdAt": "...", "expiresAt": "...", "workflowIds": ["..."]}
 * The session id is the `sessionId` query parameter of `url`. Pure functions, so every way an
 * answer can fall outside the contract is checked here rather than discovered by a phone later.
 */
import type { CreatedDeeplink } from './platform.js';

// The URL is handed to clients verbatim: only what RFC 3986 lets a URL hold, so nothing can be
// normalised away by a URL parser on one side and kept on the other, and no quote of either kind
// or angle bracket (a client may put it into HTML): RFC 3986 allows "'", a platform's link has none.
const URL_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&()*+,;=%]+$/;
const MAX_URL_LENGTH = 8192;
const SESSION_ID = /^[\x21-\x7e]{1,256}$/;

/** The answer as a CreatedDeeplink, or why it is outside the contract (for the log, never a client). */
export function readDeeplinkAnswer(body: unknown): CreatedDeeplink | { readonly problem: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problem: 'deeplink answer is not a JSON object' };
  const { url, expiresAt } = body as Record<string, unknown>;
  if (typeof url !== 'string' || url.length > MAX_URL_LENGTH || !URL_CHARACTERS.test(url)) {
    return { problem: 'deeplink answer has no usable "url" string' };
  }
  let parsed: URL;
  try {
    // No base: a relative URL is refused, phones could not open it.
    parsed = new URL(url);
  } catch {
    return { problem: 'deeplink "url" is not an absolute URL' };
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return { problem: 'deeplink "url" is not http(s)' };
  // A phone would send them to whatever host the URL names; the platform's own link never has any.
  if (parsed.username !== '' || parsed.password !== '') return { problem: 'deeplink "url" carries credentials' };
  const sessionIds = parsed.searchParams.getAll('sessionId');
  const sessionId = sessionIds[0];
  if (sessionIds.length !== 1 || sessionId === undefined || !SESSION_ID.test(sessionId)) {
    return { problem: 'deeplink "url" has no single usable "sessionId" query parameter' };
  }
  const expiry = typeof expiresAt === 'string' ? parseTimestamp(expiresAt) : null;
  if (expiry === null) return { problem: 'deeplink answer has no parseable "expiresAt"' };
  return { url, sessionId, expiresAt: expiry };
}

// toISOString writes a later instant with a six-digit year ("+010000-…"), which is not RFC 3339:
// clients parsing the DateTime would refuse it, so the platform's answer is refused instead.
const LAST_RFC3339_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/**
 * An ISO 8601 / RFC 3339 date-time, strictly: Date.parse alone accepts "1" (the year 2001) and
 * rolls 30 February over into March. A time without an offset is read as UTC, as servers that
 * serialise naive timestamps mean it; the contract does not show the format.
 */
export function parseTimestamp(value: string): Date | null {
  const match = ISO_DATE_TIME.exec(value.trim());
  if (!match) return null;
  const [, year, month, day, hour, minute, second = '0', fraction = '0', , sign, offsetHours = '0', offsetMinutes = '0'] = match;
  const fields = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  const [y, mo, d, h, mi, s] = fields;
  const millis = Number(`0.${fraction}`) * 1000;
  const utc = new Date(Date.UTC(y, mo - 1, d, h, mi, s, Math.floor(millis)));
  // Date.UTC wraps out-of-range fields (month 13, day 31 of a 30-day month, hour 25) silently.
  if (utc.getUTCFullYear() !== y || utc.getUTCMonth() !== mo - 1 || utc.getUTCDate() !== d || utc.getUTCHours() !== h || utc.getUTCMinutes() !== mi || utc.getUTCSeconds() !== s) {
    return null;
  }
  const offH = Number(offsetHours);
  const offM = Number(offsetMinutes);
  if (offH > 23 || offM > 59) return null;
  const offsetMs = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (offH * 60 + offM) * 60_000;
  const instant = utc.getTime() - offsetMs;
  return instant > LAST_RFC3339_INSTANT ? null : new Date(instant);
}
