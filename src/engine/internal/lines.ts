// A batch of lines as the native side delivers it (the ReadLines row of native/core/ops.def):
// the lines' bytes back to back, then one uint32 (little-endian) length per line; a batch read
// with a native expect ends with one more: how many mismatched lines it answered.
import { isAscii } from 'node:buffer';

type SliceBuffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * serveLines' filter for a batch read: lines other than `expect` get `reply`, `left` times (-1:
 * unbounded). Matched natively when the engine's encoding lets bytes be compared.
 */
export interface LineFilter {
  expect: string;
  reply: Buffer | undefined;
  left: number;
}

/** Lines of one batch, and (filtered batches) how many mismatched lines the read answered. */
export type LineBatch = string[] & { replied?: number };

/**
 * The `count` lines in `buf[start, end)`, decoded; `filtered`: the batch ends with the count of
 * lines answered. When the bytes are ASCII and the encoding decodes ASCII as itself, the batch
 * is decoded once and each line is a slice of that string.
 */
export function linesOf(
  buf: Buffer,
  start: number,
  end: number,
  count: number,
  encoding: BufferEncoding,
  filtered: boolean,
): LineBatch {
  const lines = decode(buf, start, filtered ? end - 4 : end, count, encoding) as LineBatch;
  if (filtered) lines.replied = buf.readUInt32LE(end - 4);
  return lines;
}

function decode(
  buf: Buffer,
  start: number,
  end: number,
  count: number,
  encoding: BufferEncoding,
): string[] {
  const table = end - 4 * count;
  const lines = new Array<string>(count);
  const sameAsAscii = encoding === 'utf8' || encoding === 'utf-8' || encoding === 'latin1';
  if (sameAsAscii && isAscii(buf.subarray(start, table))) {
    const text = (buf as SliceBuffer).latin1Slice(start, table);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const len = buf.readUInt32LE(table + 4 * i);
      lines[i] = text.slice(at, at + len);
      at += len;
    }
    return lines;
  }
  let at = start;
  for (let i = 0; i < count; i++) {
    const len = buf.readUInt32LE(table + 4 * i);
    lines[i] = buf.toString(encoding, at, at + len);
    at += len;
  }
  return lines;
}
