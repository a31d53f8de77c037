import { describe, expect, it } from 'vitest';
import {
  classifyFailure,
  failureKey,
  failureKindOf,
  isNotifiable,
  type UnitFacts,
  UnitStateTracker,
  type UnitStateView,
} from '../../src/core/failure.js';
import { unitFacts } from '../fixtures/unit-facts.js';

function state(activeState: string, subState: string): UnitStateView {
  return { activeState, subState };
}

const running = state('active', 'running');
const failed = state('failed', 'failed');
const autoRestart = state('activating', 'auto-restart');
const inactive = state('inactive', 'dead');
const activating = state('activating', 'start');

const facts: UnitFacts = unitFacts('nginx.service', {
  description: 'Web server',
  invocationId: '0123456789abcdef0123456789abcdef',
  inactiveEnterTimestampUs: 1_700_000_000_000_000,
});

describe('failureKindOf', () => {
  it('owes a notification when a running unit enters failed', () => {
    expect(failureKindOf(running, failed)).toBe('failed');
  });

  it('owes a notification when a unit never seen before is failed', () => {
    expect(failureKindOf(undefined, failed)).toBe('failed');
  });

  it('owes a notification when a starting unit fails', () => {
    expect(failureKindOf(activating, failed)).toBe('failed');
  });

  it('owes nothing while a unit stays failed', () => {
    expect(failureKindOf(failed, failed)).toBeUndefined();
    expect(failureKindOf(failed, state('failed', 'dead'))).toBeUndefined();
  });

  it('owes a crash-restart when systemd schedules an automatic restart', () => {
    expect(failureKindOf(running, autoRestart)).toBe('crash-restart');
    expect(failureKindOf(undefined, autoRestart)).toBe('crash-restart');
  });

  it('owes a crash-restart when a unit passes through failed on its way to auto-restart', () => {
    expect(failureKindOf(failed, autoRestart)).toBe('crash-restart');
  });

  it('owes nothing while a unit stays in auto-restart', () => {
    expect(failureKindOf(autoRestart, autoRestart)).toBeUndefined();
  });

  it('owes a failed when an auto-restarting unit hits its start limit', () => {
    expect(failureKindOf(autoRestart, failed)).toBe('failed');
  });

  it('owes nothing for starting, running, stopping or stopped units', () => {
    expect(failureKindOf(undefined, activating)).toBeUndefined();
    expect(failureKindOf(activating, running)).toBeUndefined();
    expect(failureKindOf(running, state('deactivating', 'stop-sigterm'))).toBeUndefined();
    expect(failureKindOf(running, inactive)).toBeUndefined();
  });
});

describe('classifyFailure', () => {
  it('keeps failed when the facts show the unit failed', () => {
    expect(classifyFailure('failed', facts)).toBe('failed');
  });

  it('turns failed into crash-restart when the facts show a scheduled restart', () => {
    expect(classifyFailure('failed', { ...facts, activeState: 'activating', subState: 'auto-restart' })).toBe(
      'crash-restart',
    );
  });

  it('keeps crash-restart when the facts show a scheduled restart', () => {
    expect(classifyFailure('crash-restart', { ...facts, subState: 'auto-restart' })).toBe('crash-restart');
  });
});

describe('isNotifiable', () => {
  it('notifies every failed unit', () => {
    expect(isNotifiable('failed', facts)).toBe(true);
    expect(isNotifiable('failed', { ...facts, result: '' })).toBe(true);
  });

  it.each(['exit-code', 'signal', 'core-dump', 'timeout', 'watchdog'])(
    'notifies a restart after %s',
    (result) => {
      expect(isNotifiable('crash-restart', { ...facts, result })).toBe(true);
    },
  );

  it('does not notify a restart after a clean exit (Restart=always on a finished job)', () => {
    expect(isNotifiable('crash-restart', { ...facts, result: 'success' })).toBe(false);
  });

  it('does not notify a restart whose result systemd did not say', () => {
    expect(isNotifiable('crash-restart', { ...facts, result: '' })).toBe(false);
  });
});

describe('failureKey', () => {
  const key = failureKey('failed', facts);

  it('is the same for the same failure seen twice', () => {
    expect(failureKey('failed', { ...facts, description: 'changed', restarts: 3 })).toBe(key);
  });

  it('differs for another unit', () => {
    expect(failureKey('failed', { ...facts, unit: 'other.service' })).not.toBe(key);
  });

  it('differs for another invocation of the same unit', () => {
    expect(failureKey('failed', { ...facts, invocationId: 'fedcba9876543210fedcba9876543210' })).not.toBe(
      key,
    );
  });

  it('differs between the crash-restart and the later failed of one invocation', () => {
    expect(failureKey('crash-restart', facts)).not.toBe(key);
  });

  it('differs for another result of the same invocation', () => {
    expect(failureKey('failed', { ...facts, result: 'start-limit-hit' })).not.toBe(key);
  });

  it('falls back to the time the unit went inactive when there is no invocation id', () => {
    const withoutId = { ...facts, invocationId: '' };
    expect(failureKey('failed', withoutId)).toBe(failureKey('failed', { ...withoutId }));
    expect(failureKey('failed', withoutId)).not.toBe(
      failureKey('failed', { ...withoutId, inactiveEnterTimestampUs: facts.inactiveEnterTimestampUs + 1 }),
    );
  });
});

describe('UnitStateTracker', () => {
  it('decides on each new state from the unit’s previous one', () => {
    const tracker = new UnitStateTracker();
    expect(tracker.transition('nginx.service', running).kind).toBeUndefined();
    expect(tracker.transition('nginx.service', failed).kind).toBe('failed');
    expect(tracker.transition('nginx.service', failed).kind).toBeUndefined();
  });

  it('keeps units apart', () => {
    const tracker = new UnitStateTracker();
    tracker.transition('a.service', failed).kind;
    expect(tracker.transition('b.service', failed).kind).toBe('failed');
  });

  it('seeds state without deciding, so units failed before start-up are not reported again', () => {
    const tracker = new UnitStateTracker();
    tracker.remember('old.service', failed);
    expect(tracker.transition('old.service', failed).kind).toBeUndefined();
  });

  it('reports a unit again after reset-failed and a new failure', () => {
    const tracker = new UnitStateTracker();
    tracker.transition('nginx.service', failed).kind;
    tracker.transition('nginx.service', inactive).kind;
    expect(tracker.transition('nginx.service', failed).kind).toBe('failed');
  });

  it('forgets inactive units, so memory follows the units that are running or failed', () => {
    const tracker = new UnitStateTracker();
    tracker.transition('a.service', running).kind;
    tracker.transition('b.service', failed).kind;
    tracker.remember('c.service', activating);
    expect(tracker.size).toBe(3);
    tracker.transition('a.service', inactive).kind;
    tracker.remember('c.service', inactive);
    expect(tracker.size).toBe(1);
  });

  it('lists the units that are failed now', () => {
    const tracker = new UnitStateTracker();
    tracker.transition('a.service', failed).kind;
    tracker.transition('b.service', running).kind;
    tracker.transition('c.mount', failed).kind;
    tracker.transition('d.service', autoRestart).kind;
    tracker.transition('c.mount', inactive).kind;
    expect(tracker.failedUnits().sort()).toEqual(['a.service']);
  });
});
