import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactSign, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

type KeyName = 'RS256' | 'ES256' | 'RS256-next';
type Mode = 'up' | 'hang' | 'error' | { padded: number } | { delayMs: number };

export interface JwksServer {
  readonly url: string;
  /** `kid: null` leaves the key id out of the header; `key: 'next'` signs with the second RSA key (`rotation` only). */
  sign(alg: 'RS256' | 'ES256', claims: Record<string, unknown>, options?: { kid?: string | null; key?: 'next' }): Promise<string>;
  /** Signs this payload text as it is, with the RSA key: JSON that SignJWT would not write (`1e400`). */
  signText(payload: string): Promise<string>;
  /**
   * While down, every request hangs (timeout) or answers 503; `padded` serves the key set padded
   * past `bytes`, chunked; `delayMs` serves it after that long.
   */
  setMode(mode: Mode): void;
  /** Requests received so far, in any mode. */
  readonly requests: number;
  close(): Promise<void>;
}

/**
 * A real JWKS endpoint on loopback, with one RSA and one EC key, as an identity provider serves them;
 * with `rotation`, a second RSA key too, as while one key replaces another.
 */
export async function startJwksServer(options: { rotation?: boolean } = {}): Promise<JwksServer> {
  const keys = new Map<KeyName, { alg: 'RS256' | 'ES256'; privateKey: CryptoKey; jwk: JWK }>();
  const names: readonly KeyName[] = options.rotation ? ['RS256', 'ES256', 'RS256-next'] : ['RS256', 'ES256'];
  for (const name of names) {
    const alg = name === 'ES256' ? 'ES256' : 'RS256';
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const kid = `${name.toLowerCase()}-key`;
    keys.set(name, { alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } });
  }
  const keySet = () => JSON.stringify({ keys: [...keys.values()].map((key) => key.jwk) });
  let mode: Mode = 'up';
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests += 1;
    if (mode === 'hang') return;
    if (typeof mode === 'object' && 'delayMs' in mode) {
      const body = keySet();
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(body), mode.delayMs);
      return;
    }
    if (mode === 'error') {
      res.writeHead(503).end();
      return;
    }
    const body = keySet();
    res.writeHead(200, { 'content-type': 'application/json' });
    if (mode === 'up') {
      res.end(body);
      return;
    }
    // Valid JSON, a real key set, only far too long: written in 64 KiB chunks without a content-length.
    res.write(`{"padding":"`);
    const chunk = 'x'.repeat(64 * 1024);
    for (let written = 0; written < mode.padded; written += chunk.length) res.write(chunk);
    res.end(`",${body.slice(1)}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async sign(alg, claims, signOptions = {}) {
      const key = keys.get(signOptions.key === 'next' ? 'RS256-next' : alg);
      if (!key || key.alg !== alg) throw new Error(alg);
      const kid = signOptions.kid === undefined ? key.jwk.kid : signOptions.kid;
      return new SignJWT(claims)
        .setProtectedHeader(kid === null ? { alg } : { alg, kid })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key.privateKey);
    },
    async signText(payload) {
      const key = keys.get('RS256');
      if (!key) throw new Error('RS256');
      return new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'RS256', kid: key.jwk.kid }).sign(key.privateKey);
    },
    setMode(next) {
      mode = next;
    },
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
