import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ServiceDefinitionError } from './service-definition-error.js';

export type UnitValue = string | number | boolean | readonly string[];
export type UnitSection = Readonly<Record<string, UnitValue>>;

/** The parsed nix/service.json: the one definition that module.nix, the integration harness and docs share. */
export interface ServiceDefinition {
  readonly unit: UnitSection;
  readonly service: UnitSection;
  readonly install: UnitSection;
  /**
   * Why a setting has its value; rendered as a comment above the key. A note named after a section
   * (`[Service]`) is rendered under that section's header: what the section leaves out, and why.
   */
  readonly notes: Readonly<Record<string, string>>;
}

export interface UnitFileExtras {
  readonly execStart: string;
  readonly environmentFile?: string;
  readonly extraService?: Readonly<Record<string, string | string[] | boolean | number>>;
}

/** Resolved from this module so it works both from src/ (vitest) and from dist/ (built). */
export const defaultServiceDefinitionPath = fileURLToPath(new URL('../../nix/service.json', import.meta.url));

/** The user unit's definition (`unitwatch run --user` in a user's manager), a sibling of the system one. */
export const userServiceDefinitionPath = fileURLToPath(
  new URL('../../nix/user-service.json', import.meta.url),
);

const SECTIONS = ['unit', 'service', 'install'] as const;

/**
 * The caller owns these: the module, the harness and the docs each run a different binary with a
 * different environment, so a definition carrying them would be silently overridden somewhere.
 */
const CALLER_OWNED = new Set(['ExecStart', 'EnvironmentFile', 'Environment']);

/**
 * Keys whose list items must each get their own line: a `~` deny list only applies to a whole line,
 * and these keys either take one item per assignment or treat spaces inside an item as data.
 */
const ONE_ITEM_PER_LINE = new Set([
  'SystemCallFilter',
  'LoadCredential',
  'LoadCredentialEncrypted',
  'SetCredential',
  'Environment',
  'EnvironmentFile',
  'ExecStartPre',
  'ExecStartPost',
  'ExecStop',
  'ExecStopPost',
  'ExecReload',
  'ExecCondition',
]);

/**
 * Timings a host may tune without touching the hardening: an extra for one of these replaces the
 * definition's value in place (the integration suite runs with a 4 s watchdog to see it fire).
 */
export const TUNABLE = new Set(['WatchdogSec', 'RestartSec', 'TimeoutStartSec', 'TimeoutStopSec']);

const KEY = /^[A-Z][A-Za-z0-9]*$/;

export function loadServiceDefinition(path: string = defaultServiceDefinitionPath): ServiceDefinition {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ServiceDefinitionError(path, 'cannot be read', { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ServiceDefinitionError(path, `is not JSON: ${(cause as Error).message}`, { cause });
  }
  return parseServiceDefinition(raw, path);
}

export function parseServiceDefinition(raw: unknown, path = '<service definition>'): ServiceDefinition {
  const fail = (problem: string): never => {
    throw new ServiceDefinitionError(path, problem);
  };
  if (!isRecord(raw)) return fail('must be a JSON object');
  for (const top of Object.keys(raw)) {
    if (!(SECTIONS as readonly string[]).includes(top) && top !== 'notes') {
      fail(`unknown top-level key "${top}" (expected unit, service, install, notes)`);
    }
  }
  const sections = SECTIONS.map((name) => {
    const section = raw[name];
    if (!isRecord(section)) return fail(`"${name}" must be an object of systemd settings`);
    for (const [key, value] of Object.entries(section)) {
      const where = `${name}.${key}`;
      if (!KEY.test(key)) fail(`${where}: not a systemd setting name`);
      if (CALLER_OWNED.has(key))
        fail(`${where}: is supplied by whoever installs the unit, not by the definition`);
      if (Array.isArray(value)) {
        if (value.length === 0) fail(`${where}: an empty list would render as a reset, write "" for that`);
        for (const item of value) {
          if (typeof item !== 'string') fail(`${where}: list items must be strings`);
          else checkText(item, where, fail);
        }
      } else if (typeof value === 'string') {
        checkText(value, where, fail);
      } else if (typeof value === 'number') {
        if (!Number.isInteger(value) || value < 0) fail(`${where}: numbers must be non-negative integers`);
      } else if (typeof value !== 'boolean') {
        fail(`${where}: must be a string, number, boolean or list of strings`);
      }
    }
    return section as UnitSection;
  });
  const notes = raw.notes ?? {};
  if (!isRecord(notes)) return fail('"notes" must be an object of strings');
  for (const [key, note] of Object.entries(notes)) {
    if (typeof note !== 'string') fail(`notes.${key}: must be a string`);
    else checkText(note, `notes.${key}`, fail);
  }
  const [unit, service, install] = sections as [UnitSection, UnitSection, UnitSection];
  if (service.Type === undefined) fail('service.Type: must be set');
  return { unit, service, install, notes: notes as Record<string, string> };
}

/** Renders the [Unit]/[Service]/[Install] text; extras come after the definition so they read as local. */
export function renderUnitFile(definition: ServiceDefinition, extras: UnitFileExtras): string {
  const service: Record<string, UnitValue> = { ...definition.service, ExecStart: extras.execStart };
  if (extras.environmentFile !== undefined) service.EnvironmentFile = extras.environmentFile;
  for (const [key, value] of Object.entries(extras.extraService ?? {})) {
    if (key in definition.service && !TUNABLE.has(key)) {
      throw new ServiceDefinitionError(
        '<extraService>',
        `${key}: already set by the definition; change it there`,
      );
    }
    service[key] = value;
  }
  const blocks = [
    renderSection('Unit', definition.unit, definition.notes),
    renderSection('Service', service, definition.notes),
    renderSection('Install', definition.install, definition.notes),
  ];
  return `${blocks.join('\n')}`;
}

function renderSection(
  title: string,
  section: Readonly<Record<string, UnitValue>>,
  notes: Readonly<Record<string, string>>,
) {
  const lines = [`[${title}]`];
  const sectionNote = notes[`[${title}]`];
  if (sectionNote !== undefined) lines.push(`# ${sectionNote}`);
  for (const [key, value] of Object.entries(section)) {
    const note = notes[key];
    if (note !== undefined) lines.push(`# ${note}`);
    for (const rendered of renderValues(key, value)) lines.push(`${key}=${rendered}`);
  }
  return `${lines.join('\n')}\n`;
}

function renderValues(key: string, value: UnitValue): string[] {
  if (typeof value === 'boolean') return [value ? 'yes' : 'no'];
  if (typeof value === 'number') return [String(value)];
  if (typeof value === 'string') {
    checkText(value, key, (problem) => {
      throw new ServiceDefinitionError('<extras>', problem);
    });
    return [value];
  }
  if (ONE_ITEM_PER_LINE.has(key)) return [...value];
  for (const item of value) {
    if (/\s/.test(item)) {
      throw new ServiceDefinitionError(
        '<render>',
        `${key}: "${item}" contains whitespace and would split on one line`,
      );
    }
  }
  return [value.join(' ')];
}

function checkText(text: string, where: string, fail: (problem: string) => never): void {
  // A newline would start a new, unintended setting in the unit file.
  if (/[\r\n]/.test(text)) fail(`${where}: must not contain a line break`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
