// Framing in JavaScript over the bytes a socket's native buffer handed over in bulk (Socket's
// `_in` from `_off` on). An op whose frame is already there settles without a crossing of its
// own; anything else (no frame yet, a frame over `maxBytes`) is left to the native framing, which
// gets the bytes back first, so both always agree on where a frame ends and on every error.
//
// Searching goes through a `latin1` string of the held bytes, made once per hand-over and only
// when a search needs it: one byte is one character there, so string offsets are byte offsets,
// and V8's string search costs no call into C++ per op. A line is a slice of that string when
// the held bytes are all ASCII (UTF-8 then decodes the same), else it is decoded on its own.
//
// It also owns the hand-over itself: taking bytes over, giving them back before a read that must
// wait natively, and the per-socket size of a hand-over.
import { isAscii } from 'node:buffer';
import { Socket } from '../io.js';
import type { NativeEngine } from './native.js';

type SliceBuffer = Buffer & {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
};

/**
 * Whether `sock` is a Socket whose next read can frame in JavaScript: bytes are held and no
 * read waits natively ahead of it.
 */
export function holds(sock: unknown): sock is Socket & { _in: Buffer } {
  return sock instanceof Socket && sock._in !== undefined && sock._nreads === 0;
}

/** Forgets the held bytes (all consumed, given back, or the socket closed). */
export function dropHeld(sock: Socket): void {
  sock._in = undefined;
  sock._text = undefined;
}

/** The held bytes as a latin1 string (made on first use after each hand-over). */
function heldText(sock: Socket): string {
  let text = sock._text;
  if (text === undefined) {
    const buf = sock._in as SliceBuffer;
    text = buf.latin1Slice(0, buf.length);
    sock._text = text;
  }
  return text;
}

/** Where the line heldLine last returned ends, terminator included (its next byte's offset). */
export let heldLineEnd = 0;

/**
 * The line at the front of the held bytes, as the native framing cuts it (at most `maxBytes`
 * bytes, then `\n` or `\r\n`, stripped), decoded, its end in `heldLineEnd`; `undefined` when
 * the native side must decide (no terminator held, or the line is over the bound).
 */
export function heldLine(
  sock: Socket,
  maxBytes: number,
  encoding: BufferEncoding,
): string | undefined {
  const text = heldText(sock);
  const off = sock._off;
  const nl = text.indexOf('\n', off);
  if (nl < 0) return undefined;
  const content = nl > off && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
  if (maxBytes >= 0 && content - off > maxBytes) return undefined;
  heldLineEnd = nl + 1;
  return heldSlice(sock, off, content, encoding);
}

// Whether a short span of the latin1 text is ASCII (held bytes that are not all ASCII, such as
// binary payloads between ASCII headers, still give ASCII lines a slice of the text).
function asciiSpan(text: string, start: number, end: number): boolean {
  if (end - start > 64) return false;
  for (let i = start; i < end; i++) if (text.charCodeAt(i) > 127) return false;
  return true;
}

/**
 * Held bytes `start..end` decoded. Latin1 ones, and UTF-8 ones that are ASCII, are a slice of
 * the held text; other UTF-8 ones are decoded on their own.
 */
export function heldSlice(
  sock: Socket,
  start: number,
  end: number,
  encoding: BufferEncoding,
): string {
  if (encoding === 'latin1' || encoding === 'binary') return heldText(sock).slice(start, end);
  if (encoding === 'utf8' || encoding === 'utf-8') {
    if (sock._ascii === undefined) sock._ascii = isAscii(sock._in!);
    const text = heldText(sock);
    if (sock._ascii || asciiSpan(text, start, end)) return text.slice(start, end);
    return (sock._in as SliceBuffer).utf8Slice(start, end);
  }
  return sock._in!.toString(encoding, start, end);
}

/**
 * Where the first `delimiter` (given as its bytes in a latin1 string) ends in the held bytes,
 * when it starts within `maxBytes` of the front; -1 when the native side must decide.
 */
export function heldDelimiterEnd(sock: Socket, delimiter: string, maxBytes: number): number {
  const off = sock._off;
  const at = heldText(sock).indexOf(delimiter, off);
  if (at < 0 || (maxBytes >= 0 && at - off > maxBytes)) return -1;
  return at + delimiter.length;
}

/** Which of the delimiters heldDelimitersEnd last found ends the frame (its index). */
export let heldDelimiterIndex = 0;

/**
 * Where the frame through several delimiters ends in the held bytes: at the delimiter whose
 * match ends first, of two ending at the same byte the longer (of equal ones the first), as the
 * native framing chooses; its index in `heldDelimiterIndex`. -1 when the native side must decide
 * (none held, or the one found starts past `maxBytes` from the front).
 */
export function heldDelimitersEnd(sock: Socket, delims: Delimiter[], maxBytes: number): number {
  const off = sock._off;
  const text = heldText(sock);
  let longest = 0;
  for (const d of delims) if (d.text.length > longest) longest = d.text.length;
  // Past maxBytes + the longest delimiter, any delimiter found starts past the bound.
  const limit = maxBytes >= 0 ? Math.min(text.length, off + maxBytes + longest) : text.length;
  // Searched in a window that doubles until a delimiter ends within it: a delimiter missing from
  // a large hand-over is not searched for to its end op after op. A match ending within the
  // window is found whole, so the first to end there is the first to end at all.
  for (let size = 256; ; size *= 2) {
    const end = Math.min(limit, off + size);
    const window = text.slice(off, end);
    let bestEnd = -1;
    let best = -1;
    for (let i = 0; i < delims.length; i++) {
      const d = delims[i]!.text;
      const at = window.indexOf(d);
      if (at < 0) continue;
      const e = at + d.length;
      if (best < 0 || e < bestEnd || (e === bestEnd && d.length > delims[best]!.text.length)) {
        bestEnd = e;
        best = i;
      }
    }
    if (best >= 0) {
      if (maxBytes >= 0 && bestEnd - delims[best]!.text.length > maxBytes) return -1;
      heldDelimiterIndex = best;
      return off + bestEnd;
    }
    if (end === limit) return -1;
  }
}

/** A delimiter as bytes (for the native side) and as a latin1 string (for heldDelimiterEnd). */
export interface Delimiter {
  bytes: Buffer;
  text: string;
}

let lastString: string | undefined;
let lastDelimiter: Delimiter | undefined;
let lastBytesString: string | undefined;
let lastBytes: Buffer | undefined;

/** A string's UTF-8 bytes; the last string asked for is kept (a trailer passed op after op). */
export function bytesOf(s: string): Buffer {
  if (s !== lastBytesString) {
    lastBytes = Buffer.from(s);
    lastBytesString = s;
  }
  return lastBytes!;
}

/**
 * The bytes and latin1 form of a delimiter. A server passes the same string op after op, so the
 * last one is kept. Throws nothing: the caller has checked the type.
 */
export function delimiterOf(d: string | Buffer): Delimiter {
  if (typeof d === 'string') {
    if (d === lastString) return lastDelimiter!;
    const bytes = Buffer.from(d);
    lastDelimiter = { bytes, text: (bytes as SliceBuffer).latin1Slice(0, bytes.length) };
    lastString = d;
    return lastDelimiter;
  }
  return { bytes: d, text: (d as SliceBuffer).latin1Slice(0, d.length) };
}

// Bounds of a socket's hand-over size (Socket._takeCap).
const TAKE_MIN = 4096;
const TAKE_MAX = 4 * 1024 * 1024;

/** An op framed here consumed the held bytes up to `end`. */
export function consumeHeld(sock: Socket, end: number): void {
  if (end >= sock._in!.length) {
    dropHeld(sock);
    // Everything handed over was framed here: the next hand-over may take more.
    if (sock._takeCap < TAKE_MAX) sock._takeCap *= 2;
  } else {
    sock._off = end;
  }
}

/**
 * Gives the bytes held for a socket back to the native side before a read that must wait
 * there: they come before anything it buffers.
 */
export function unreadHeld(sock: Socket, native: NativeEngine): void {
  const buf = sock._in;
  if (buf === undefined) return;
  dropHeld(sock);
  // Most of what was handed over goes back unframed (reads that wait natively, such as globs
  // between lines): hand over less next time, so bytes do not travel back and forth.
  if ((buf.length - sock._off) * 2 > sock._took && sock._takeCap > TAKE_MIN) {
    sock._takeCap /= 2;
  }
  native.unread(sock._handle, sock._off === 0 ? buf : buf.subarray(sock._off));
}

/**
 * Takes over the bytes the native side holds for a socket with no read queued (`rest` of
 * them), at most `_takeCap`, which halves while hand-overs go back mostly unframed and doubles
 * while they are framed whole.
 */
export function takeHeld(sock: Socket, rest: number, native: NativeEngine): void {
  const want = rest < sock._takeCap ? rest : sock._takeCap;
  const buf = Buffer.allocUnsafe(want);
  const n = native.take(sock._handle, buf);
  if (n === 0) return;
  sock._took = n;
  sock._in = n === want ? buf : buf.subarray(0, n);
  sock._off = 0;
  sock._text = undefined;
  sock._ascii = undefined;
}
