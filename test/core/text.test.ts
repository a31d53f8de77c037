import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  bodyText,
  cleanBodyText,
  cleanLine,
  FORBIDDEN_IN_BODY,
  inlineText,
  shellQuote,
  truncate,
} from '../../src/core/text.js';

describe('bodyText', () => {
  it('is what cleanBodyText still names', () => {
    expect(cleanBodyText).toBe(bodyText);
  });

  it('keeps newlines and tabs', () => {
    expect(bodyText('a\tb\nc\n')).toBe('a\tb\nc\n');
  });

  it('turns CRLF and lone CR into LF', () => {
    expect(bodyText('a\r\nb\rc')).toBe('a\nb\nc');
  });

  it('drops colour and cursor escapes', () => {
    expect(bodyText('\u001b[0;1;31m●\u001b[0m failed \u001b[2K\u001b[?25l')).toBe('● failed ');
  });

  it('drops two-character escapes such as ESC M', () => {
    expect(bodyText('before\u001bMafter')).toBe('beforeafter');
  });

  it('shows other control characters as \\xNN', () => {
    expect(bodyText('bell\u0007 nul\u0000 del\u007f c1\u0085')).toBe('bell\\x07 nul\\x00 del\\x7f c1\\x85');
  });

  it('shows a stray ESC that starts no sequence as \\x1b', () => {
    expect(bodyText('end\u001b')).toBe('end\\x1b');
    expect(bodyText('reset\u001bc')).toBe('reset\\x1bc');
  });

  it('shows Unicode line and paragraph separators as \\uNNNN', () => {
    expect(bodyText('a\u2028b\u2029c')).toBe('a\\u2028b\\u2029c');
  });

  it('shows bidi overrides, isolates and marks as \\uNNNN so a name cannot read backwards', () => {
    expect(bodyText('a\u202eecivres.b\u202c \u2066x\u2069 \u200e\u200f\u061c')).toBe(
      'a\\u202eecivres.b\\u202c \\u2066x\\u2069 \\u200e\\u200f\\u061c',
    );
  });

  it('leaves no forbidden code point, whatever the input', () => {
    const input = Array.from({ length: 0x2100 }, (_, code) => String.fromCharCode(code)).join('');
    expect(bodyText(input)).not.toMatch(FORBIDDEN_IN_BODY);
  });

  it('keeps printable Unicode', () => {
    expect(bodyText('Grüße, 世界 ✓')).toBe('Grüße, 世界 ✓');
  });
});

describe('inlineText', () => {
  it('is what cleanLine still names, for config.ts and outbox.ts', () => {
    expect(cleanLine).toBe(inlineText);
  });

  it('folds CR, LF, TAB and Unicode line breaks into one space', () => {
    expect(inlineText('Subject: x\r\nBcc: spy@example.org')).toBe('Subject: x Bcc: spy@example.org');
    expect(inlineText('a\t\tb\u2028c\u0085d\u000be')).toBe('a b c d e');
  });

  it('shows other control characters as \\xNN so the reader sees something was there', () => {
    expect(inlineText('a\u0000b\u0007c\u0008d\u007fe\u009bf')).toBe('a\\x00b\\x07c\\x08d\\x7fe\\x9bf');
  });

  it('shows bidi controls as \\uNNNN', () => {
    expect(inlineText('x\u202eecivres.\u2066y\u2069\u200f')).toBe('x\\u202eecivres.\\u2066y\\u2069\\u200f');
  });

  it('keeps zero-width joiners, which emoji need', () => {
    expect(inlineText('👩\u200d💻')).toBe('👩\u200d💻');
  });

  it('drops colour escapes and trims', () => {
    expect(inlineText('  \u001b[31mred\u001b[0m  ')).toBe('red');
  });

  it('shows an ESC left over once a sequence is dropped, instead of letting it form a new one', () => {
    expect(inlineText('\u001b\u001b[0m[31mred')).toBe('\\x1b[31mred');
  });

  it('bounds the length, marking the cut with an ellipsis', () => {
    expect(inlineText('abcdefghij', 5)).toBe('abcd…');
    expect(inlineText('abcde', 5)).toBe('abcde');
  });

  it('bounds to 200 characters by default, even for a 200 KB input', () => {
    expect(inlineText('x'.repeat(200_000))).toHaveLength(200);
    expect(inlineText('\u0007'.repeat(200_000))).toHaveLength(200);
  });

  it('never returns a line break or a forbidden code point, whatever the input', () => {
    const input = Array.from({ length: 0x2100 }, (_, code) => String.fromCharCode(code)).join('');
    const line = inlineText(input, 100_000);
    expect(line).not.toMatch(/[\t\r\n\u2028\u2029\u0085]/);
    expect(line).not.toMatch(FORBIDDEN_IN_BODY);
  });
});

describe('truncate', () => {
  it('never cuts a surrogate pair in half', () => {
    expect(truncate('😀😀😀', 2)).toBe('😀…');
  });
});

describe('shellQuote', () => {
  it('leaves ordinary unit names unquoted', () => {
    expect(shellQuote('nginx.service')).toBe('nginx.service');
    expect(shellQuote('getty@tty1.service')).toBe('getty@tty1.service');
    expect(shellQuote('run-u42.scope')).toBe('run-u42.scope');
  });

  it('quotes a name starting with a dash, such as -.mount', () => {
    expect(shellQuote('-.mount')).toBe("'-.mount'");
  });

  it('quotes systemd escapes and spaces', () => {
    expect(shellQuote('dev-disk-by\\x2duuid-1234.device')).toBe("'dev-disk-by\\x2duuid-1234.device'");
    expect(shellQuote('a b.service')).toBe("'a b.service'");
  });

  it('quotes shell metacharacters so a name cannot run a command', () => {
    expect(shellQuote('x;rm -rf /')).toBe("'x;rm -rf /'");
    expect(shellQuote('$(id).service')).toBe("'$(id).service'");
  });

  it("escapes a single quote as '\\''", () => {
    expect(shellQuote("it's.service")).toBe("'it'\\''s.service'");
  });

  it('quotes a name with characters outside the unit-name set, such as = or %', () => {
    expect(shellQuote('=x.service')).toBe("'=x.service'");
    expect(shellQuote('a%b.service')).toBe("'a%b.service'");
  });

  it("writes a name with control or bidi characters as $'…' with escapes: exact, yet nothing raw", () => {
    expect(shellQuote('evil\u001b[31m.service')).toBe("$'evil\\x1b[31m.service'");
    expect(shellQuote("a\u202e'b\\.service")).toBe("$'a\\u202e\\'b\\\\.service'");
    expect(shellQuote('a\nb')).toBe("$'a\\x0ab'");
  });

  it('gives bash back exactly the name, for every kind of hostile name', () => {
    const names = [
      'evil\u001b[31m.service',
      "a\u202e'b\\.service",
      'a\r\nb',
      'x;rm -rf /',
      '-.mount',
      '$(id)\u0007.service',
    ];
    for (const name of names) {
      expect(execFileSync('bash', ['-c', `printf %s ${shellQuote(name)}`]).toString(), name).toBe(name);
    }
  });

  it('quotes the empty word', () => {
    expect(shellQuote('')).toBe("''");
  });
});
