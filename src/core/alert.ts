import type { FailureKind, UnitFacts } from './failure.js';
import { describeExit, formatTimestamp, plural, statusHeadFromFacts } from './message.js';
import { bodyText, inlineText, truncate } from './text.js';

/**
 * An open incident as Alertmanager sees it: one alert per failed unit, labelled so that
 * Alertmanager can group and deduplicate it, and timed so that a lost resolve still resolves. Pure:
 * the time is passed in.
 */

/** What the watcher knows of one open incident, enough for the labels and annotations. */
export interface IncidentAlertView {
  readonly unit: string;
  readonly critical: boolean;
  /** The first failure of the incident: the alert's startsAt. */
  readonly firstFailureMs: number;
  readonly failures: number;
  /** The latest failure this process saw; undefined after a restart until the catch-up reads it. */
  readonly latest:
    | { readonly kind: FailureKind; readonly facts: UnitFacts; readonly atMs: number }
    | undefined;
  /** When the unit came up again or was stopped by hand; the incident closes on it after the grace. */
  readonly endedAtMs: number | undefined;
}

/** Alertmanager's postableAlert (API v2). */
export interface PostableAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly startsAt: string;
  readonly endsAt: string;
}

export interface AlertContext {
  readonly hostname: string;
  readonly staticLabels: Readonly<Record<string, string>>;
  readonly nowMs: number;
  /** The re-post interval. */
  readonly intervalMs: number;
}

export const ALERT_NAME = 'SystemdUnitFailed';

/**
 * A firing alert is valid for this many re-post intervals, as Prometheus does (4 × its resend
 * delay): three posts may be lost before it lapses, and an alert whose resolve never came (unitwatch
 * killed, host gone) resolves by itself at most this long after the last post.
 */
export const FIRING_VALIDITY_INTERVALS = 4;

/** The journal lines the description carries, and the caps that keep one alert small. */
export const DESCRIPTION_JOURNAL_LINES = 10;
export const DESCRIPTION_LINE_CHARS = 300;
export const DESCRIPTION_MAX_CHARS = 4096;

const WHAT: Record<FailureKind, string> = {
  failed: 'failed',
  'crash-restart': 'crashed and is being restarted',
  stopped: 'is no longer active (critical unit)',
};

/** The label set: what Alertmanager groups, routes, silences and deduplicates by. */
export function alertLabels(
  incident: Pick<IncidentAlertView, 'unit' | 'critical'>,
  context: Pick<AlertContext, 'hostname' | 'staticLabels'>,
): Record<string, string> {
  // Static labels first: the reserved ones are refused at start-up, and would lose here anyway.
  return {
    ...context.staticLabels,
    alertname: ALERT_NAME,
    instance: context.hostname,
    unit: incident.unit,
    severity: incident.critical ? 'critical' : 'warning',
  };
}

/** One line: what failed where, and how. `nginx.service failed on web1 (exit-code, exited with status 1)`. */
export function alertSummary(incident: IncidentAlertView, hostname: string): string {
  const latest = incident.latest;
  if (latest === undefined) return inlineText(`${incident.unit} failed on ${hostname}`, 300);
  const detail = [latest.facts.result, describeExit(latest.facts)].filter(
    (part): part is string => part !== undefined && part !== '',
  );
  const how = detail.length === 0 ? '' : ` (${detail.join(', ')})`;
  return inlineText(`${incident.unit} ${WHAT[latest.kind]} on ${hostname}${how}`, 300);
}

/**
 * The head of the unit's status (from the facts read over D-Bus: no fork), the incident's count,
 * and its last journal lines, capped so a chatty unit cannot make an alert of megabytes.
 */
export function alertDescription(
  incident: IncidentAlertView,
  journal: readonly string[] | undefined,
): string {
  const parts: string[] = [];
  const latest = incident.latest;
  if (latest !== undefined) parts.push(statusHeadFromFacts(latest.facts, latest.atMs));
  parts.push(
    `${plural(incident.failures, 'failure')} since ${formatTimestamp(incident.firstFailureMs)}` +
      (incident.endedAtMs === undefined
        ? ''
        : `; up again or stopped since ${formatTimestamp(incident.endedAtMs)}`),
  );
  const lines = (journal ?? []).slice(-DESCRIPTION_JOURNAL_LINES);
  if (lines.length > 0) {
    parts.push(
      `Last journal lines:\n${lines.map((line) => truncate(bodyText(line).replace(/\n/g, ' '), DESCRIPTION_LINE_CHARS)).join('\n')}`,
    );
  }
  return truncate(parts.join('\n\n'), DESCRIPTION_MAX_CHARS);
}

/** While the incident is open: valid for a few intervals from now, renewed by every re-post. */
export function firingAlert(
  incident: IncidentAlertView,
  journal: readonly string[] | undefined,
  context: AlertContext,
): PostableAlert {
  return {
    labels: alertLabels(incident, context),
    annotations: {
      summary: alertSummary(incident, context.hostname),
      description: alertDescription(incident, journal),
    },
    startsAt: new Date(incident.firstFailureMs).toISOString(),
    endsAt: new Date(firingEndsAtMs(context.nowMs, context.intervalMs)).toISOString(),
  };
}

export function firingEndsAtMs(nowMs: number, intervalMs: number): number {
  return nowMs + FIRING_VALIDITY_INTERVALS * intervalMs;
}

/**
 * The incident closed: the same labels, endsAt when it ended (up again, stopped; the moment the
 * close was seen when the watcher knows no earlier one, as for reset-failed or a removed unit).
 * Never before startsAt, which Alertmanager refuses, and never after now, which would keep it firing.
 */
export function resolvedAlert(
  last: PostableAlert,
  endedAtMs: number | undefined,
  nowMs: number,
): PostableAlert {
  const startsMs = Date.parse(last.startsAt);
  const endsMs = Math.max(startsMs, Math.min(endedAtMs ?? nowMs, nowMs));
  return { ...last, endsAt: new Date(endsMs).toISOString() };
}
