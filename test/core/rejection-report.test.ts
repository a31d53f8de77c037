import { describe, expect, it } from 'vitest';
import { appendRejectedReport, rejectedSummary } from '../../src/core/rejection-report.js';

const mail = {
  subject: '[unitwatch] b.service failed on host',
  text: 'b.service failed on host.\n\n-- \nunitwatch\n',
  headers: { 'Auto-Submitted': 'auto-generated' },
  messageId: '<b@host>',
};

describe('the rejection report', () => {
  it('summarises a refused notification in one line: when, unit, subject, answer', () => {
    expect(
      rejectedSummary({
        createdMs: Date.UTC(2026, 11, 1, 10, 2, 3),
        unit: 'a.service',
        event: 'failed',
        subject: '[unitwatch] a.service failed',
        answer: 'Sendmail exited with code 67\n(exit status 67 (EX_NOUSER))',
      }),
    ).toBe(
      '2026-12-01 10:02:03 UTC  a.service (failed): "[unitwatch] a.service failed" → Sendmail exited with code 67 (exit status 67 (EX_NOUSER))',
    );
  });

  it('goes above the signature, counts what it does not list, and sets the header', () => {
    const out = appendRejectedReport(mail, ['one', 'two'], 5, '/var/lib/unitwatch/outbox');
    expect(out.text).toBe(
      'b.service failed on host.\n\n── 5 earlier notifications were refused for good (a 5xx answer, or an address sendmail refused) and not retried:\n  one\n  two\n  … and 3 more\nKept in /var/lib/unitwatch/outbox (files with a "rejected" field).\n\n-- \nunitwatch\n',
    );
    expect(out.headers['X-Unitwatch-Rejected-Earlier']).toBe('5');
    expect(out.messageId).toBe(mail.messageId);
    expect(mail.headers).not.toHaveProperty('X-Unitwatch-Rejected-Earlier');
  });

  it('goes at the end of a mail without a signature', () => {
    const out = appendRejectedReport({ ...mail, text: 'body\n\n\n' }, ['one'], 1, '/d');
    expect(out.text).toBe(
      'body\n\n── 1 earlier notification was refused for good (a 5xx answer, or an address sendmail refused) and not retried:\n  one\nKept in /d (files with a "rejected" field).\n',
    );
  });
});
