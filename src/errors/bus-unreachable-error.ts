/** The system bus could not be reached at start within the bounded retries; the daemon exits for Restart=. */
export class BusUnreachableError extends Error {
  override readonly name = 'BusUnreachableError';
  readonly address: string;
  readonly attempts: number;

  constructor(address: string, attempts: number, cause: unknown, busName = 'system bus') {
    super(
      `cannot connect to the ${busName} at ${address} after ${attempts} attempts: ${rootMessage(cause)}`,
      { cause },
    );
    this.address = address;
    this.attempts = attempts;
  }
}

/** The innermost message of an error chain: `connect ENOENT /run/dbus/…` rather than its wrappers. */
export function rootMessage(error: unknown): string {
  let current = error;
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) {
    current = current.cause;
  }
  if (current instanceof Error) return current.message;
  if (typeof current === 'object' && current !== null && 'text' in current) return String(current.text);
  return String(current);
}
