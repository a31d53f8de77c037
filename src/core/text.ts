/**
 * Unit names, descriptions and command output are untrusted: a unit can print anything, and a
 * Description= can hold any bytes. These helpers make such text safe wherever a mail shows it.
 *
 * What is neutralised, and how:
 * - ANSI escape sequences (`ESC [ 31 m`, `ESC M`, …) are dropped: journals are full of colour codes
 *   and the reader loses nothing.
 * - Every other C0 control, DEL and every C1 control is shown as `\xNN`, so the reader sees that
 *   something was there and a terminal or mail client never acts on it.
 * - Bidirectional controls are shown as `\uNNNN`: the embeddings and overrides U+202A–U+202E, the
 *   isolates U+2066–U+2069, and the invisible marks U+200E, U+200F and U+061C. An override can make
 *   `evil.service` read as something else; a mark is invisible, so it too is made visible.
 *   Zero-width joiners are kept: emoji and many scripts need them, and they reorder nothing.
 * - U+2028 and U+2029 break lines in some clients: in a body they are shown as `\u2028`, on one line
 *   they fold like any other line break.
 * - On one line ({@link inlineText}), CR, LF, TAB, VT, FF and NEL fold into a single space, so a
 *   Description can never start a line, a header or a block of its own.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences on purpose
const ANSI_SEQUENCE = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[@-Z\\-_]/g;

/** Bidi embeddings, overrides, isolates and marks (character-class ranges, as regex source). */
const BIDI = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
/** C0 without TAB and LF, DEL, C1. */
const CONTROLS_BUT_TAB_LF = '\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f';
/** Characters that end a line somewhere: CR, LF, VT, FF, NEL, U+2028, U+2029 (and TAB, folded with them). */
const BREAKS = '\\t\\n\\u000b\\u000c\\r\\u0085\\u2028\\u2029';

const BODY_UNSAFE = new RegExp(`[${CONTROLS_BUT_TAB_LF}\\u2028\\u2029${BIDI}]`, 'g');
const LINE_BREAKS = new RegExp(`[${BREAKS}]+`, 'g');
const INLINE_UNSAFE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${BIDI}]`, 'g');
/** What a quoted shell word must not show raw (no `g`: used with `test`). */
const SHELL_UNSAFE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029${BIDI}]`);

/**
 * Every code point that {@link bodyText} never lets through (and {@link inlineText} neither, which
 * also removes TAB and LF), for specs to check composed mail against.
 */
export const FORBIDDEN_IN_BODY = new RegExp(`[${CONTROLS_BUT_TAB_LF}\\u2028\\u2029${BIDI}]`);

function escapeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Cuts to at most `maxLength` code points (never half a surrogate pair), marking the cut with `…`. */
export function truncate(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  const points = Array.from(text);
  if (points.length <= maxLength) return text;
  return `${points.slice(0, Math.max(maxLength - 1, 0)).join('')}…`;
}

/**
 * For multi-line bodies (journal lines, `systemctl status` output): keeps newlines and tabs, turns
 * CRLF and lone CR into LF, drops colour codes, shows every other control and bidi control as `\xNN`
 * or `\uNNNN`.
 */
export function bodyText(text: string): string {
  return text.replace(ANSI_SEQUENCE, '').replace(/\r\n?/g, '\n').replace(BODY_UNSAFE, escapeCharacter);
}

/**
 * For single-line contexts (Subject, header values, summary rows, status heads, Investigate lines,
 * log fields): line breaks and tabs fold into one space, other controls and bidi controls are shown
 * as `\xNN`/`\uNNNN`, colour codes are dropped, the result is trimmed and bounded to `maxLength`
 * code points. The result never contains a line break, so it cannot open a header or a line.
 */
export function inlineText(text: string, maxLength = 200): string {
  // Escapes at most sextuple the length: a huge input is cut first so its cost stays bounded.
  const bounded = text.length > maxLength * 8 + 64 ? text.slice(0, maxLength * 8 + 64) : text;
  const single = bounded
    .replace(ANSI_SEQUENCE, '')
    .replace(LINE_BREAKS, ' ')
    .replace(INLINE_UNSAFE, escapeCharacter)
    .trim();
  return truncate(single, maxLength);
}

/** @deprecated Use {@link bodyText}; kept so existing callers compile. */
export const cleanBodyText = bodyText;

/** @deprecated Use {@link inlineText}; kept for config.ts and outbox.ts. */
export const cleanLine = inlineText;

/**
 * Quotes a word for a POSIX shell only when it needs it, so copy-pasted commands stay readable:
 * bare when it holds only `[A-Za-z0-9:_.@-]` (systemd's unit-name characters without `\`) and does
 * not start with `-`; in single quotes otherwise; as `$'…'` with `\xNN`/`\uNNNN` escapes (bash, zsh,
 * ksh and POSIX.1-2024 sh) when it holds a control or bidi character, so the mail shows no raw
 * control character and the pasted command still names the exact unit.
 */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9:_.@-]+$/.test(word) && !word.startsWith('-')) return word;
  if (!SHELL_UNSAFE.test(word)) return `'${word.replace(/'/g, `'\\''`)}'`;
  const escaped = Array.from(word, (character) => {
    if (character === "'" || character === '\\') return `\\${character}`;
    return SHELL_UNSAFE.test(character) ? escapeCharacter(character) : character;
  }).join('');
  return `$'${escaped}'`;
}
