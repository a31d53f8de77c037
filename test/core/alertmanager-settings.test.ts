import { describe, expect, it } from 'vitest';
import {
  alertsEndpoint,
  parseAlertmanagerUrls,
  parseStaticLabels,
} from '../../src/core/alertmanager-settings.js';

function problemsOfLabels(text: string): string[] {
  const parsed = parseStaticLabels(text);
  return parsed.ok ? [] : parsed.problems;
}

function problemsOfUrls(text: string): string[] {
  const parsed = parseAlertmanagerUrls(text);
  return parsed.ok ? [] : parsed.problems;
}

describe('parseStaticLabels', () => {
  it('reads name=value pairs separated by spaces or commas', () => {
    expect(parseStaticLabels('env=prod team=ops')).toEqual({ ok: true, value: { env: 'prod', team: 'ops' } });
    expect(parseStaticLabels(' env=prod,team=ops ,  dc=fra1 ')).toEqual({
      ok: true,
      value: { env: 'prod', team: 'ops', dc: 'fra1' },
    });
  });

  it('keeps everything after the first = as the value', () => {
    expect(parseStaticLabels('query=a=b')).toEqual({ ok: true, value: { query: 'a=b' } });
  });

  it('accepts the names Prometheus accepts, and refuses the others, saying the rule', () => {
    expect(parseStaticLabels('_x=1 A9_b=2')).toEqual({ ok: true, value: { _x: '1', A9_b: '2' } });
    expect(problemsOfLabels('9lives=1')).toEqual([
      '"9lives" is not a label name: letters, digits and _ only, not starting with a digit',
    ]);
    expect(problemsOfLabels('team-name=ops')).toHaveLength(1);
    expect(problemsOfLabels('équipe=ops')).toHaveLength(1);
  });

  it("refuses to override unitwatch's own labels, naming what they carry", () => {
    expect(problemsOfLabels('severity=page')).toEqual([
      '"severity" is set by unitwatch (critical for UNITWATCH_CRITICAL units, warning otherwise) and cannot be overridden: choose another name',
    ]);
    for (const name of ['alertname', 'instance', 'unit']) {
      expect(problemsOfLabels(`${name}=x`)[0]).toContain(`"${name}" is set by unitwatch`);
    }
  });

  it('reports every problem at once: no =, reserved __ names, duplicates, empty values', () => {
    expect(problemsOfLabels('lonely __meta=x env=a env=b empty=')).toEqual([
      '"lonely" is not name=value',
      '"__meta": names starting with __ are reserved for Prometheus\'s internal use',
      '"env" is given twice',
      '"empty" has an empty value, which Alertmanager takes as no label: remove it or give a value',
    ]);
  });

  it('reads an empty text as no labels', () => {
    expect(parseStaticLabels('   ')).toEqual({ ok: true, value: {} });
  });
});

describe('parseAlertmanagerUrls', () => {
  it('reads one or more base URLs, without the trailing slash', () => {
    expect(parseAlertmanagerUrls('http://am1:9093/, https://am2.example.org:9093')).toEqual({
      ok: true,
      value: ['http://am1:9093', 'https://am2.example.org:9093'],
    });
  });

  it('keeps a path prefix (a proxy, --web.route-prefix), to which the API path is appended', () => {
    const parsed = parseAlertmanagerUrls('https://proxy.example.org/alertmanager/');
    expect(parsed).toEqual({ ok: true, value: ['https://proxy.example.org/alertmanager'] });
    expect(alertsEndpoint('https://proxy.example.org/alertmanager')).toBe(
      'https://proxy.example.org/alertmanager/api/v2/alerts',
    );
  });

  it('refuses the API path itself, saying what to write instead', () => {
    expect(problemsOfUrls('http://am1:9093/api/v2/alerts')).toEqual([
      '"http://am1:9093/api/v2/alerts" names the API: give Alertmanager\'s base URL (e.g. http://am1:9093); unitwatch appends /api/v2/alerts',
    ]);
    expect(problemsOfUrls('http://am1:9093/api/v1')).toHaveLength(1);
  });

  it('refuses other schemes, credentials, queries and fragments', () => {
    expect(problemsOfUrls('ftp://am1')).toEqual(['"ftp://am1": the scheme must be http:// or https://']);
    expect(problemsOfUrls('https://user:secret@am1')[0]).toContain('must not contain a user or password');
    expect(problemsOfUrls('https://user@am1')[0]).toContain('must not contain a user or password');
    expect(problemsOfUrls('http://am1?x=1')).toEqual(['"http://am1?x=1" must not have a query or fragment']);
    expect(problemsOfUrls('http://am1#top')).toHaveLength(1);
  });

  it('refuses what is no URL, the same URL twice, and an empty list; every problem at once', () => {
    expect(problemsOfUrls('am1:9093x nonsense http://a http://a/')).toEqual([
      '"am1:9093x": the scheme must be http:// or https://',
      '"nonsense" is not a URL (e.g. http://alertmanager.example.org:9093)',
      '"http://a/" is given twice',
    ]);
    expect(problemsOfUrls(' , ')).toEqual(['needs at least one URL']);
  });
});
