// A File's status as the native side packs statx(2)'s fields: 14 doubles.
import { constants as fsConstants } from 'node:fs';
import type { FileStat } from '../types.js';

// statx's fields, as the native side packs them: 14 doubles.
export function statFrom(b: Buffer): FileStat {
  const v = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + 14 * 8));
  const mode = v[1]!;
  const type = mode & fsConstants.S_IFMT;
  return {
    size: v[0]!,
    mode,
    uid: v[2]!,
    gid: v[3]!,
    nlink: v[4]!,
    ino: v[5]!,
    dev: v[6]!,
    blksize: v[7]!,
    blocks: v[8]!,
    atimeMs: v[9]!,
    mtimeMs: v[10]!,
    ctimeMs: v[11]!,
    birthtimeMs: v[12]!,
    isFile: type === fsConstants.S_IFREG,
    isDirectory: type === fsConstants.S_IFDIR,
  };
}
