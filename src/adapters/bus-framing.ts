/**
 * Cuts the byte stream of a D-Bus connection into messages and decides from each one's header,
 * before its body is read, whether it is read at all.
 *
 * Any local user may send a signal straight to unitwatch's unique name, and no match rule filters
 * that. dbus-next decodes every message it receives into objects, so a flood of forged signals was a
 * flood of allocations (issue 10: RSS up 17 MiB for 50,000 of them) even though each was dropped
 * right after. Here a dropped message costs a walk over its header fields in the read buffer: no
 * object, no string, no copy; the body of one too large for a read is skipped as it streams past.
 */

/** Message types of the D-Bus specification's fixed header. */
export const MessageType = { methodCall: 1, methodReturn: 2, error: 3, signal: 4 } as const;

/** Endianness, type, flags, version, body length, serial, header fields length. */
const FIXED_HEADER_BYTES = 16;
/** The specification's limit for a whole message, 128 MiB. */
const MAX_MESSAGE_BYTES = 2 ** 27;
/**
 * The bus's and systemd's messages carry a few hundred bytes of header fields. A message with more
 * than this is dropped unread rather than buffered to find its sender.
 */
const MAX_HEADER_FIELD_BYTES = 64 * 1024;
/** Bus names and member names are at most 255 bytes (specification, "Valid names"). */
const MAX_NAME_BYTES = 255;

const LITTLE_ENDIAN = 0x6c; // 'l'
const BIG_ENDIAN = 0x42; // 'B'

/** Header field codes of the specification. */
const Field = {
  path: 1,
  interface: 2,
  member: 3,
  errorName: 4,
  replySerial: 5,
  destination: 6,
  sender: 7,
  signature: 8,
  unixFds: 9,
} as const;

/** The header of an admitted message, decoded. */
export interface MessageHeader {
  readonly littleEndian: boolean;
  readonly type: number;
  readonly flags: number;
  readonly serial: number;
  readonly path?: string;
  readonly interface?: string;
  readonly member?: string;
  readonly errorName?: string;
  readonly replySerial?: number;
  readonly destination?: string;
  readonly sender?: string;
  readonly signature?: string;
}

export interface FramerEvents {
  /**
   * Whether a message of this type is read, given its sender: the bytes `bytes[start, end)`, valid
   * only during the call (an empty range: the message names no sender).
   */
  admit(type: number, bytes: Buffer, start: number, end: number): boolean;
  /** An admitted message; `body` is its own copy, empty when the message has none. */
  message(header: MessageHeader, body: Buffer): void;
  /** A message was not admitted; `lastDropped()` tells whose it was. */
  dropped(): void;
  /** The stream does not follow the protocol: nothing after this is read. */
  protocolError(reason: Error): void;
}

interface Collecting {
  readonly header: MessageHeader;
  readonly body: Buffer;
  filled: number;
}

export class MessageFramer {
  readonly #events: FramerEvents;
  /** Bytes of a message start that did not fit in one read: its fixed header and header fields. */
  #partial: Buffer | undefined;
  /** Bytes still to skip of a message not admitted. */
  #skipping = 0;
  /** An admitted message whose body is still arriving. */
  #collecting: Collecting | undefined;
  #broken = false;
  // The last dropped message's sender and member, copied into fixed buffers so a drop allocates
  // nothing; decoded only when someone asks.
  readonly #lastSender = Buffer.alloc(MAX_NAME_BYTES);
  #lastSenderLength = 0;
  readonly #lastMember = Buffer.alloc(MAX_NAME_BYTES);
  #lastMemberLength = 0;
  // Where the header walk found the sender and member, relative to the buffer walked.
  #senderStart = 0;
  #senderEnd = 0;
  #memberStart = 0;
  #memberEnd = 0;
  #valueFrom = 0;
  #valueTo = 0;
  #valueEnd = 0;

  constructor(events: FramerEvents) {
    this.#events = events;
  }

  /** Bytes held back waiting for the rest of a message: a header, or an admitted message's body. */
  get bufferedBytes(): number {
    return (this.#partial?.length ?? 0) + (this.#collecting?.body.length ?? 0);
  }

  /** Sender and member of the last message dropped (empty strings before the first). */
  lastDropped(): { sender: string; member: string } {
    return {
      sender: this.#lastSender.toString('utf8', 0, this.#lastSenderLength),
      member: this.#lastMember.toString('utf8', 0, this.#lastMemberLength),
    };
  }

  /** Reads `chunk[0, length)`; the chunk may be reused for the next read once this returns. */
  push(chunk: Buffer, length = chunk.length): void {
    let offset = 0;
    while (offset < length && !this.#broken) {
      if (this.#skipping > 0) {
        const skipped = Math.min(this.#skipping, length - offset);
        this.#skipping -= skipped;
        offset += skipped;
      } else if (this.#collecting !== undefined) {
        offset = this.#collect(chunk, offset, length);
      } else if (this.#partial !== undefined) {
        offset = this.#completePartial(chunk, offset, length);
      } else {
        offset = this.#start(chunk, offset, length);
      }
    }
  }

  /** At a message's first byte: reads it in place when its header is whole in this chunk. */
  #start(chunk: Buffer, offset: number, length: number): number {
    const available = length - offset;
    const headerBytes = available >= FIXED_HEADER_BYTES ? this.#headerBytes(chunk, offset) : undefined;
    if (headerBytes === undefined) {
      if (this.#broken) return length;
      this.#partial = Buffer.from(chunk.subarray(offset, length));
      return length;
    }
    if (headerBytes > available) {
      // The header fields go on in the next read; a header too large to hold is dropped unread.
      if (headerBytes - FIXED_HEADER_BYTES > MAX_HEADER_FIELD_BYTES) {
        // Skipped from its first byte, which push() does from here.
        this.#dropUnread(this.#messageBytes(chunk, offset));
        return offset;
      }
      this.#partial = Buffer.from(chunk.subarray(offset, length));
      return length;
    }
    return this.#decide(chunk, offset, chunk, offset + headerBytes, length);
  }

  /** Tops up the held header bytes from this chunk; decides once the header is whole. */
  #completePartial(chunk: Buffer, offset: number, length: number): number {
    const partial = this.#partial as Buffer;
    const wanted =
      partial.length < FIXED_HEADER_BYTES ? FIXED_HEADER_BYTES : (this.#headerBytes(partial, 0) ?? 0);
    if (this.#broken) return length;
    const taken = Math.min(wanted - partial.length, length - offset);
    const grown = Buffer.concat([partial, chunk.subarray(offset, offset + taken)]);
    offset += taken;
    if (grown.length < wanted) {
      this.#partial = grown;
      return offset;
    }
    if (grown.length === FIXED_HEADER_BYTES) {
      // Only now is the size of the header fields known.
      const headerBytes = this.#headerBytes(grown, 0);
      if (headerBytes === undefined) return length;
      if (headerBytes - FIXED_HEADER_BYTES > MAX_HEADER_FIELD_BYTES) {
        // Its fixed header is read already; the rest is skipped.
        this.#dropUnread(this.#messageBytes(grown, 0) - FIXED_HEADER_BYTES);
        return offset;
      }
      if (headerBytes > FIXED_HEADER_BYTES) {
        this.#partial = grown;
        return offset;
      }
    }
    this.#partial = undefined;
    // The header is whole in `grown`; the body, if any, starts at `offset` of this chunk.
    return this.#decide(grown, 0, chunk, offset, length);
  }

  /**
   * A message whose whole header starts at `header[start]` (the chunk itself, or the bytes held
   * over from earlier reads) and whose body starts at `chunk[bodyOffset]`: skipped, or collected.
   */
  #decide(header: Buffer, start: number, chunk: Buffer, bodyOffset: number, length: number): number {
    const bodyBytes = this.#bodyBytes(header, start);
    if (!this.#admitted(header, start)) {
      this.#skipping = bodyBytes;
      return bodyOffset;
    }
    this.#collecting = {
      header: this.#decodeHeader(header, start),
      body: Buffer.allocUnsafe(bodyBytes),
      filled: 0,
    };
    return this.#collect(chunk, bodyOffset, length);
  }

  /** Copies what this chunk holds of the body; the message goes out once the body is whole. */
  #collect(chunk: Buffer, offset: number, length: number): number {
    const collecting = this.#collecting as Collecting;
    const wanted = collecting.body.length - collecting.filled;
    const copied = chunk.copy(collecting.body, collecting.filled, offset, Math.min(length, offset + wanted));
    collecting.filled += copied;
    if (collecting.filled === collecting.body.length) {
      this.#collecting = undefined;
      this.#events.message(collecting.header, collecting.body);
    }
    return offset + copied;
  }

  /** Walks the header fields for the sender, then asks; records the drop when refused. */
  #admitted(bytes: Buffer, start: number): boolean {
    const type = bytes[start + 1] ?? 0;
    const walked = this.#walkFields(bytes, start);
    const admitted =
      walked &&
      type >= MessageType.methodCall &&
      type <= MessageType.signal &&
      this.#events.admit(type, bytes, this.#senderStart, this.#senderEnd);
    if (!admitted) {
      this.#lastSenderLength = copyName(bytes, this.#senderStart, this.#senderEnd, this.#lastSender);
      this.#lastMemberLength = copyName(bytes, this.#memberStart, this.#memberEnd, this.#lastMember);
      this.#events.dropped();
    }
    return admitted;
  }

  /** A message dropped without reading its header: `bytes` of it are still to come. */
  #dropUnread(bytes: number): void {
    this.#partial = undefined;
    this.#skipping = bytes;
    this.#lastSenderLength = 0;
    this.#lastMemberLength = 0;
    this.#events.dropped();
  }

  /**
   * Size of the fixed header plus the padded header fields, once the fixed header is checked;
   * undefined (and the stream broken) when it breaks the protocol.
   */
  #headerBytes(bytes: Buffer, start: number): number | undefined {
    const endianness = bytes[start];
    if (endianness !== LITTLE_ENDIAN && endianness !== BIG_ENDIAN) {
      this.#fail(`a message starts with byte 0x${(endianness ?? 0).toString(16)}, not an endianness mark`);
      return undefined;
    }
    if (bytes[start + 3] !== 1) {
      this.#fail(`a message has protocol version ${bytes[start + 3]}, not 1`);
      return undefined;
    }
    const total = this.#messageBytes(bytes, start);
    if (total > MAX_MESSAGE_BYTES) {
      this.#fail(`a message of ${total} bytes exceeds the protocol's limit of ${MAX_MESSAGE_BYTES}`);
      return undefined;
    }
    return FIXED_HEADER_BYTES + pad8(this.#u32(bytes, start, start + 12));
  }

  #messageBytes(bytes: Buffer, start: number): number {
    return (
      FIXED_HEADER_BYTES + pad8(this.#u32(bytes, start, start + 12)) + this.#u32(bytes, start, start + 4)
    );
  }

  #bodyBytes(bytes: Buffer, start: number): number {
    return this.#u32(bytes, start, start + 4);
  }

  #u32(bytes: Buffer, start: number, at: number): number {
    return bytes[start] === LITTLE_ENDIAN ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at);
  }

  /**
   * Finds the sender and member fields without decoding anything. False when a field runs past the
   * header or holds a value of a type no header field has (the specification lets unknown codes
   * through, but the bus never adds containers): such a message is dropped.
   */
  #walkFields(bytes: Buffer, start: number): boolean {
    this.#senderStart = this.#senderEnd = this.#memberStart = this.#memberEnd = 0;
    const end = start + FIXED_HEADER_BYTES + this.#u32(bytes, start, start + 12);
    let at = start + FIXED_HEADER_BYTES;
    while (at < end) {
      at = start + pad8(at - start);
      const code = bytes[at];
      if (code === undefined || bytes[at + 1] !== 1) return false;
      // Code, signature length, the one type character, its NUL.
      if (!this.#valueAt(bytes, start, at + 4, bytes[at + 2]) || this.#valueEnd > end) return false;
      if (code === Field.sender) {
        this.#senderStart = this.#valueFrom;
        this.#senderEnd = this.#valueTo;
      } else if (code === Field.member) {
        this.#memberStart = this.#valueFrom;
        this.#memberEnd = this.#valueTo;
      }
      at = this.#valueEnd;
    }
    return true;
  }

  /**
   * Locates a basic value of `type` at `at` (aligned from the message start, as the specification
   * aligns): a string's text is [#valueFrom, #valueTo), the next field may begin at #valueEnd.
   * Fields, not a returned object, so a drop allocates nothing.
   */
  #valueAt(bytes: Buffer, start: number, at: number, type: number | undefined): boolean {
    this.#valueFrom = this.#valueTo = at;
    switch (type) {
      case 0x73: // s
      case 0x6f: {
        // o
        const from = start + pad(at - start, 4) + 4;
        if (from > bytes.length) return false;
        this.#valueFrom = from;
        this.#valueTo = from + this.#u32(bytes, start, from - 4);
        this.#valueEnd = this.#valueTo + 1;
        return true;
      }
      case 0x67: // g
        this.#valueFrom = at + 1;
        this.#valueTo = this.#valueFrom + (bytes[at] ?? 0);
        this.#valueEnd = this.#valueTo + 1;
        return true;
      case 0x79: // y
        this.#valueEnd = at + 1;
        return true;
      case 0x6e: // n
      case 0x71: // q
        this.#valueEnd = start + pad(at - start, 2) + 2;
        return true;
      case 0x62: // b
      case 0x69: // i
      case 0x75: // u
      case 0x68: // h
        this.#valueEnd = start + pad(at - start, 4) + 4;
        return true;
      case 0x78: // x
      case 0x74: // t
      case 0x64: // d
        this.#valueEnd = start + pad(at - start, 8) + 8;
        return true;
      default:
        return false;
    }
  }

  /** Decodes the known header fields of an admitted message; the walk has checked the bounds. */
  #decodeHeader(bytes: Buffer, start: number): MessageHeader {
    const fields: Record<string, string | number> = {};
    const end = start + FIXED_HEADER_BYTES + this.#u32(bytes, start, start + 12);
    let at = start + FIXED_HEADER_BYTES;
    while (at < end) {
      at = start + pad8(at - start);
      const code = bytes[at] ?? 0;
      const type = bytes[at + 2];
      this.#valueAt(bytes, start, at + 4, type);
      const name = FIELD_NAMES[code];
      if (name !== undefined) {
        fields[name] =
          type === 0x75
            ? this.#u32(bytes, start, this.#valueEnd - 4)
            : bytes.toString('utf8', this.#valueFrom, this.#valueTo);
      }
      at = this.#valueEnd;
    }
    return {
      littleEndian: bytes[start] === LITTLE_ENDIAN,
      type: bytes[start + 1] ?? 0,
      flags: bytes[start + 2] ?? 0,
      serial: this.#u32(bytes, start, start + 8),
      ...fields,
    };
  }

  #fail(reason: string): void {
    this.#broken = true;
    this.#partial = undefined;
    this.#collecting = undefined;
    this.#events.protocolError(new Error(`the bus sent bytes that are not D-Bus messages: ${reason}`));
  }
}

const FIELD_NAMES: Record<number, keyof MessageHeader> = {
  [Field.path]: 'path',
  [Field.interface]: 'interface',
  [Field.member]: 'member',
  [Field.errorName]: 'errorName',
  [Field.replySerial]: 'replySerial',
  [Field.destination]: 'destination',
  [Field.sender]: 'sender',
  [Field.signature]: 'signature',
};

function pad8(length: number): number {
  return (length + 7) & ~7;
}

function pad(length: number, size: number): number {
  return Math.ceil(length / size) * size;
}

function copyName(bytes: Buffer, start: number, end: number, into: Buffer): number {
  if (end <= start) return 0;
  return bytes.copy(into, 0, start, Math.min(end, start + into.length));
}
