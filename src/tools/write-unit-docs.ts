import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadServiceDefinition, renderUnitFile, type ServiceDefinition } from './service-unit.js';

/** Where non-NixOS hosts are told to put things; docs/nixos.md and the test both rely on these. */
export const plainUnitExtras = {
  execStart: '/usr/local/bin/unitwatch run',
  environmentFile: '/etc/unitwatch/unitwatch.env',
} as const;

export const plainUnitPath = fileURLToPath(new URL('../../docs/unitwatch.service', import.meta.url));

export function renderPlainUnit(definition: ServiceDefinition = loadServiceDefinition()): string {
  const header = [
    '# unitwatch.service for systemd hosts without NixOS.',
    '# Generated from nix/service.json by `npm run unit-docs`: edit that file, not this one.',
    '# Install: copy to /etc/systemd/system/, put UNITWATCH_* settings in /etc/unitwatch/unitwatch.env,',
    '# then `systemctl daemon-reload && systemctl enable --now unitwatch`.',
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
