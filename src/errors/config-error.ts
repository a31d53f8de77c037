export interface ConfigProblem {
  /** The variable (or env-file line) the problem is about, e.g. `UNITWATCH_TO`. */
  readonly key: string;
  readonly message: string;
}

/** Every configuration problem found at start-up, reported together so one edit fixes them all. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems
        .map((p) => `  ${p.key}: ${p.message}`)
        .join('\n')}`,
    );
    this.problems = problems;
  }
}
