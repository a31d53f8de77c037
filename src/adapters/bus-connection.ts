import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import dbus from 'dbus-next';
import MessageBusClass from 'dbus-next/lib/bus.js';
import DBusBuffer from 'dbus-next/lib/dbus-buffer.js';
import compat from 'dbus-next/lib/marshall-compat.js';
import { unescapeAddressValue } from '../core/service-manager.js';
import { MessageFramer, type MessageHeader } from './bus-framing.js';

/**
 * A dbus-next `MessageBus` over a connection of our own: one read buffer reused for every read, and
 * a `MessageFramer` that drops what is not admitted before dbus-next decodes anything. dbus-next's
 * own connection allocates a buffer per read and an object tree per message, which a flood of
 * forged signals turned into resident memory (issue 10).
 */

/** One read(2) fills at most this much; the framer keeps what a message needs beyond it. */
const READ_BUFFER_BYTES = 64 * 1024;
/** An authentication reply longer than this is not one. */
const MAX_AUTH_LINE_BYTES = 1024;
const LITTLE_ENDIAN_MARK = 0x6c;
const BIG_ENDIAN_MARK = 0x42;

export interface BusFilter {
  /** Whether a message of this type from this sender (bytes[start, end)) is read at all. */
  admit(type: number, bytes: Buffer, start: number, end: number): boolean;
  /** One message was not admitted. */
  dropped(): void;
  /** The connection ended or broke; nothing more arrives on it. */
  ended(reason: Error): void;
}

export interface BusConnection {
  readonly bus: dbus.MessageBus;
  /** The socket, for corking writes. */
  readonly socket: Socket;
  /** Sender and member of the last message not admitted. */
  lastDropped(): { sender: string; member: string };
}

/**
 * The socket of a D-Bus address (`unix:path=…` or `unix:abstract=…`, the first of a `;` list that is
 * one). systemd's buses are unix sockets; unitwatch speaks to nothing else.
 */
export function busSocketPath(address: string): string {
  for (const entry of address.split(';')) {
    const colon = entry.indexOf(':');
    if (colon < 0 || entry.slice(0, colon) !== 'unix') continue;
    const params = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(',')) {
      const equals = pair.indexOf('=');
      if (equals > 0) params.set(pair.slice(0, equals), unescapeAddressValue(pair.slice(equals + 1)));
    }
    const path = params.get('path');
    if (path !== undefined && path !== '') return path;
    const abstract = params.get('abstract');
    if (abstract !== undefined && abstract !== '') return `\0${abstract}`;
  }
  throw new Error(
    `the D-Bus address "${address}" names no unix socket; unitwatch connects only to unix:path=… or unix:abstract=… addresses`,
  );
}

/** Opens the connection; the `MessageBus` sends its Hello as soon as authentication succeeds. */
export function openBusConnection(address: string, filter: BusFilter): BusConnection {
  const connection = new EventEmitter() as EventEmitter & {
    stream: Socket;
    message(message: dbus.Message): void;
    end(): void;
  };
  let queued: dbus.Message[] = [];
  let authenticated = false;
  let authLine = '';
  let ended = false;
  const end = (reason: Error): void => {
    if (ended) return;
    ended = true;
    filter.ended(reason);
  };
  const framer = new MessageFramer({
    admit: filter.admit,
    dropped: filter.dropped,
    message: (header, body) => {
      let message: dbus.Message;
      try {
        message = toDbusMessage(header, body);
      } catch (error) {
        socket.destroy();
        end(
          new Error(
            `a D-Bus message could not be read: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
        return;
      }
      connection.emit('message', message);
    },
    protocolError: (reason) => {
      socket.destroy();
      end(reason);
    },
  });
  const write = (message: dbus.Message): void => {
    socket.write(compat.marshallMessage(message)[0]);
  };

  /** The server's one reply line to AUTH EXTERNAL; what follows it is messages. */
  const readAuthReply = (chunk: Buffer, length: number): number => {
    const newline = chunk.indexOf(0x0a);
    const lineEnd = newline < 0 || newline >= length ? length : newline;
    authLine += chunk.toString('latin1', 0, lineEnd);
    if (authLine.length > MAX_AUTH_LINE_BYTES) {
      socket.destroy();
      end(new Error('the bus did not answer the D-Bus authentication'));
      return length;
    }
    if (lineEnd === length) return length;
    const reply = authLine.trimEnd();
    if (!reply.startsWith('OK ')) {
      socket.destroy();
      end(
        new Error(
          `the bus refused EXTERNAL authentication as uid ${process.getuid?.() ?? '?'} (it answered "${reply.slice(0, 200)}")`,
        ),
      );
      return length;
    }
    authenticated = true;
    socket.write('BEGIN\r\n');
    for (const message of queued) write(message);
    queued = [];
    connection.message = write;
    return newline + 1;
  };

  const socket = createConnection({
    path: busSocketPath(address),
    onread: {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (length: number, chunk: Uint8Array) => {
        const bytes = chunk as Buffer;
        try {
          const start = authenticated ? 0 : readAuthReply(bytes, length);
          if (start < length && !ended)
            framer.push(start === 0 ? bytes : bytes.subarray(start), length - start);
        } catch (error) {
          // A bug here must not take the daemon down: the connection is dropped and made again.
          socket.destroy();
          end(error instanceof Error ? error : new Error(String(error)));
        }
        return true;
      },
    },
  });
  connection.stream = socket;
  connection.message = (message) => {
    queued.push(message);
  };
  connection.end = () => {
    socket.end();
  };
  socket.once('connect', () => {
    // EXTERNAL: the kernel tells the bus who we are; the uid we name must match it.
    const uid = Buffer.from(String(process.getuid?.() ?? 0), 'ascii').toString('hex');
    socket.write(`\0AUTH EXTERNAL ${uid}\r\n`);
  });
  socket.on('error', (error) => end(error));
  socket.on('end', () => end(new Error('the bus closed the connection')));
  socket.on('close', () => end(new Error('the connection to the bus closed')));
  // MessageBus sends Hello from its constructor: the queue above holds it until authentication.
  const bus = new MessageBusClass(connection);
  return { bus, socket, lastDropped: () => framer.lastDropped() };
}

/** The `Message` dbus-next would have made of these bytes. */
function toDbusMessage(header: MessageHeader, body: Buffer): dbus.Message {
  const signature = header.signature ?? '';
  let values: unknown[] = [];
  if (body.length > 0 && signature !== '') {
    // The body starts 8-aligned, so alignment counted from its start is the protocol's.
    const raw = new DBusBuffer(
      body,
      0,
      header.littleEndian ? LITTLE_ENDIAN_MARK : BIG_ENDIAN_MARK,
      undefined,
      {},
    ).read(signature);
    values = compat.messageToJsFmt({ signature, body: raw }).body;
  }
  const { littleEndian: _endianness, signature: _signature, ...fields } = header;
  // dbus-next's typings call replySerial a string; it keys its reply handlers by it either way.
  return new dbus.Message({ ...fields, signature, body: values } as unknown as dbus.MessageLike);
}
