import { describe, expect, it } from 'vitest';
import { renderStatus, type StatusSnapshot } from '../../src/core/status-report.js';

const NOW = Date.UTC(2026, 11, 1, 9, 20, 0);

function snapshot(overrides: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    daemon: {
      activeState: 'active',
      subState: 'running',
      sinceMs: NOW - 3_600_000,
      mainPid: 812,
      statusText: 'watching 57 active units, 0 failed',
      restarts: 0,
    },
    failedNow: [],
    incidents: [],
    cap: { used: 0, max: 30 },
    outbox: { pending: 0, oldestCreatedMs: undefined },
    lastDelivery: undefined,
    problems: [],
    ...overrides,
  };
}

describe('renderStatus', () => {
  it('is OK and says so in plain words when nothing is wrong', () => {
    const report = renderStatus(snapshot(), NOW);
    expect(report.exitCode).toBe(0);
    expect(report.text).toContain('unitwatch is running since 2026-12-01 08:20:00 UTC (1h ago), pid 812');
    expect(report.text).toContain('Failed now: none');
    expect(report.text).toContain('Outbox: empty');
  });

  it('is CRITICAL when the daemon is not running, and says how to start it', () => {
    const report = renderStatus(
      snapshot({ daemon: { ...snapshot().daemon, activeState: 'failed', subState: 'failed' } }),
      NOW,
    );
    expect(report.exitCode).toBe(2);
    expect(report.text).toContain('unitwatch is NOT running (failed/failed)');
    expect(report.text).toContain('systemctl start unitwatch');
  });

  it('is WARNING with failed units, listing them and the held failures with the next mail', () => {
    const report = renderStatus(
      snapshot({
        failedNow: ['api.service'],
        incidents: [
          {
            unit: 'api.service',
            failures: 4,
            held: 3,
            critical: false,
            state: 'held',
            nextDueMs: NOW + 300_000,
            firstFailureMs: NOW - 60_000,
          },
        ],
      }),
      NOW,
    );
    expect(report.exitCode).toBe(1);
    expect(report.text).toContain('Open incidents: 1, 3 failures held for a later mail');
    expect(report.text).toContain(
      'api.service: 4 failures since 2026-12-01 09:19:00 UTC, held (3 held), next mail 2026-12-01 09:25:00 UTC',
    );
  });

  it('is WARNING when mail has waited in the outbox for over 15 minutes (the relay refuses)', () => {
    const report = renderStatus(
      snapshot({ outbox: { pending: 2, oldestCreatedMs: NOW - 20 * 60_000 } }),
      NOW,
    );
    expect(report.exitCode).toBe(1);
    expect(report.text).toContain('Outbox: 2 mails waiting, the oldest queued 20min ago');
  });

  it("shows each channel's queue once there are several, so a webhook that is down stands out", () => {
    const report = renderStatus(
      snapshot({
        outbox: {
          pending: 3,
          oldestCreatedMs: NOW - 20 * 60_000,
          channels: [
            { channel: 'mail', pending: 0, oldestCreatedMs: undefined },
            {
              channel: 'webhook https://hooks.example.org/…',
              pending: 3,
              oldestCreatedMs: NOW - 20 * 60_000,
            },
          ],
        },
      }),
      NOW,
    );
    expect(report.exitCode).toBe(1);
    expect(report.text).toContain(
      [
        'Outbox: 3 notifications waiting, the oldest queued 20min ago',
        '  mail: empty',
        '  webhook https://hooks.example.org/…: 3 notifications waiting, the oldest queued 20min ago',
      ].join('\n'),
    );
    const json = report.json as { outbox: { channels: { channel: string; oldestAgeMs: number | null }[] } };
    expect(json.outbox.channels.map((channel) => [channel.channel, channel.oldestAgeMs])).toEqual([
      ['mail', null],
      ['webhook https://hooks.example.org/…', 20 * 60_000],
    ]);
  });

  it('is UNKNOWN when systemd could not be asked', () => {
    const report = renderStatus(
      snapshot({ failedNow: undefined, problems: ['cannot ask systemd: ECONNREFUSED'] }),
      NOW,
    );
    expect(report.exitCode).toBe(3);
    expect(report.text).toContain('Note: cannot ask systemd: ECONNREFUSED');
  });

  it('keeps a hostile unit name on its line', () => {
    const report = renderStatus(snapshot({ failedNow: ['evil\n<3>forged.service'] }), NOW);
    expect(report.text.split('\n').filter((line) => line.startsWith('<3>'))).toEqual([]);
  });
});
