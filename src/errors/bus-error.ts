/** A D-Bus call to systemd failed; carries the method and object so the log says what was asked. */
export class BusCallError extends Error {
  override readonly name = 'BusCallError';
  readonly method: string;
  readonly objectPath: string;
  readonly dbusErrorName: string | undefined;

  constructor(method: string, objectPath: string, cause: unknown) {
    const dbusErrorName =
      typeof cause === 'object' && cause !== null && 'type' in cause && typeof cause.type === 'string'
        ? cause.type
        : undefined;
    super(`D-Bus call ${method} on ${objectPath} failed: ${describeCause(cause)}`, { cause });
    this.method = method;
    this.objectPath = objectPath;
    this.dbusErrorName = dbusErrorName;
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  if (typeof cause === 'object' && cause !== null && 'text' in cause) return String(cause.text);
  return String(cause);
}
