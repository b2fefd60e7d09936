// A reference model of the read ops' documented framing (docs/api.md, docs/guide.md "No data
// lost" and "Bounded", DESIGN.md): given what is left of a byte stream that ends in EOF, the
// outcome each op must have and how many bytes it consumes. Written from the docs, not from
// the engine, so that the two can be compared.

/** A read op as the fuzz submits it. `maxBytes` undefined: the engine default (64 KiB). */
export type ModelOp =
  | { kind: 'readUntil'; delimiter: string | Buffer; maxBytes?: number }
  | { kind: 'readUntilMany'; delimiters: Array<string | Buffer>; maxBytes?: number }
  | { kind: 'peek'; n: number }
  | {
      kind: 'expectLine';
      expect: string | RegExp | null;
      maxBytes?: number;
      encoding?: 'utf8' | 'latin1';
      /** onMismatch's max (-1: unbounded): mismatched lines before it are consumed, replied to. */
      onMismatch?: number;
    }
  | { kind: 'readExactly'; n: number }
  | { kind: 'readChunk'; size: number }
  | { kind: 'readAll'; maxBytes?: number }
  | { kind: 'readUntilRegex'; regex: RegExp; maxBytes?: number; encoding?: 'utf8' | 'latin1' }
  | { kind: 'readUntilLineglob'; glob: string; maxBytes?: number }
  | {
      kind: 'readLengthPrefixed';
      /** Which of {@link LENGTH_RULES} gives the body's length. */
      rule: LengthRuleName;
      delimiter?: string | Buffer;
      trailer?: string | Buffer;
      maxBytes?: number;
      maxBody?: number;
      encoding?: 'utf8' | 'latin1';
    };

/**
 * Length rules for readLengthPrefixed, named so that a failing scenario prints them: each is a
 * pure function of the header, so the model and the engine see the same length. Between them
 * they give valid lengths, -1 (no body), lengths over any small maxBody, values that are not a
 * length (NaN, fractions, -2, strings, unsafe integers), and a throw.
 */
export const LENGTH_RULES = {
  /** RESP bulk strings: `$5` is 5, `$-1` no body, anything else NaN. */
  resp: (h: string): number => (h.startsWith('$') ? Number(h.slice(1)) : NaN),
  /** The header's length in UTF-16 units (not bytes: multi-byte headers differ). */
  size: (h: string): number => h.length,
  /** Leading decimal digits (`parseInt`): `-1`, `-7`, `12;` and NaN all occur. */
  digits: (h: string): number => parseInt(h, 10),
  /** Throws on a header with an `E`, else 0..3 from its length. */
  throwsOnE: (h: string): number => {
    if (h.includes('E')) throw new Error(`no length in ${JSON.stringify(h)}`);
    return h.length % 4;
  },
  zero: (): number => 0,
  three: (): number => 3,
  none: (): number => -1,
  big: (): number => 70_000,
  /** The largest length there is: the body never all arrives, unless maxBody refuses it. */
  maxSafe: (): number => Number.MAX_SAFE_INTEGER,
  unsafe: (): number => 2 ** 53,
  half: (): number => 1.5,
  minusTwo: (): number => -2,
  string: (): number => '2' as unknown as number,
} satisfies Record<string, (header: string) => number>;

export type LengthRuleName = keyof typeof LENGTH_RULES;

/** What the model says an op must do. */
export type Expected =
  | {
      ok: true;
      value:
        | Buffer
        | string
        | string[]
        | { header: string; body: Buffer | null }
        | { data: Buffer; index: number };
      match?: string;
      consumed: number;
    }
  /** readChunk with bytes left: any 1..max leading bytes. */
  | { ok: true; chunkOf: number }
  /** peek with bytes left: a copy of any 1..max leading bytes, none consumed. */
  | { ok: true; peekOf: number }
  /**
   * ERR_LIMIT, and readLengthPrefixed's bad lengths: nothing consumed (but the mismatched lines
   * an expectLine with onMismatch replied to first); `line`: the header.
   */
  | {
      ok: false;
      code: 'ERR_LIMIT' | 'ERR_INVALID_LENGTH' | 'ERR_USER_CODE';
      consumed: number;
      line?: string;
    }
  | { ok: false; code: 'ERR_INCOMPLETE'; partial: Buffer; consumed: number }
  | { ok: false; code: 'ERR_MISMATCH'; line: string; consumed: number };

/** The engine's default `maxBytes`. */
export const DEFAULT_MAX_BYTES = 65536;

/**
 * Where a line ends in `rem`, under the documented bound: a line of `max` bytes plus `\r\n`
 * succeeds; past it the op fails with ERR_LIMIT once `max + 1` bytes without `\n` are buffered
 * and the last is not `\r`, or `max + 2`. 'eof': the stream ends first.
 */
export function frameLine(
  rem: Buffer,
  max: number,
): { content: number; end: number } | 'limit' | 'eof' {
  const searchEnd = Math.min(rem.length, max + 2);
  const nl = rem.subarray(0, searchEnd).indexOf(0x0a);
  if (nl >= 0) {
    const content = nl > 0 && rem[nl - 1] === 0x0d ? nl - 1 : nl;
    return content > max ? 'limit' : { content, end: nl + 1 };
  }
  if (rem.length >= max + 2) return 'limit';
  if (rem.length === max + 1 && rem[max] !== 0x0d) return 'limit';
  return 'eof';
}

/**
 * The outcome of `op` on `rem`, the bytes not yet consumed, all of which have arrived or will
 * arrive before EOF.
 */
export function expectedOutcome(op: ModelOp, rem: Buffer): Expected {
  switch (op.kind) {
    case 'readUntil': {
      const delim = Buffer.isBuffer(op.delimiter)
        ? op.delimiter
        : Buffer.from(op.delimiter, 'utf8');
      const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
      // The bound counts the bytes before the delimiter.
      const window = rem.subarray(0, Math.min(rem.length, max + delim.length));
      const at = window.indexOf(delim);
      if (at >= 0) {
        const end = at + delim.length;
        return { ok: true, value: rem.subarray(0, end), consumed: end };
      }
      if (rem.length >= max + delim.length) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
      return incomplete(rem);
    }
    case 'readUntilMany': {
      const delims = op.delimiters.map(toBytes);
      const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
      const longest = Math.max(...delims.map((d) => d.length));
      // The delimiter whose match ends first; of those ending at the same byte the longer, of
      // equal ones the first given. Found by trying every end position in turn, up to where any
      // match would start past the bound.
      const lastBytes = new Set(delims.map((d) => d[d.length - 1]));
      const scanEnd = Math.min(rem.length, max + longest);
      for (let end = 1; end <= scanEnd; end++) {
        if (!lastBytes.has(rem[end - 1])) continue;
        let best = -1;
        for (let i = 0; i < delims.length; i++) {
          const d = delims[i]!;
          if (end < d.length || !rem.subarray(end - d.length, end).equals(d)) continue;
          if (best < 0 || d.length > delims[best]!.length) best = i;
        }
        if (best < 0) continue;
        // The bound counts the bytes before the delimiter found.
        if (end - delims[best]!.length > max) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
        return { ok: true, value: { data: rem.subarray(0, end), index: best }, consumed: end };
      }
      // None within: over the bound once maxBytes + the longest delimiter are there.
      if (rem.length >= max + longest) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
      return incomplete(rem);
    }
    case 'peek':
      // A copy of 1..n leading bytes, none consumed; an empty Buffer at EOF.
      if (rem.length === 0) return { ok: true, value: Buffer.alloc(0), consumed: 0 };
      return { ok: true, peekOf: Math.min(op.n, rem.length) };
    case 'expectLine': {
      // With onMismatch, the first `onMismatch` mismatched lines (all: -1) are consumed (they get
      // the reply) and the op goes on with the next line.
      let skipped = 0;
      let replies = op.onMismatch ?? 0;
      for (;;) {
        const r = rem.subarray(skipped);
        const f = frameLine(r, op.maxBytes ?? DEFAULT_MAX_BYTES);
        if (f === 'limit') return { ok: false, code: 'ERR_LIMIT', consumed: skipped };
        if (f === 'eof') return { ...incomplete(r), consumed: rem.length } as Expected;
        const line = r.subarray(0, f.content).toString(op.encoding ?? 'utf8');
        if (!lineMatches(line, op.expect)) {
          if (replies !== 0) {
            if (replies > 0) replies--;
            skipped += f.end;
            continue;
          }
          // A mismatched line is consumed; err.line has it.
          return { ok: false, code: 'ERR_MISMATCH', line, consumed: skipped + f.end };
        }
        return { ok: true, value: line, consumed: skipped + f.end };
      }
    }
    case 'readExactly':
      if (rem.length >= op.n) return { ok: true, value: rem.subarray(0, op.n), consumed: op.n };
      return incomplete(rem);
    case 'readChunk':
      // 1..size bytes as soon as there is one; an empty Buffer at EOF.
      if (rem.length === 0) return { ok: true, value: Buffer.alloc(0), consumed: 0 };
      return { ok: true, chunkOf: Math.min(op.size, rem.length) };
    case 'readAll': {
      const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
      if (rem.length > max) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
      return { ok: true, value: rem, consumed: rem.length };
    }
    case 'readUntilRegex': {
      const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
      // The regex sees at most the first maxBytes bytes, decoded as UTF-8 or Latin-1.
      const seen = rem.subarray(0, Math.min(rem.length, max));
      const enc = op.encoding ?? 'utf8';
      const text = seen.toString(enc);
      op.regex.lastIndex = 0;
      const m = op.regex.exec(text);
      op.regex.lastIndex = 0;
      if (m !== null) {
        const units = m.index + m[0].length;
        // Bytes through the end of the match, found by decoding growing prefixes (slow and
        // obviously right; the engine maps offsets another way).
        const end = enc === 'latin1' ? units : byteEndOf(seen, units);
        return { ok: true, value: rem.subarray(0, end), match: m[0], consumed: end };
      }
      if (rem.length > max) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
      return incomplete(rem);
    }
    case 'readUntilLineglob': {
      const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
      const glob = Buffer.from(op.glob, 'utf8').toString('latin1');
      const lines: string[] = [];
      let start = 0;
      for (;;) {
        // The bound covers every byte from the first line to the matching line's terminator,
        // earlier terminators included: past it, no line can match within the bound.
        if (start > max) {
          return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
        }
        const f = frameLine(rem.subarray(start), Math.max(0, max - start));
        if (f === 'limit') return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
        if (f === 'eof') return incomplete(rem);
        const bytes = rem.subarray(start, start + f.content);
        lines.push(bytes.toString('utf8'));
        start += f.end;
        if (globMatches(glob, bytes.toString('latin1'))) {
          return { ok: true, value: lines, consumed: start };
        }
      }
    }
    case 'readLengthPrefixed':
      return lengthPrefixed(op, rem);
  }
}

/**
 * readLengthPrefixed (its TSDoc in src/engine/engine.ts and LengthPrefixedOptions): the header
 * is framed as expectLine (or readUntil with `delimiter`) frames, under `maxBytes`, and decoded
 * with its terminator stripped; `length(header)` is an integer >= -1 or the op fails with
 * ERR_INVALID_LENGTH (ERR_USER_CODE if it throws), a body over `maxBody` (default: the header's
 * bound) is ERR_LIMIT, all three leaving the record buffered with `err.line` the header; -1 is a
 * record with no body and no trailer; a wrong trailer is ERR_MISMATCH with the record consumed;
 * EOF first is ERR_INCOMPLETE with every byte left.
 */
function lengthPrefixed(
  op: Extract<ModelOp, { kind: 'readLengthPrefixed' }>,
  rem: Buffer,
): Expected {
  const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
  const enc = op.encoding ?? 'utf8';
  let header: string;
  let headerEnd: number;
  if (op.delimiter === undefined) {
    const f = frameLine(rem, max);
    if (f === 'limit') return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
    if (f === 'eof') return incomplete(rem);
    header = rem.subarray(0, f.content).toString(enc);
    headerEnd = f.end;
  } else {
    const delim = toBytes(op.delimiter);
    const at = rem.subarray(0, Math.min(rem.length, max + delim.length)).indexOf(delim);
    if (at < 0) {
      if (rem.length >= max + delim.length) return { ok: false, code: 'ERR_LIMIT', consumed: 0 };
      return incomplete(rem);
    }
    header = rem.subarray(0, at).toString(enc);
    headerEnd = at + delim.length;
  }
  let n: unknown;
  try {
    n = LENGTH_RULES[op.rule](header);
  } catch {
    return { ok: false, code: 'ERR_USER_CODE', line: header, consumed: 0 };
  }
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1) {
    return { ok: false, code: 'ERR_INVALID_LENGTH', line: header, consumed: 0 };
  }
  if (n > (op.maxBody ?? max)) return { ok: false, code: 'ERR_LIMIT', line: header, consumed: 0 };
  if (n === -1) return { ok: true, value: { header, body: null }, consumed: headerEnd };
  const trailer = op.trailer === undefined ? Buffer.alloc(0) : toBytes(op.trailer);
  const total = headerEnd + n + trailer.length;
  if (rem.length < total) return incomplete(rem);
  if (!rem.subarray(headerEnd + n, total).equals(trailer)) {
    return { ok: false, code: 'ERR_MISMATCH', line: header, consumed: total };
  }
  return {
    ok: true,
    value: { header, body: rem.subarray(headerEnd, headerEnd + n) },
    consumed: total,
  };
}

function toBytes(s: string | Buffer): Buffer {
  return Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
}

/**
 * How many bytes an op that failed with an error leaving its bytes buffered (ERR_LIMIT,
 * ERR_INVALID_LENGTH, ERR_USER_CODE) must have seen to decide it: at least that many are still
 * buffered afterwards unless a later op consumed them. A lower bound, not an exact count.
 */
export function bytesSeenToFail(op: ModelOp, rem: Buffer): number {
  if (op.kind === 'readLengthPrefixed') {
    // A bad length or a body over maxBody: the whole header was framed.
    const end = headerEnd(op, rem);
    if (end > 0) return end;
  }
  if (op.kind === 'readExactly' || op.kind === 'readChunk' || op.kind === 'peek') return 0;
  // Over the bound: no frame ends (no delimiter starts) within the first max bytes, which
  // takes seeing one byte past them.
  return (op.maxBytes ?? DEFAULT_MAX_BYTES) + 1;
}

// Where a readLengthPrefixed header ends in `rem` within its bound; 0 when it does not.
function headerEnd(op: Extract<ModelOp, { kind: 'readLengthPrefixed' }>, rem: Buffer): number {
  const max = op.maxBytes ?? DEFAULT_MAX_BYTES;
  if (op.delimiter === undefined) {
    const f = frameLine(rem, max);
    return typeof f === 'object' ? f.end : 0;
  }
  const delim = toBytes(op.delimiter);
  const at = rem.subarray(0, Math.min(rem.length, max + delim.length)).indexOf(delim);
  return at < 0 ? 0 : at + delim.length;
}

function incomplete(rem: Buffer): Expected {
  // EOF before the goal: every byte left is handed over in err.partial, and consumed.
  return { ok: false, code: 'ERR_INCOMPLETE', partial: rem, consumed: rem.length };
}

function lineMatches(line: string, expect: string | RegExp | null): boolean {
  if (expect === null) return true;
  if (typeof expect === 'string') return line === expect;
  expect.lastIndex = 0;
  const ok = expect.test(line);
  expect.lastIndex = 0;
  return ok;
}

/**
 * The shortest prefix of `bytes` that decodes to at least `units` code units and ends on a
 * character boundary: decoding it and the rest separately gives the whole text.
 */
function byteEndOf(bytes: Buffer, units: number): number {
  const whole = bytes.toString('utf8');
  const decodedLength = (k: number): number => bytes.subarray(0, k).toString('utf8').length;
  // The decoded length only grows with the prefix: binary search for the first one long enough.
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (decodedLength(mid) >= units) hi = mid;
    else lo = mid + 1;
  }
  for (let k = lo; k <= bytes.length; k++) {
    const a = bytes.subarray(0, k).toString('utf8');
    const b = bytes.subarray(k).toString('utf8');
    if (a + b === whole) return k;
  }
  return bytes.length;
}

/**
 * fnmatch(3) without flags over byte strings (each char one byte): `*`, `?`, `[...]` with `!`
 * or `^` negation and ranges, `\` escapes. Recursive and slow, fine for a model.
 */
export function globMatches(glob: string, text: string): boolean {
  const go = (g: number, t: number): boolean => {
    if (g === glob.length) return t === text.length;
    const c = glob[g]!;
    if (c === '*') {
      for (let k = t; k <= text.length; k++) if (go(g + 1, k)) return true;
      return false;
    }
    if (t === text.length) return false;
    if (c === '?') return go(g + 1, t + 1);
    if (c === '\\') {
      if (g + 1 === glob.length) return false;
      return glob[g + 1] === text[t] && go(g + 2, t + 1);
    }
    if (c === '[') {
      const close = glob.indexOf(']', g + 2);
      if (close > 0) {
        let body = glob.slice(g + 1, close);
        const negate = body[0] === '!' || body[0] === '^';
        if (negate) body = body.slice(1);
        let hit = false;
        for (let i = 0; i < body.length; i++) {
          const lo = body[i]!;
          if (body[i + 1] === '-' && i + 2 < body.length) {
            if (lo <= text[t]! && text[t]! <= body[i + 2]!) hit = true;
            i += 2;
          } else if (lo === text[t]) hit = true;
        }
        return hit !== negate && go(close + 1, t + 1);
      }
    }
    return c === text[t] && go(g + 1, t + 1);
  };
  return go(0, 0);
}
