import type { HandoffResolvers } from '../generated/graphql.js';
import { qrCodeSvg } from '../qr.js';

export const Handoff: HandoffResolvers = {
  // A field resolver, so the QR code is only drawn for clients that select it (desktops).
  qrCodeSvg: (handoff) => qrCodeSvg(handoff.captureUrl),
};
