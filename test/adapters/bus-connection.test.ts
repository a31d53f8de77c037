import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BusConnection, busSocketPath, openBusConnection } from '../../src/adapters/bus-connection.js';
import { MessageType } from '../../src/adapters/bus-framing.js';

// A real dbus-daemon on a socket of this test's own; the second client, playing the local user who
// forges signals, is a stock dbus-next connection.

let directory: string;
let address: string;
let daemon: ChildProcess;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'unitwatch-bus-'));
  address = `unix:path=${join(directory, 'bus')}`;
  await writeFile(
    join(directory, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>${address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
`,
  );
  daemon = spawn(
    'dbus-daemon',
    ['--nofork', '--print-address', `--config-file=${join(directory, 'bus.conf')}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  // dbus-daemon prints its address once it listens; CI has it, and a missing one fails here.
  await new Promise<void>((resolve, reject) => {
    daemon.once('error', reject);
    daemon.stdout?.once('data', () => resolve());
  });
});

afterAll(async () => {
  daemon?.kill();
  await rm(directory, { recursive: true, force: true });
});

interface Opened {
  connection: BusConnection;
  dropped: () => number;
  ended: Promise<Error>;
  signals: dbus.Message[];
}

function open(trusted: () => string[] = () => ['org.freedesktop.DBus']): Opened {
  let dropped = 0;
  let end: (reason: Error) => void = () => undefined;
  const ended = new Promise<Error>((resolve) => {
    end = resolve;
  });
  const connection = openBusConnection(address, {
    admit: (type, bytes, start, end) =>
      type === MessageType.methodReturn ||
      type === MessageType.error ||
      (type === MessageType.signal && trusted().includes(bytes.toString('utf8', start, end))),
    dropped: () => {
      dropped++;
    },
    ended: (reason) => end(reason),
  });
  const signals: dbus.Message[] = [];
  connection.bus.on('message', (message: dbus.Message) => {
    if (message.type === dbus.MessageType.SIGNAL) signals.push(message);
  });
  return { connection, dropped: () => dropped, ended, signals };
}

function driverCall(bus: dbus.MessageBus, member: string, signature?: string, body: unknown[] = []) {
  return bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member,
      ...(signature === undefined ? {} : { signature, body }),
    }),
  );
}

async function uniqueName(bus: dbus.MessageBus): Promise<string> {
  await driverCall(bus, 'GetId');
  // dbus-next sets it from the Hello reply, which comes before any other; its typings omit it.
  const name = (bus as unknown as { name: string | null }).name;
  if (name === null) throw new Error('no unique name after a round trip');
  return name;
}

function forgedChange(destination: string): dbus.Message {
  return new dbus.Message({
    type: dbus.MessageType.SIGNAL,
    destination,
    path: '/org/freedesktop/systemd1/unit/nginx_2eservice',
    interface: 'org.freedesktop.DBus.Properties',
    member: 'PropertiesChanged',
    signature: 'sa{sv}as',
    body: ['org.freedesktop.systemd1.Unit', { ActiveState: new dbus.Variant('s', 'failed') }, []],
  });
}

/** Waits until `check` holds, polling; a barrier on the bus is a round trip, used below where one exists. */
async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('openBusConnection, against a real dbus-daemon', () => {
  it('authenticates, gets its unique name and its replies, large ones too', async () => {
    const { connection } = open();
    try {
      expect(await uniqueName(connection.bus)).toMatch(/^:1\.\d+$/);
      const reply = await driverCall(connection.bus, 'ListNames');
      expect(reply?.body[0]).toContain('org.freedesktop.DBus');
      // A reply far larger than one read: the introspection XML of the bus, asked 200 times at once.
      const replies = await Promise.all(
        Array.from({ length: 200 }, () =>
          connection.bus.call(
            new dbus.Message({
              destination: 'org.freedesktop.DBus',
              path: '/org/freedesktop/DBus',
              interface: 'org.freedesktop.DBus.Introspectable',
              member: 'Introspect',
            }),
          ),
        ),
      );
      expect(new Set(replies.map((one) => one?.body[0])).size).toBe(1);
      expect(String(replies[0]?.body[0])).toContain('<interface name="org.freedesktop.DBus">');
    } finally {
      connection.bus.disconnect();
    }
  });

  it('drops forged signals and method calls from another client before decoding them, and tells whose', async () => {
    const { connection, dropped, signals } = open();
    const mallory = dbus.sessionBus({ busAddress: address });
    try {
      const target = await uniqueName(connection.bus);
      const malloryName = await uniqueName(mallory);
      for (let i = 0; i < 100; i++) mallory.send(forgedChange(target));
      mallory.send(forgedChange('')); // a broadcast too: no match rule of ours takes it, so it never comes
      const call = new dbus.Message({
        destination: target,
        path: '/',
        interface: 'org.example.Any',
        member: 'Poke',
      });
      // A call that wants a reply: dbus-next's own connection would answer it (UnknownMethod).
      let answered = false;
      mallory.call(call).then(
        () => {
          answered = true;
        },
        () => {
          answered = true;
        },
      );
      // Messages between two clients keep their order: once the reply to this comes, all the above
      // have reached the target's socket; a round trip of the target's own then shows it read them.
      await driverCall(mallory, 'GetId');
      await driverCall(connection.bus, 'GetId');
      await until(() => dropped() === 101, '101 drops');
      expect(signals.filter((signal) => signal.sender === malloryName)).toEqual([]);
      expect(connection.lastDropped()).toEqual({ sender: malloryName, member: 'Poke' });
      // The barrier: a signal from the target to mallory, which arrives after any reply it sent.
      const barrier = new Promise<void>((resolve) =>
        mallory.on('message', (message: dbus.Message) => {
          if (message.member === 'Barrier') resolve();
        }),
      );
      connection.bus.send(
        new dbus.Message({
          type: dbus.MessageType.SIGNAL,
          destination: malloryName,
          path: '/',
          interface: 'org.example.Test',
          member: 'Barrier',
        }),
      );
      await barrier;
      expect(answered).toBe(false);
    } finally {
      mallory.disconnect();
      connection.bus.disconnect();
    }
  });

  it('decodes an admitted signal as dbus-next would, and the bus driver’s own', async () => {
    let trustedSender = '';
    const { connection, signals } = open(() => ['org.freedesktop.DBus', trustedSender]);
    const peer = dbus.sessionBus({ busAddress: address });
    try {
      const target = await uniqueName(connection.bus);
      trustedSender = await uniqueName(peer);
      await driverCall(connection.bus, 'AddMatch', 's', [
        "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.example.Watched'",
      ]);
      await driverCall(peer, 'RequestName', 'su', ['org.example.Watched', 0]);
      peer.send(forgedChange(target));
      await driverCall(peer, 'GetId');
      await driverCall(connection.bus, 'GetId');
      await until(() => signals.length >= 2, 'two signals');
      const owner = signals.find((signal) => signal.member === 'NameOwnerChanged');
      expect(owner?.body).toEqual(['org.example.Watched', '', trustedSender]);
      const change = signals.find((signal) => signal.member === 'PropertiesChanged');
      expect(change?.sender).toBe(trustedSender);
      expect(change?.path).toBe('/org/freedesktop/systemd1/unit/nginx_2eservice');
      expect(change?.body[0]).toBe('org.freedesktop.systemd1.Unit');
      const changed = change?.body[1] as Record<string, dbus.Variant> | undefined;
      expect(changed?.ActiveState?.value).toBe('failed');
    } finally {
      peer.disconnect();
      connection.bus.disconnect();
    }
  });

  it('reports the end of the connection when the bus goes away', async () => {
    const { connection, ended } = open();
    await uniqueName(connection.bus);
    connection.socket.destroy();
    await expect(ended).resolves.toBeInstanceOf(Error);
  });
});

describe('busSocketPath', () => {
  it.each([
    ['unix:path=/run/dbus/system_bus_socket', '/run/dbus/system_bus_socket'],
    ['unix:path=/run/user/1000/bus,guid=0123', '/run/user/1000/bus'],
    ['tcp:host=localhost,port=1;unix:path=/run/b%2cus', '/run/b,us'],
    ['unix:abstract=/tmp/dbus-XYZ', '\0/tmp/dbus-XYZ'],
  ])('finds the socket of %s', (given, path) => {
    expect(busSocketPath(given)).toBe(path);
  });

  it('names the address and what it accepts when there is no unix socket in it', () => {
    expect(() => busSocketPath('tcp:host=localhost,port=4')).toThrow(
      /"tcp:host=localhost,port=4" names no unix socket; unitwatch connects only to unix:path=… or unix:abstract=…/,
    );
  });
});
