import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors/config-error.js';

/**
 * Reads a secret once at start-up, as the SMTP password is read: from the file a variable names
 * (which must then be readable and not empty) or from a systemd credential, which is optional (no
 * file: no secret). The trailing newline an editor leaves is dropped.
 */
export async function readSecretFile(secret: {
  readonly file: string | undefined;
  readonly source: 'file' | 'credential' | undefined;
  /** The variable that names the file, for the problem's key. */
  readonly variable: string;
  /** The credential's name, for the fix. */
  readonly credential: string;
}): Promise<string | undefined> {
  const { file, source, variable, credential } = secret;
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    if (source === 'credential' && code === 'ENOENT') return undefined;
    const fix =
      code === 'EACCES' || code === 'EPERM'
        ? `: the service runs as its own user (DynamicUser=), which may not read it. Hand it over as a systemd credential instead: LoadCredential=${credential}:${file}, and unset ${variable}`
        : '';
    throw new ConfigError([{ key: variable, message: `cannot read ${file} (${code})${fix}` }]);
  }
  if (text === '') throw new ConfigError([{ key: variable, message: `${file} is empty` }]);
  return text;
}
