import { describe, expect, it } from 'vitest';
import { DeadlineQueue } from '../../src/core/deadline-queue.js';

describe('DeadlineQueue', () => {
  it('is empty at first', () => {
    const queue = new DeadlineQueue<string>();
    expect(queue.earliest()).toBeUndefined();
    expect(queue.takeDue(Number.POSITIVE_INFINITY)).toEqual([]);
  });

  it('follows a key whose deadline moves later, earlier and away', () => {
    const queue = new DeadlineQueue<string>();
    queue.set('a', 10);
    queue.set('b', 20);
    queue.set('a', 30);
    expect(queue.earliest()).toBe(20);
    queue.set('a', 5);
    expect(queue.earliest()).toBe(5);
    queue.set('a', undefined);
    expect(queue.earliest()).toBe(20);
    queue.delete('b');
    expect(queue.earliest()).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  it('takes exactly the keys due, earliest first, and forgets them', () => {
    const queue = new DeadlineQueue<string>();
    queue.set('late', 100);
    queue.set('now', 50);
    queue.set('early', 10);
    expect(queue.takeDue(50)).toEqual([
      { key: 'early', atMs: 10 },
      { key: 'now', atMs: 50 },
    ]);
    expect(queue.get('now')).toBeUndefined();
    expect(queue.earliest()).toBe(100);
  });

  it('agrees with a plain map through a long run of random changes', () => {
    let seed = 3;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const queue = new DeadlineQueue<number>();
    const oracle = new Map<number, number>();
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(random() * 200);
      const roll = random();
      if (roll < 0.7) {
        const atMs = Math.floor(random() * 1_000);
        queue.set(key, atMs);
        oracle.set(key, atMs);
      } else if (roll < 0.85) {
        queue.delete(key);
        oracle.delete(key);
      } else {
        const now = Math.floor(random() * 1_000);
        const expected = [...oracle].filter(([, at]) => at <= now).map(([k]) => k);
        const taken = queue.takeDue(now);
        expect(taken.map((entry) => entry.key).sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
        // Earliest first.
        expect(taken.map((entry) => entry.atMs)).toEqual(
          [...taken.map((entry) => entry.atMs)].sort((a, b) => a - b),
        );
        for (const k of expected) oracle.delete(k);
      }
      const min = oracle.size === 0 ? undefined : Math.min(...oracle.values());
      expect(queue.earliest()).toBe(min);
      expect(queue.size).toBe(oracle.size);
    }
  });
});
