import { CHECK_CRITICAL, CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING } from './check.js';
import { plural } from './message.js';
import type { IncidentView } from './policy.js';
import { cleanLine } from './text.js';
import { formatDuration } from './units-of-measure.js';

/** What `unitwatch status` found: from systemd (the daemon's unit, the failed units) and the state. */
export interface StatusSnapshot {
  readonly daemon: {
    readonly activeState: string;
    readonly subState: string;
    readonly sinceMs: number | undefined;
    readonly mainPid: number | undefined;
    /** The daemon's own STATUS= line. */
    readonly statusText: string;
    readonly restarts: number | undefined;
  };
  /** Watched units failed now, as systemd lists them; undefined when systemd could not be asked. */
  readonly failedNow: readonly string[] | undefined;
  readonly incidents: readonly IncidentView[];
  readonly cap: { readonly used: number; readonly max: number };
  readonly outbox: OutboxFacts & {
    /** Each channel's queue, by the name the configuration gives it (`mail`, `webhook https://host/…`). */
    readonly channels?: ReadonlyArray<OutboxFacts & { readonly channel: string }>;
  };
  /** The last delivery the journal shows, e.g. `mail sent: … (250 after 1 attempt)`. */
  readonly lastDelivery: string | undefined;
  /** Why part of the picture is missing (state unreadable, systemd not answering), one line each. */
  readonly problems: readonly string[];
}

interface OutboxFacts {
  readonly pending: number;
  readonly oldestCreatedMs: number | undefined;
}

export interface StatusReport {
  /** As `unitwatch check`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
  readonly exitCode: number;
  readonly text: string;
  readonly json: unknown;
}

/** Mail waiting this long means the relay has been refusing for a while: worth a warning. */
const OUTBOX_AGE_WARNING_MS = 15 * 60_000;
const SHOWN_UNITS = 20;

function ago(ms: number, nowMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - ms) / 1000));
  return `${formatDuration(seconds * 1000)} ago`;
}

function at(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * The answer to "what is unitwatch doing?": CRITICAL when the daemon is not running (nothing is
 * watched), WARNING when watched units are failed or mail has waited in the outbox for long,
 * UNKNOWN when systemd could not be asked, else OK.
 */
export function renderStatus(snapshot: StatusSnapshot, nowMs: number): StatusReport {
  const { daemon, failedNow, incidents, cap, outbox } = snapshot;
  const running = daemon.activeState === 'active' || daemon.activeState === 'reloading';
  const outboxAgeMs = outbox.oldestCreatedMs === undefined ? undefined : nowMs - outbox.oldestCreatedMs;
  const held = incidents.reduce((sum, incident) => sum + incident.held, 0);
  const exitCode = !running
    ? CHECK_CRITICAL
    : failedNow === undefined
      ? CHECK_UNKNOWN
      : failedNow.length > 0 || (outboxAgeMs ?? 0) > OUTBOX_AGE_WARNING_MS
        ? CHECK_WARNING
        : CHECK_OK;
  const lines: string[] = [];
  lines.push(
    running
      ? `unitwatch is running${daemon.sinceMs === undefined ? '' : ` since ${at(daemon.sinceMs)} UTC (${ago(daemon.sinceMs, nowMs)})`}, pid ${daemon.mainPid ?? '?'}${daemon.restarts ? `, restarted ${plural(daemon.restarts, 'time')}` : ''}`
      : `unitwatch is NOT running (${daemon.activeState}/${daemon.subState}): nothing is watched. Start it: systemctl start unitwatch`,
  );
  if (daemon.statusText !== '') lines.push(`  says:     ${cleanLine(daemon.statusText, 300)}`);
  if (failedNow === undefined) lines.push('Failed now: unknown (systemd could not be asked)');
  else if (failedNow.length === 0) lines.push('Failed now: none');
  else {
    const shown = failedNow.slice(0, SHOWN_UNITS).map((unit) => cleanLine(unit));
    const more = failedNow.length > SHOWN_UNITS ? ` and ${failedNow.length - SHOWN_UNITS} more` : '';
    lines.push(`Failed now: ${shown.join(', ')}${more}`);
  }
  lines.push(
    `Open incidents: ${incidents.length}${held > 0 ? `, ${plural(held, 'failure')} held for a later mail` : ''}`,
  );
  for (const incident of [...incidents]
    .sort((a, b) => a.firstFailureMs - b.firstFailureMs)
    .slice(0, SHOWN_UNITS)) {
    const next = incident.nextDueMs === undefined ? '' : `, next mail ${at(incident.nextDueMs)} UTC`;
    lines.push(
      `  ${cleanLine(incident.unit)}: ${plural(incident.failures, 'failure')} since ${at(incident.firstFailureMs)} UTC, ${incident.state}${incident.held > 0 ? ` (${incident.held} held)` : ''}${next}${incident.critical ? ', CRITICAL' : ''}`,
    );
  }
  if (incidents.length > SHOWN_UNITS) lines.push(`  … and ${incidents.length - SHOWN_UNITS} more`);
  const waiting = (facts: OutboxFacts, what: string) =>
    facts.pending === 0
      ? 'empty'
      : `${plural(facts.pending, what)} waiting, the oldest queued ${ago(facts.oldestCreatedMs ?? nowMs, nowMs)}`;
  const channels = outbox.channels ?? [];
  if (channels.length > 1) {
    lines.push(`Outbox: ${waiting(outbox, 'notification')}`);
    for (const channel of channels)
      lines.push(`  ${cleanLine(channel.channel, 120)}: ${waiting(channel, 'notification')}`);
  } else {
    lines.push(
      `Outbox: ${waiting(outbox, channels[0]?.channel === 'mail' || channels.length === 0 ? 'mail' : 'notification')}`,
    );
  }
  lines.push(`Hourly cap: ${cap.used} of ${cap.max} mails used in the last hour`);
  lines.push(
    `Last delivery: ${snapshot.lastDelivery === undefined ? 'none since start' : cleanLine(snapshot.lastDelivery, 300)}`,
  );
  for (const problem of snapshot.problems) lines.push(`Note: ${cleanLine(problem, 300)}`);
  return {
    exitCode,
    text: `${lines.join('\n')}\n`,
    json: {
      exitCode,
      daemon: { ...daemon, running },
      failedNow: failedNow ?? null,
      incidents,
      heldFailures: held,
      outbox: {
        pending: outbox.pending,
        oldestCreatedMs: outbox.oldestCreatedMs,
        oldestAgeMs: outboxAgeMs ?? null,
        channels: channels.map((channel) => ({
          ...channel,
          oldestAgeMs: channel.oldestCreatedMs === undefined ? null : nowMs - channel.oldestCreatedMs,
        })),
      },
      cap,
      lastDelivery: snapshot.lastDelivery ?? null,
      problems: snapshot.problems,
    },
  };
}
