/**
 * The emulator's hosted pages, standing in for the platform's own: /capture (where a captureUrl
 * leads) and /mobile (where the IDV SDKs and web component go with a mobileUrl). Just enough for
 * a developer, or a browser test, to click through the whole handoff locally.
 */
import type http from 'node:http';
import QRCode from 'qrcode';

export interface MobileSessionView {
  readonly sessionId: string;
  readonly workflowId: string;
}

export type PageAnswer =
  | { readonly status: 200 | 400 | 401; readonly html: string }
  | { readonly status: 302; readonly location: string };

// Phones and tablets continue in the browser they scanned with; desktops show a QR for a phone.
const HANDHELD = /Android|iPhone|iPad|iPod|Mobile/i;

export async function capturePage(req: http.IncomingMessage, url: URL): Promise<PageAnswer> {
  const target = mobileUrlOf(url.searchParams.get('url'), req.headers.host);
  if (!target) {
    return { status: 400, html: page('Incomplete link', '<p>This capture link has no valid <code>url</code> parameter.</p>') };
  }
  if (HANDHELD.test(req.headers['user-agent'] ?? '')) return { status: 302, location: target };
  const qr = await QRCode.toString(target, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return {
    status: 200,
    html: page(
      'Continue on your phone',
      `<p>Scan this code with your phone's camera to continue the verification there.</p>
<div class="qr" role="img" aria-label="QR code of the verification link">${qr}</div>
<p><a id="continue" href="${escapeHtml(target)}">Or continue on this device</a></p>`,
    ),
  };
}

/** `view` is the session the link's token opened, or null when the token or session is not valid. */
export function mobilePage(view: MobileSessionView | null): PageAnswer {
  if (!view) {
    return { status: 401, html: page('Link expired', '<p>This verification link is invalid or has expired. Start a new verification in the app.</p>') };
  }
  return {
    status: 200,
    html: page(
      'Identity verification',
      `<p>The IDV emulator opened this session. On a real platform, the capture steps of the workflow start here.</p>
<dl>
  <dt>Session</dt><dd id="session-id">${escapeHtml(view.sessionId)}</dd>
  <dt>Workflow</dt><dd id="workflow-id">${escapeHtml(view.workflowId)}</dd>
</dl>`,
    ),
  };
}

export function sendPage(res: http.ServerResponse, answer: PageAnswer): void {
  if (answer.status === 302) {
    res.writeHead(302, { location: answer.location, 'cache-control': 'no-store', 'content-length': 0 });
    res.end();
    return;
  }
  res.writeHead(answer.status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(answer.html),
    // The URLs carry a live token: no cache may keep these pages.
    'cache-control': 'no-store',
    // No other page may frame them and read the session they show.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(answer.html);
}

/** Only links to this emulator's own /mobile page are followed: the capture page is no open redirect. */
function mobileUrlOf(raw: string | null, host: string | undefined): string | null {
  if (!raw) return null;
  try {
    const target = new URL(raw);
    // Its serialisation, not the raw text: a newline or a character past Latin-1 in `raw` would
    // make the Location header throw; the parser drops or percent-encodes them.
    return (target.protocol === 'http:' || target.protocol === 'https:') && target.host === host && target.pathname.endsWith('/mobile')
      ? target.href
      : null;
  } catch {
    return null;
  }
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · IDV emulator</title>
<link rel="icon" href="data:,">
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #1f2328; }
  h1 { font-size: 1.5rem; }
  .qr svg { width: 16rem; height: 16rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
  dt { font-weight: 600; }
  dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
  footer { margin-top: 3rem; color: #59636e; font-size: .875rem; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
<footer>IDV platform emulator, for development and tests only.</footer>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
