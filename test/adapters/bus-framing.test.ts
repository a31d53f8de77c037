import { describe, expect, it } from 'vitest';
import { MessageFramer, type MessageHeader, MessageType } from '../../src/adapters/bus-framing.js';

// Messages are built here byte by byte from the D-Bus specification, not with the code under test
// nor with dbus-next, so a misreading of the protocol cannot hide on both sides.

type Field = [code: number, type: 's' | 'o' | 'g' | 'u' | 'y' | 't' | 'a', value: string | number];

interface Raw {
  type: number;
  serial?: number;
  fields: Field[];
  body?: Buffer;
  bigEndian?: boolean;
  version?: number;
  endianMark?: number;
}

function rawMessage({
  type,
  serial = 7,
  fields,
  body = Buffer.alloc(0),
  bigEndian = false,
  version = 1,
  endianMark,
}: Raw): Buffer {
  const bytes: number[] = [];
  const u32 = (value: number) => {
    const b = Buffer.alloc(4);
    if (bigEndian) b.writeUInt32BE(value);
    else b.writeUInt32LE(value);
    bytes.push(...b);
  };
  const align = (size: number) => {
    while (bytes.length % size !== 0) bytes.push(0);
  };
  bytes.push(endianMark ?? (bigEndian ? 0x42 : 0x6c), type, 0, version);
  u32(body.length);
  u32(serial);
  u32(0); // header fields length, patched below
  for (const [code, fieldType, value] of fields) {
    align(8);
    bytes.push(code, 1, fieldType.charCodeAt(0), 0);
    if (fieldType === 's' || fieldType === 'o') {
      align(4);
      const text = Buffer.from(String(value));
      u32(text.length);
      bytes.push(...text, 0);
    } else if (fieldType === 'g') {
      const text = Buffer.from(String(value));
      bytes.push(text.length, ...text, 0);
    } else if (fieldType === 'u') {
      align(4);
      u32(Number(value));
    } else if (fieldType === 'y') {
      bytes.push(Number(value));
    } else if (fieldType === 't') {
      align(8);
      u32(Number(value));
      u32(0);
    } else {
      // An array of bytes: no header field has one, so the framer must refuse to walk it.
      align(4);
      u32(1);
      bytes.push(Number(value));
    }
  }
  const fieldsLength = bytes.length - 16;
  const header = Buffer.from(bytes);
  if (bigEndian) header.writeUInt32BE(fieldsLength, 12);
  else header.writeUInt32LE(fieldsLength, 12);
  const padded = Buffer.alloc(Math.ceil(header.length / 8) * 8);
  header.copy(padded);
  return Buffer.concat([padded, body]);
}

const SYSTEMD = ':1.1';
const MALLORY = ':1.66';

function signal(sender: string, member: string, body = Buffer.from([1, 2, 3, 4]), serial = 7): Buffer {
  return rawMessage({
    type: MessageType.signal,
    serial,
    fields: [
      [1, 'o', '/org/freedesktop/systemd1/unit/nginx_2eservice'],
      [2, 's', 'org.freedesktop.DBus.Properties'],
      [3, 's', member],
      [8, 'g', 'ay'],
      [7, 's', sender],
    ],
    body,
  });
}

function reply(replySerial: number, body: Buffer): Buffer {
  return rawMessage({
    type: MessageType.methodReturn,
    fields: [
      [5, 'u', replySerial],
      [6, 's', ':1.5'],
      [8, 'g', 'ay'],
      [7, 's', 'org.freedesktop.DBus'],
    ],
    body,
  });
}

interface Seen {
  header: MessageHeader;
  body: Buffer;
}

function framer(trusted = new Set([SYSTEMD, 'org.freedesktop.DBus'])) {
  const seen: Seen[] = [];
  const errors: Error[] = [];
  let dropped = 0;
  let admitCalls = 0;
  const instance = new MessageFramer({
    admit: (type, bytes, start, end) => {
      admitCalls++;
      if (type === MessageType.methodReturn || type === MessageType.error) return true;
      return type === MessageType.signal && trusted.has(bytes.toString('utf8', start, end));
    },
    message: (header, body) => seen.push({ header, body }),
    dropped: () => {
      dropped++;
    },
    protocolError: (reason) => errors.push(reason),
  });
  return {
    instance,
    seen,
    errors,
    get dropped() {
      return dropped;
    },
    get admitCalls() {
      return admitCalls;
    },
  };
}

/** Feeds `stream` in chunks of the given sizes through ONE reused buffer, as the socket does. */
function feed(target: MessageFramer, stream: Buffer, sizes: () => number): void {
  const reused = Buffer.alloc(64 * 1024);
  let offset = 0;
  while (offset < stream.length) {
    const size = Math.min(sizes(), stream.length - offset, reused.length);
    stream.copy(reused, 0, offset, offset + size);
    target.push(reused, size);
    reused.fill(0xee); // what a later read would leave there
    offset += size;
  }
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state;
  };
}

describe('MessageFramer', () => {
  const bigBody = Buffer.alloc(200_000, 0x5a);
  const stream = Buffer.concat([
    signal(SYSTEMD, 'PropertiesChanged', Buffer.from('first'), 1),
    signal(MALLORY, 'PropertiesChanged', Buffer.alloc(90_000, 0x11), 2),
    reply(42, bigBody),
    rawMessage({
      type: MessageType.methodCall,
      fields: [
        [3, 's', 'Ping'],
        [7, 's', MALLORY],
      ],
    }),
    signal(SYSTEMD, 'UnitRemoved', Buffer.from('last'), 3),
  ]);

  function expectOutcome(result: ReturnType<typeof framer>): void {
    expect(result.errors).toEqual([]);
    expect(result.dropped).toBe(2);
    expect(
      result.seen.map((seen) => [seen.header.type, seen.header.member ?? seen.header.replySerial]),
    ).toEqual([
      [MessageType.signal, 'PropertiesChanged'],
      [MessageType.methodReturn, 42],
      [MessageType.signal, 'UnitRemoved'],
    ]);
    expect(result.seen.map((seen) => seen.body.length)).toEqual([5, bigBody.length, 4]);
    expect(result.seen[0]?.body.toString()).toBe('first');
    expect(result.seen[1]?.body.equals(bigBody)).toBe(true);
    expect(result.seen[2]?.body.toString()).toBe('last');
    expect(result.instance.bufferedBytes).toBe(0);
  }

  it('reads the same messages whatever the reads are cut into, from a reused buffer', () => {
    const whole = framer();
    feed(whole.instance, stream, () => 64 * 1024);
    expectOutcome(whole);
    const byteByByte = framer();
    feed(byteByByte.instance, stream, () => 1);
    expectOutcome(byteByByte);
    for (const seed of [1, 2, 3, 4, 5]) {
      const random = seeded(seed);
      const cut = framer();
      feed(cut.instance, stream, () => 1 + (random() % 3000));
      expectOutcome(cut);
    }
  });

  it('reads the same messages at every cut of the first few hundred bytes', () => {
    const small = Buffer.concat([
      signal(MALLORY, 'PropertiesChanged'),
      signal(SYSTEMD, 'PropertiesChanged', Buffer.from('kept')),
      signal(MALLORY, 'PropertiesChanged'),
    ]);
    for (let cut = 1; cut < small.length; cut++) {
      const result = framer();
      result.instance.push(Buffer.from(small.subarray(0, cut)));
      result.instance.push(Buffer.from(small.subarray(cut)));
      expect(result.dropped, `cut at ${cut}`).toBe(2);
      expect(
        result.seen.map((seen) => seen.body.toString()),
        `cut at ${cut}`,
      ).toEqual(['kept']);
    }
  });

  it('decodes the header fields of an admitted message', () => {
    const result = framer();
    result.instance.push(signal(SYSTEMD, 'PropertiesChanged', Buffer.from([9]), 1234));
    expect(result.seen[0]?.header).toEqual({
      littleEndian: true,
      type: MessageType.signal,
      flags: 0,
      serial: 1234,
      path: '/org/freedesktop/systemd1/unit/nginx_2eservice',
      interface: 'org.freedesktop.DBus.Properties',
      member: 'PropertiesChanged',
      signature: 'ay',
      sender: SYSTEMD,
    });
  });

  it('reads big-endian messages', () => {
    const result = framer();
    result.instance.push(
      rawMessage({
        type: MessageType.signal,
        serial: 99,
        bigEndian: true,
        fields: [
          [3, 's', 'NameAcquired'],
          [7, 's', 'org.freedesktop.DBus'],
          [5, 'u', 0x01020304],
        ],
        body: Buffer.from('be'),
      }),
    );
    expect(result.seen[0]?.header).toMatchObject({
      littleEndian: false,
      serial: 99,
      member: 'NameAcquired',
      replySerial: 0x01020304,
    });
    expect(result.seen[0]?.body.toString()).toBe('be');
  });

  it('skips the body of a dropped message as it streams past, holding none of it', () => {
    const result = framer();
    const huge = signal(MALLORY, 'PropertiesChanged', Buffer.alloc(5 * 1024 * 1024, 0x41));
    let mostBuffered = 0;
    const reused = Buffer.alloc(64 * 1024);
    for (let offset = 0; offset < huge.length; offset += reused.length) {
      const size = huge.copy(reused, 0, offset, offset + reused.length);
      result.instance.push(reused, size);
      mostBuffered = Math.max(mostBuffered, result.instance.bufferedBytes);
    }
    result.instance.push(signal(SYSTEMD, 'PropertiesChanged', Buffer.from('after')));
    expect(mostBuffered).toBe(0);
    expect(result.dropped).toBe(1);
    expect(result.seen.map((seen) => seen.body.toString())).toEqual(['after']);
  });

  it('tells the sender and member of the last message dropped', () => {
    const result = framer();
    expect(result.instance.lastDropped()).toEqual({ sender: '', member: '' });
    result.instance.push(signal(MALLORY, 'PropertiesChanged'));
    result.instance.push(signal(':1.67', 'UnitRemoved'));
    expect(result.instance.lastDropped()).toEqual({ sender: ':1.67', member: 'UnitRemoved' });
  });

  it('drops a message that names no sender, of an unknown type, or with a field no header has', () => {
    const result = framer();
    result.instance.push(rawMessage({ type: MessageType.signal, fields: [[3, 's', 'PropertiesChanged']] }));
    result.instance.push(rawMessage({ type: 9, fields: [[7, 's', SYSTEMD]] }));
    result.instance.push(
      rawMessage({
        type: MessageType.signal,
        fields: [
          [7, 's', SYSTEMD],
          [60, 'a', 1],
        ],
      }),
    );
    // Unknown codes of basic types are walked over, as the specification asks.
    result.instance.push(
      rawMessage({
        type: MessageType.signal,
        fields: [
          [60, 'y', 1],
          [61, 't', 5],
          [7, 's', SYSTEMD],
        ],
        body: Buffer.from('ok'),
      }),
    );
    expect(result.dropped).toBe(3);
    expect(result.seen.map((seen) => seen.body.toString())).toEqual(['ok']);
    expect(result.errors).toEqual([]);
  });

  it('drops unread a message whose header fields are too large to hold, and reads on', () => {
    const result = framer();
    const padded = rawMessage({
      type: MessageType.signal,
      fields: [
        [60, 's', 'x'.repeat(100_000)],
        [7, 's', SYSTEMD],
      ],
      body: Buffer.alloc(1000),
    });
    feed(
      result.instance,
      Buffer.concat([padded, signal(SYSTEMD, 'PropertiesChanged', Buffer.from('next'))]),
      () => 4096,
    );
    expect(result.dropped).toBe(1);
    expect(result.instance.lastDropped()).toEqual({ sender: '', member: '' });
    expect(result.seen.map((seen) => seen.body.toString())).toEqual(['next']);
  });

  it.each([
    [
      'an unknown endianness mark',
      rawMessage({ type: MessageType.signal, fields: [], endianMark: 0x58 }),
      /byte 0x58/,
    ],
    ['protocol version 2', rawMessage({ type: MessageType.signal, fields: [], version: 2 }), /version 2/],
  ])('stops reading at %s', (_what, bytes, reason) => {
    const result = framer();
    result.instance.push(Buffer.concat([bytes, signal(SYSTEMD, 'PropertiesChanged')]));
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]?.message).toMatch(reason);
    expect(result.seen).toEqual([]);
  });

  it('stops reading at a message larger than the protocol allows', () => {
    const result = framer();
    const header = rawMessage({ type: MessageType.signal, fields: [[7, 's', SYSTEMD]] });
    header.writeUInt32LE(2 ** 27, 4);
    result.instance.push(header);
    expect(result.errors[0]?.message).toMatch(/exceeds the protocol's limit/);
  });
});
