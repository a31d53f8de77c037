import { inlineText } from './text.js';

/**
 * How UNITWATCH_ALERTMANAGER_URL and UNITWATCH_ALERTMANAGER_LABELS are read. Pure: a value in,
 * the parsed settings or every problem with them out (never the first only).
 */

/** What Alertmanager is told; validated at start-up, so the feed never builds a refused alert. */
export interface AlertmanagerSettings {
  /** Base URLs as written, without a trailing slash; `/api/v2/alerts` is appended to each. */
  readonly urls: readonly string[];
  /** Static labels added to every alert (`env=prod team=ops`). */
  readonly labels: Readonly<Record<string, string>>;
  /** How often open incidents are posted again; endsAt lies a few of these ahead. */
  readonly intervalMs: number;
}

/** Labels unitwatch sets itself: a static label of the same name would change what an alert means. */
export const RESERVED_LABELS: Readonly<Record<string, string>> = {
  alertname: 'the alert name, always SystemdUnitFailed',
  instance: 'the host, from UNITWATCH_HOSTNAME',
  unit: 'the failed unit',
  severity: 'critical for UNITWATCH_CRITICAL units, warning otherwise',
};

/** Prometheus's rule for label names. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Where Alertmanager's API lives under its base URL. */
export const ALERTS_PATH = '/api/v2/alerts';

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly problems: string[] };

/**
 * `env=prod team=ops` (spaces or commas between pairs) into a label set. Names follow Prometheus's
 * `[a-zA-Z_][a-zA-Z0-9_]*`; names starting with `__` are Prometheus's internal ones; unitwatch's own
 * labels cannot be overridden; a value is everything after the first `=`, and must not be empty
 * (Prometheus treats an empty value as an absent label).
 */
export function parseStaticLabels(text: string): Parsed<Record<string, string>> {
  const problems: string[] = [];
  const labels: Record<string, string> = {};
  for (const pair of text.split(/[\s,]+/).filter((part) => part !== '')) {
    const equals = pair.indexOf('=');
    if (equals < 0) {
      problems.push(`"${inlineText(pair, 80)}" is not name=value`);
      continue;
    }
    const name = pair.slice(0, equals);
    const value = pair.slice(equals + 1);
    if (!LABEL_NAME.test(name)) {
      problems.push(
        `"${inlineText(name, 80)}" is not a label name: letters, digits and _ only, not starting with a digit`,
      );
    } else if (name.startsWith('__')) {
      problems.push(`"${name}": names starting with __ are reserved for Prometheus's internal use`);
    } else if (Object.hasOwn(RESERVED_LABELS, name)) {
      problems.push(
        `"${name}" is set by unitwatch (${RESERVED_LABELS[name]}) and cannot be overridden: choose another name`,
      );
    } else if (Object.hasOwn(labels, name)) {
      problems.push(`"${name}" is given twice`);
    } else if (value === '') {
      problems.push(
        `"${name}" has an empty value, which Alertmanager takes as no label: remove it or give a value`,
      );
    } else if (/\p{Cc}/u.test(value)) {
      problems.push(`"${name}" has a control character in its value`);
    } else {
      labels[name] = value;
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: labels };
}

/**
 * One or more base URLs (spaces or commas between them), one per Alertmanager of a cluster: unitwatch
 * posts to each, as Prometheus does, because Alertmanagers do not share alerts among themselves.
 * http(s) only; no user or password (they would sit in the clear environment, readable by `systemctl
 * show`); no query or fragment. A path is allowed as the prefix of an Alertmanager behind a reverse
 * proxy or started with `--web.route-prefix`, but not the API path itself: unitwatch appends
 * `/api/v2/alerts`.
 */
export function parseAlertmanagerUrls(text: string): Parsed<string[]> {
  const problems: string[] = [];
  const urls: string[] = [];
  const parts = text.split(/[\s,]+/).filter((part) => part !== '');
  if (parts.length === 0) return { ok: false, problems: ['needs at least one URL'] };
  for (const part of parts) {
    const shown = inlineText(part, 80);
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      problems.push(`"${shown}" is not a URL (e.g. http://alertmanager.example.org:9093)`);
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      problems.push(`"${shown}": the scheme must be http:// or https://`);
    } else if (url.username !== '' || url.password !== '') {
      problems.push(
        `"${shown}" must not contain a user or password: they would be readable in the environment; put Alertmanager behind a proxy on this host instead`,
      );
    } else if (url.search !== '' || url.hash !== '') {
      problems.push(`"${shown}" must not have a query or fragment`);
    } else if (/\/api\/v[12](\/|$)/.test(url.pathname)) {
      problems.push(
        `"${shown}" names the API: give Alertmanager's base URL (e.g. ${url.origin}); unitwatch appends ${ALERTS_PATH}`,
      );
    } else {
      const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
      if (urls.includes(base)) problems.push(`"${shown}" is given twice`);
      else urls.push(base);
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: urls };
}

/** Where the alerts of one base URL are posted. */
export function alertsEndpoint(base: string): string {
  return `${base}${ALERTS_PATH}`;
}
