export interface CoalescedSaveOptions {
  /** Writes the state as it is when called; never rejects (the caller logs its own failures). */
  readonly save: () => Promise<void>;
  /** Least time from the start of one save to the start of the next. */
  readonly minIntervalMs: number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

/**
 * Saves a growing state without writing it once per change. A request made while nothing was saved
 * for `minIntervalMs` starts a save at once; requests made while one runs or waits share the next.
 * Each request resolves once a save that started after it has finished, so a caller can wait until
 * what it changed is on disk. Saves never overlap.
 */
export class CoalescedSave {
  readonly #options: CoalescedSaveOptions;
  /** The save that requests join: not started yet, so it will include their change. */
  #next: Promise<void> | undefined;
  #previous: Promise<void> = Promise.resolve();
  #lastStartMs = Number.NEGATIVE_INFINITY;

  constructor(options: CoalescedSaveOptions) {
    this.#options = options;
  }

  request(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    const { save, minIntervalMs, now, sleep } = this.#options;
    const next = this.#previous.then(async () => {
      const waitMs = this.#lastStartMs + minIntervalMs - now();
      if (waitMs > 0) await sleep(waitMs);
      // From here on the state is read: a later change needs the save after this one.
      this.#next = undefined;
      this.#lastStartMs = now();
      await save();
    });
    this.#next = next;
    this.#previous = next;
    return next;
  }

  /** Resolves when every requested save has finished. */
  idle(): Promise<void> {
    return this.#previous;
  }
}
