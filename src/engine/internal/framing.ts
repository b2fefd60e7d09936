// What JavaScript decides while framing a read: a regex read's verdict on the bytes so far, a
// line checked against its expectation, and a length-prefixed record's length and record (its
// length rule is the caller's function, so the native side asks here).
import { EngineError, userCodeError } from '../errors.js';
import type { Socket } from '../io.js';
import type { LengthPrefixedRecord, LineExpectation } from '../types.js';
import { type Delimiter, heldSlice } from './held.js';
import { Code } from './native.js';
import { utf8ByteOffset } from './utf8-offsets.js';

// readLengthPrefixed's options as checked, with the fields they were checked from.
export interface PrefixSpec {
  given: unknown[];
  length: (header: string) => number;
  delimiter: Delimiter | undefined;
  trailer: Buffer | undefined; // undefined: trailerLen bytes, not checked
  trailerLen: number;
  maxBytes: number;
  maxBody: number;
  encoding: BufferEncoding;
  bodyEncoding: BufferEncoding | undefined;
}

// A length-prefixed read: its validated options, and its header once framed.
export interface PrefixState {
  spec: PrefixSpec;
  header: string;
  headerLen: number;
  bodyLen: number; // -1: no body
}

// The whole record's length once its header is known, or the op's failure (the header stays
// buffered): the length rule threw, gave no valid length, or one over maxBody.
export function recordLength(
  state: PrefixState,
  header: string,
  headerLen: number,
): number | EngineError {
  let n: unknown;
  let err: EngineError;
  try {
    n = state.spec.length(header);
  } catch (e) {
    err = userCodeError(e);
    err.line = header;
    return err;
  }
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1) {
    err = new EngineError(
      'ERR_INVALID_LENGTH',
      `the length rule gave ${typeof n === 'number' ? n : typeof n} for this header, not an integer >= -1`,
    );
  } else if (state.spec.maxBody >= 0 && n > state.spec.maxBody) {
    err = new EngineError(
      'ERR_LIMIT',
      `the body (${n} bytes) is over maxBody (${state.spec.maxBody})`,
    );
  } else {
    state.header = header;
    state.headerLen = headerLen;
    state.bodyLen = n;
    return headerLen + (n < 0 ? 0 : n + state.spec.trailerLen);
  }
  err.line = header;
  return err;
}

/** A length-prefixed read's header as the native side reported it (`raw`), terminator stripped. */
export function headerOf(spec: PrefixSpec, raw: Buffer): string {
  let strip = raw.length;
  if (spec.delimiter !== undefined) strip -= spec.delimiter.bytes.length;
  else strip -= strip > 1 && raw[strip - 2] === 13 ? 2 : 1;
  return raw.toString(spec.encoding, 0, strip);
}

// A regex read's verdict on the bytes buffered so far (`snapshot`, at most maxBytes of them):
// the bytes through the end of a non-empty match, ERR_LIMIT past the bound, ERR_INCOMPLETE at
// EOF, else 0 (wait for more). Throws what the RegExp throws.
export function regexVerdict(
  regex: RegExp,
  encoding: BufferEncoding,
  snapshot: Buffer,
  eof: boolean,
  over: boolean,
): [number, RegExpExecArray | undefined] {
  const enc: BufferEncoding = encoding === 'utf8' || encoding === 'utf-8' ? 'utf8' : 'latin1';
  const text = snapshot.toString(enc);
  regex.lastIndex = 0;
  const m = regex.exec(text);
  regex.lastIndex = 0;
  const end = m ? m.index + m[0].length : 0;
  // A zero-width match at the start (/\b/, /(?=x)/ before an x, /^/): success with no bytes,
  // as every match succeeds with the bytes through its end.
  if (m && end === 0) return [Code.EmptyMatch, m];
  if (m) {
    // Decoding is not reversible (a U+FFFD stands for 1 to 3 invalid bytes), so the match's
    // end is mapped back to the snapshot's bytes, never re-encoded.
    return [enc === 'utf8' ? utf8ByteOffset(snapshot, end) : end, m];
  }
  if (over) return [Code.Limit, undefined];
  if (eof) return [Code.Incomplete, undefined];
  return [0, undefined];
}

// The record at `buf[off...]` (all of it there; `held`: the socket whose held bytes `buf` is),
// or ERR_MISMATCH when its trailer is wrong.
export function recordOf(
  state: PrefixState,
  buf: Buffer,
  off: number,
  held?: Socket,
): LengthPrefixedRecord<Buffer | string> | EngineError {
  const { header, headerLen, bodyLen } = state;
  if (bodyLen < 0) return { header, body: null };
  const { trailer, bodyEncoding } = state.spec;
  const start = off + headerLen;
  const at = start + bodyLen;
  if (trailer !== undefined) {
    for (let i = 0; i < trailer.length; i++) {
      if (buf[at + i] !== trailer[i]) {
        const err = new EngineError('ERR_MISMATCH', 'the bytes after the body are not the trailer');
        err.line = header;
        return err;
      }
    }
  }
  if (bodyEncoding === undefined) return { header, body: buf.subarray(start, at) };
  const body =
    held === undefined
      ? buf.toString(bodyEncoding, start, at)
      : heldSlice(held, start, at, bodyEncoding);
  return { header, body };
}

// A line's failure, if it has one: ERR_MISMATCH when it does not match `expect`, or the error
// the `expect` RegExp threw (that is this op's failure, and the batch goes on). The line was
// consumed either way, so the error carries it.
export function lineError(
  line: string,
  expect: LineExpectation | undefined,
): EngineError | undefined {
  if (expect === null || expect === undefined) return undefined;
  let err: EngineError;
  try {
    if (lineMatches(line, expect)) return undefined;
    err = new EngineError('ERR_MISMATCH', 'the line did not match what was expected');
  } catch (e) {
    err = userCodeError(e);
  }
  err.line = line;
  return err;
}

function lineMatches(line: string, expect: LineExpectation | undefined): boolean {
  if (expect === null || expect === undefined) return true;
  if (typeof expect === 'string') return line === expect;
  expect.lastIndex = 0;
  const ok = expect.test(line);
  expect.lastIndex = 0;
  return ok;
}

/**
 * A line expectation as the native side matches it: a string as its bytes, when comparing bytes
 * is comparing decoded lines (UTF-8 with no U+FFFD, which invalid bytes also decode to; latin1);
 * otherwise true: JavaScript matches each line, as it does a RegExp.
 */
export function nativeExpect(expect: string | RegExp, encoding: BufferEncoding): Buffer | true {
  if (typeof expect !== 'string') return true;
  const utf8 = encoding === 'utf8' || encoding === 'utf-8';
  if (!utf8 && encoding !== 'latin1' && encoding !== 'binary') return true;
  const bytes = Buffer.from(expect, encoding);
  if (bytes.toString(encoding) !== expect || (utf8 && expect.includes('\uFFFD'))) return true;
  return bytes;
}
