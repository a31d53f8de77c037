import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  loadServiceDefinition,
  renderUnitFile,
  type ServiceDefinition,
  userServiceDefinitionPath,
} from './service-unit.js';

/**
 * Where non-NixOS hosts are told to put things; docs/install-debian.md, its integration test and the
 * unit test rely on these. /opt/unitwatch is a copy made by `npm install -g --prefix`, so neither npm's
 * own prefix nor where the checkout lives (ProtectHome= hides /root and /home) matters.
 */
export const plainUnitExtras = {
  execStart: '/opt/unitwatch/bin/unitwatch run',
  environmentFile: '/etc/unitwatch/unitwatch.env',
} as const;

export const plainUnitPath = fileURLToPath(new URL('../../docs/unitwatch.service', import.meta.url));

export function renderPlainUnit(definition: ServiceDefinition = loadServiceDefinition()): string {
  const header = [
    '# unitwatch.service for systemd hosts without NixOS.',
    '# Generated from nix/service.json by `npm run unit-docs`: edit that file, not this one.',
    '# Install (docs/install-debian.md has every step): unitwatch under /opt/unitwatch',
    '# (`npm pack`, then `npm install -g --prefix /opt/unitwatch ./unitwatch-*.tgz`), the system user',
    '# (`useradd --system --no-create-home --shell /usr/sbin/nologin unitwatch`; dbus-daemon refuses a',
    '# purely dynamic user), UNITWATCH_* settings in /etc/unitwatch/unitwatch.env (mode 0600), this file',
    '# in /etc/systemd/system/, then `systemctl daemon-reload && systemctl enable --now unitwatch`.',
    '',
    '',
  ].join('\n');
  return `${header}${renderUnitFile(definition, plainUnitExtras)}`;
}

/**
 * The user unit: the same binary with `run --user`, each user's own env file (`%E` is
 * `$XDG_CONFIG_HOME` in a user manager, `~/.config` by default).
 */
export const plainUserUnitExtras = {
  execStart: '/opt/unitwatch/bin/unitwatch run --user',
  environmentFile: '%E/unitwatch/unitwatch.env',
} as const;

export const plainUserUnitPath = fileURLToPath(new URL('../../docs/unitwatch-user.service', import.meta.url));

export function renderPlainUserUnit(
  definition: ServiceDefinition = loadServiceDefinition(userServiceDefinitionPath),
): string {
  const header = [
    "# unitwatch.service as a user unit: mails when one of a user's own units fails (`run --user`).",
    '# Generated from nix/user-service.json by `npm run unit-docs`: edit that file, not this one.',
    '# Install (docs/user-units.md has every step): unitwatch under /opt/unitwatch as for the system',
    '# unit, this file as /etc/systemd/user/unitwatch.service (every user) or',
    '# ~/.config/systemd/user/unitwatch.service (one user), UNITWATCH_* settings in',
    '# ~/.config/unitwatch/unitwatch.env (mode 0600), then as that user',
    '# `systemctl --user daemon-reload && systemctl --user enable --now unitwatch`;',
    '# `loginctl enable-linger USER` keeps it running while the user is logged out.',
    '',
    '',
  ].join('\n');
  return `${header}${renderUnitFile(definition, plainUserUnitExtras)}`;
}

// Only write when run as a script, so the test can import renderPlainUnit without touching docs/.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(plainUnitPath, renderPlainUnit());
  process.stdout.write(`wrote ${plainUnitPath}\n`);
  writeFileSync(plainUserUnitPath, renderPlainUserUnit());
  process.stdout.write(`wrote ${plainUserUnitPath}\n`);
}
