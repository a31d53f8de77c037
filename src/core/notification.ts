import { EXIT_CODE_NAMES, type Failure, failedAtMs, type UnitFacts, validInvocation } from './failure.js';
import { bodyText, inlineText } from './text.js';

/**
 * The structured form of one notification, beside the composed mail: what webhooks receive. Built
 * from the same facts the mail is composed from (never by parsing the mail's text), so a channel that
 * is not mail gets every fact without a second source of truth. Versioned: a field is only ever
 * added within one `schema`; renaming or removing one means `schema: 2`. docs/channels.md documents it.
 *
 * Every string is already made safe as data the way the mail makes it (control and bidi characters
 * shown as `\xNN`/`\uNNNN`, single-line fields folded); JSON.stringify does the rest.
 */

export const NOTIFICATION_SCHEMA = 1;

export type NotificationEvent = 'failed' | 'crashed' | 'stopped' | 'digest' | 'recovery' | 'stopped-by-hand';

export interface NotificationExit {
  /** `exited`, `killed`, `dumped core`, or `code N`. */
  readonly code: string;
  /** The exit status, or the signal number when killed. */
  readonly status: number;
  /** As the mail says it: `exited with status 1`, `killed, signal 9 (SIGKILL)`. */
  readonly text: string;
}

export interface NotificationUnit {
  readonly unit: string;
  readonly description: string;
  /** `failed`, `crashed` (a Restart= unit that systemd is restarting), `stopped` (critical, not active), `recovered`, `stopped-by-hand`. */
  readonly state: 'failed' | 'crashed' | 'stopped' | 'recovered' | 'stopped-by-hand';
  readonly critical: boolean;
  /** Failures this notification accounts for. */
  readonly failures: number;
  /** systemd's Result= (`exit-code`, `signal`, `timeout`, …); absent for a recovery. */
  readonly result?: string;
  readonly exit?: NotificationExit;
  /** When systemd says it went down (ISO-8601, UTC). */
  readonly failed_at?: string;
  /** The first failure of those this notification accounts for. */
  readonly first_failed_at?: string;
  /** When it was seen up again or stopped by hand (recoveries). */
  readonly ended_at?: string;
  readonly invocation_id?: string;
  readonly restarts?: number;
  readonly unit_file?: string;
  /** The last line the unit itself wrote, when it was read. */
  readonly last_words?: string;
  /** The head of `systemctl status` (at most STATUS_EXCERPT_CHARS). */
  readonly status_excerpt?: string;
  /** The failed invocation's last journal lines, oldest first (at most JOURNAL_LINES). */
  readonly journal?: readonly string[];
}

export interface Notification {
  readonly schema: typeof NOTIFICATION_SCHEMA;
  readonly event: NotificationEvent;
  readonly host: string;
  /** When it happened (ISO-8601, UTC): the failure, the latest failure of a digest, the recovery. */
  readonly time: string;
  /** The mail's Subject without the `[unitwatch] ` tag: a one-line title. */
  readonly title: string;
  /** Set when the notification is about exactly one unit. */
  readonly unit?: string;
  readonly units: readonly NotificationUnit[];
  readonly critical: boolean;
  /** Failures accounted for, all units together. */
  readonly failures: number;
  /** The Message-ID of this notification, the same on every channel. */
  readonly id: string;
  /** The Message-ID of the first notification of the incident: the thread to group by. */
  readonly incident_id: string;
  /** Policy remarks (hourly cap reached, …). */
  readonly notes: readonly string[];
  /** Other watched units failing on the host as the notification was composed. */
  readonly also_failing?: readonly string[];
  /** Notifications this channel refused for good earlier, once each (see docs/channels.md). */
  readonly rejected_earlier?: readonly string[];
}

/** Characters of `systemctl status` kept in `status_excerpt`. */
export const STATUS_EXCERPT_CHARS = 4000;
/** Journal lines kept per unit, newest kept. */
export const JOURNAL_LINES = 20;
const JOURNAL_LINE_CHARS = 500;

export interface NotificationContext {
  readonly hostname: string;
  readonly messageId: string;
  readonly references?: readonly string[] | undefined;
  readonly notes?: readonly string[];
  readonly failingNow?: readonly string[];
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function exitOf(facts: UnitFacts, text: string | undefined): NotificationExit | undefined {
  if (text === undefined || facts.execMainCode === undefined || facts.execMainStatus === undefined) {
    return undefined;
  }
  return {
    code: EXIT_CODE_NAMES[facts.execMainCode] ?? `code ${facts.execMainCode}`,
    status: facts.execMainStatus,
    text,
  };
}

/** Last JOURNAL_LINES non-empty lines, each one line of data. */
export function journalLines(lines: readonly string[]): string[] {
  return lines
    .filter((line) => line.trim() !== '' && !line.startsWith('-- '))
    .slice(-JOURNAL_LINES)
    .map((line) => inlineText(line, JOURNAL_LINE_CHARS));
}

function statusExcerpt(text: string): string {
  const clean = bodyText(text).replace(/\n+$/, '');
  return clean.length <= STATUS_EXCERPT_CHARS ? clean : `${clean.slice(0, STATUS_EXCERPT_CHARS - 1)}…`;
}

const STATE_OF: Record<Failure['kind'], NotificationUnit['state']> = {
  failed: 'failed',
  'crash-restart': 'crashed',
  stopped: 'stopped',
};

/** What a failure mail and a digest both say of one unit. */
export interface FailedUnitInput {
  readonly failure: Failure;
  readonly count: number;
  readonly firstAtMs?: number;
  readonly critical: boolean;
  readonly exitText: string | undefined;
  readonly status?: string;
  readonly journal?: readonly string[];
  readonly lastWords?: string | undefined;
}

function failedAtMsOf(failure: Failure): number {
  return failedAtMs(failure.facts, failure.observedAtMs);
}

function failedUnit(input: FailedUnitInput): NotificationUnit {
  const { facts } = input.failure;
  const failedAtMs = failedAtMsOf(input.failure);
  const exit = exitOf(facts, input.exitText);
  const lastWords = input.lastWords?.trim() ?? '';
  return {
    unit: inlineText(facts.unit),
    description: inlineText(facts.description),
    state: STATE_OF[input.failure.kind],
    critical: input.critical,
    failures: input.count,
    result: inlineText(facts.result || facts.subState, 60),
    ...(exit === undefined ? {} : { exit }),
    failed_at: iso(failedAtMs),
    ...(input.firstAtMs === undefined || input.count <= 1 ? {} : { first_failed_at: iso(input.firstAtMs) }),
    ...(validInvocation(facts.invocationId) === '' ? {} : { invocation_id: facts.invocationId }),
    ...(facts.restarts === undefined ? {} : { restarts: facts.restarts }),
    ...(facts.fragmentPath === '' ? {} : { unit_file: inlineText(facts.fragmentPath, 500) }),
    ...(lastWords === '' ? {} : { last_words: inlineText(lastWords, 300) }),
    ...(input.status === undefined ? {} : { status_excerpt: statusExcerpt(input.status) }),
    ...(input.journal === undefined ? {} : { journal: journalLines(input.journal) }),
  };
}

function common(
  event: NotificationEvent,
  title: string,
  units: readonly NotificationUnit[],
  atMs: number,
  context: NotificationContext,
): Notification {
  const [only] = units;
  const about = new Set(units.map((entry) => entry.unit));
  const others =
    context.failingNow === undefined
      ? undefined
      : [...new Set(context.failingNow)].filter((unit) => !about.has(unit)).map((unit) => inlineText(unit));
  return {
    schema: NOTIFICATION_SCHEMA,
    event,
    host: inlineText(context.hostname),
    time: iso(atMs),
    title: inlineText(title.replace(/^\[unitwatch\] /, ''), 300),
    ...(units.length === 1 && only !== undefined ? { unit: only.unit } : {}),
    units,
    critical: units.some((entry) => entry.critical),
    failures: units.reduce((sum, entry) => sum + entry.failures, 0),
    id: context.messageId,
    incident_id: context.references?.[0] ?? context.messageId,
    notes: (context.notes ?? []).map((note) => inlineText(note, 1000)),
    ...(others === undefined ? {} : { also_failing: others }),
  };
}

const EVENT_OF: Record<Failure['kind'], NotificationEvent> = {
  failed: 'failed',
  'crash-restart': 'crashed',
  stopped: 'stopped',
};

/** One unit's failure (or crash, or a critical unit down). */
export function failureNotification(
  input: FailedUnitInput,
  title: string,
  context: NotificationContext,
): Notification {
  return common(
    EVENT_OF[input.failure.kind],
    title,
    [failedUnit(input)],
    failedAtMsOf(input.failure),
    context,
  );
}

/** A storm digest; `units` ranked most important first, as in the mail. */
export function digestNotification(
  units: readonly FailedUnitInput[],
  title: string,
  context: NotificationContext,
): Notification {
  const latestMs = Math.max(0, ...units.map((entry) => failedAtMsOf(entry.failure)));
  return common('digest', title, units.map(failedUnit), latestMs, context);
}

export interface RecoveredInput {
  readonly unit: string;
  readonly failures: number;
  readonly sinceMs: number;
  readonly critical: boolean;
  readonly ending: 'recovered' | 'stopped';
}

/** The end of one incident, or of several that failed together. */
export function recoveryNotification(
  units: readonly RecoveredInput[],
  atMs: number,
  title: string,
  context: NotificationContext,
): Notification {
  const views: NotificationUnit[] = units.map((entry) => ({
    unit: inlineText(entry.unit),
    description: '',
    state: entry.ending === 'stopped' ? 'stopped-by-hand' : 'recovered',
    critical: entry.critical,
    failures: entry.failures,
    first_failed_at: iso(entry.sinceMs),
    ended_at: iso(atMs),
  }));
  const event = units.every((entry) => entry.ending === 'stopped') ? 'stopped-by-hand' : 'recovery';
  return common(event, title, views, atMs, context);
}
