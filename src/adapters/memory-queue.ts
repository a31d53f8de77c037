/**
 * Where the outbox keeps mail it could not write to disk (a full, read-only or unwritable state
 * directory), until the disk takes it again or the mail is delivered. Bounded: when full, the oldest
 * entry is dropped and handed to `onDrop`, so the caller can say what was lost.
 */
export class BoundedMemoryQueue<T> {
  readonly #capacity: number;
  readonly #onDrop: (name: string, value: T) => void;
  /** Insertion order, which is the outbox's creation order: the first key is the oldest. */
  readonly #entries = new Map<string, T>();

  constructor(capacity: number, onDrop: (name: string, value: T) => void) {
    this.#capacity = Math.max(1, capacity);
    this.#onDrop = onDrop;
  }

  get capacity(): number {
    return this.#capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  get(name: string): T | undefined {
    return this.#entries.get(name);
  }

  /** Adds or replaces an entry; a replaced one keeps its place. Drops the oldest beyond the bound. */
  put(name: string, value: T): void {
    this.#entries.set(name, value);
    while (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.entries().next().value;
      if (oldest === undefined) return;
      this.#entries.delete(oldest[0]);
      this.#onDrop(oldest[0], oldest[1]);
    }
  }

  delete(name: string): boolean {
    return this.#entries.delete(name);
  }

  /** Oldest first; a snapshot, so the caller may delete while iterating. */
  entries(): [string, T][] {
    return [...this.#entries];
  }
}
