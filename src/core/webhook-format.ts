import type { WebhookFormat } from './config.js';
import type { Notification, NotificationUnit } from './notification.js';

/**
 * One notification as the HTTP request a webhook format wants: the body and its headers. Pure: the
 * signature (webhook-signature.ts) and the token are added by the sender.
 *
 * Text from units (names, descriptions, journal lines) is data here as in the mail: in `slack` and
 * `ntfy` it sits in code spans and fenced blocks whose delimiters it cannot contain, `<`, `>` and `&`
 * are escaped for Slack (which reads `<!channel>` and `<url|label>` as markup), and an `@` that
 * would start a mention (`@channel`, `@here`, `@everyone`, `@user`) is followed by a zero-width
 * space so no chat notifies anyone because a unit wrote it.
 */
export interface WebhookRequest {
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Journal lines shown in a chat message per unit: a phone screen, not the whole journal. */
const CHAT_JOURNAL_LINES = 10;
/** Units detailed in one chat message; the rest are named only. */
const CHAT_UNITS = 10;
/** Characters of a chat message's body; Slack truncates `text` at 40,000, ntfy caps messages at 4 KiB by default. */
const CHAT_BODY_CHARS = 3500;

export function renderWebhookRequest(notification: Notification, format: WebhookFormat): WebhookRequest {
  if (format === 'slack') {
    return {
      body: JSON.stringify({ text: slackText(notification) }),
      headers: { 'Content-Type': 'application/json' },
    };
  }
  if (format === 'ntfy') return ntfyRequest(notification);
  return {
    body: JSON.stringify(notification),
    headers: { 'Content-Type': 'application/json', 'X-Unitwatch-Event': notification.event },
  };
}

/** An `@` followed by a word character cannot start a mention once a zero-width space separates them. */
export function defuseMentions(text: string): string {
  return text.replace(/@(?=[\p{L}\p{N}_])/gu, '@\u200b');
}

/** Slack's three markup characters, escaped as its documentation asks. */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A backtick becomes U+02CB so the text cannot close the code span or fence it sits in. */
function codeSafe(text: string): string {
  return defuseMentions(text.replace(/`/g, '\u02cb'));
}

/** One line in a code span: a line break would end the span in some renderers. */
function inlineCode(text: string): string {
  return text === '' ? '' : `\`${codeSafe(text.replace(/[\r\n]+/g, ' '))}\``;
}

function fenced(lines: readonly string[]): string {
  return `\`\`\`\n${lines.map(codeSafe).join('\n')}\n\`\`\``;
}

/** Emphasis markers of our own around text of our own; untrusted text only inside code. */
function unitLine(unit: NotificationUnit): string {
  const parts: string[] = [];
  if (unit.result !== undefined) parts.push(inlineCode(unit.result));
  if (unit.exit !== undefined) parts.push(codeSafe(unit.exit.text));
  if (unit.failures > 1) parts.push(`${unit.failures} failures`);
  if (unit.critical) parts.push('CRITICAL');
  const state =
    unit.state === 'recovered'
      ? 'is up again'
      : unit.state === 'stopped-by-hand'
        ? 'was stopped'
        : unit.state;
  return `• ${inlineCode(unit.unit)} ${state}${parts.length === 0 ? '' : `: ${parts.join(', ')}`}`;
}

/** The message a chat shows, in the Markdown subset Slack (mrkdwn), Mattermost and ntfy share. */
function chatMarkdown(notification: Notification): string {
  const blocks: string[] = [];
  for (const unit of notification.units.slice(0, CHAT_UNITS)) {
    const lines = [unitLine(unit)];
    if (unit.description !== '') lines.push(`  ${inlineCode(unit.description)}`);
    if (unit.last_words !== undefined) lines.push(`  said: ${inlineCode(unit.last_words)}`);
    if (unit.invocation_id !== undefined) lines.push(`  invocation ${inlineCode(unit.invocation_id)}`);
    const journal = (unit.journal ?? []).slice(-CHAT_JOURNAL_LINES);
    if (journal.length > 0 && notification.units.length === 1) lines.push(fenced(journal));
    blocks.push(lines.join('\n'));
  }
  const more = notification.units.length - CHAT_UNITS;
  if (more > 0) blocks.push(`… and ${more} more`);
  for (const note of notification.notes) blocks.push(`_${codeSafe(note).replace(/[_*~]/g, ' ')}_`);
  if (notification.also_failing !== undefined && notification.also_failing.length > 0) {
    blocks.push(`Also failing: ${notification.also_failing.slice(0, 10).map(inlineCode).join(', ')}`);
  }
  const text = blocks.join('\n\n');
  return text.length <= CHAT_BODY_CHARS ? text : `${text.slice(0, CHAT_BODY_CHARS)}\n…`;
}

function chatTitle(notification: Notification): string {
  return codeSafe(notification.title);
}

function slackText(notification: Notification): string {
  const icon =
    notification.event === 'recovery'
      ? ':white_check_mark:'
      : notification.critical
        ? ':rotating_light:'
        : ':warning:';
  // Escaped as a whole: our own markup has no <, > or &, and a unit's text then has none either.
  return escapeSlack(`${icon} *${chatTitle(notification)}*\n\n${chatMarkdown(notification)}`);
}

const NTFY_TAGS: Readonly<Record<Notification['event'], string>> = {
  failed: 'warning',
  crashed: 'warning',
  stopped: 'warning',
  digest: 'warning',
  recovery: 'white_check_mark',
  'stopped-by-hand': 'octagonal_sign',
};

/** Critical failures urgent, a critical unit's recovery high, everything else default. */
export function ntfyPriority(notification: Notification): 'urgent' | 'high' | 'default' {
  if (!notification.critical) return 'default';
  return notification.event === 'recovery' || notification.event === 'stopped-by-hand' ? 'high' : 'urgent';
}

/**
 * ntfy reads headers for title and priority; a non-ASCII title goes as an RFC 2047 encoded word,
 * which ntfy decodes (fetch refuses header values beyond Latin-1, and a raw one would be mangled).
 */
export function headerValue(text: string): string {
  const single = text.replace(/[\r\n]+/g, ' ');
  if (/^[\x20-\x7e]*$/.test(single)) return single;
  return `=?UTF-8?B?${Buffer.from(single, 'utf8').toString('base64')}?=`;
}

function ntfyRequest(notification: Notification): WebhookRequest {
  const tags = [
    notification.critical && ntfyPriority(notification) === 'urgent'
      ? 'rotating_light'
      : NTFY_TAGS[notification.event],
    notification.event,
    notification.host,
  ];
  return {
    body: chatMarkdown(notification),
    headers: {
      'Content-Type': 'text/markdown; charset=utf-8',
      Title: headerValue(notification.title),
      Priority: ntfyPriority(notification),
      Tags: tags.join(','),
      Markdown: 'yes',
    },
  };
}
