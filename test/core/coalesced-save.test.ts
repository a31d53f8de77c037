import { describe, expect, it } from 'vitest';
import { CoalescedSave } from '../../src/core/coalesced-save.js';

/** A clock moved by hand; sleep() resolves only when advance() passes its deadline. */
class ManualClock {
  nowMs = 0;
  readonly #sleepers: { until: number; wake: () => void }[] = [];

  sleep = (ms: number): Promise<void> =>
    new Promise((wake) => this.#sleepers.push({ until: this.nowMs + ms, wake }));

  async advance(ms: number): Promise<void> {
    this.nowMs += ms;
    for (const sleeper of this.#sleepers.filter((s) => s.until <= this.nowMs)) {
      this.#sleepers.splice(this.#sleepers.indexOf(sleeper), 1);
      sleeper.wake();
    }
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A store whose saves record the state they read and finish only when told. */
function recordingStore(clock: ManualClock) {
  const state: string[] = [];
  const saved: { atMs: number; content: string[] }[] = [];
  const finishers: (() => void)[] = [];
  const save = async () => {
    saved.push({ atMs: clock.nowMs, content: [...state] });
    await new Promise<void>((resolve) => finishers.push(resolve));
  };
  const finishAll = async () => {
    await flush();
    while (finishers.length > 0) finishers.shift()?.();
    await flush();
  };
  return { state, saved, save, finishAll };
}

function setUp(minIntervalMs = 250) {
  const clock = new ManualClock();
  const store = recordingStore(clock);
  const saver = new CoalescedSave({
    save: store.save,
    minIntervalMs,
    now: () => clock.nowMs,
    sleep: clock.sleep,
  });
  return { clock, store, saver };
}

describe('CoalescedSave', () => {
  it('saves at once when nothing was saved recently, so a lone change costs no delay', async () => {
    const { store, saver } = setUp();
    store.state.push('a');
    void saver.request();
    await flush();
    expect(store.saved).toEqual([{ atMs: 0, content: ['a'] }]);
  });

  it('gathers the changes of a burst into one save after the interval, not one save each', async () => {
    const { clock, store, saver } = setUp();
    store.state.push('a');
    void saver.request();
    await flush();
    for (const key of ['b', 'c', 'd']) {
      store.state.push(key);
      void saver.request();
    }
    await store.finishAll();
    expect(store.saved).toHaveLength(1);
    await clock.advance(249);
    expect(store.saved).toHaveLength(1);
    await clock.advance(1);
    expect(store.saved).toEqual([
      { atMs: 0, content: ['a'] },
      { atMs: 250, content: ['a', 'b', 'c', 'd'] },
    ]);
  });

  it('resolves a request only after a save that read its change has finished', async () => {
    const { clock, store, saver } = setUp();
    store.state.push('a');
    const first = saver.request();
    await flush();
    store.state.push('b');
    let secondDone = false;
    void saver.request().then(() => {
      secondDone = true;
    });
    await store.finishAll();
    await first;
    expect(secondDone).toBe(false);
    await clock.advance(250);
    expect(store.saved.at(-1)?.content).toEqual(['a', 'b']);
    expect(secondDone).toBe(false);
    await store.finishAll();
    expect(secondDone).toBe(true);
  });

  it('never starts a save while another is still writing', async () => {
    const { clock, store, saver } = setUp(0);
    store.state.push('a');
    void saver.request();
    await flush();
    store.state.push('b');
    void saver.request();
    await clock.advance(1000);
    expect(store.saved).toHaveLength(1);
    await store.finishAll();
    expect(store.saved).toHaveLength(2);
  });

  it('idle() waits for every save requested so far', async () => {
    const { clock, store, saver } = setUp();
    store.state.push('a');
    void saver.request();
    store.state.push('b');
    let idle = false;
    void saver.idle().then(() => {
      idle = true;
    });
    await store.finishAll();
    expect(idle).toBe(true);
    void saver.request();
    let idleAgain = false;
    void saver.idle().then(() => {
      idleAgain = true;
    });
    await clock.advance(250);
    expect(idleAgain).toBe(false);
    await store.finishAll();
    expect(idleAgain).toBe(true);
  });
});
