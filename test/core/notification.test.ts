import { describe, expect, it } from 'vitest';
import type { Failure } from '../../src/core/failure.js';
import {
  type CommandOutput,
  composeDigestMail,
  composeFailureMail,
  composeRecoveryMail,
} from '../../src/core/message.js';
import { JOURNAL_LINES, NOTIFICATION_SCHEMA, STATUS_EXCERPT_CHARS } from '../../src/core/notification.js';
import { unitFacts } from '../fixtures/unit-facts.js';

const INVOCATION = '0123456789abcdef0123456789abcdef';
// 2026-11-22 04:32:22.500 UTC
const FAILED_AT_US = 1_795_321_942_500_000;

function output(text: string, command = 'systemctl status --full -- nginx.service'): CommandOutput {
  return { command, text, truncatedBytes: 0, problem: undefined };
}

function failure(kind: Failure['kind'] = 'failed', unit = 'nginx.service'): Failure {
  return {
    kind,
    facts: unitFacts(unit, {
      description: 'Web server',
      execMainStatus: 3,
      restarts: 2,
      invocationId: INVOCATION,
      inactiveEnterTimestampUs: FAILED_AT_US,
    }),
    observedAtMs: 1_795_321_943_000,
  };
}

describe('the structured notification beside each composed mail', () => {
  it('carries every fact of a failure in schema 1, built from the facts and not from the text', () => {
    const journal = Array.from(
      { length: 30 },
      (_, index) => `Nov 22 04:32:22 web1 nginx[812]: line ${index}`,
    );
    const mail = composeFailureMail(
      failure(),
      {
        status: output('× nginx.service - Web server\n     Active: failed (Result: exit-code)\n'),
        journal: output(journal.join('\n'), `journalctl _SYSTEMD_INVOCATION_ID=${INVOCATION}`),
        settled: true,
        lastWords: 'bind() to 0.0.0.0:80 failed',
      },
      {
        hostname: 'web1',
        messageId: '<second@web1>',
        inReplyTo: '<first@web1>',
        references: ['<first@web1>'],
        count: 4,
        firstAtMs: Date.UTC(2026, 10, 22, 4, 0, 0),
        critical: true,
        notes: ['hourly cap reached'],
        failingNow: ['nginx.service', 'db.service'],
      },
    );
    const notification = mail.notification;
    expect(notification).toMatchObject({
      schema: NOTIFICATION_SCHEMA,
      event: 'failed',
      host: 'web1',
      time: '2026-11-22T04:32:22.500Z',
      title: 'nginx.service failed on web1 (exit-code), 4 times',
      unit: 'nginx.service',
      critical: true,
      failures: 4,
      id: '<second@web1>',
      incident_id: '<first@web1>',
      notes: ['hourly cap reached'],
      also_failing: ['db.service'],
    });
    expect(notification?.units).toHaveLength(1);
    const [unit] = notification?.units ?? [];
    expect(unit).toMatchObject({
      unit: 'nginx.service',
      description: 'Web server',
      state: 'failed',
      critical: true,
      failures: 4,
      result: 'exit-code',
      exit: { code: 'exited', status: 3, text: 'exited with status 3' },
      failed_at: '2026-11-22T04:32:22.500Z',
      first_failed_at: '2026-11-22T04:00:00.000Z',
      invocation_id: INVOCATION,
      restarts: 2,
      unit_file: '/etc/systemd/system/nginx.service',
      last_words: 'bind() to 0.0.0.0:80 failed',
      status_excerpt: '× nginx.service - Web server\n     Active: failed (Result: exit-code)',
    });
    // The newest lines are kept, at most JOURNAL_LINES of them.
    expect(unit?.journal).toHaveLength(JOURNAL_LINES);
    expect(unit?.journal?.at(-1)).toBe('Nov 22 04:32:22 web1 nginx[812]: line 29');
  });

  it('calls a crash-restart "crashed" and the first of an incident its own incident id', () => {
    const mail = composeFailureMail(
      failure('crash-restart'),
      { status: output(''), journal: undefined },
      { hostname: 'web1', messageId: '<only@web1>' },
    );
    expect(mail.notification?.event).toBe('crashed');
    expect(mail.notification?.units[0]?.state).toBe('crashed');
    expect(mail.notification?.incident_id).toBe('<only@web1>');
    expect(mail.notification?.units[0]).not.toHaveProperty('journal');
    expect(mail.notification?.units[0]).not.toHaveProperty('first_failed_at');
  });

  it('keeps hostile text as data: control and bidi characters escaped, the status excerpt bounded', () => {
    const hostile = failure();
    const mail = composeFailureMail(
      { ...hostile, facts: { ...hostile.facts, description: 'evil\u202e\r\nX-Injected: 1 "quoted"' } },
      { status: output(`\u001b[31mred\u001b[0m ${'x'.repeat(10_000)}`), journal: undefined },
      { hostname: 'web1', messageId: '<id@web1>' },
    );
    const unit = mail.notification?.units[0];
    expect(unit?.description).toBe('evil\\u202e X-Injected: 1 "quoted"');
    expect(unit?.status_excerpt?.startsWith('red x')).toBe(true);
    expect(unit?.status_excerpt?.length).toBeLessThanOrEqual(STATUS_EXCERPT_CHARS);
    // The JSON round-trips unchanged: nothing in it can break the document.
    const json = JSON.stringify(mail.notification);
    expect(JSON.parse(json)).toEqual(mail.notification);
  });

  it('lists a digest’s units most important first, with their counts and journal lines', () => {
    const mail = composeDigestMail(
      [
        { failure: failure('failed', 'a.service'), count: 1, critical: false, journal: ['a said this'] },
        { failure: failure('failed', 'b.service'), count: 3, critical: true },
      ],
      { hostname: 'web1', messageId: '<digest@web1>' },
    );
    expect(mail.notification).toMatchObject({ event: 'digest', critical: true, failures: 4 });
    expect(mail.notification).not.toHaveProperty('unit');
    expect(mail.notification?.units.map((unit) => unit.unit)).toEqual(['b.service', 'a.service']);
    expect(mail.notification?.units[1]?.journal).toEqual(['a said this']);
    expect(mail.notification?.units[0]?.status_excerpt).toContain('× b.service - Web server');
  });

  it('says recovery, with when the incident began and ended', () => {
    const atMs = Date.UTC(2026, 10, 22, 5, 0, 0);
    const mail = composeRecoveryMail(
      {
        units: [
          {
            unit: 'nginx.service',
            failures: 2,
            sinceMs: atMs - 60_000,
            critical: false,
            ending: 'recovered',
          },
        ],
        atMs,
      },
      { hostname: 'web1', messageId: '<r@web1>', references: ['<first@web1>'] },
    );
    expect(mail.notification).toMatchObject({
      event: 'recovery',
      unit: 'nginx.service',
      time: '2026-11-22T05:00:00.000Z',
      incident_id: '<first@web1>',
      failures: 2,
      units: [
        {
          unit: 'nginx.service',
          state: 'recovered',
          first_failed_at: '2026-11-22T04:59:00.000Z',
          ended_at: '2026-11-22T05:00:00.000Z',
        },
      ],
    });
  });
});
