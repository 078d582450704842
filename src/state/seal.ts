import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Handoffs kept in shared state (idempotency records, single-flight results) hold the session's
 * live ephemeral token. They are sealed (AES-256-GCM) with a key derived from a secret every
 * gateway instance has and Redis never sees (stateSecret) and from what only the caller's own
 * request carries: their user id and idempotency key (or workflow and locale). The state's key
 * names are keyed digests (HMAC) of the same, under other labels. Whoever can read Redis sees
 * ciphertext and names they cannot confirm a guessed user id against; whoever repeats the request
 * through a gateway gets the handoff, as they could have asked for it anyway.
 */

/**
 * The secret behind shared state's names and seals, derived from the IDV API key: every instance
 * has it, Redis does not, and whoever has it could start sessions anyway. Rotating the key makes
 * earlier records unreadable: they are then treated as absent.
 */
export function stateSecret(apiKey: string): Buffer {
  return Buffer.from(hkdfSync('sha256', apiKey, 'idv-gateway', 'shared state v2', 32));
}

/** A name for a state key: a keyed digest, so it neither holds nor confirms the user id or idempotency key. */
export function stateDigest(secret: Uint8Array, ...parts: string[]): string {
  return createHmac('sha256', secret).update(JSON.stringify(parts)).digest('base64url');
}

export class Sealer {
  readonly #key: Buffer;

  constructor(secret: Uint8Array, ...material: string[]) {
    this.#key = createHmac('sha256', secret).update(JSON.stringify(['idv-gateway seal v2', ...material])).digest();
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
