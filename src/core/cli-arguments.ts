/** The command line of `unitwatch`, parsed. Pure: no I/O, so that specs can call it. */

export interface Invocation {
  readonly command: string;
  readonly envFile: string | undefined;
  readonly json: boolean;
  /** `--user`: the invoking user's manager instead of PID 1. */
  readonly user: boolean;
}

/** The command line, or what is wrong with it. */
export function parseArguments(argv: readonly string[]): Invocation | string {
  let command: string | undefined;
  let envFile: string | undefined;
  let json = false;
  let user = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--json') {
      json = true;
    } else if (arg === '--user') {
      user = true;
    } else if (arg === '--env-file') {
      envFile = argv[++i];
      if (envFile === undefined) return '--env-file needs a file name';
    } else if (arg.startsWith('--env-file=')) {
      envFile = arg.slice('--env-file='.length);
    } else if (arg === '-h' || arg === '--help') {
      command = 'help';
    } else if (arg === '-V' || arg === '--version') {
      command = 'version';
    } else if (arg.startsWith('-')) {
      return `unknown option ${arg}`;
    } else if (command === undefined) {
      command = arg;
    } else {
      return `unexpected argument ${arg}`;
    }
  }
  if (json && command !== 'status') return '--json goes with status only';
  return { command: command ?? 'help', envFile, json, user };
}
