import { describe, expect, it } from 'vitest';
import type { Notification, NotificationUnit } from '../../src/core/notification.js';
import {
  defuseMentions,
  escapeSlack,
  headerValue,
  ntfyPriority,
  renderWebhookRequest,
} from '../../src/core/webhook-format.js';

function unit(overrides: Partial<NotificationUnit> = {}): NotificationUnit {
  return {
    unit: 'nginx.service',
    description: 'Web server',
    state: 'failed',
    critical: false,
    failures: 1,
    result: 'exit-code',
    exit: { code: 'exited', status: 1, text: 'exited with status 1' },
    failed_at: '2026-11-22T04:32:22.500Z',
    invocation_id: '0123456789abcdef0123456789abcdef',
    journal: ['nginx: bind() failed'],
    ...overrides,
  };
}

function notification(overrides: Partial<Notification> = {}): Notification {
  return {
    schema: 1,
    event: 'failed',
    host: 'web1',
    time: '2026-11-22T04:32:22.500Z',
    title: 'nginx.service failed on web1 (exit-code)',
    unit: 'nginx.service',
    units: [unit()],
    critical: false,
    failures: 1,
    id: '<id@web1>',
    incident_id: '<id@web1>',
    notes: [],
    ...overrides,
  };
}

/** What a unit, its description and its journal can say to a chat. */
const HOSTILE = unit({
  unit: 'x.service',
  description: '<!channel> @here *bold* [click](https://evil.example) & `code`',
  last_words: '@everyone ```\nbreak out',
  journal: ['``` closes the fence <https://evil.example|login> @channel'],
});

describe('json format', () => {
  it('is the notification itself, as JSON, with the event in a header', () => {
    const request = renderWebhookRequest(notification(), 'json');
    expect(JSON.parse(request.body)).toEqual(notification());
    expect(request.headers).toEqual({ 'Content-Type': 'application/json', 'X-Unitwatch-Event': 'failed' });
  });

  it('keeps quotes, backslashes and newlines in unit text from breaking the document', () => {
    const tricky = notification({ units: [unit({ description: '"}, "critical": true, {"\\\n' })] });
    const parsed = JSON.parse(renderWebhookRequest(tricky, 'json').body) as Notification;
    expect(parsed.critical).toBe(false);
    expect(parsed.units[0]?.description).toBe('"}, "critical": true, {"\\\n');
  });
});

describe('slack format', () => {
  it('is an incoming-webhook body with the title and the unit', () => {
    const request = renderWebhookRequest(notification(), 'slack');
    const body = JSON.parse(request.body) as { text: string };
    expect(Object.keys(body)).toEqual(['text']);
    expect(body.text).toContain(':warning: *nginx.service failed on web1 (exit-code)*');
    expect(body.text).toContain('• `nginx.service` failed: `exit-code`, exited with status 1');
    expect(body.text).toContain('```\nnginx: bind() failed\n```');
    expect(request.headers['Content-Type']).toBe('application/json');
  });

  it('escapes <, > and & and defuses mentions, so a unit cannot ping a channel or forge a link', () => {
    const text = (
      JSON.parse(renderWebhookRequest(notification({ units: [HOSTILE] }), 'slack').body) as {
        text: string;
      }
    ).text;
    expect(text).not.toMatch(/[<>]/);
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).toContain('&amp;');
    expect(text).not.toMatch(/@(here|channel|everyone)/);
    expect(text).toContain('@\u200bhere');
  });

  it('never lets unit text close the code span or fence it is shown in', () => {
    const text = (
      JSON.parse(renderWebhookRequest(notification({ units: [HOSTILE] }), 'slack').body) as {
        text: string;
      }
    ).text;
    // Our own fences and spans only: every backtick run is one we opened or closed.
    const fences = text.match(/```/g) ?? [];
    expect(fences).toHaveLength(2);
    expect(text).toContain('\u02cb\u02cb\u02cb closes the fence');
    expect(text).toContain('&amp; \u02cbcode\u02cb`');
    expect(text).toContain('said: `@\u200beveryone \u02cb\u02cb\u02cb break out`');
  });

  it('marks a critical failure and a recovery with their own icon', () => {
    const critical = renderWebhookRequest(notification({ critical: true }), 'slack').body;
    expect(critical).toContain(':rotating_light:');
    const recovery = renderWebhookRequest(
      notification({ event: 'recovery', units: [unit({ state: 'recovered' })] }),
      'slack',
    ).body;
    expect(recovery).toContain(':white_check_mark:');
    expect(recovery).toContain('`nginx.service` is up again');
  });
});

describe('ntfy format', () => {
  it('publishes Markdown with Title, Priority and Tags headers', () => {
    const request = renderWebhookRequest(notification(), 'ntfy');
    expect(request.headers).toEqual({
      'Content-Type': 'text/markdown; charset=utf-8',
      Title: 'nginx.service failed on web1 (exit-code)',
      Priority: 'default',
      Tags: 'warning,failed,web1',
      Markdown: 'yes',
    });
    expect(request.body).toContain('• `nginx.service` failed');
  });

  it('makes a critical failure urgent and its recovery high', () => {
    expect(ntfyPriority(notification({ critical: true }))).toBe('urgent');
    expect(ntfyPriority(notification({ critical: true, event: 'recovery' }))).toBe('high');
    expect(ntfyPriority(notification({ event: 'digest' }))).toBe('default');
    expect(renderWebhookRequest(notification({ critical: true }), 'ntfy').headers.Tags).toBe(
      'rotating_light,failed,web1',
    );
  });

  it('encodes a non-ASCII title as an RFC 2047 word, and keeps every header on one line', () => {
    expect(headerValue('plain title')).toBe('plain title');
    const encoded = headerValue('dätenbank.service failed\r\nX-Evil: 1');
    expect(encoded).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/);
    expect(Buffer.from(encoded.slice(10, -2), 'base64').toString('utf8')).toBe(
      'dätenbank.service failed X-Evil: 1',
    );
  });

  it('shows hostile text in code, mentions defused', () => {
    const body = renderWebhookRequest(notification({ units: [HOSTILE] }), 'ntfy').body;
    expect(body).toContain(
      '`<!channel> @\u200bhere *bold* [click](https://evil.example) & \u02cbcode\u02cb`',
    );
    expect(body.match(/```/g) ?? []).toHaveLength(2);
  });
});

describe('text helpers', () => {
  it('defuses @word but leaves a lone @ and mail-like text readable', () => {
    expect(defuseMentions('@channel @ x a@b')).toBe('@\u200bchannel @ x a@\u200bb');
    expect(escapeSlack('a<b>&c')).toBe('a&lt;b&gt;&amp;c');
  });
});
