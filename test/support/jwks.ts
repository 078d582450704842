import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface JwksServer {
  readonly url: string;
  sign(alg: 'RS256' | 'ES256', claims: Record<string, unknown>, options?: { kid?: string }): Promise<string>;
  /** While down, every request hangs (timeout) or answers 503. */
  setMode(mode: 'up' | 'hang' | 'error'): void;
  close(): Promise<void>;
}

/** A real JWKS endpoint on loopback, with one RSA and one EC key, as an identity provider serves them. */
export async function startJwksServer(): Promise<JwksServer> {
  const keys = new Map<string, { alg: 'RS256' | 'ES256'; privateKey: CryptoKey; jwk: JWK }>();
  for (const alg of ['RS256', 'ES256'] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const kid = `${alg.toLowerCase()}-key`;
    keys.set(alg, { alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } });
  }
  let mode: 'up' | 'hang' | 'error' = 'up';
  const server = http.createServer((_req, res) => {
    if (mode === 'hang') return;
    if (mode === 'error') {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [...keys.values()].map((key) => key.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async sign(alg, claims, options = {}) {
      const key = keys.get(alg);
      if (!key) throw new Error(alg);
      return new SignJWT(claims)
        .setProtectedHeader({ alg, kid: options.kid ?? key.jwk.kid })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key.privateKey);
    },
    setMode(next) {
      mode = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
