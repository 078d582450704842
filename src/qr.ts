import QRCode from 'qrcode';

/**
 * An SVG QR code of a URL. Error correction "M" (15 %) survives a glare or a slightly blurred
 * phone camera, while keeping a ~300-character capture URL at a size a screen shows crisply.
 */
export function qrCodeSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
}
