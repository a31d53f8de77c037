/** nix/service.json is unreadable or malformed; `path` and `problem` say which file and what is wrong. */
export class ServiceDefinitionError extends Error {
  override readonly name = 'ServiceDefinitionError';
  readonly path: string;
  readonly problem: string;

  constructor(path: string, problem: string, options?: ErrorOptions) {
    super(`${path}: ${problem}`, options);
    this.path = path;
    this.problem = problem;
  }
}
