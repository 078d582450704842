/**
 * Handoff URLs, per ../shared/idv-contract.md step 4:
 *   mobileUrl  = {public}/mobile?authorization=<enc(token)>&sessionId=<enc(sessionId)>
 *   captureUrl = {public}/capture?url=<enc(mobileUrl)>
 *
 * `enc` is encodeURIComponent, not URLSearchParams: a space must become %20, never "+", because
 * the IDV SDKs and pages read the token back with a plain percent-decode. The mobile URL is
 * therefore encoded twice inside the capture URL, which is what real links look like.
 */

export interface HandoffUrls {
  readonly mobileUrl: string;
  readonly captureUrl: string;
}

/** The two-step flow: both URLs built on the configured public URL. */
export function buildHandoffUrls(publicUrl: string, token: string, sessionId: string): HandoffUrls {
  const base = publicUrl.replace(/\/+$/, '');
  const mobileUrl = `${base}/mobile?authorization=${encodeURIComponent(token)}&sessionId=${encodeURIComponent(sessionId)}`;
  return { mobileUrl, captureUrl: captureUrlOn(base, mobileUrl) };
}

/**
 * The one-call flow: the platform returns the mobile URL itself, used exactly as given; the
 * capture page is built on that URL's origin. A path prefix in front of a final `/mobile`
 * (a platform behind `https://host/idv/`) is kept, as the two-step flow keeps IDV_PUBLIC_URL's.
 */
export function handoffUrlsFor(mobileUrl: string): HandoffUrls {
  const { origin, pathname } = new URL(mobileUrl);
  const prefix = pathname.endsWith('/mobile') ? pathname.slice(0, -'/mobile'.length) : '';
  return { mobileUrl, captureUrl: captureUrlOn(`${origin}${prefix}`, mobileUrl) };
}

function captureUrlOn(base: string, mobileUrl: string): string {
  return `${base}/capture?url=${encodeURIComponent(mobileUrl)}`;
}
