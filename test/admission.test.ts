import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { admission, type Admit } from '../src/admission.js';

/** A real server whose only handler is the door: 204 when admitted (after `holdMs`), the door's own answer when refused. */
async function serve(admit: Admit, holdMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (!admit(req, res)) return;
    setTimeout(() => res.writeHead(204).end(), holdMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('the door', () => {
  it('refuses beyond the in-progress limit with 503 and IDV_UNAVAILABLE, and takes requests again as they finish', async () => {
    const door = await serve(admission(2), 300);
    try {
      const answers = await Promise.all(Array.from({ length: 3 }, () => fetch(door.url, { method: 'POST' })));
      expect(answers.map((answer) => answer.status).sort()).toEqual([204, 204, 503]);
      const refused = answers.find((answer) => answer.status === 503);
      expect(refused?.headers.get('retry-after')).toBe('1');
      expect(await refused?.json()).toEqual({
        errors: [{ message: expect.any(String), extensions: { code: 'IDV_UNAVAILABLE', retryable: true, retryAfterSeconds: 1 } }],
      });
      expect((await fetch(door.url, { method: 'POST' })).status).toBe(204);
    } finally {
      await door.close();
    }
  });
});
