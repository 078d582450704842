import { createRequire } from 'node:module';
import resvg from '@resvg/resvg-js';
import type jsQRType from 'jsqr';

// jsqr is CommonJS whose module.exports is the function, while its typings declare an ES default
// export; require() gives the function under both the compiler's and Node's reading.
const jsQR = createRequire(import.meta.url)('jsqr') as typeof jsQRType.default;

/**
 * Reads a QR code the way a phone camera would: from pixels. The SVG is rasterised (resvg), then
 * decoded (jsQR); null when no QR code is found.
 */
export function decodeQrSvg(svg: string): string | null {
  const image = new resvg.Resvg(svg, { fitTo: { mode: 'width', value: 400 }, background: 'white' }).render();
  const pixels = new Uint8ClampedArray(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength);
  return jsQR(pixels, image.width, image.height)?.data ?? null;
}
