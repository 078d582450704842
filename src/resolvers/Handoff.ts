import type { HandoffResolvers } from '../generated/graphql.js';
import { qrCodeSvg } from '../qr.js';

// The QR code drawn for each handoff, once: every alias of the field (`a: qrCodeSvg b: qrCodeSvg …`)
// resolves on the same handoff object, and each drawing costs ~5 ms of the event loop, more than
// the rest of an idempotency-key replay, which the per-caller limit does not count. Held only as
// long as the handoff itself, i.e. the request.
const drawn = new WeakMap<object, Promise<string>>();

export const Handoff: HandoffResolvers = {
  // A field resolver, so the QR code is only drawn for clients that select it (desktops).
  qrCodeSvg: (handoff) => {
    let svg = drawn.get(handoff);
    if (svg === undefined) {
      svg = qrCodeSvg(handoff.captureUrl);
      drawn.set(handoff, svg);
    }
    return svg;
  },
};
