import { describe, expect, it } from 'vitest';
import type { Failure, UnitFacts } from '../../src/core/failure.js';
import {
  type CommandOutput,
  type CompositionContext,
  composeDigestMail,
  composeFailureMail,
  composeRecoveryMail,
  DIGEST_JOURNAL_BUDGET_CHARS,
  DIGEST_JOURNAL_LINE_CHARS,
  type Diagnosis,
  describeExit,
  FAILING_NOW_SHOWN,
  formatTimestamp,
  journalAddsLines,
  statusHeadFromFacts,
} from '../../src/core/message.js';
import { bodyText, FORBIDDEN_IN_BODY } from '../../src/core/text.js';

const INVOCATION = '0123456789abcdef0123456789abcdef';
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what a header must not hold
const NOT_ONE_LINE = /[\r\n\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const facts: UnitFacts = {
  unit: 'nginx.service',
  description: 'Web server',
  activeState: 'failed',
  subState: 'failed',
  result: 'exit-code',
  execMainCode: 1,
  execMainStatus: 3,
  restarts: 2,
  invocationId: INVOCATION,
  // 2026-11-22 04:32:22.5 UTC
  inactiveEnterTimestampUs: 1_795_321_942_500_000,
  fragmentPath: '/etc/systemd/system/nginx.service',
};

const context: CompositionContext = { hostname: 'web1', messageId: '<fixed-id@web1>' };

function failure(overrides: Partial<UnitFacts> = {}, kind: Failure['kind'] = 'failed'): Failure {
  return { kind, facts: { ...facts, ...overrides }, observedAtMs: 1_795_321_943_000 };
}

function output(text: string, overrides: Partial<CommandOutput> = {}): CommandOutput {
  return {
    command: 'systemctl status --full -- nginx.service',
    text,
    truncatedBytes: 0,
    problem: undefined,
    ...overrides,
  };
}

const statusText = [
  '× nginx.service - Web server',
  '     Loaded: loaded (/etc/systemd/system/nginx.service; enabled)',
  '     Active: failed (Result: exit-code) since Sun 2026-11-22 04:32:22 UTC',
  'Nov 22 04:32:22 web1 nginx[812]: bind() to 0.0.0.0:80 failed (98: Address already in use)',
  '',
].join('\n');

const diagnosis: Diagnosis = { status: output(statusText), journal: undefined };

function bodyOf(mail: { text: string }): string {
  return mail.text;
}

describe('composeFailureMail: subject', () => {
  it('names the unit, the host and the result of a failed unit', () => {
    expect(composeFailureMail(failure(), diagnosis, context).subject).toBe(
      '[unitwatch] nginx.service failed on web1 (exit-code)',
    );
  });

  it('says a crashed Restart= unit is being restarted', () => {
    const mail = composeFailureMail(
      failure({ subState: 'auto-restart', result: 'signal' }, 'crash-restart'),
      diagnosis,
      context,
    );
    expect(mail.subject).toBe('[unitwatch] nginx.service crashed on web1 (signal), restarting');
  });

  it('falls back to the sub-state when the unit type has no result', () => {
    const mail = composeFailureMail(failure({ result: '', subState: 'failed' }), diagnosis, context);
    expect(mail.subject).toBe('[unitwatch] nginx.service failed on web1 (failed)');
  });

  it('stays one line when the unit name holds CR/LF', () => {
    const mail = composeFailureMail(
      failure({ unit: 'evil\r\nBcc: spy@example.org.service' }),
      diagnosis,
      context,
    );
    expect(mail.subject).not.toMatch(/[\r\n]/);
    expect(mail.subject).toBe('[unitwatch] evil Bcc: spy@example.org.service failed on web1 (exit-code)');
  });
});

describe('composeFailureMail: headers', () => {
  it('marks the mail as automatic and names unit, host, event and invocation', () => {
    const mail = composeFailureMail(failure(), diagnosis, context);
    expect(mail.headers).toMatchObject({
      'Auto-Submitted': 'auto-generated',
      'X-Auto-Response-Suppress': 'All',
      'X-Unitwatch-Unit': 'nginx.service',
      'X-Unitwatch-Host': 'web1',
      'X-Unitwatch-Event': 'failed',
      'X-Unitwatch-Invocation': INVOCATION,
    });
  });

  it('names the crash-restart event', () => {
    const mail = composeFailureMail(
      failure({ subState: 'auto-restart' }, 'crash-restart'),
      diagnosis,
      context,
    );
    expect(mail.headers['X-Unitwatch-Event']).toBe('crash-restart');
  });

  it('uses the injected Message-ID', () => {
    expect(composeFailureMail(failure(), diagnosis, context).messageId).toBe('<fixed-id@web1>');
  });

  it('leaves out the invocation header when systemd gave none', () => {
    const mail = composeFailureMail(failure({ invocationId: '' }), diagnosis, context);
    expect(mail.headers).not.toHaveProperty('X-Unitwatch-Invocation');
  });

  it('keeps every header value on one line whatever the unit, description and host hold', () => {
    const hostile = failure({
      unit: 'x\r\nContent-Type: text/html\r\n\r\n<b>.service',
      description: 'desc\nTo: spy@example.org\u2028\u0085\u0000',
      result: 'exit-code\r\nX-Evil: 1',
    });
    const mail = composeFailureMail(hostile, diagnosis, { ...context, hostname: 'web1\r\nX-Evil: 2' });
    for (const [name, value] of Object.entries(mail.headers)) {
      expect(value, name).not.toMatch(NOT_ONE_LINE);
    }
    expect(mail.subject).not.toMatch(NOT_ONE_LINE);
    expect(mail.headers['X-Unitwatch-Unit']).toBe('x Content-Type: text/html <b>.service');
  });

  it('keeps Unicode in names and descriptions, leaving the encoding to the mailer', () => {
    const mail = composeFailureMail(
      failure({ unit: 'grüße@wörld.service', description: 'Dienst ✓' }),
      diagnosis,
      context,
    );
    expect(mail.headers['X-Unitwatch-Unit']).toBe('grüße@wörld.service');
    expect(bodyOf(mail)).toContain('grüße@wörld.service (Dienst ✓)');
  });

  it('bounds a very long unit name in headers and subject', () => {
    const mail = composeFailureMail(failure({ unit: `${'a'.repeat(5000)}.service` }), diagnosis, context);
    expect(mail.headers['X-Unitwatch-Unit']?.length).toBeLessThanOrEqual(200);
    expect(mail.subject.length).toBeLessThan(300);
  });
});

describe('composeFailureMail: summary', () => {
  const body = bodyOf(composeFailureMail(failure(), diagnosis, context));

  it('opens with one sentence saying what happened', () => {
    expect(body.split('\n')[0]).toBe('nginx.service failed on web1.');
  });

  it('opens a crash-restart with the restart', () => {
    const crash = composeFailureMail(
      failure({ subState: 'auto-restart' }, 'crash-restart'),
      diagnosis,
      context,
    );
    expect(bodyOf(crash).split('\n')[0]).toBe(
      'nginx.service crashed on web1; systemd is restarting it (Restart=).',
    );
  });

  it('lists unit, host, result, exit, time, restarts, invocation and unit file as aligned rows', () => {
    expect(body).toContain(
      [
        '  Unit:       nginx.service (Web server)',
        '  Host:       web1',
        '  Result:     exit-code',
        '  Exit:       exited with status 3',
        '  Time:       2026-11-22 04:32:22 UTC',
        '  Restarts:   2',
        `  Invocation: ${INVOCATION}`,
        '  Unit file:  /etc/systemd/system/nginx.service',
      ].join('\n'),
    );
  });

  it('leaves out rows systemd had nothing for', () => {
    const sparse = bodyOf(
      composeFailureMail(
        failure({
          description: '',
          execMainCode: undefined,
          execMainStatus: undefined,
          restarts: undefined,
          invocationId: '',
          fragmentPath: '',
        }),
        diagnosis,
        context,
      ),
    );
    expect(sparse).toContain(
      '  Unit:       nginx.service\n  Host:       web1\n  Result:     exit-code\n  Time:',
    );
    for (const label of ['Exit:', 'Restarts:', 'Invocation:', 'Unit file:'])
      expect(sparse).not.toContain(label);
  });

  it('uses the time of observation when systemd gave no timestamp', () => {
    const mail = composeFailureMail(failure({ inactiveEnterTimestampUs: 0 }), diagnosis, context);
    expect(bodyOf(mail)).toContain(`  Time:       ${formatTimestamp(1_795_321_943_000)}`);
  });

  it('folds a description with line breaks into the summary row', () => {
    const mail = composeFailureMail(failure({ description: 'Web\r\nserver\u2028again' }), diagnosis, context);
    expect(bodyOf(mail)).toContain('  Unit:       nginx.service (Web server again)\n');
  });

  it('ends with a signature', () => {
    expect(body.endsWith('\n\n-- \nunitwatch\n')).toBe(true);
  });
});

describe('composeFailureMail: commands to investigate', () => {
  it('gives status, the invocation’s journal and reset-failed', () => {
    const body = bodyOf(composeFailureMail(failure(), diagnosis, context));
    expect(body).toContain(
      [
        'Investigate:',
        '  systemctl status --full -- nginx.service',
        `  journalctl _SYSTEMD_INVOCATION_ID=${INVOCATION} + INVOCATION_ID=${INVOCATION}`,
        '  systemctl reset-failed -- nginx.service   # once handled',
      ].join('\n'),
    );
  });

  it("says --user in every command when the unit is a user manager's", () => {
    const body = bodyOf(composeFailureMail(failure(), diagnosis, { ...context, scope: 'user' }));
    expect(body).toContain(
      [
        'Investigate:',
        '  systemctl --user status --full -- nginx.service',
        `  journalctl --user _SYSTEMD_INVOCATION_ID=${INVOCATION} + USER_INVOCATION_ID=${INVOCATION}`,
        '  systemctl --user reset-failed -- nginx.service   # once handled',
      ].join('\n'),
    );
    const noId = bodyOf(
      composeFailureMail(failure({ invocationId: '' }), diagnosis, { ...context, scope: 'user' }),
    );
    expect(noId).toContain('  journalctl --user -b -u nginx.service\n');
  });

  it('falls back to the unit’s journal of this boot without an invocation id', () => {
    const body = bodyOf(composeFailureMail(failure({ invocationId: '' }), diagnosis, context));
    expect(body).toContain('  journalctl -b -u nginx.service\n');
  });

  it("quotes a unit name starting with a dash, such as '-.mount'", () => {
    const body = bodyOf(
      composeFailureMail(failure({ unit: '-.mount', invocationId: '' }), diagnosis, context),
    );
    expect(body).toContain("  systemctl status --full -- '-.mount'\n");
    expect(body).toContain("  journalctl -b -u '-.mount'\n");
    expect(body).toContain("  systemctl reset-failed -- '-.mount'   # once handled\n");
  });

  it('quotes a unit name with shell metacharacters so pasting the command runs nothing else', () => {
    const body = bodyOf(composeFailureMail(failure({ unit: "a';id;'.service" }), diagnosis, context));
    expect(body).toContain("  systemctl status --full -- 'a'\\'';id;'\\''.service'\n");
  });
});

describe('describeExit', () => {
  it('describes a process that exited with a status', () => {
    expect(describeExit({ ...facts, execMainCode: 1, execMainStatus: 3 })).toBe('exited with status 3');
  });

  it('describes a process killed by a signal, with its name', () => {
    expect(describeExit({ ...facts, execMainCode: 2, execMainStatus: 9 })).toBe('killed, signal 9 (SIGKILL)');
  });

  it('describes a process that dumped core', () => {
    expect(describeExit({ ...facts, execMainCode: 3, execMainStatus: 11 })).toBe(
      'dumped core, signal 11 (SIGSEGV)',
    );
  });

  it('says nothing when there was no main process', () => {
    expect(describeExit({ ...facts, execMainCode: 0, execMainStatus: 0 })).toBeUndefined();
    expect(describeExit({ ...facts, execMainCode: undefined, execMainStatus: undefined })).toBeUndefined();
  });

  it('names an unknown signal by number only', () => {
    expect(describeExit({ ...facts, execMainCode: 2, execMainStatus: 200 })).toBe('killed, signal 200');
  });
});

describe('formatTimestamp', () => {
  it('writes UTC to the second', () => {
    expect(formatTimestamp(Date.UTC(2026, 10, 22, 4, 32, 22, 999))).toBe('2026-11-22 04:32:22 UTC');
  });
});

describe('composeFailureMail: status output', () => {
  it('carries the status output under a heading naming the command', () => {
    const body = bodyOf(composeFailureMail(failure(), diagnosis, context));
    expect(body).toContain(
      `── status: systemctl status --full -- nginx.service\n${statusText.trimEnd()}\n\n`,
    );
  });

  it('says when the output was cut by the size limit', () => {
    const mail = composeFailureMail(
      failure(),
      { status: output(statusText, { truncatedBytes: 4_194_304 }), journal: undefined },
      context,
    );
    expect(bodyOf(mail)).toContain(
      `${statusText.trimEnd()}\n[… 4194304 more bytes cut by UNITWATCH_OUTPUT_LIMIT]\n`,
    );
  });

  it('says why the status is missing or incomplete, and still composes a mail', () => {
    const mail = composeFailureMail(
      failure(),
      {
        status: output('', { problem: 'systemctl not found (ENOENT)' }),
        journal: undefined,
      },
      context,
    );
    expect(bodyOf(mail)).toContain(
      '── status: systemctl status --full -- nginx.service\n(systemctl not found (ENOENT))\n',
    );
  });

  it('drops ANSI colour codes and shows control characters as \\xNN', () => {
    const mail = composeFailureMail(
      failure(),
      {
        status: output('\u001b[0;1;31m×\u001b[0m nginx\u0007 died\u001b[K\r\nnext line\n'),
        journal: undefined,
      },
      context,
    );
    expect(bodyOf(mail)).toContain('\n× nginx\\x07 died\nnext line\n');
    expect(bodyOf(mail)).not.toContain('\u001b');
    expect(bodyOf(mail)).not.toContain('\r');
  });

  it('shows NUL bytes as \\x00 instead of passing them into the mail', () => {
    const mail = composeFailureMail(
      failure(),
      { status: output('before\u0000after\n'), journal: undefined },
      context,
    );
    expect(bodyOf(mail)).toContain('before\\x00after');
    expect(bodyOf(mail)).not.toContain('\u0000');
  });
});

describe('composeFailureMail: journal of the invocation', () => {
  const journalCommand = `journalctl _SYSTEMD_INVOCATION_ID=${INVOCATION}`;
  const journal = (text: string, overrides: Partial<CommandOutput> = {}) =>
    output(text, { command: journalCommand, ...overrides });

  it('is left out when the status output already shows its lines', () => {
    const mail = composeFailureMail(
      failure(),
      {
        status: output(statusText),
        journal: journal(
          '-- Journal begins at Sun 2026-11-22 00:00:00 UTC. --\nNov 22 04:32:22 web1 nginx[812]: bind() to 0.0.0.0:80 failed (98: Address already in use)\n',
        ),
      },
      context,
    );
    expect(bodyOf(mail)).not.toContain('── journal');
  });

  it('is added when it holds lines the status output lacks', () => {
    const mail = composeFailureMail(
      failure(),
      {
        status: output(statusText),
        journal: journal('Nov 22 04:30:00 web1 nginx[812]: worker started marker-1\n'),
      },
      context,
    );
    expect(bodyOf(mail)).toContain(
      `── journal of this invocation: ${journalCommand}\nNov 22 04:30:00 web1 nginx[812]: worker started marker-1\n`,
    );
  });

  it('says so when the invocation left no journal lines at all', () => {
    const mail = composeFailureMail(failure(), { status: output(statusText), journal: journal('') }, context);
    expect(bodyOf(mail)).toContain(
      `── journal of this invocation: ${journalCommand}\n(no journal lines for this invocation)\n`,
    );
  });

  it('is added when gathering it had a problem, saying which', () => {
    const mail = composeFailureMail(
      failure(),
      { status: output(statusText), journal: journal('', { problem: 'timed out after 10s' }) },
      context,
    );
    expect(bodyOf(mail)).toContain(
      `── journal of this invocation: ${journalCommand}\n(timed out after 10s)\n`,
    );
  });

  it('comes after the status section and before the signature', () => {
    const text = bodyOf(
      composeFailureMail(
        failure(),
        { status: output(statusText), journal: journal('only in the journal\n') },
        context,
      ),
    );
    const status = text.indexOf('── status:');
    const journalAt = text.indexOf('── journal');
    expect(status).toBeGreaterThan(0);
    expect(journalAt).toBeGreaterThan(status);
    expect(text.indexOf('-- \nunitwatch')).toBeGreaterThan(journalAt);
  });
});

describe('journalAddsLines', () => {
  it('is false when every journal line is in the status output', () => {
    expect(journalAddsLines('a\nb\nc\n', 'b\nc\n')).toBe(false);
  });

  it('is true when one journal line is missing from the status output', () => {
    expect(journalAddsLines('a\nb\n', 'b\nz\n')).toBe(true);
  });

  it('ignores journalctl’s own "-- " markers and blank lines', () => {
    expect(journalAddsLines('a\n', '-- No entries --\n\n   \na\n')).toBe(false);
  });
});

describe('statusHeadFromFacts', () => {
  it('reads like the head of systemctl status, from the properties already read', () => {
    expect(statusHeadFromFacts(facts, 0)).toBe(
      [
        '× nginx.service - Web server',
        '     Active: failed (Result: exit-code) since 2026-11-22 04:32:22 UTC',
        '       Exit: exited with status 3',
        '  Unit file: /etc/systemd/system/nginx.service',
      ].join('\n'),
    );
  });

  it('shows the sub-state when it differs, as for a unit waiting to restart', () => {
    const head = statusHeadFromFacts({ ...facts, activeState: 'activating', subState: 'auto-restart' }, 0);
    expect(head).toContain('● nginx.service - Web server');
    expect(head).toContain('Active: activating (auto-restart) (Result: exit-code)');
  });
});

describe('composeDigestMail', () => {
  const entries = ['a.service', 'b.service'].map((unit, index) => ({
    failure: failure({ unit }),
    count: index + 1,
    critical: unit === 'b.service',
  }));

  const single = { failure: failure({ unit: 'a.service' }), count: 1, critical: false };

  it('names every unit with its result and head of status, and counts all failures', () => {
    const mail = composeDigestMail(entries, context);
    expect(mail.text).toContain('● a.service: exit-code, exited with status 3\n    × a.service - Web server');
    expect(mail.text).toContain('● b.service: exit-code, exited with status 3, 2 failures, CRITICAL');
    expect(mail.headers['X-Unitwatch-Failures']).toBe('3');
    expect(mail.headers.Importance).toBe('high');
  });

  it("types --user in a user manager's digest: list, status, journal and reset-failed", () => {
    const text = composeDigestMail(entries, { ...context, scope: 'user' }).text;
    expect(text).toContain('Investigate:\n  systemctl --user list-units --failed\n');
    expect(text).toContain('  systemctl --user status --full -- b.service   # first of the list\n');
    expect(text).toContain('  journalctl --user _SYSTEMD_INVOCATION_ID=');
    expect(text).toContain('  systemctl --user reset-failed   # once handled: clears every failed unit\n');
    expect(text).not.toMatch(/^ {2}(systemctl|journalctl) (?!--user)/m);
  });

  it('opens with what broke and where, singular and plural right', () => {
    expect(composeDigestMail(entries, context).text.split('\n')[0]).toMatch(
      /^2 units failed on web1 close together \(3 failures\)/,
    );
    const one = composeDigestMail(
      [{ failure: failure({ unit: 'a.service' }), count: 1, critical: false }],
      context,
    );
    expect(one.text.split('\n')[0]).toMatch(/^1 unit failed on web1 close together \(1 failure\)/);
    expect(one.subject).toBe('[unitwatch] a.service failed on web1');
  });

  it('names the units in the Subject, critical first, then most failures, then earliest', () => {
    const at = (seconds: number) => 1_795_321_942_500_000 + seconds * 1_000_000;
    const storm = [
      {
        failure: failure({ unit: 'late.service', inactiveEnterTimestampUs: at(9) }),
        count: 1,
        critical: false,
      },
      {
        failure: failure({ unit: 'early.service', inactiveEnterTimestampUs: at(1) }),
        count: 1,
        critical: false,
      },
      {
        failure: failure({ unit: 'often.service', inactiveEnterTimestampUs: at(5) }),
        count: 4,
        critical: false,
      },
      { failure: failure({ unit: 'db.service', inactiveEnterTimestampUs: at(8) }), count: 1, critical: true },
    ];
    const mail = composeDigestMail(storm, context);
    expect(mail.subject).toBe(
      '[unitwatch] db.service, often.service, early.service and late.service failed on web1',
    );
    const order = ['● db.service', '● often.service', '● early.service', '● late.service'].map((head) =>
      mail.text.indexOf(head),
    );
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order[0]).toBeGreaterThan(0);
  });

  it('says "and N more" when the names do not fit a sane Subject', () => {
    const storm = Array.from({ length: 77 }, (_, index) => ({
      failure: failure({ unit: `unit-number-${String(index).padStart(2, '0')}.service` }),
      count: 1,
      critical: false,
    }));
    const { subject } = composeDigestMail(storm, context);
    expect(subject).toMatch(
      /^\[unitwatch\] unit-number-00\.service, unit-number-01\.service, .* and \d+ more failed on web1$/,
    );
    expect(subject.length).toBeLessThanOrEqual(160);
    const shown = subject.split(', ').length;
    expect(subject).toContain(`and ${77 - shown} more failed`);
  });

  it('says "1 more", not "1 mores"', () => {
    const long = (name: string) => ({
      failure: failure({ unit: `${name}${'x'.repeat(35)}.service` }),
      count: 1,
      critical: false,
    });
    const { subject } = composeDigestMail([long('a'), long('b'), long('c')], context);
    expect(subject).toMatch(/ and 1 more failed on web1$/);
  });

  it('shows each unit’s journal lines under its status head', () => {
    const mail = composeDigestMail(
      [
        {
          ...single,
          journal: [
            'Nov 22 04:32:22 nginx[812]: bind() failed',
            'Nov 22 04:32:22 systemd[1]: a.service: Failed',
          ],
        },
      ],
      context,
    );
    expect(mail.text).toContain(
      '  Unit file: /etc/systemd/system/nginx.service\n    Nov 22 04:32:22 nginx[812]: bind() failed\n    Nov 22 04:32:22 systemd[1]: a.service: Failed\n',
    );
  });

  it('says so when a unit’s invocation left no journal lines', () => {
    const mail = composeDigestMail([{ ...single, journal: [] }], context);
    expect(mail.text).toContain('    (no journal lines for this invocation)');
  });

  it('keeps all journal lines within the mail’s budget, saying how many lines of how many units were cut and how to see them', () => {
    const line = 'y'.repeat(DIGEST_JOURNAL_LINE_CHARS + 50);
    const storm = Array.from({ length: 40 }, (_, index) => ({
      failure: failure({ unit: `u${index}.service`, invocationId: index.toString(16).padStart(32, '0') }),
      count: 1,
      critical: false,
      journal: Array.from({ length: 5 }, () => line),
    }));
    const mail = composeDigestMail(storm, context);
    const journalChars = mail.text
      .split('\n')
      .filter((text) => text.startsWith('    yyy'))
      .reduce((sum, text) => sum + text.length + 1, 0);
    expect(journalChars).toBeLessThanOrEqual(DIGEST_JOURNAL_BUDGET_CHARS);
    expect(journalChars).toBeGreaterThan(DIGEST_JOURNAL_BUDGET_CHARS / 2);
    const shownLines = mail.text.split('\n').filter((text) => text.startsWith('    yyy')).length;
    expect(shownLines).toBeLessThan(200);
    const summary = mail.text.match(/\[… (\d+) journal lines of (\d+) units cut to keep this mail short/);
    expect(Number(summary?.[1])).toBe(200 - shownLines);
    expect(Number(summary?.[2])).toBeGreaterThan(0);
    const last = storm.at(-1)?.failure.facts.invocationId ?? 'missing';
    expect(mail.text).toContain(
      `    [… 5 earlier lines not shown: journalctl _SYSTEMD_INVOCATION_ID=${last} + INVOCATION_ID=${last}]`,
    );
    // Each line is cut, not dropped, when it alone is too long.
    expect(mail.text).toContain(`    ${'y'.repeat(DIGEST_JOURNAL_LINE_CHARS - 1)}…\n`);
  });

  it('ends with what else is failing and the commands to type, before the signature', () => {
    const mail = composeDigestMail(entries, {
      ...context,
      failingNow: ['a.service', 'b.service', 'c.service'],
    });
    expect(mail.text).toContain(
      '\n\nAlso failing on web1: c.service.\n\nInvestigate:\n  systemctl list-units --failed\n',
    );
    expect(mail.text).toContain(
      `  systemctl status --full -- b.service   # first of the list\n  journalctl _SYSTEMD_INVOCATION_ID=${INVOCATION}`,
    );
    expect(mail.text.endsWith('\n\n-- \nunitwatch\n')).toBe(true);
  });
});

describe('failing now', () => {
  it('a failure mail names the other failing units, not itself, and counts beyond ten', () => {
    const others = Array.from({ length: 13 }, (_, index) => `o${index}.service`);
    const mail = composeFailureMail(failure(), diagnosis, {
      ...context,
      failingNow: ['nginx.service', ...others],
    });
    expect(mail.text).toContain(
      `Also failing on web1: ${others.slice(0, FAILING_NOW_SHOWN).join(', ')} and 3 more.\n\nInvestigate:`,
    );
  });

  it('says nothing else is failing when the list holds only the mail’s own unit', () => {
    const mail = composeFailureMail(failure(), diagnosis, { ...context, failingNow: ['nginx.service'] });
    expect(mail.text).toContain('\n\nNothing else is failing on web1.\n\nInvestigate:');
  });

  it('is left out when the caller gave no list', () => {
    const mail = composeFailureMail(failure(), diagnosis, context);
    expect(mail.text).not.toMatch(/failing on web1/);
  });

  it('a recovery mail says what is still down', () => {
    const recovery = {
      units: [
        { unit: 'nginx.service', failures: 1, sinceMs: 0, critical: false, ending: 'recovered' as const },
      ],
      atMs: 1,
    };
    expect(
      composeRecoveryMail(recovery, { ...context, failingNow: ['a.service', 'nginx.service', 'b.service'] })
        .text,
    ).toContain('\n\nStill failing on web1: a.service and b.service.\n\n-- \nunitwatch\n');
    expect(composeRecoveryMail(recovery, { ...context, failingNow: [] }).text).toContain(
      '\n\nNothing else is failing on web1.\n\n-- \nunitwatch\n',
    );
  });
});

describe('composeRecoveryMail', () => {
  it('is a short reply in the incident thread', () => {
    const mail = composeRecoveryMail(
      {
        units: [
          {
            unit: 'nginx.service',
            failures: 4,
            sinceMs: 1_795_321_942_500,
            critical: false,
            ending: 'recovered',
          },
        ],
        atMs: 1_795_322_000_000,
      },
      { ...context, inReplyTo: '<first@web1>', references: ['<first@web1>'] },
    );
    expect(mail.subject).toBe('[unitwatch] nginx.service recovered on web1');
    expect(mail.headers['In-Reply-To']).toBe('<first@web1>');
    expect(mail.headers.References).toBe('<first@web1>');
    expect(mail.headers['X-Unitwatch-Event']).toBe('recovery');
    expect(mail.text).toContain('Failures:   4');
    expect(mail.text.split('\n')[0]).toBe('nginx.service is up again on web1 after 4 failures.');
  });

  it('says "1 failure" for a single one', () => {
    const mail = composeRecoveryMail(
      {
        units: [{ unit: 'nginx.service', failures: 1, sinceMs: 0, critical: false, ending: 'recovered' }],
        atMs: 1,
      },
      context,
    );
    expect(mail.text.split('\n')[0]).toBe('nginx.service is up again on web1 after 1 failure.');
  });
});

describe('hostile text from units and journals (issue 10, item 5)', () => {
  const hostile: [string, string][] = [
    ['colour escape', 'a\u001b[31mred\u001b]8;;http://x\u0007'],
    ['lone ESC', 'a\u001bb'],
    ['BEL', 'a\u0007b'],
    ['BS', 'abc\u0008\u0008\u0008xyz'],
    ['DEL', 'a\u007fb'],
    ['C1 CSI', 'a\u009b31mb'],
    ['RLO override', 'a\u202eecivres.b'],
    ['LRI isolate', 'a\u2066b\u2069'],
    ['bidi marks', 'a\u200e\u200f\u061cb'],
    ['CR LF', 'a\r\nb'],
    ['lone LF', 'a\nb'],
    ['NUL', 'a\u0000b'],
    ['line separator', 'a\u2028b\u0085c'],
    ['200 KB name', `${'n'.repeat(200 * 1024)}\u001b`],
  ];
  const MARK = 'FORGED-LINE';

  /** Every kind of mail, with `text` in every field that comes from a unit or a journal. */
  function everyMail(text: string) {
    const hostileFacts = {
      unit: `${text}.service`,
      description: `${text}\n${MARK}`,
      result: text,
      subState: text,
      activeState: 'failed',
      fragmentPath: `/etc/${text}`,
    };
    const hostileDiagnosis: Diagnosis = {
      status: output(`${text}\n`, { command: `systemctl status -- ${text}`, problem: text }),
      journal: output(`${text}\n`, { command: `journalctl ${text}`, problem: text }),
      lastWords: text,
    };
    const hostileContext = { ...context, notes: [text], failingNow: [text, `${text}2`] };
    const kinds: Failure['kind'][] = ['failed', 'crash-restart', 'stopped'];
    return [
      ...kinds.map((kind) => ({
        kind,
        mail: composeFailureMail(failure(hostileFacts, kind), hostileDiagnosis, {
          ...hostileContext,
          count: 2,
        }),
      })),
      {
        kind: 'digest',
        mail: composeDigestMail(
          [
            { failure: failure(hostileFacts), count: 2, critical: true, journal: [text, `${text}\n${MARK}`] },
            { failure: failure({ ...hostileFacts, unit: `${text}-b.service` }), count: 1, critical: false },
          ],
          hostileContext,
        ),
      },
      {
        kind: 'recovery',
        mail: composeRecoveryMail(
          {
            units: [
              { unit: `${text}.service`, failures: 2, sinceMs: 0, critical: true, ending: 'recovered' },
            ],
            atMs: 1,
          },
          hostileContext,
        ),
      },
      {
        kind: 'recovery of a group, one stopped by hand',
        mail: composeRecoveryMail(
          {
            units: [
              { unit: `${text}.service`, failures: 2, sinceMs: 0, critical: true, ending: 'stopped' },
              { unit: `${text}-b.service`, failures: 1, sinceMs: 0, critical: false, ending: 'recovered' },
            ],
            atMs: 1,
          },
          hostileContext,
        ),
      },
    ];
  }

  for (const [name, text] of hostile) {
    it(`neutralises ${name} in the Subject, every header and the body of every kind of mail`, () => {
      for (const { kind, mail } of everyMail(text)) {
        expect(mail.subject, `${kind} subject`).not.toMatch(NOT_ONE_LINE);
        expect(mail.subject, `${kind} subject`).not.toMatch(FORBIDDEN_IN_BODY);
        expect(mail.subject.length, `${kind} subject`).toBeLessThan(400);
        for (const [header, value] of Object.entries(mail.headers)) {
          expect(value, `${kind} ${header}`).not.toMatch(NOT_ONE_LINE);
          expect(value, `${kind} ${header}`).not.toMatch(FORBIDDEN_IN_BODY);
          expect(value.length, `${kind} ${header}`).toBeLessThanOrEqual(200);
        }
        expect(mail.text, `${kind} body`).not.toMatch(FORBIDDEN_IN_BODY);
        expect(mail.text, `${kind} body`).not.toContain('\r');
        // Status, journal output and notes are multi-line text capped by their producers; the rest is bounded here.
        expect(mail.text.length, `${kind} body`).toBeLessThan(60_000 + 3 * bodyText(text).length);
      }
    });

    it(`lets no Description or journal line with ${name} start a line of its own`, () => {
      for (const { kind, mail } of everyMail(text)) {
        const forged = mail.text.split('\n').filter((line) => line.trimStart().startsWith(MARK));
        expect(forged, kind).toEqual([]);
      }
    });
  }

  it('puts no raw hostile name into a command to copy, and no over-long one at all', () => {
    const evil = composeFailureMail(failure({ unit: 'x\u001b[2J\u202e.service' }), diagnosis, context);
    expect(evil.text).toContain("  systemctl status --full -- $'x\\x1b[2J\\u202e.service'\n");
    const long = composeFailureMail(failure({ unit: `${'n'.repeat(300)}.service` }), diagnosis, context);
    expect(long.text).toContain(
      'Investigate:\n  systemctl list-units --failed   # the unit name is 308 characters',
    );
    expect(long.text).not.toContain(`-- ${'n'.repeat(300)}`);
  });

  it('puts no invocation id into a command or header unless it is 32 hex digits', () => {
    const mail = composeFailureMail(failure({ invocationId: '$(reboot)' }), diagnosis, context);
    expect(mail.text).not.toContain('_SYSTEMD_INVOCATION_ID=$(reboot)');
    expect(mail.text).toContain('  journalctl -b -u nginx.service\n');
    expect(mail.headers).not.toHaveProperty('X-Unitwatch-Invocation');
  });
});

describe('composeFailureMail: read on a phone at 3 a.m.', () => {
  const said: Diagnosis = {
    status: output('× nginx.service - Web server\n     Active: failed (Result: exit-code)\n'),
    journal: output('Nov 22 04:32:22 nginx[812]: bind() failed\n', {
      command: `journalctl _SYSTEMD_INVOCATION_ID=${INVOCATION} + INVOCATION_ID=${INVOCATION}`,
    }),
    settled: true,
    lastWords: 'bind() to 0.0.0.0:80 failed (98: Address already in use)',
  };

  it('says what broke and where first, then what it last said', () => {
    const lines = composeFailureMail(failure(), said, context).text.split('\n');
    expect(lines.slice(0, 2)).toEqual([
      'nginx.service failed on web1.',
      'It said: bind() to 0.0.0.0:80 failed (98: Address already in use)',
    ]);
  });

  it('shows status, then the journal, then what else fails, and ends with the commands to type', () => {
    const text = composeFailureMail(failure(), said, { ...context, failingNow: ['db.service'] }).text;
    const at = [
      '── status:',
      '── journal of this invocation:',
      'Also failing on web1: db.service.',
      'Investigate:',
      '-- \nunitwatch',
    ].map((marker) => text.indexOf(marker));
    expect(at.every((index) => index > 0)).toBe(true);
    expect(at).toEqual([...at].sort((a, b) => a - b));
    expect(
      text.endsWith('  systemctl reset-failed -- nginx.service   # once handled\n\n-- \nunitwatch\n'),
    ).toBe(true);
  });

  it('says "stopped", not "recovered", for a unit stopped by hand', () => {
    const mail = composeRecoveryMail(
      {
        units: [
          {
            unit: 'loop.service',
            failures: 9,
            sinceMs: 1_795_321_942_500,
            critical: false,
            ending: 'stopped',
          },
        ],
        atMs: 1_795_322_000_000,
      },
      context,
    );
    expect(mail.subject).toBe('[unitwatch] loop.service stopped on web1 after 9 failures');
    expect(mail.text).toContain('loop.service was stopped on web1 after 9 failures.');
    expect(mail.headers['X-Unitwatch-Event']).toBe('stopped-by-hand');
  });

  it('names every unit of a group that ended together in one mail', () => {
    const units = ['a', 'b', 'c', 'd', 'e'].map((name) => ({
      unit: `${name}.service`,
      failures: 1,
      sinceMs: 1_795_321_942_500,
      critical: false,
      ending: 'recovered' as const,
    }));
    const mail = composeRecoveryMail({ units, atMs: 1_795_322_000_000 }, context);
    expect(mail.subject).toBe('[unitwatch] a.service, b.service, c.service and 2 more ended on web1');
    for (const { unit } of units) expect(mail.text).toContain(`● ${unit} is up again`);
    expect(mail.headers['X-Unitwatch-Unit']).toBeUndefined();
  });
});
