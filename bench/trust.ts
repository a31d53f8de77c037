import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SmtpSink } from '../test/harness/smtp-sink.js';
import { realSystemdUnavailableReason, repoRoot, SystemdInstance } from '../test/harness/systemd-instance.js';
import { installUnitwatch, startUnitwatch } from '../test/harness/unitwatch-service.js';
import { sampleProcess, TICKS_PER_SECOND } from './lib/cgroup.js';

/**
 * `npm run bench:trust`: what hostile or heavy input costs the daemon, in the genuine systemd of the
 * test harness, running as its hardened service. Three figures (issues 10 and 11):
 * - 50,000 forged unit signals from an unprivileged user: mails (must be 0), RSS growth, and how long
 *   after the last signal the daemon's CPU is back to idle; RSS read once steady on both sides;
 * - 5,000 transient units with unique names failing and being garbage-collected: RSS before, right
 *   after, once mailed, and once steady;
 * - a unit crash-looping about 4 times a second for 3 minutes: bytes written to the state per failure.
 * Writes bench/results/trust.json and prints a table. Timings share the machine with whatever else
 * runs: run it alone.
 */

/** Floods one after another, each measured from the RSS before the first: growth that stops growing is bounded. */
const FORGED = (process.env.BENCH_FORGED ?? '50000,200000').split(',').map(Number);
/** Three rounds: if the later ones add nothing, what the first left is the heap's size, not units kept. */
const TRANSIENT_ROUNDS = 3;
const TRANSIENT = Number(process.env.BENCH_TRANSIENT ?? 5000);
const LOOP_SECONDS = Number(process.env.BENCH_LOOP_SECONDS ?? 180);
const STATE = '/var/lib/private/unitwatch';

function log(message: string): void {
  process.stderr.write(`[bench:trust ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** The unitwatch process as the host sees it: in the instance's PID namespace, its MainPID there. */
async function hostPid(instance: SystemdInstance): Promise<number> {
  const mainPid = await instance.property('unitwatch.service', 'MainPID');
  const namespace = readlinkSync(`/proc/${instance.pid}/ns/pid`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) !== namespace) continue;
      const nsPid = /^NSpid:\s+(.*)$/m
        .exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]
        ?.trim()
        .split(/\s+/);
      if (nsPid?.at(-1) === mainPid) return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`unitwatch (MainPID ${mainPid} inside) not found from the host`);
}

function rssKb(pid: number): number {
  return sampleProcess(pid)?.rssKb ?? Number.NaN;
}

/** Waits until the process used under 2 % of a CPU over 500 ms; returns when that window began. */
async function idleSince(pid: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const start = Date.now();
    const before = sampleProcess(pid)?.cpuTicks ?? 0;
    await sleep(500);
    const used = ((sampleProcess(pid)?.cpuTicks ?? 0) - before) / TICKS_PER_SECOND;
    if (used / 0.5 < 0.02) return start;
    if (Date.now() > deadline) throw new Error('the daemon never became idle');
  }
}

/** RSS samples a second apart that must all lie within STEADY_SPREAD_KB for RSS to count as steady. */
const STEADY_SAMPLES = 10;
const STEADY_SPREAD_KB = 256;

/**
 * The RSS once it has stopped moving: V8 gives pages back some seconds after the garbage is gone,
 * so a reading taken at once measures when the last collection happened more than what is kept.
 * Both sides of a growth figure are read this way; the reading right after is reported beside it.
 */
async function steadyRssKb(pid: number, timeoutMs = 120_000): Promise<{ rssKb: number; waitedMs: number }> {
  const start = Date.now();
  const samples: number[] = [];
  for (;;) {
    samples.push(rssKb(pid));
    if (samples.length > STEADY_SAMPLES) samples.shift();
    const waitedMs = Date.now() - start;
    if (samples.length === STEADY_SAMPLES && Math.max(...samples) - Math.min(...samples) <= STEADY_SPREAD_KB)
      return { rssKb: samples.at(-1) ?? Number.NaN, waitedMs };
    if (waitedMs > timeoutMs)
      throw new Error(`the daemon's RSS did not settle within ${timeoutMs} ms: ${samples.join(' ')} KiB`);
    await sleep(1000);
  }
}

/**
 * A failure whose mail is the barrier. `forget`: then `reset-failed`, which unloads it, so it holds
 * nothing afterwards. (Collected at once instead, it would never be mailed: its facts are gone
 * before they can be read, docs/reliability.md.)
 */
async function settle(
  instance: SystemdInstance,
  smtp: SmtpSink,
  sentinel: string,
  forget = false,
): Promise<void> {
  await instance.run([
    'systemd-run',
    '--quiet',
    `--unit=${sentinel}`,
    '-p',
    'Description=sentinel',
    '/bin/false',
  ]);
  await smtp.waitFor(
    (mails) =>
      mails.some(
        (mail) =>
          mail.parsed.headers.get('x-unitwatch-unit') === sentinel ||
          (mail.parsed.text ?? '').includes(sentinel),
      ),
    120_000,
    `the mail about ${sentinel}`,
  );
  if (forget) await instance.run(['systemctl', 'reset-failed', sentinel]);
}

/** Units tracked and incidents open, from unitwatch's STATUS= line. */
function heldCounts(status: string): string {
  const units = /watching (\d+) active units/.exec(status)?.[1] ?? '?';
  const incidents = /(\d+) open incidents/.exec(status)?.[1] ?? '?';
  return `${units} units tracked, ${incidents} incidents open`;
}

/** The count in unitwatch's STATUS= line, cumulative since its start. */
function droppedSoFar(status: string): number {
  return Number(/(\d+) forged messages dropped/.exec(status)?.[1] ?? 0);
}

async function forgedFlood(instance: SystemdInstance, smtp: SmtpSink, count: number, round: number) {
  const pid = await hostPid(instance);
  await idleSince(pid, 30_000);
  const rssBefore = (await steadyRssKb(pid)).rssKb;
  const mailsBefore = smtp.mails.length;
  const droppedBefore = droppedSoFar(await instance.property('unitwatch.service', 'StatusText'));
  const listing = await instance.run(['busctl', '--system', 'list', '--unique', '--no-legend']);
  const mainPid = await instance.property('unitwatch.service', 'MainPID');
  const name = listing
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((columns) => columns[1] === mainPid)?.[0];
  if (name === undefined) throw new Error('unitwatch has no bus name');
  log(`forging ${count} signals to ${name} as an unprivileged user`);
  await instance.run([
    'runuser',
    '-u',
    'mallory',
    '--',
    process.execPath,
    `${repoRoot}test/fixtures/forge-signals.mjs`,
    name,
    'forged.service',
    'failed',
    'failed',
    String(count),
  ]);
  const lastSignalMs = Date.now();
  const idleAtMs = await idleSince(pid, 120_000);
  const rssRightAfter = rssKb(pid);
  // Read before the barrier below: its failure and mail cost memory of their own.
  const steadyAfter = await steadyRssKb(pid);
  const rssAfter = steadyAfter.rssKb;
  await settle(instance, smtp, `sentinel-forged-${round}.service`);
  // Forged names are forged0.service … forgedN.service; the sentinel's name must not count.
  const forgedMails = smtp.mails
    .slice(mailsBefore)
    .filter((mail) =>
      /(^|[\s●])forged\d+\.service/m.test(`${mail.parsed.subject ?? ''}\n${mail.parsed.text ?? ''}`),
    );
  // STATUS= is refreshed every 2 s: read it once that has surely happened since the flood.
  await sleep(3000);
  const status = await instance.property('unitwatch.service', 'StatusText');
  const dropped = droppedSoFar(status) - droppedBefore;
  return {
    signals: count,
    mails: forgedMails.length,
    rssBeforeKb: rssBefore,
    rssRightAfterKb: rssRightAfter,
    rssAfterKb: rssAfter,
    rssGrowthKb: rssAfter - rssBefore,
    steadyAfterMs: steadyAfter.waitedMs,
    idleAfterLastSignalMs: Math.max(0, idleAtMs - lastSignalMs),
    /** As unitwatch counted them: fewer than sent means dbus-daemon did not deliver them all. */
    dropped,
    status,
  };
}

async function transientUnits(instance: SystemdInstance, smtp: SmtpSink, round: number) {
  const pid = await hostPid(instance);
  await idleSince(pid, 30_000);
  const rssBefore = (await steadyRssKb(pid)).rssKb;
  const statusBefore = await instance.property('unitwatch.service', 'StatusText');
  log(`failing ${TRANSIENT} transient units that are garbage-collected at once`);
  await instance.run([
    'sh',
    '-c',
    `i=1; while [ $i -le ${TRANSIENT} ]; do systemd-run --no-block --quiet -p CollectMode=inactive-or-failed --unit=gc-${round}-$i.service /bin/false; i=$((i+1)); done`,
  ]);
  const rssRightAfter = rssKb(pid);
  await idleSince(pid, 300_000);
  // Forgotten once mailed, like the units of the round, so the counts below compare like with like.
  await settle(instance, smtp, `sentinel-gc-${round}.service`, true);
  const rssSettled = rssKb(pid);
  const steady = await steadyRssKb(pid);
  // What the daemon holds per unit, as it counts it: the same before and after means none is kept.
  const statusAfter = await instance.property('unitwatch.service', 'StatusText');
  return {
    heldBefore: heldCounts(statusBefore),
    heldAfter: heldCounts(statusAfter),
    units: TRANSIENT,
    rssBeforeKb: rssBefore,
    rssRightAfterKb: rssRightAfter,
    rssSettledKb: rssSettled,
    rssSteadyKb: steady.rssKb,
    steadyAfterMs: steady.waitedMs,
  };
}

/** Bytes the state log grew by (plus each snapshot written when it was compacted). */
async function stateBytes(
  instance: SystemdInstance,
): Promise<{ generation: number; logBytes: number; snapshotBytes: number }> {
  const out = await instance.run([
    'sh',
    '-c',
    `cd ${STATE} && stat -c '%n %s' state.*.log state.json 2>/dev/null || true`,
  ]);
  let generation = -1;
  let logBytes = 0;
  let snapshotBytes = 0;
  for (const line of out.trim().split('\n')) {
    const [file, size] = line.split(' ');
    const match = /^state\.(\d+)\.log$/.exec(file ?? '');
    if (match !== null) {
      generation = Number(match[1]);
      logBytes = Number(size);
    } else if (file === 'state.json') snapshotBytes = Number(size);
  }
  return { generation, logBytes, snapshotBytes };
}

async function crashLoop(instance: SystemdInstance) {
  log(`crash loop for ${LOOP_SECONDS} s`);
  let written = 0;
  let last = await stateBytes(instance);
  await instance.run([
    'systemd-run',
    '--unit=loop.service',
    '-p',
    'Restart=always',
    '-p',
    'RestartSec=200ms',
    '-p',
    'StartLimitIntervalSec=0',
    '/bin/sh',
    '-c',
    'sleep 0.05; echo crashing; exit 7',
  ]);
  const end = Date.now() + LOOP_SECONDS * 1000;
  while (Date.now() < end) {
    await sleep(500);
    const now = await stateBytes(instance);
    written +=
      now.generation === last.generation ? now.logBytes - last.logBytes : now.snapshotBytes + now.logBytes;
    last = now;
  }
  await instance.systemctl('stop', 'loop.service');
  await sleep(1000);
  const final = await stateBytes(instance);
  written +=
    final.generation === last.generation
      ? final.logBytes - last.logBytes
      : final.snapshotBytes + final.logBytes;
  const journal = await instance.journal('-u', 'loop.service', '-o', 'cat');
  const failures = journal
    .split('\n')
    .filter((line) => line.includes("Failed with result 'exit-code'")).length;
  return {
    seconds: LOOP_SECONDS,
    failures,
    stateBytes: written,
    bytesPerFailure: Math.round(written / failures),
  };
}

async function main(): Promise<void> {
  const reason = realSystemdUnavailableReason();
  if (reason !== undefined) {
    process.stderr.write(`npm run bench:trust cannot run here: ${reason}\n`);
    process.exit(2);
  }
  const smtp = new SmtpSink();
  await smtp.start();
  const instance = await SystemdInstance.boot();
  try {
    await instance.run(['useradd', '--no-create-home', '--shell', '/bin/sh', 'mallory']);
    await installUnitwatch(
      instance,
      {
        UNITWATCH_TO: 'ops@example.org',
        UNITWATCH_SMTP_URL: smtp.url,
        UNITWATCH_HOSTNAME: 'trusthost',
        UNITWATCH_MAX_MAILS_PER_HOUR: '100000',
      },
      // To try Node flags on the daemon (e.g. --max-semi-space-size=1) without changing the unit.
      process.env.BENCH_NODE_OPTIONS === undefined
        ? {}
        : { Environment: `NODE_OPTIONS=${process.env.BENCH_NODE_OPTIONS}` },
    );
    // Flags Node refuses in NODE_OPTIONS (--trace-gc) go on the command line itself.
    const nodeFlags = process.env.BENCH_NODE_FLAGS ?? '';
    if (nodeFlags !== '') {
      await instance.writeFile(
        '/etc/systemd/system/unitwatch.service.d/node-flags.conf',
        `[Service]\nExecStart=\nExecStart=${process.execPath} ${nodeFlags} -- ${repoRoot}dist/cli.js run\n`,
      );
      await instance.systemctl('daemon-reload');
    }
    await startUnitwatch(instance);
    // A first failure and mail before any baseline: the code paths a mail takes are compiled once,
    // and that memory is not the floods'.
    await settle(instance, smtp, 'sentinel-warm-up.service');
    const floods = [];
    for (const [round, count] of FORGED.entries()) {
      const flood = await forgedFlood(instance, smtp, count, round);
      log(JSON.stringify(flood));
      floods.push(flood);
    }
    const baselineKb = floods[0]?.rssBeforeKb ?? Number.NaN;
    const loop = await crashLoop(instance);
    log(JSON.stringify(loop));
    const transients = [];
    for (let round = 1; round <= TRANSIENT_ROUNDS; round++) {
      const transient = await transientUnits(instance, smtp, round);
      log(JSON.stringify(transient));
      transients.push(transient);
    }
    const results = { at: new Date().toISOString(), floods, transients, loop };
    writeFileSync(`${repoRoot}bench/results/trust.json`, `${JSON.stringify(results, null, 2)}\n`);
    const rows = [
      '| measure | value |',
      '| --- | --- |',
      ...floods.flatMap((flood) => [
        `| forged signals sent → dropped by unitwatch → mailed | ${flood.signals} → ${flood.dropped} → ${flood.mails} |`,
        `| RSS right after the flood / steady again, growth over this flood / since before the first | ${(flood.rssRightAfterKb / 1024).toFixed(1)} / ${(flood.rssAfterKb / 1024).toFixed(1)} MiB, ${(flood.rssGrowthKb / 1024).toFixed(1)} / ${((flood.rssAfterKb - baselineKb) / 1024).toFixed(1)} MiB |`,
        `| CPU idle again after the last forged signal | ${(flood.idleAfterLastSignalMs / 1000).toFixed(1)} s |`,
      ]),
      ...transients.map(
        (transient) =>
          `| RSS before / right after / mailed / steady again, ${transient.units} transient units | ${(transient.rssBeforeKb / 1024).toFixed(1)} / ${(transient.rssRightAfterKb / 1024).toFixed(1)} / ${(transient.rssSettledKb / 1024).toFixed(1)} / ${(transient.rssSteadyKb / 1024).toFixed(1)} MiB; ${transient.heldBefore} → ${transient.heldAfter} |`,
      ),
      `| crash loop: failures in ${loop.seconds} s | ${loop.failures} |`,
      `| state bytes written per failure | ${loop.bytesPerFailure} |`,
    ];
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    // With BENCH_NODE_FLAGS=--trace-gc, the daemon's collections are in its journal: kept here.
    if (process.env.BENCH_JOURNAL_OUT !== undefined) {
      const journal = await instance.journal('-u', 'unitwatch.service', '-o', 'short-iso').catch(String);
      writeFileSync(process.env.BENCH_JOURNAL_OUT, journal);
    }
    await instance.poweroff();
    await smtp.stop();
  }
}

await main();
