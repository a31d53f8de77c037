import dbus from 'dbus-next';
import { ConcurrencyLimit } from '../core/concurrency-limit.js';
import type { UnitFacts } from '../core/failure.js';
import { type ServiceManager, systemManager } from '../core/service-manager.js';
import { isValidUnitName } from '../core/unit-name.js';
import { BusCallError } from '../errors/bus-error.js';
import { type BusConnection, openBusConnection } from './bus-connection.js';
import { MessageType } from './bus-framing.js';

const SYSTEMD = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const BUS_DRIVER = 'org.freedesktop.DBus';
const BUS_DRIVER_BYTES = Buffer.from(BUS_DRIVER);

/** One match rule for every unit, present and future: systemd sends these only to subscribed clients. */
const UNIT_CHANGES_RULE = `type='signal',sender='${SYSTEMD}',interface='${PROPERTIES}',member='PropertiesChanged',arg0='${UNIT}'`;
const UNIT_REMOVED_RULE = `type='signal',sender='${SYSTEMD}',interface='${MANAGER}',member='UnitRemoved'`;
/** dbus restarts and `systemctl daemon-reexec` give systemd a new unique name; this says which. */
const OWNER_CHANGES_RULE = `type='signal',sender='${BUS_DRIVER}',interface='${BUS_DRIVER}',member='NameOwnerChanged',arg0='${SYSTEMD}'`;

/** A flood of forged signals is summed up in one report per this interval, not one line each. */
const DROPPED_REPORT_INTERVAL_MS = 10_000;

/** Each unit type that has a `Result` carries it on its own interface. */
const TYPE_INTERFACES: Readonly<Record<string, string>> = {
  service: 'org.freedesktop.systemd1.Service',
  socket: 'org.freedesktop.systemd1.Socket',
  mount: 'org.freedesktop.systemd1.Mount',
  automount: 'org.freedesktop.systemd1.Automount',
  swap: 'org.freedesktop.systemd1.Swap',
  timer: 'org.freedesktop.systemd1.Timer',
  path: 'org.freedesktop.systemd1.Path',
  scope: 'org.freedesktop.systemd1.Scope',
};

/** In the order readFacts destructures them. */
const SERVICE_FACT_PROPERTIES = ['Result', 'ExecMainCode', 'ExecMainStatus', 'NRestarts'] as const;

/**
 * Calls in flight at once. dbus-daemon refuses a connection more pending replies than its limit
 * (128 on Debian's system bus); a catch-up over hundreds of failed units would otherwise get
 * errors instead of facts, and facts without an invocation id cannot be deduplicated.
 */
const PARALLEL_CALLS = 64;

export interface UnitChange {
  readonly unit: string;
  readonly objectPath: string;
  readonly activeState: string;
  readonly subState: string;
}

/** A row of ListUnits carries what a change does, so catch-up treats each row as one. */
export type ListedUnit = UnitChange;

export interface DroppedMessages {
  /** Dropped since the previous report. */
  readonly count: number;
  readonly total: number;
  /** Unique name of the last sender, e.g. `:1.42`. */
  readonly lastSender: string;
  readonly lastMember: string;
}

export interface SystemdBusEvents {
  /** A unit's ActiveState or SubState may have changed. Only ever from systemd itself. */
  onUnitChange(change: UnitChange): void;
  /** systemd unloaded the unit (garbage-collected, or gone after daemon-reload). */
  onUnitRemoved?(unit: string): void;
  /** systemd has a new unique name (dbus restarted, daemon-reexec): what it knew may have moved on. */
  onSystemdRestarted?(): void;
  /** Messages that did not come from systemd were dropped; at most one call per 10 s. */
  onDroppedMessages?(dropped: DroppedMessages): void;
  /** The connection is gone; no more changes will arrive on this instance. */
  onDisconnect(reason: Error): void;
}

/** Every loaded unit, asked once on a connection of its own: for one-shot commands (`check`, `status`). */
export async function listUnitsOnce(callTimeoutMs = 10_000, manager?: ServiceManager): Promise<ListedUnit[]> {
  const bus = new SystemdBus(
    { onUnitChange: () => undefined, onDisconnect: () => undefined },
    { callTimeoutMs, ...(manager === undefined ? {} : { manager }) },
  );
  try {
    await bus.connect();
    return await bus.listUnits();
  } finally {
    bus.stop();
  }
}

/** systemd escapes every byte outside [A-Za-z0-9] of a unit name as `_xx` in its object path. */
export function unitNameFromPath(objectPath: string): string | undefined {
  const prefix = `${MANAGER_PATH}/unit/`;
  if (!objectPath.startsWith(prefix)) return undefined;
  const label = objectPath.slice(prefix.length);
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const char = label[i] ?? '';
    if (char === '_') {
      const hex = label.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(char.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function sameBytes(bytes: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && bytes.compare(name, 0, name.length, start, end) === 0;
}

function unwrap(value: unknown): unknown {
  return value instanceof dbus.Variant ? value.value : value;
}

function asString(value: unknown): string {
  const plain = unwrap(value);
  return typeof plain === 'string' ? plain : '';
}

function asNumber(value: unknown): number | undefined {
  const plain = unwrap(value);
  if (typeof plain === 'number') return plain;
  if (typeof plain === 'bigint') return Number(plain);
  return undefined;
}

function asHex(value: unknown): string {
  const plain = unwrap(value);
  if (Buffer.isBuffer(plain)) return plain.toString('hex');
  if (Array.isArray(plain)) return Buffer.from(plain as number[]).toString('hex');
  return '';
}

/**
 * The D-Bus edge: subscribes to systemd and turns its signals into UnitChange callbacks, and reads a
 * unit's facts on demand. Knows nothing about what a failure means.
 */
export class SystemdBus {
  readonly #events: SystemdBusEvents;
  readonly #callTimeoutMs: number;
  #bus: dbus.MessageBus | undefined;
  #disconnected = false;
  /** The connection; its socket is corked while the calls of one tick are written, so they leave in one syscall. */
  #connection: BusConnection | undefined;
  #corked = false;
  /** Rejecters of calls still waiting, so a lost connection fails them at once. */
  readonly #pendingCalls = new Set<(reason: Error) => void>();
  readonly #callSlots = new ConcurrencyLimit(PARALLEL_CALLS);
  readonly #now: () => number;
  /** The user's manager on its session bus; undefined: PID 1 on the system bus. */
  readonly #manager: ServiceManager | undefined;
  /**
   * The unique name (`:1.N`) that owns org.freedesktop.systemd1, as bytes. Any local user may
   * send a signal to our unique name directly, which no match rule filters: a signal from anyone
   * else is dropped by the connection's framer, before it is decoded (`#admit`).
   */
  #systemdOwnerBytes: Buffer | undefined;
  #droppedTotal = 0;
  #droppedSinceReport = 0;
  #lastDropReportMs = Number.NEGATIVE_INFINITY;
  #dropReportTimer: NodeJS.Timeout | undefined;

  constructor(
    events: SystemdBusEvents,
    options: { callTimeoutMs?: number; now?: () => number; manager?: ServiceManager } = {},
  ) {
    this.#events = events;
    this.#callTimeoutMs = options.callTimeoutMs ?? 25_000;
    this.#now = options.now ?? Date.now;
    this.#manager = options.manager;
  }

  /** Messages dropped because they did not come from systemd, since start. */
  get droppedMessages(): number {
    return this.#droppedTotal;
  }

  /**
   * Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured), or to the session bus of the
   * user's manager when one was given, learns systemd's unique name and
   * subscribes to every unit. The owner is followed before it is asked, so no change of it is missed.
   */
  async start(): Promise<void> {
    await this.connect();
    await this.#addMatch(OWNER_CHANGES_RULE);
    const [owner] = await this.#call(BUS_DRIVER, '/org/freedesktop/DBus', BUS_DRIVER, 'GetNameOwner', 's', [
      SYSTEMD,
    ]);
    this.#setSystemdOwner(String(owner));
    await this.#addMatch(UNIT_CHANGES_RULE);
    await this.#addMatch(UNIT_REMOVED_RULE);
    await this.#call(SYSTEMD, MANAGER_PATH, MANAGER, 'Subscribe');
  }

  /** Subscribing is per client in systemd; a re-executed manager is asked again, to be sure. */
  async resubscribe(): Promise<void> {
    await this.#call(SYSTEMD, MANAGER_PATH, MANAGER, 'Subscribe');
  }

  async #addMatch(rule: string): Promise<void> {
    await this.#call(BUS_DRIVER, '/org/freedesktop/DBus', BUS_DRIVER, 'AddMatch', 's', [rule]);
  }

  /** Connects without subscribing, for one-shot queries such as `unitwatch check`. */
  async connect(): Promise<void> {
    // A user's manager is on that user's session bus; the sender check below holds there the same
    // way: only the unique name that owns org.freedesktop.systemd1 on that bus is believed.
    const manager = this.#manager ?? systemManager(process.env);
    const connection = openBusConnection(manager.busAddress, {
      admit: (type, bytes, start, end) => this.#admit(type, bytes, start, end),
      dropped: () => this.#dropped(),
      ended: (reason) => this.#lost(reason),
    });
    const bus = connection.bus;
    this.#connection = connection;
    this.#bus = bus;
    bus.on('error', (error: unknown) =>
      this.#lost(error instanceof Error ? error : new Error(String(error))),
    );
    bus.on('message', (message: dbus.Message) => this.#dispatch(message));
    // Fails fast when the connection cannot be made at all, instead of waiting for a call timeout.
    await this.#call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetId');
  }

  stop(): void {
    clearTimeout(this.#dropReportTimer);
    this.#dropReportTimer = undefined;
    const bus = this.#bus;
    this.#bus = undefined;
    this.#disconnected = true;
    bus?.disconnect();
  }

  async listUnits(): Promise<ListedUnit[]> {
    const reply = await this.#call(SYSTEMD, MANAGER_PATH, MANAGER, 'ListUnits');
    const rows = (reply[0] ?? []) as unknown[][];
    return rows
      .map((row) => ({
        unit: String(row[0]),
        activeState: String(row[3]),
        subState: String(row[4]),
        objectPath: String(row[6]),
      }))
      .filter((row) => isValidUnitName(row.unit));
  }

  async unitPath(unit: string): Promise<string> {
    const reply = await this.#call(SYSTEMD, MANAGER_PATH, MANAGER, 'LoadUnit', 's', [unit]);
    return String(reply[0]);
  }

  /**
   * Reads what a notification needs: the Unit interface whole, and from the type's interface only
   * the four properties used, one `Get` each. That interface (some 200 properties on a service, with
   * command lines and arrays) cost more to unmarshal in dbus-next than everything else read for a
   * failure; measured per failure: both whole 0.5 ms, ten single `Get`s 0.5 ms, this 0.3 ms.
   */
  async readFacts(unit: string, objectPath: string): Promise<UnitFacts> {
    const suffix = unit.slice(unit.lastIndexOf('.') + 1);
    const typeInterface = TYPE_INTERFACES[suffix];
    // Only services have ExecMain* and NRestarts; other types carry just a Result.
    const typeNames = suffix === 'service' ? SERVICE_FACT_PROPERTIES : (['Result'] as const);
    const [unitProps, typeValues] = await Promise.all([
      this.#getAll(objectPath, UNIT),
      typeInterface === undefined
        ? []
        : Promise.all(typeNames.map((name) => this.#get(objectPath, typeInterface, name))),
    ]);
    const [result, execMainCode, execMainStatus, restarts] = typeValues;
    return {
      unit,
      description: asString(unitProps.Description),
      activeState: asString(unitProps.ActiveState),
      subState: asString(unitProps.SubState),
      result: asString(result),
      execMainCode: asNumber(execMainCode),
      execMainStatus: asNumber(execMainStatus),
      restarts: asNumber(restarts),
      invocationId: asHex(unitProps.InvocationID),
      inactiveEnterTimestampUs: asNumber(unitProps.InactiveEnterTimestamp) ?? 0,
      fragmentPath: asString(unitProps.FragmentPath),
    };
  }

  /**
   * How often systemd restarted a service, and its current invocation: compared at each catch-up
   * with what was seen before, they reveal a crash hidden by `Restart=` while nobody listened.
   */
  /** One Get: a catch-up asks it of every running service. */
  async readRestarts(objectPath: string): Promise<{ restarts: number | undefined }> {
    const restarts = await this.#get(objectPath, 'org.freedesktop.systemd1.Service', 'NRestarts');
    return { restarts: asNumber(restarts) };
  }

  async #getAll(objectPath: string, iface: string): Promise<Record<string, unknown>> {
    const reply = await this.#call(SYSTEMD, objectPath, PROPERTIES, 'GetAll', 's', [iface]);
    return (reply[0] ?? {}) as Record<string, unknown>;
  }

  async #get(objectPath: string, iface: string, name: string): Promise<unknown> {
    const reply = await this.#call(SYSTEMD, objectPath, PROPERTIES, 'Get', 'ss', [iface, name]);
    return reply[0];
  }

  /**
   * Decides from a message's header, before anything of it is decoded: replies (the bus delivers
   * only those to calls we made) and signals from the bus itself or from systemd are read; a signal
   * from anyone else, and any method call (unitwatch serves nothing on the bus), is dropped.
   */
  #admit(type: number, bytes: Buffer, start: number, end: number): boolean {
    if (type === MessageType.methodReturn || type === MessageType.error) return true;
    if (type !== MessageType.signal) return false;
    const owner = this.#systemdOwnerBytes;
    return (
      sameBytes(bytes, start, end, BUS_DRIVER_BYTES) ||
      (owner !== undefined && sameBytes(bytes, start, end, owner))
    );
  }

  #setSystemdOwner(owner: string): void {
    this.#systemdOwnerBytes = owner === '' ? undefined : Buffer.from(owner);
  }

  /** Only the bus's and systemd's signals get here (`#admit`); the framer read them in order. */
  #dispatch(message: dbus.Message): void {
    if (message.type !== dbus.MessageType.SIGNAL) return;
    // Only the bus itself can send as org.freedesktop.DBus; its other signals (NameAcquired) are ours.
    if (message.sender === BUS_DRIVER) {
      if (message.member === 'NameOwnerChanged' && message.body?.[0] === SYSTEMD) {
        // A re-exec shows as two changes, old → '' and '' → new: the second one is the restart.
        const owner = String(message.body[2] ?? '');
        this.#setSystemdOwner(owner);
        if (owner !== '') this.#events.onSystemdRestarted?.();
      }
      return;
    }
    if (message.interface === MANAGER && message.member === 'UnitRemoved') {
      const unit = String(message.body?.[0] ?? '');
      if (isValidUnitName(unit)) this.#events.onUnitRemoved?.(unit);
      return;
    }
    if (message.member !== 'PropertiesChanged') return;
    if (message.interface !== PROPERTIES || message.body?.[0] !== UNIT) return;
    const changed = (message.body[1] ?? {}) as Record<string, unknown>;
    if (!('ActiveState' in changed) && !('SubState' in changed)) return;
    const objectPath = message.path ?? '';
    const unit = unitNameFromPath(objectPath);
    if (unit === undefined || !isValidUnitName(unit)) return;
    this.#events.onUnitChange({
      unit,
      objectPath,
      activeState: asString(changed.ActiveState),
      subState: asString(changed.SubState),
    });
  }

  /**
   * The first drop is reported at once; later ones are summed up and reported when the interval
   * since the last report ends, so a flood costs one journal line per 10 s and its end is reported.
   */
  #dropped(): void {
    this.#droppedTotal++;
    this.#droppedSinceReport++;
    const waitMs = this.#lastDropReportMs + DROPPED_REPORT_INTERVAL_MS - this.#now();
    if (waitMs <= 0) this.#reportDropped();
    else if (this.#dropReportTimer === undefined) {
      this.#dropReportTimer = setTimeout(() => this.#reportDropped(), waitMs);
      this.#dropReportTimer.unref();
    }
  }

  #reportDropped(): void {
    clearTimeout(this.#dropReportTimer);
    this.#dropReportTimer = undefined;
    if (this.#droppedSinceReport === 0) return;
    this.#lastDropReportMs = this.#now();
    const count = this.#droppedSinceReport;
    this.#droppedSinceReport = 0;
    const { sender, member } = this.#connection?.lastDropped() ?? { sender: '', member: '' };
    this.#events.onDroppedMessages?.({
      count,
      total: this.#droppedTotal,
      lastSender: sender,
      lastMember: member,
    });
  }

  #lost(reason: Error): void {
    if (this.#disconnected) return;
    this.#disconnected = true;
    for (const reject of this.#pendingCalls) reject(reason);
    this.#pendingCalls.clear();
    this.#events.onDisconnect(reason);
  }

  /**
   * dbus-next writes each message with its own write(2); corked, the calls made in one tick (a
   * fact read's five calls) leave in a single writev(2) when the tick ends.
   */
  #corkUntilNextTick(): void {
    const stream = this.#connection?.socket;
    if (stream === undefined || this.#corked) return;
    this.#corked = true;
    stream.cork();
    process.nextTick(() => {
      this.#corked = false;
      stream.uncork();
    });
  }

  #call(
    destination: string,
    path: string,
    iface: string,
    member: string,
    signature?: string,
    body?: unknown[],
  ): Promise<unknown[]> {
    const message = new dbus.Message({
      destination,
      path,
      interface: iface,
      member,
      ...(signature === undefined ? {} : { signature, body: body ?? [] }),
    });
    return this.#callSlots.run(() => this.#callNow(message));
  }

  async #callNow(message: dbus.Message): Promise<unknown[]> {
    const what = `${message.interface}.${message.member}`;
    const path = message.path ?? '';
    const bus = this.#bus;
    if (bus === undefined) throw new BusCallError(what, path, new Error('not connected'));
    let timer: NodeJS.Timeout | undefined;
    let rejectOnLoss: ((reason: Error) => void) | undefined;
    // A call on a connection that died silently would otherwise wait forever; a lost one fails at once.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.#callTimeoutMs} ms`)),
        this.#callTimeoutMs,
      );
      rejectOnLoss = reject;
      if (this.#disconnected)
        reject(new Error(`not connected to the ${this.#manager?.busName ?? 'system bus'}`));
      else this.#pendingCalls.add(reject);
    });
    this.#corkUntilNextTick();
    try {
      const reply = await Promise.race([bus.call(message), timeout]);
      return (reply?.body ?? []) as unknown[];
    } catch (error) {
      throw new BusCallError(what, path, error);
    } finally {
      clearTimeout(timer);
      if (rejectOnLoss !== undefined) this.#pendingCalls.delete(rejectOnLoss);
    }
  }
}
