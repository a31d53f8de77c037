import { describe, expect, it } from 'vitest';
import { cleanBodyText, cleanLine, shellQuote } from '../../src/core/text.js';

describe('cleanBodyText', () => {
  it('keeps newlines and tabs', () => {
    expect(cleanBodyText('a\tb\nc\n')).toBe('a\tb\nc\n');
  });

  it('turns CRLF and lone CR into LF', () => {
    expect(cleanBodyText('a\r\nb\rc')).toBe('a\nb\nc');
  });

  it('drops colour and cursor escapes', () => {
    expect(cleanBodyText('\u001b[0;1;31m●\u001b[0m failed \u001b[2K\u001b[?25l')).toBe('● failed ');
  });

  it('drops two-character escapes such as ESC M', () => {
    expect(cleanBodyText('before\u001bMafter')).toBe('beforeafter');
  });

  it('shows other control characters as \\xNN', () => {
    expect(cleanBodyText('bell\u0007 nul\u0000 del\u007f c1\u0085')).toBe(
      'bell\\x07 nul\\x00 del\\x7f c1\\x85',
    );
  });

  it('shows a stray ESC that starts no sequence as \\x1b', () => {
    expect(cleanBodyText('end\u001b')).toBe('end\\x1b');
    expect(cleanBodyText('reset\u001bc')).toBe('reset\\x1bc');
  });

  it('shows Unicode line and paragraph separators as \\uNNNN', () => {
    expect(cleanBodyText('a\u2028b\u2029c')).toBe('a\\u2028b\\u2029c');
  });

  it('keeps printable Unicode', () => {
    expect(cleanBodyText('Grüße, 世界 ✓')).toBe('Grüße, 世界 ✓');
  });
});

describe('cleanLine', () => {
  it('folds CR, LF and every other control character into one space', () => {
    expect(cleanLine('Subject: x\r\nBcc: spy@example.org')).toBe('Subject: x Bcc: spy@example.org');
    expect(cleanLine('a\u0000\u0001b\u2028c')).toBe('a b c');
  });

  it('drops colour escapes and trims', () => {
    expect(cleanLine('  \u001b[31mred\u001b[0m  ')).toBe('red');
  });

  it('bounds the length, marking the cut with an ellipsis', () => {
    expect(cleanLine('abcdefghij', 5)).toBe('abcd…');
    expect(cleanLine('abcde', 5)).toBe('abcde');
  });

  it('bounds to 200 characters by default', () => {
    expect(cleanLine('x'.repeat(1000))).toHaveLength(200);
  });

  it('never returns a line break, whatever the input', () => {
    const input = Array.from({ length: 0x2030 }, (_, code) => String.fromCharCode(code)).join('');
    expect(cleanLine(input, 100_000)).not.toMatch(/[\r\n\u2028\u2029\u0085]/);
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

  it('quotes the empty word', () => {
    expect(shellQuote('')).toBe("''");
  });
});
