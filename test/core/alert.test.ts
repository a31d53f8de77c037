import { describe, expect, it } from 'vitest';
import {
  type AlertContext,
  alertDescription,
  alertLabels,
  alertSummary,
  DESCRIPTION_MAX_CHARS,
  FIRING_VALIDITY_INTERVALS,
  firingAlert,
  firingEndsAtMs,
  type IncidentAlertView,
  resolvedAlert,
} from '../../src/core/alert.js';
import { unitFacts } from '../fixtures/unit-facts.js';

const FAILED_AT = Date.parse('2026-12-02T10:00:00Z');
const NOW = Date.parse('2026-12-02T10:05:00Z');

const context: AlertContext = {
  hostname: 'web1',
  staticLabels: { env: 'prod', team: 'ops' },
  nowMs: NOW,
  intervalMs: 60_000,
};

function incident(overrides: Partial<IncidentAlertView> = {}): IncidentAlertView {
  return {
    unit: 'nginx.service',
    critical: false,
    firstFailureMs: FAILED_AT,
    failures: 1,
    latest: {
      kind: 'failed',
      facts: unitFacts('nginx.service', { description: 'Nginx web server', invocationId: 'a'.repeat(32) }),
      atMs: FAILED_AT,
    },
    endedAtMs: undefined,
    ...overrides,
  };
}

describe('alert labels', () => {
  it('name the alert, the host, the unit and the severity, plus the static labels', () => {
    expect(alertLabels(incident(), context)).toEqual({
      alertname: 'SystemdUnitFailed',
      instance: 'web1',
      unit: 'nginx.service',
      severity: 'warning',
      env: 'prod',
      team: 'ops',
    });
  });

  it('say critical for a UNITWATCH_CRITICAL unit', () => {
    expect(alertLabels(incident({ critical: true }), context).severity).toBe('critical');
  });

  it('cannot be overridden by a static label, even one that slipped past validation', () => {
    const labels = alertLabels(incident(), { ...context, staticLabels: { unit: 'other', severity: 'none' } });
    expect(labels.unit).toBe('nginx.service');
    expect(labels.severity).toBe('warning');
  });
});

describe('alert annotations', () => {
  it('summary: one line saying what failed where, and how', () => {
    expect(alertSummary(incident(), 'web1')).toBe(
      'nginx.service failed on web1 (exit-code, exited with status 1)',
    );
    const crash = incident({
      latest: {
        kind: 'crash-restart',
        facts: unitFacts('nginx.service', { result: 'signal', execMainCode: 2, execMainStatus: 9 }),
        atMs: FAILED_AT,
      },
    });
    expect(alertSummary(crash, 'web1')).toBe(
      'nginx.service crashed and is being restarted on web1 (signal, killed, signal 9 (SIGKILL))',
    );
  });

  it('summary without facts (restored after a restart, not caught up yet) still says what and where', () => {
    expect(alertSummary(incident({ latest: undefined }), 'web1')).toBe('nginx.service failed on web1');
  });

  it('summary cannot carry a line break from a unit description or result', () => {
    const facts = unitFacts('nginx.service', { result: 'exit-code\nX-Injected: yes' });
    expect(
      alertSummary(incident({ latest: { kind: 'failed', facts, atMs: FAILED_AT } }), 'web1'),
    ).not.toContain('\n');
  });

  it('description: the status head, the count, and the last journal lines', () => {
    const text = alertDescription(incident({ failures: 3 }), ['line 1', 'nginx: [emerg] bind() failed']);
    expect(text).toContain('× nginx.service - Nginx web server');
    expect(text).toContain('Active: failed (Result: exit-code)');
    expect(text).toContain('3 failures since 2026-12-02 10:00:00 UTC');
    expect(text).toMatch(/Last journal lines:\nline 1\nnginx: \[emerg\] bind\(\) failed$/);
  });

  it('description: only the last journal lines, each cut, the whole capped', () => {
    const journal = Array.from({ length: 50 }, (_, index) => `line ${index} ${'x'.repeat(1000)}`);
    const text = alertDescription(incident(), journal);
    expect(text).not.toContain('line 39 ');
    expect(text).toContain('line 40 ');
    expect(text.length).toBeLessThanOrEqual(DESCRIPTION_MAX_CHARS);
    expect(text.split('\n').every((line) => line.length <= 300)).toBe(true);
  });

  it('description: control characters from the journal are shown, not passed on', () => {
    const text = alertDescription(incident(), ['\u001b[31mred\u001b[0m \u202eevil']);
    expect(text).toContain('red \\u202eevil');
    expect(text).not.toContain('\u001b');
  });
});

describe('endsAt', () => {
  it('a firing alert starts at the failure and is valid for four intervals from now, as Prometheus does', () => {
    const alert = firingAlert(incident(), undefined, context);
    expect(alert.startsAt).toBe('2026-12-02T10:00:00.000Z');
    expect(FIRING_VALIDITY_INTERVALS).toBe(4);
    expect(alert.endsAt).toBe('2026-12-02T10:09:00.000Z');
    expect(firingEndsAtMs(NOW, 60_000) - NOW).toBeLessThan(300_000 * 2);
  });

  it('a closed incident resolves at the moment it ended: up again or stopped', () => {
    const firing = firingAlert(incident(), undefined, context);
    const recovered = Date.parse('2026-12-02T10:04:00Z');
    const resolved = resolvedAlert(firing, recovered, NOW);
    expect(resolved.endsAt).toBe('2026-12-02T10:04:00.000Z');
    expect(resolved.labels).toEqual(firing.labels);
    expect(resolved.startsAt).toBe(firing.startsAt);
  });

  it('resolves when the close was seen if the watcher knows no earlier end (reset-failed, unit removed)', () => {
    const firing = firingAlert(incident(), undefined, context);
    expect(resolvedAlert(firing, undefined, NOW).endsAt).toBe('2026-12-02T10:05:00.000Z');
  });

  it('never ends before it started, nor after now (which would keep it firing)', () => {
    const firing = firingAlert(incident(), undefined, context);
    expect(resolvedAlert(firing, FAILED_AT - 5000, NOW).endsAt).toBe(firing.startsAt);
    expect(resolvedAlert(firing, NOW + 60_000, NOW).endsAt).toBe('2026-12-02T10:05:00.000Z');
  });
});
