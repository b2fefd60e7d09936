// A small RESP2 client over node:net for the Redis-protocol demo's tests: request encoders,
// a reply parser, and a client that collects replies and notices when the server closes.
import net from 'node:net';

/** A decoded RESP2 reply: simple strings and bulks as latin1 strings, errors as `{ error }`. */
export type Reply = string | number | null | { error: string } | Reply[];

/** Parses one reply at s[i]; undefined when it is not complete yet. */
export function parseReply(s: string, i: number): { value: Reply; next: number } | undefined {
  const eol = s.indexOf('\r\n', i);
  if (eol === -1) return undefined;
  const line = s.slice(i + 1, eol);
  switch (s[i]) {
    case '+':
      return { value: line, next: eol + 2 };
    case '-':
      return { value: { error: line }, next: eol + 2 };
    case ':':
      return { value: Number(line), next: eol + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: eol + 2 };
      if (s.length < eol + 2 + len + 2) return undefined;
      return { value: s.slice(eol + 2, eol + 2 + len), next: eol + 2 + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      const items: Reply[] = [];
      let next = eol + 2;
      for (let k = 0; k < n; k++) {
        const item = parseReply(s, next);
        if (item === undefined) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`not a RESP reply at ${i}: ${JSON.stringify(s.slice(i, i + 40))}`);
  }
}

/** Encodes a request as a multibulk frame; strings are latin1 (one char per byte). */
export function multibulk(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`;
}

/** Encodes a request as an inline command line. */
export function inline(...args: string[]): string {
  return `${args.join(' ')}\r\n`;
}

/** A RESP2 client over node:net that collects every reply, for tests of the demo server. */
export class RespClient {
  /** Every byte received, as latin1. */
  raw = '';
  closed = false;
  private pos = 0;
  private readonly replies: Reply[] = [];
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.raw += chunk;
      for (let r = parseReply(this.raw, this.pos); r; r = parseReply(this.raw, this.pos)) {
        this.replies.push(r.value);
        this.pos = r.next;
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new RespClient(socket)));
      socket.once('error', reject);
    });
  }

  send(data: string): void {
    this.socket.write(Buffer.from(data, 'latin1'));
  }

  /** Waits until `done()` holds, the peer closes, or the deadline passes. */
  private async until(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${what}; got ${JSON.stringify(this.raw.slice(0, 300))}${this.raw.length > 300 ? ` (${this.raw.length} bytes)` : ''}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** The next `n` replies. */
  async read(n: number, timeoutMs = 10_000): Promise<Reply[]> {
    await this.until(() => this.replies.length >= n, `${n} replies`, timeoutMs);
    return this.replies.splice(0, n);
  }

  async call(request: string): Promise<Reply> {
    this.send(request);
    return (await this.read(1))[0];
  }

  /** Resolves once the server has closed the connection. */
  async closedByPeer(timeoutMs = 10_000): Promise<void> {
    try {
      await this.until(() => this.closed, 'the server to close', timeoutMs);
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}
