// RESP2 (Redis protocol) building blocks on async-engine ops: a request reader that frames
// inline and multibulk requests with expectLine/readLengthPrefixed, inline argument splitting,
// and reply encoders. Shared by the demo server and the benchmarks.
import { Callback } from 'async-engine';

/**
 * Default bound on one line (an inline request or a `*N` / `$N` header), in bytes: Redis's
 * PROTO_INLINE_MAX_SIZE, 64 KiB.
 */
export const DEFAULT_MAX_LINE = 64 * 1024;
/** Default bound on one bulk argument, in bytes (Redis allows 512 MiB; we are a demo). */
export const DEFAULT_MAX_BULK = 32 * 1024 * 1024;
/**
 * Default bound on one request as sent (every `*N` and `$len` line and every payload with its
 * CRLF), in bytes. Redis bounds a client's unparsed input by client-query-buffer-limit (1 GiB);
 * the demo bounds the whole request, so that what one connection holds is known.
 */
export const DEFAULT_MAX_REQUEST = 64 * 1024 * 1024;
/** Most arguments one multibulk request may announce (Redis 6's limit; Redis 7 allows INT_MAX). */
export const MAX_MULTIBULK = 1024 * 1024;
/**
 * Argument slots made when a multibulk request announces its count; more are added as the
 * arguments arrive. Redis preallocates the same at most: `*1048576` alone must not cost 8 MiB.
 */
export const PREALLOC_ARGS = 1024;

const REQUEST = 0; // waiting for the first line of a request (`*N` or an inline command)
const HEADER = 1; // inside a multibulk request, reading its `$len` bulks
const DEAD = 2; // a protocol error or a read failure ended this reader; ignore everything

/**
 * Parses a strict decimal integer starting at `s[i]` the way Redis's string2ll does: an optional
 * `-`, no `+`, no leading zeros, no `-0`, no spaces. Returns NaN when the text is not one.
 */
export function parseInteger(s, i = 0) {
  const n = s.length;
  if (i >= n || n - i > 17) return NaN; // longer than any length we could accept anyway
  let neg = false;
  if (s.charCodeAt(i) === 45) {
    neg = true;
    if (++i === n) return NaN;
  }
  let c = s.charCodeAt(i) - 48;
  if (c === 0) return i + 1 === n && !neg ? 0 : NaN;
  let v = 0;
  for (; i < n; i++) {
    c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return neg ? -v : v;
}

function isSpace(c) {
  // isspace() in the C locale: space, \t, \n, \v, \f, \r
  return c === 32 || (c >= 9 && c <= 13);
}

function isHex(c) {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * Splits an inline request into arguments like Redis's sdssplitargs: blanks separate words,
 * "double quotes" take \n \r \t \b \a \xHH and \<char> escapes, 'single quotes' take \'.
 * Returns null for unbalanced quotes (or a closing quote not followed by a blank).
 */
export function splitInlineArgs(line) {
  const args = [];
  const n = line.length;
  let i = 0;
  // Fast path: no quotes, the usual case.
  if (line.indexOf('"') === -1 && line.indexOf("'") === -1) {
    while (i < n) {
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (i === n) break;
      const start = i;
      while (i < n && !isSpace(line.charCodeAt(i))) i++;
      args.push(line.slice(start, i));
    }
    return args;
  }
  for (;;) {
    while (i < n && isSpace(line.charCodeAt(i))) i++;
    if (i === n) return args;
    let cur = '';
    let inq = false;
    let insq = false;
    for (;;) {
      const ch = line[i];
      if (inq) {
        if (ch === undefined) return null;
        if (
          ch === '\\' &&
          line[i + 1] === 'x' &&
          isHex(line.charCodeAt(i + 2)) &&
          isHex(line.charCodeAt(i + 3))
        ) {
          cur += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
          i += 3;
        } else if (ch === '\\' && i + 1 < n) {
          const e = line[++i];
          cur +=
            e === 'n'
              ? '\n'
              : e === 'r'
                ? '\r'
                : e === 't'
                  ? '\t'
                  : e === 'b'
                    ? '\b'
                    : e === 'a'
                      ? '\x07'
                      : e;
        } else if (ch === '"') {
          if (i + 1 < n && !isSpace(line.charCodeAt(i + 1))) return null;
          i++;
          break;
        } else {
          cur += ch;
        }
      } else if (insq) {
        if (ch === undefined) return null;
        if (ch === '\\' && line[i + 1] === "'") {
          cur += "'";
          i++;
        } else if (ch === "'") {
          if (i + 1 < n && !isSpace(line.charCodeAt(i + 1))) return null;
          i++;
          break;
        } else {
          cur += ch;
        }
      } else if (ch === undefined || ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') {
        break;
      } else if (ch === '"') {
        inq = true;
      } else if (ch === "'") {
        insq = true;
      } else {
        cur += ch;
      }
      i++;
    }
    args.push(cur);
  }
}

// The first line's options, one object per bound for every connection.
const lineOptionsByLimit = new Map();
function lineOptionsFor(maxLine) {
  let options = lineOptionsByLimit.get(maxLine);
  if (options === undefined) {
    options = Object.freeze({ maxBytes: maxLine, encoding: 'latin1' });
    lineOptionsByLimit.set(maxLine, options);
  }
  return options;
}

/**
 * Reads RESP requests from one socket, one at a time, entirely with engine ops:
 * the first line of a request with expectLine; for a multibulk request (`*N`) each bulk
 * (`$len` line, payload, two more bytes) with one readLengthPrefixed, so a request of N
 * arguments costs N + 1 ops. The `$len` line is checked (and the request's size bound applied)
 * by the op's length rule before any of the payload is read.
 *
 * The two bytes after a payload are consumed unchecked (`trailer: 2`), as Redis does (it skips
 * them unread): a `trailer: '\r\n'` would refuse `$2\r\nhi??` where Redis takes `hi`.
 *
 * Arguments are latin1 strings: one char per byte, so binary data survives unchanged.
 *
 * What a peer can make one reader hold is bounded: a line by `maxLine`, an argument by
 * `maxBulk`, a whole request as sent by `maxRequest`, the argument count by MAX_MULTIBULK, and
 * the slots made before the arguments arrive by PREALLOC_ARGS.
 *
 * The handler gets:
 *   onRequest(args, reader)    a complete request; call reader.next() to read the next one
 *   onProtocolError(msg, reader)  a malformed or over-limit frame (msg without `ERR `);
 *                              the reader is dead, the caller should reply and close
 *   onRequestLimit(bytes, reader)  the request would grow past `maxRequest` (`bytes`: its size
 *                              as sent with the next argument); the reader is dead. Redis
 *                              closes such a client without a reply.
 *   onEnd(err, reader)         the peer closed, reset, or the op was cancelled; reader is dead
 *
 * The first line can come from a chain: pass `reader.lineOptions` and `reader.lineCallback`
 * as the options and second-stage callback of `engine.acceptThenExpectLine(listener, null, ...)`,
 * and set `reader.sock` once the accept stage has given the socket.
 */
export class RespReader {
  constructor(
    engine,
    handler,
    {
      maxLine = DEFAULT_MAX_LINE,
      maxBulk = DEFAULT_MAX_BULK,
      maxRequest = DEFAULT_MAX_REQUEST,
    } = {},
  ) {
    this.engine = engine;
    this.handler = handler;
    this.maxLine = maxLine;
    this.maxBulk = maxBulk;
    this.maxRequest = maxRequest;
    /** The socket, known from the first completed read (or set by the caller). */
    this.sock = undefined;
    this.state = REQUEST;
    this.args = null;
    this.argc = 0;
    this.filled = 0; // bulks received in the current request
    this.requestBytes = 0; // the current multibulk request's size as sent, so far
    // The first line of a request may be an inline command carrying any bytes: latin1 keeps
    // them one char per byte. `$len` headers are ASCII; utf8 lines come from native code as
    // strings without an intermediate Buffer.
    this.lineOptions = lineOptionsFor(maxLine);
    // One Callback per kind of read, made once per connection and reused once settled. A
    // connection that never sends a multibulk request (or nothing at all: 10,000 idle ones)
    // never makes the bulk read's: see `bulk`.
    // A read that finished just before the engine was shut down is still delivered: the
    // request is dropped then, as the engine takes no more ops.
    this.lineCallback = new Callback({
      success: (line, sock) => (engine.closed ? this.stop() : this.onLine(line, sock)),
      failure: (err) => this.onReadError(err),
    });
    this.bulkRead = undefined;
  }

  /** The bulk read's options and Callback, made on first use. */
  get bulk() {
    if (this.bulkRead === undefined) {
      const engine = this.engine;
      this.bulkRead = {
        // One bulk: the payload, as a latin1 string, then two bytes (see the class comment).
        // Any header bulkVerdict refuses gives NaN, and the op fails with ERR_INVALID_LENGTH,
        // err.line the header; onReadError asks bulkVerdict again for the reply.
        options: {
          length: (header) => {
            const verdict = this.bulkVerdict(header);
            return typeof verdict === 'number' ? verdict : NaN;
          },
          trailer: 2, // the two bytes after the payload, consumed unchecked as Redis does
          maxBytes: this.maxLine,
          maxBody: this.maxBulk,
          encoding: 'utf8',
          bodyEncoding: 'latin1', // arguments are kept as latin1 strings, one char per byte
        },
        callback: new Callback({
          success: (record) => (engine.closed ? this.stop() : this.onBulk(record)),
          failure: (err) => this.onReadError(err),
        }),
      };
    }
    return this.bulkRead;
  }

  /** Starts reading the next request on `sock` (the reader's socket by default). */
  next(sock = this.sock) {
    this.sock = sock;
    this.state = REQUEST;
    this.engine.expectLine(sock, null, this.lineOptions, this.lineCallback);
  }

  /** Whether the reader stopped for good (protocol error, EOF, reset, cancel, limit). */
  get dead() {
    return this.state === DEAD;
  }

  onLine(line, sock) {
    if (this.state === REQUEST) {
      this.sock = sock;
      if (line.charCodeAt(0) === 42 /* '*' */) {
        const n = parseInteger(line, 1);
        if (!(n <= MAX_MULTIBULK)) return this.fail('invalid multibulk length'); // also NaN
        if (n <= 0) return this.next(sock); // `*0` and `*-1` are ignored, as Redis does
        // The count is the peer's word, not yet backed by bytes: make at most PREALLOC_ARGS
        // slots now; onBulk appends past them as arguments arrive.
        this.args = new Array(Math.min(n, PREALLOC_ARGS));
        this.argc = n;
        this.filled = 0;
        this.requestBytes = line.length + 2;
        this.state = HEADER;
        const bulk = this.bulk;
        this.engine.readLengthPrefixed(sock, bulk.options, bulk.callback);
        return;
      }
      const args = splitInlineArgs(line);
      if (args === null) return this.fail('unbalanced quotes in request');
      if (args.length === 0) return this.next(sock); // blank lines are ignored
      this.handler.onRequest(args, this);
    }
  }

  /**
   * The payload length a bulk's `$len` header announces, or why the header is refused: a
   * protocol error's message, or `{ bytes }` when the request would outgrow `maxRequest` (its
   * size as sent with this bulk). Checked before the payload is read, so an over-limit request
   * is refused on its header. Only computes: it runs as readLengthPrefixed's length rule.
   */
  bulkVerdict(header) {
    if (header.charCodeAt(0) !== 36 /* '$' */) {
      return `expected '$', got '${header.length === 0 ? ' ' : header[0]}'`;
    }
    const len = parseInteger(header, 1);
    if (!(len >= 0 && len <= this.maxBulk)) return 'invalid bulk length';
    const bytes = this.requestBytes + header.length + 2 + len + 2;
    if (bytes > this.maxRequest) return { bytes };
    return len;
  }

  onBulk({ header, body }) {
    if (this.state !== HEADER) return;
    this.requestBytes += header.length + 2 + body.length + 2;
    this.args[this.filled++] = body;
    if (this.filled < this.argc) {
      const bulk = this.bulk;
      this.engine.readLengthPrefixed(this.sock, bulk.options, bulk.callback);
      return;
    }
    const args = this.args;
    this.args = null;
    this.state = REQUEST;
    this.handler.onRequest(args, this);
  }

  onReadError(err) {
    if (this.state === DEAD) return; // the reader has already stopped
    const state = this.state;
    // A bulk's header the length rule refused (ERR_LIMIT with a header is a body over maxBody:
    // bulkVerdict refuses those first).
    const refused = err.code === 'ERR_INVALID_LENGTH' || err.code === 'ERR_LIMIT';
    if (state === HEADER && refused && err.line !== undefined) {
      const verdict = this.bulkVerdict(err.line);
      if (typeof verdict === 'string') return this.fail(verdict);
      if (typeof verdict === 'object') return this.overLimit(verdict.bytes);
    }
    this.state = DEAD;
    this.args = null;
    if (err.code !== 'ERR_LIMIT') {
      this.handler.onEnd(err, this);
    } else if (state === HEADER) {
      this.handler.onProtocolError('Protocol error: too big bulk count string', this);
    } else {
      // Redis names the line by its first byte: `*` starts a multibulk count. The line's
      // bytes stay in the socket's buffer after ERR_LIMIT, so reading one byte tells.
      if (this.sock === undefined) {
        this.handler.onProtocolError('Protocol error: too big inline request', this);
        return;
      }
      const firstByte = new Callback({
        success: (first) =>
          this.handler.onProtocolError(
            first[0] === 42 /* '*' */
              ? 'Protocol error: too big mbulk count string'
              : 'Protocol error: too big inline request',
            this,
          ),
        failure: (e) => this.handler.onEnd(e, this),
      });
      this.engine.readChunk(this.sock, 1, firstByte);
    }
  }

  fail(msg) {
    this.state = DEAD;
    this.args = null;
    this.handler.onProtocolError(`Protocol error: ${msg}`, this);
  }

  overLimit(bytes) {
    this.state = DEAD;
    this.args = null;
    this.handler.onRequestLimit(bytes, this);
  }

  /** The engine was shut down: this reader stops, and the handler hears of the end. */
  stop() {
    this.state = DEAD;
    this.args = null;
    this.handler.onEnd(undefined, this);
  }
}

// ---- Reply encoders. Replies are Buffers; strings are latin1 (one char per byte). ----

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
export const EMPTY_ARRAY = Buffer.from('*0\r\n');

const SMALL_INTS = [];
for (let i = 0; i < 64; i++) SMALL_INTS.push(Buffer.from(`:${i}\r\n`));

/** `+text\r\n` */
export function simpleString(text) {
  return Buffer.from(`+${text}\r\n`, 'latin1');
}

/** `-message\r\n`; CR and LF inside the message become spaces, as Redis does. */
export function errorReply(message) {
  return Buffer.from(`-${message.replace(/[\r\n]/g, ' ')}\r\n`, 'latin1');
}

/** `:n\r\n` for a number, bigint or decimal string. */
export function integerReply(n) {
  if (typeof n === 'number' && n >= 0 && n < 64 && Number.isInteger(n)) return SMALL_INTS[n];
  return Buffer.from(`:${n}\r\n`, 'latin1');
}

/** `$len\r\n...\r\n` for a latin1 string or a Buffer; `$-1\r\n` for null/undefined. */
export function bulkReply(value) {
  if (value === null || value === undefined) return NULL_BULK;
  if (typeof value === 'string') {
    return Buffer.from(`$${value.length}\r\n${value}\r\n`, 'latin1');
  }
  return Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, CRLF]);
}

const CRLF = Buffer.from('\r\n');

/**
 * `*n\r\n` followed by each item as a bulk string (null items as null bulks). Items are latin1
 * strings (or null), encoded into one string and one Buffer: LRANGE's 600 items cost one
 * allocation, not 600.
 */
export function arrayReply(items) {
  let s = `*${items.length}\r\n`;
  for (const item of items) {
    if (item === null || item === undefined) s += '$-1\r\n';
    else s += `$${item.length}\r\n${item}\r\n`;
  }
  return Buffer.from(s, 'latin1');
}

/** `*n\r\n` followed by n replies already encoded (for nested replies such as SCAN's). */
export function nestedReply(replies) {
  return Buffer.concat([Buffer.from(`*${replies.length}\r\n`), ...replies]);
}

/** Encodes a request as a multibulk frame (for clients and benchmarks). */
export function encodeCommand(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const str = typeof a === 'string' ? a : String(a);
    s += `$${Buffer.byteLength(str)}\r\n${str}\r\n`;
  }
  return Buffer.from(s);
}
