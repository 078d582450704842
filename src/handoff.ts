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

export function buildHandoffUrls(publicUrl: string, token: string, sessionId: string): HandoffUrls {
  const origin = publicUrl.replace(/\/+$/, '');
  const mobileUrl = `${origin}/mobile?authorization=${encodeURIComponent(token)}&sessionId=${encodeURIComponent(sessionId)}`;
  const captureUrl = `${origin}/capture?url=${encodeURIComponent(mobileUrl)}`;
  return { mobileUrl, captureUrl };
}
