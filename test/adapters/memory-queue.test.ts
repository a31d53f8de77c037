import { describe, expect, it } from 'vitest';
import { BoundedMemoryQueue } from '../../src/adapters/memory-queue.js';

describe('BoundedMemoryQueue', () => {
  it('keeps entries oldest first and replaces one in place', () => {
    const queue = new BoundedMemoryQueue<number>(3, () => undefined);
    queue.put('a', 1);
    queue.put('b', 2);
    queue.put('a', 10);
    expect(queue.entries()).toEqual([
      ['a', 10],
      ['b', 2],
    ]);
    expect(queue.get('a')).toBe(10);
    expect(queue.delete('a')).toBe(true);
    expect(queue.delete('a')).toBe(false);
    expect(queue.size).toBe(1);
  });

  it('drops the oldest beyond its capacity and hands it to onDrop', () => {
    const dropped: [string, number][] = [];
    const queue = new BoundedMemoryQueue<number>(2, (name, value) => dropped.push([name, value]));
    for (const [name, value] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ] as const) {
      queue.put(name, value);
    }
    expect(dropped).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(queue.entries().map(([name]) => name)).toEqual(['c', 'd']);
    expect(queue.has('a')).toBe(false);
    expect(queue.capacity).toBe(2);
  });

  it('holds at least one entry whatever capacity it is given', () => {
    const queue = new BoundedMemoryQueue<number>(0, () => undefined);
    queue.put('a', 1);
    expect(queue.size).toBe(1);
  });
});
