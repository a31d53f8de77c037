import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors/config-error.js';

/**
 * Reads a secret once at start-up (the SMTP password, the webhook key, the ntfy token): from the
 * file a variable names, which must then be readable and not empty, or from a systemd credential.
 * The trailing newline an editor leaves is dropped.
 */
export async function readSecretFile(secret: {
  readonly file: string | undefined;
  readonly source: 'file' | 'credential' | undefined;
  /** The variable that names the file, for the problem's key. */
  readonly variable: string;
  /** The credential's name, for the fix. */
  readonly credential: string;
  /** The NixOS option that hands the file over as that credential, named in the fix. */
  readonly nixosOption?: string;
  /**
   * Whether a credential that is not there is a problem (the SMTP user needs its password) or
   * just no secret (an unsigned webhook).
   */
  readonly credentialRequired?: boolean;
}): Promise<string | undefined> {
  const { file, source, variable, credential } = secret;
  if (file === undefined) return undefined;
  const nixos = secret.nixosOption === undefined ? '' : ` (NixOS: ${secret.nixosOption})`;
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    let message = `cannot read ${file} (${code})`;
    if (source === 'credential' && secret.credentialRequired === true) {
      message =
        `unset, and the systemd credential ${credential} cannot be read (${file}: ${code}): add ` +
        `LoadCredential=${credential}:/path/to/file to the unit${nixos}, or set ${variable}`;
    } else if (source === 'credential' && code === 'ENOENT') {
      return undefined;
    } else if (code === 'EACCES' || code === 'EPERM') {
      message +=
        ': the service runs as its own user (DynamicUser=), which may not read it. Hand it over as a ' +
        `systemd credential instead: LoadCredential=${credential}:${file}${nixos}, and unset ${variable}`;
    }
    throw new ConfigError([{ key: variable, message }]);
  }
  if (text === '') throw new ConfigError([{ key: variable, message: `${file} is empty` }]);
  return text;
}
