import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Handoffs kept in shared state (idempotency records, single-flight results) hold the session's
 * live ephemeral token. They are sealed (AES-256-GCM) with a key derived from what only the
 * caller's own request carries — their user id and idempotency key (or workflow and locale) —
 * while the state's key names hold one-way digests of the same, under another label. Whoever can
 * read Redis sees ciphertext; whoever repeats the request can open it, as they could have asked
 * the gateway anyway.
 */
export class Sealer {
  readonly #key: Buffer;

  constructor(...material: string[]) {
    this.#key = createHash('sha256').update(JSON.stringify(['idv-gateway seal v1', ...material])).digest();
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The sealed text, or an error that quotes nothing of it when it was not sealed with this key. */
  open(sealed: string): string {
    try {
      const bytes = Buffer.from(sealed, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(12, 28));
      return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('a sealed handoff in shared state could not be opened');
    }
  }
}
