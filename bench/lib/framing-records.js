// The records of the framing case, made the same way by the peer that sends them and by the
// consumers that check what they read: a seeded generator, so both sides agree without sending
// the expected values over the wire.
//
// Kinds of stream:
// - `lines`: `<index>:xxxx...\r\n`, 16 to 40 bytes with the terminator, ASCII;
// - `fixed32`: 32-byte records, the index as a big-endian uint32 then 28 pseudo-random bytes
//   (any byte value, `\r\n` included);
// - `bulk`: RESP bulk strings, `$<n>\r\n<n bytes>\r\n`, n from 1 to 48, the payload pseudo-random
//   bytes (binary-safe: it may hold `\r\n`).
import { parseArgs } from 'node:util';

export const KINDS = ['lines', 'fixed32', 'bulk'];

/** A 32-bit generator (mulberry32): the same seed gives the same sequence on both sides. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const lineLength = (r) => 16 + (r() % 25); // with `\r\n`
const bulkLength = (r) => 1 + (r() % 48);

/**
 * The stream of `count` records of `kind`, ready to send in one write.
 * @returns {Buffer}
 */
export function makeStream(kind, count, seed) {
  const r = prng(seed);
  if (kind === 'fixed32') {
    const out = Buffer.allocUnsafe(count * 32);
    for (let i = 0; i < count; i++) {
      const at = i * 32;
      out.writeUInt32BE(i >>> 0, at);
      for (let j = 4; j < 32; j += 4) out.writeUInt32LE(r(), at + j);
    }
    return out;
  }
  const parts = [];
  let size = 0;
  let part = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  const room = (n) => {
    if (used + n <= part.length) return;
    parts.push(part.subarray(0, used));
    size += used;
    part = Buffer.allocUnsafe(Math.max(1 << 20, n));
    used = 0;
  };
  for (let i = 0; i < count; i++) {
    if (kind === 'lines') {
      const len = lineLength(r);
      room(len);
      const head = `${i}:`;
      used += part.write(head, used, 'latin1');
      part.fill(0x78, used, used + len - 2 - head.length); // 'x'
      used += len - 2 - head.length;
      part[used++] = 0x0d;
      part[used++] = 0x0a;
    } else if (kind === 'bulk') {
      const n = bulkLength(r);
      room(n + 16);
      used += part.write(`$${n}\r\n`, used, 'latin1');
      for (let j = 0; j < n; j++) part[used++] = r() & 0xff;
      part[used++] = 0x0d;
      part[used++] = 0x0a;
    } else {
      throw new RangeError(`unknown kind of stream: ${kind}`);
    }
  }
  parts.push(part.subarray(0, used));
  size += used;
  return Buffer.concat(parts, size);
}

/**
 * What a consumer that read every record correctly adds up: the sum of the lengths of the values
 * it was given (`valueBytes`, as each workload defines a value) and the last record's index.
 * `lines` values exclude the terminator when `withTerminator` is false; `bulk` values are the
 * payloads without their `\r\n`; `fixed32` values are the 32 bytes.
 */
export function expected(kind, count, seed, { withTerminator = false } = {}) {
  const r = prng(seed);
  let valueBytes = 0;
  for (let i = 0; i < count; i++) {
    if (kind === 'lines') {
      valueBytes += lineLength(r) - (withTerminator ? 0 : 2);
    } else if (kind === 'bulk') {
      const n = bulkLength(r);
      for (let j = 0; j < n; j++) r();
      valueBytes += n;
    } else {
      for (let j = 4; j < 32; j += 4) r();
      valueBytes += 32;
    }
  }
  return { valueBytes, lastIndex: count - 1 };
}

/** The workload each consumer read belongs to. */
const KIND_OF_READ = {
  expectLine: 'lines',
  readUntil: 'lines',
  readExactly: 'fixed32',
  'expectLine+readExactly': 'bulk',
  readLengthPrefixed: 'bulk',
};

/**
 * The command line both framing consumers take (`extra`: options of one consumer only), parsed
 * and checked. An unknown `--read` prints a JSON error and exits with status 2.
 */
export function consumerArgs(extra = {}) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      read: { type: 'string', default: 'expectLine' },
      records: { type: 'string', default: '200000' },
      warmup: { type: 'string', default: '20000' },
      seed: { type: 'string', default: '1' },
      ...extra,
    },
  });
  const kind = KIND_OF_READ[values.read];
  if (!kind) {
    console.log(JSON.stringify({ error: `unknown --read ${values.read}` }));
    process.exit(2);
  }
  const records = Number(values.records);
  const warmup = Number(values.warmup);
  const seed = Number(values.seed);
  return { values, kind, records, warmup, seed, total: warmup + records };
}

/**
 * Null when a consumer read every record as sent (`done` records, values adding up to
 * `valueBytes`, `last` the last value), else what differs.
 */
export function checkRecords({ kind, read, seed, total }, { done, valueBytes, last }) {
  if (done !== total) return `read ${done} of ${total} records`;
  const want = expected(kind, total, seed, { withTerminator: read === 'readUntil' });
  if (valueBytes !== want.valueBytes)
    return `value bytes ${valueBytes}, expected ${want.valueBytes}`;
  if (kind === 'lines' && !String(last).startsWith(`${want.lastIndex}:`)) {
    return `last line ${String(last).slice(0, 40)}`;
  }
  if (kind === 'fixed32' && last.readUInt32BE(0) !== want.lastIndex) return 'last record index';
  return null;
}
