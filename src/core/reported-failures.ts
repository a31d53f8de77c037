/**
 * The failures already reported (keys from failureKey), so a repeated signal, a re-read or a
 * restart does not mail one twice. Bounded, oldest first out, and indexed by unit: when systemd
 * unloads a unit, its keys can never match again (a unit loaded anew gets new invocation ids), so
 * they go with it instead of filling the bound with units that no longer exist.
 */
export class ReportedFailures {
  readonly #limit: number;
  /** Insertion order is age: the first key is the oldest. */
  readonly #keys = new Set<string>();
  readonly #byUnit = new Map<string, Set<string>>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  get size(): number {
    return this.#keys.size;
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  /** Adds a key; returns the keys pushed out by the bound (to be forgotten on disk too). */
  add(key: string): string[] {
    if (this.#keys.has(key)) return [];
    this.#keys.add(key);
    const unit = unitOfKey(key);
    let keys = this.#byUnit.get(unit);
    if (keys === undefined) {
      keys = new Set();
      this.#byUnit.set(unit, keys);
    }
    keys.add(key);
    const evicted: string[] = [];
    while (this.#keys.size > this.#limit) {
      const oldest = this.#keys.values().next().value;
      if (oldest === undefined) break;
      this.#remove(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }

  /** Forgets every key of the unit; returns them. */
  forgetUnit(unit: string): string[] {
    const keys = [...(this.#byUnit.get(unit) ?? [])];
    for (const key of keys) this.#remove(key);
    return keys;
  }

  units(): IterableIterator<string> {
    return this.#byUnit.keys();
  }

  #remove(key: string): void {
    this.#keys.delete(key);
    const unit = unitOfKey(key);
    const keys = this.#byUnit.get(unit);
    keys?.delete(key);
    if (keys?.size === 0) this.#byUnit.delete(unit);
  }
}

/** failureKey starts with the unit's name and a NUL, which no unit name contains. */
function unitOfKey(key: string): string {
  const end = key.indexOf('\u0000');
  return end === -1 ? key : key.slice(0, end);
}
