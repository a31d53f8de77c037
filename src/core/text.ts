/**
 * Unit names, descriptions and command output are untrusted: a unit can print anything, and a
 * Description= can hold any bytes. These helpers make such text safe for a mail body or header.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences on purpose
const ANSI_SEQUENCE = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[@-Z\\-_]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const BODY_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

function escapeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** For a mail body: keeps newlines and tabs, drops colour codes, shows other control characters as `\xNN`. */
export function cleanBodyText(text: string): string {
  return text.replace(ANSI_SEQUENCE, '').replace(/\r\n?/g, '\n').replace(BODY_CONTROL, escapeCharacter);
}

/** For one header value or one summary line: a single line, bounded, with no way to start another header. */
export function cleanLine(text: string, maxLength = 200): string {
  const single = text.replace(ANSI_SEQUENCE, '').replace(ANY_CONTROL, ' ').trim();
  return single.length > maxLength ? `${single.slice(0, maxLength - 1)}…` : single;
}

/** Quotes a word for a POSIX shell only when it needs it, so copy-pasted commands stay readable. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) && !word.startsWith('-')) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
