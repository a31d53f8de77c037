import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadServiceDefinition, renderUnitFile, type ServiceDefinition } from './service-unit.js';

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

// Only write when run as a script, so the test can import renderPlainUnit without touching docs/.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(plainUnitPath, renderPlainUnit());
  process.stdout.write(`wrote ${plainUnitPath}\n`);
}
