#!/usr/bin/env -S node --
// The `--` matters: Node 20 itself consumes `--env-file` anywhere on its command line, even after the
// script name, and exits 9 when the file is missing. Whoever runs this file directly must pass it too.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createLogger, journalText, type Logger } from './adapters/logger.js';
import { MailTransport, readSmtpCaFile, readSmtpPassword } from './adapters/mail-transport.js';
import { readSecretFile } from './adapters/secret-file.js';
import { checkStateDirectory } from './adapters/state-directory.js';
import { listUnitsOnce } from './adapters/systemd-bus.js';
import { CHECK_UNKNOWN, type CheckResult, evaluateCheck, unknownCheck } from './core/check.js';
import { parseArguments } from './core/cli-arguments.js';
import {
  type Config,
  type ConfigContext,
  parseConfig,
  parseConfigFor,
  renderEffectiveConfig,
  type StatelessConfig,
} from './core/config.js';
import { parseEnvFile } from './core/env-file.js';
import { unitFilter } from './core/globs.js';
import {
  type ServiceManager,
  systemManager,
  userManager,
  userStateDirectory,
  userStateDirectoryCandidates,
} from './core/service-manager.js';
import { renderStatus } from './core/status-report.js';
import { Daemon, type DaemonSecrets } from './daemon.js';
import { ConfigError, type ConfigProblem } from './errors/config-error.js';
import { gatherStatus } from './status.js';

/** sysexits.h EX_CONFIG: lets the unit say RestartPreventExitStatus=78 so bad config does not restart-loop. */
export const EXIT_CONFIG = 78;
const EXIT_USAGE = 64;
const EXIT_FAILURE = 1;

const USAGE = `Usage: unitwatch <command> [--user] [--env-file FILE]

Mails you when a systemd unit fails.

Commands:
  run            watch systemd and send notifications (the daemon)
  check-config   validate the configuration and print it, secrets masked
  test-email     send one test mail through the configured transport
  check          one-shot monitoring-plugin check: exit 0 OK, 1 WARNING (failed units),
                 2 CRITICAL (a critical unit not active), 3 UNKNOWN (systemd unreachable)
  status         what the daemon is doing: failed units, open incidents, held failures,
                 outbox, hourly cap (as root, or as yourself with --user; --json for a
                 machine); exit codes as check, 2 when the daemon is not running

Options:
  --user           run, check, status, check-config: your own service manager (systemd --user)
                   on your session bus (DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus)
                   instead of the system's; state in $STATE_DIRECTORY, else
                   $XDG_STATE_HOME/unitwatch; mails and status use systemctl/journalctl --user
  --env-file FILE  read UNITWATCH_* variables from FILE (systemd EnvironmentFile= syntax)
                   on top of the environment
  --json           status only: print JSON
  -h, --help       show this help
  -V, --version    show the version

Configuration: UNITWATCH_* environment variables, see docs/configuration.md.
Exit status: 0 ok, 1 failure, 64 usage error, 78 bad configuration.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function readEnvironment(envFile: string | undefined): Promise<Record<string, string | undefined>> {
  let env: Record<string, string | undefined> = { ...process.env };
  if (envFile !== undefined) {
    let text: string;
    try {
      text = await readFile(envFile, 'utf8');
    } catch (error) {
      throw new ConfigError([
        { key: envFile, message: `cannot read (${(error as NodeJS.ErrnoException).code})` },
      ]);
    }
    const parsed = parseEnvFile(text, envFile);
    if (parsed.problems.length > 0) throw new ConfigError(parsed.problems);
    env = { ...env, ...parsed.variables };
  }
  return env;
}

function configContext(user: boolean): ConfigContext {
  return {
    hostname: hostname(),
    systemdStateDirectory: process.env.STATE_DIRECTORY,
    credentialsDirectory: process.env.CREDENTIALS_DIRECTORY,
    defaultStateDirectory: user ? userStateDirectory(process.env) : undefined,
  };
}

/** PID 1 on the system bus, or with `--user` the user's manager on the session bus (or why not). */
function serviceManager(user: boolean): ServiceManager | string {
  return user ? userManager(process.env, existsSync) : systemManager(process.env);
}

async function run(
  config: Config,
  password: string | undefined,
  secrets: DaemonSecrets,
  logger: Logger,
  manager: ServiceManager,
): Promise<number> {
  const daemon = new Daemon(config, logger, password, secrets, manager);
  process.on('unhandledRejection', (reason) => {
    // dbus-next rejects a promise nobody holds when its Hello fails; the bus 'error' event already
    // started a reconnect, so this must not end the daemon.
    logger.error({ err: reason }, 'unhandled rejection');
  });
  let stopRequested = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopRequested) {
        logger.warn({ signal }, `${signal} received again while stopping; exiting now`);
        process.exit(EXIT_FAILURE);
      }
      stopRequested = true;
      logger.info({ signal }, `${signal} received; stopping`);
      void daemon.stop().then(resolve);
    };
    // Works at any moment, also during the start's retries or a reconnect wait: every wait is abortable.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  // Configuration is read once, at start; a reload would have to re-read secrets and rebuild the
  // transport under mail in flight. SIGHUP (whose default would kill us without saving) says so instead.
  process.on('SIGHUP', () => {
    logger.warn(
      { signal: 'SIGHUP' },
      'SIGHUP received; unitwatch reads its configuration only at start, nothing changed: use systemctl restart unitwatch to apply a new one',
    );
  });
  try {
    await daemon.start();
  } catch (error) {
    if (stopRequested) {
      await stopped;
      return 0;
    }
    logger.error(
      { err: error },
      `unitwatch could not start: ${error instanceof Error ? error.message : String(error)}; exiting`,
    );
    return EXIT_FAILURE;
  }
  await stopped;
  return 0;
}

async function testEmail(config: StatelessConfig, password: string | undefined): Promise<number> {
  if (config.transport === undefined) {
    process.stderr.write(
      'unitwatch: mail is not configured (UNITWATCH_TO, UNITWATCH_SMTP_URL): no test mail to send\n',
    );
    return EXIT_FAILURE;
  }
  const transport = new MailTransport({ ...config, transport: config.transport }, password);
  transport.start();
  try {
    const receipt = await transport.send({
      subject: `[unitwatch] test mail from ${config.hostname}`,
      text: `This is a test mail from unitwatch on ${config.hostname}.\n\nIf you read this, failure notifications will reach you too.\n`,
      headers: { 'Auto-Submitted': 'auto-generated', 'X-Unitwatch-Host': config.hostname },
      messageId: `<${randomUUID()}@${config.hostname}>`,
    });
    process.stdout.write(
      `sent to ${config.to.join(', ')} through ${transport.description}: ${receipt.response}\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`unitwatch: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILURE;
  } finally {
    transport.stop();
  }
}

/**
 * `unitwatch check` reads the same configuration as the daemon for its filters, but sends no mail:
 * where no recipient or transport is configured (a monitoring host's own env file), it needs none.
 */
async function readFilterConfig(envFile: string | undefined, user: boolean): Promise<StatelessConfig> {
  const env = await readEnvironment(envFile);
  return parseConfigFor(
    'check-config',
    {
      UNITWATCH_TO: 'check@localhost',
      ...(env.UNITWATCH_SMTP_URL === undefined && env.UNITWATCH_SENDMAIL === undefined
        ? { UNITWATCH_SENDMAIL: '/bin/true' }
        : {}),
      ...env,
    },
    configContext(user),
  );
}

/** What `status` and `check` ask systemd with: the manager and the filter configuration, or why not. */
async function queryTarget(
  envFile: string | undefined,
  user: boolean,
): Promise<{ config: StatelessConfig; manager: ServiceManager } | { problem: string }> {
  const manager = serviceManager(user);
  if (typeof manager === 'string') return { problem: manager };
  try {
    return { config: await readFilterConfig(envFile, user), manager };
  } catch (error) {
    return { problem: error instanceof Error ? error.message : String(error) };
  }
}

/** `unitwatch status`: the daemon's unit, the failed units, and the state it saved, read-only. */
async function status(envFile: string | undefined, json: boolean, user: boolean): Promise<number> {
  const target = await queryTarget(envFile, user);
  if ('problem' in target) {
    process.stderr.write(`unitwatch: ${target.problem}\n`);
    return CHECK_UNKNOWN;
  }
  const { manager } = target;
  let { config } = target;
  // Outside the user unit there is no $STATE_DIRECTORY: look where its StateDirectory= may be.
  if (
    user &&
    process.env.STATE_DIRECTORY === undefined &&
    config.stateDirectory === userStateDirectory(process.env)
  ) {
    const found = userStateDirectoryCandidates(process.env).find((directory) => existsSync(directory));
    if (found !== undefined) config = { ...config, stateDirectory: found };
  }
  const report = renderStatus(await gatherStatus(config, Date.now(), manager), Date.now());
  process.stdout.write(json ? `${JSON.stringify(report.json, null, 2)}\n` : report.text);
  return report.exitCode;
}

async function check(envFile: string | undefined, user: boolean): Promise<number> {
  const target = await queryTarget(envFile, user);
  if ('problem' in target) {
    const result = unknownCheck(target.problem);
    process.stdout.write(`${result.line}\n`);
    return result.exitCode;
  }
  const { config, manager } = target;
  let result: CheckResult;
  try {
    result = evaluateCheck(await listUnitsOnce(10_000, manager), unitFilter(config), config.critical);
  } catch (error) {
    result = unknownCheck(`cannot ask systemd: ${error instanceof Error ? error.message : String(error)}`);
  }
  process.stdout.write(`${result.line}\n`);
  return result.exitCode;
}

export async function main(argv: readonly string[]): Promise<number> {
  const invocation = parseArguments(argv);
  if (typeof invocation === 'string') {
    process.stderr.write(`unitwatch: ${invocation}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (invocation.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (invocation.command === 'version') {
    process.stdout.write(`unitwatch ${version()}\n`);
    return 0;
  }
  if (invocation.command === 'check') return check(invocation.envFile, invocation.user);
  if (invocation.command === 'status') return status(invocation.envFile, invocation.json, invocation.user);
  if (!['run', 'check-config', 'test-email'].includes(invocation.command)) {
    process.stderr.write(`unitwatch: unknown command ${invocation.command}\n\n${USAGE}`);
    return EXIT_USAGE;
  }

  // Each command validates what it uses: only `run` keeps state, and check-config runs outside the
  // service, where the credential that holds the password is not visible.
  const command = invocation.command as 'run' | 'check-config' | 'test-email';
  let daemonConfig: Config | undefined;
  let config: StatelessConfig;
  let password: string | undefined;
  let manager: ServiceManager | undefined;
  let secrets: DaemonSecrets = {};
  try {
    const env = await readEnvironment(invocation.envFile);
    const context = configContext(invocation.user);
    const problems: ConfigProblem[] = [];
    if (command === 'run') {
      // The bus is named with the configuration's problems, so one run reports every problem.
      const found = serviceManager(invocation.user);
      if (typeof found === 'string') problems.push({ key: '--user', message: found });
      else manager = found;
      try {
        daemonConfig = parseConfig(env, context);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        throw new ConfigError([...problems, ...error.problems]);
      }
      config = daemonConfig;
    } else {
      config = parseConfigFor(command, env, context);
    }
    // The files the configuration names, checked together so that one run reports every problem.
    const transport = config.transport;
    const stateDirectory = daemonConfig?.stateDirectory;
    const attempt = async <T>(step: () => T | Promise<T>): Promise<T | undefined> => {
      try {
        return await step();
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems.push(...error.problems);
        return undefined;
      }
    };
    password = await attempt(() => readSmtpPassword(transport));
    await attempt(() => readSmtpCaFile(transport));
    const webhook = config.webhook;
    // check-config runs outside the service, where its credentials are not visible: only run reads them.
    if (webhook !== undefined && command === 'run') {
      secrets = {
        webhookSecret: await attempt(() =>
          readSecretFile({
            file: webhook.secretFile,
            source: webhook.secretSource,
            variable: 'UNITWATCH_WEBHOOK_SECRET_FILE',
            credential: 'webhook-secret',
          }),
        ),
        ntfyToken: await attempt(() =>
          readSecretFile({
            file: webhook.tokenFile,
            source: webhook.tokenSource,
            variable: 'UNITWATCH_NTFY_TOKEN_FILE',
            credential: 'ntfy-token',
          }),
        ),
      };
    }
    if (stateDirectory !== undefined) await attempt(() => checkStateDirectory(stateDirectory));
    if (problems.length > 0) throw new ConfigError(problems);
  } catch (error) {
    if (error instanceof ConfigError) {
      // At err under the journal: `journalctl -u unitwatch -p warning` must show why it did not start.
      process.stderr.write(journalText(`unitwatch: ${error.message}\n`));
      return EXIT_CONFIG;
    }
    throw error;
  }

  if (daemonConfig !== undefined && manager !== undefined)
    return run(
      daemonConfig,
      password,
      secrets,
      createLogger({ level: daemonConfig.logLevel, format: daemonConfig.logFormat }),
      manager,
    );
  if (command === 'check-config') {
    process.stdout.write(renderEffectiveConfig(config));
    return 0;
  }
  return testEmail(config, password);
}

main(process.argv.slice(2)).then(
  (code) => {
    // The daemon's timers and sockets are closed by then, but a stuck SMTP socket must not keep us alive.
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(
      `unitwatch: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = EXIT_FAILURE;
  },
);
