/**
 * Keys with a deadline each, and the earliest of them in O(log n): a binary min-heap with lazy
 * deletion. A key's current deadline lives in a map; heap entries that no longer match it are
 * discarded when they reach the top. Without it the policy walked every open incident on every
 * event to find its next deadline, which a storm of thousands of units turns quadratic.
 */
export class DeadlineQueue<K> {
  readonly #current = new Map<K, number>();
  #heap: Array<{ readonly key: K; readonly atMs: number }> = [];

  get size(): number {
    return this.#current.size;
  }

  get(key: K): number | undefined {
    return this.#current.get(key);
  }

  /** Sets (or with undefined, clears) the key's deadline. */
  set(key: K, atMs: number | undefined): void {
    if (atMs === undefined) {
      this.#current.delete(key);
      return;
    }
    if (this.#current.get(key) === atMs) return;
    this.#current.set(key, atMs);
    this.#push({ key, atMs });
    // Stale entries are dropped only at the top; rebuild once they outnumber the live ones, so a
    // key whose deadline moves a million times does not keep a million entries.
    if (this.#heap.length > 64 && this.#heap.length > 4 * this.#current.size) this.#rebuild();
  }

  delete(key: K): void {
    this.#current.delete(key);
  }

  earliest(): number | undefined {
    this.#dropStaleTop();
    return this.#heap[0]?.atMs;
  }

  /** Removes and returns the keys due at `nowMs` with their deadlines, earliest first (ties in heap order). */
  takeDue(nowMs: number): Array<{ readonly key: K; readonly atMs: number }> {
    const due: Array<{ readonly key: K; readonly atMs: number }> = [];
    for (;;) {
      this.#dropStaleTop();
      const top = this.#heap[0];
      if (top === undefined || top.atMs > nowMs) return due;
      this.#pop();
      this.#current.delete(top.key);
      due.push(top);
    }
  }

  #dropStaleTop(): void {
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || this.#current.get(top.key) === top.atMs) return;
      this.#pop();
    }
  }

  #rebuild(): void {
    this.#heap = [];
    for (const [key, atMs] of this.#current) this.#push({ key, atMs });
  }

  #push(entry: { readonly key: K; readonly atMs: number }): void {
    const heap = this.#heap;
    heap.push(entry);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent];
      if (above === undefined || above.atMs <= entry.atMs) break;
      heap[index] = above;
      index = parent;
    }
    heap[index] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      let smallestAt = last.atMs;
      const l = heap[left];
      if (l !== undefined && l.atMs < smallestAt) {
        smallest = left;
        smallestAt = l.atMs;
      }
      const r = heap[right];
      if (r !== undefined && r.atMs < smallestAt) smallest = right;
      if (smallest === index) break;
      heap[index] = heap[smallest] as { key: K; atMs: number };
      index = smallest;
    }
    heap[index] = last;
  }
}
