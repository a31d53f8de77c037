// dbus-next 0.10.2 (pinned exactly in package.json) publishes no types for the modules its own
// connection is built from; bus-connection.ts builds another connection from the same parts.

declare module 'dbus-next/lib/bus.js' {
  import type { MessageBus } from 'dbus-next';

  const MessageBusClass: new (connection: unknown) => MessageBus;
  export default MessageBusClass;
}

declare module 'dbus-next/lib/dbus-buffer.js' {
  /** dbus-next's reader of marshalled values: `read(signature)` gives them in its marshaller format. */
  class DBusBuffer {
    constructor(buffer: Buffer, startPos: number, endian: number, fds: undefined, options: object);
    read(signature: string): unknown[];
  }
  export default DBusBuffer;
}

declare module 'dbus-next/lib/marshall-compat.js' {
  const compat: {
    /** Turns a body in the marshaller's format into the values dbus-next hands to callers. */
    messageToJsFmt(message: { signature: string; body: unknown[] }): { body: unknown[] };
    /** The bytes of a message, and the file descriptors it carries. */
    marshallMessage(message: unknown): [Buffer, number[]];
  };
  export default compat;
}
