import { flightSettingsFor, SharedFlights } from '../src/state/flight.js';
import { MemoryState } from '../src/state/memory.js';
import type { SharedState } from '../src/state/store.js';
import { TEXT } from './support/duplicates.js';

/**
 * The coordination logic of single flight across instances, on the in-process store standing in
 * for Redis: a second "instance" is a second SharedFlights on the same store.
 */
function sharedMemory(): SharedState & { lose(): void } {
  // One MemoryState plays Redis (shared by both "instances") until lose(), which does what the
  // failover does when Redis stops answering: this process moves to state of its own.
  let memory = new MemoryState(null);
  let shared = true;
  return {
    get shared() {
      return shared;
    },
    lose() {
      shared = false;
      memory = new MemoryState(null);
    },
    claim: (key, owner, ttlMs) => memory.claim(key, owner, ttlMs),
    renew: (key, owner, ttlMs) => memory.renew(key, owner, ttlMs),
    release: (key, owner) => memory.release(key, owner),
    read: (keys) => memory.read(keys),
    write: (key, value, ttlMs) => memory.write(key, value, ttlMs),
    consume: (subject) => memory.consume(subject),
    close: () => memory.close(),
  };
}

describe('SharedFlights', () => {
  it('fits its lease and wait to the mutation deadline', () => {
    expect(flightSettingsFor(8000)).toMatchObject({ leaseMs: 10_000, maxWaitMs: 10_000 });
    expect(flightSettingsFor(30_000)).toMatchObject({ leaseMs: 32_000, maxWaitMs: 32_000 });
  });

  it('gives followers the leader\'s value, with one piece of work', async () => {
    const state = sharedMemory();
    const a = new SharedFlights(state, flightSettingsFor(8000));
    const b = new SharedFlights(state, flightSettingsFor(8000));
    let calls = 0;
    let finish!: (value: string) => void;
    const leader = a.run('k', () => undefined, () => {
      calls += 1;
      return new Promise<string>((resolve) => (finish = resolve));
    }, TEXT);
    let followed = false;
    const follower = b.run('k', () => (followed = true), async () => {
      calls += 1;
      return 'second';
    }, TEXT);
    while (!followed) await new Promise((resolve) => setTimeout(resolve, 5));
    finish('handoff');
    expect(await leader).toEqual({ value: 'handoff', led: true });
    expect(await follower).toEqual({ value: 'handoff', led: false });
    expect(calls).toBe(1);
  });

  it('answers IDV_UNAVAILABLE, and never leads, when the shared state is lost while following', async () => {
    const state = sharedMemory();
    const a = new SharedFlights(state, flightSettingsFor(8000));
    const b = new SharedFlights(state, flightSettingsFor(8000));
    let finish!: (value: string) => void;
    const leader = a.run('k', () => undefined, () => new Promise<string>((resolve) => (finish = resolve)), TEXT);
    let followed = false;
    let secondWork = false;
    const follower = b.run('k', () => (followed = true), async () => {
      secondWork = true;
      return 'second session';
    }, TEXT);
    while (!followed) await new Promise((resolve) => setTimeout(resolve, 5));
    state.lose();
    await expect(follower).rejects.toMatchObject({ extensions: { code: 'IDV_UNAVAILABLE', retryable: true } });
    expect(secondWork).toBe(false);
    finish('handoff');
    await leader;
  });
});
