// What a settled op delivers: the native side's payload turned into the value its Callback
// gets, for every kind but those that make a Socket or File (accept, connect, open), which the
// engine makes and registers itself; or its failure, with what the op was asked for in it.
import { constants as fsConstants } from 'node:fs';
import { type EngineError, errorFromNative, withAddress, withHostname } from '../errors.js';
import type { AddrInfo, FileStat, ReadUntilResult, RegexResult } from '../types.js';
import { lineError, recordOf } from './framing.js';
import { linesOf } from './lines.js';
import { Kind } from './native.js';
import type { OpRecord } from './op-record.js';

/**
 * The error of an op that failed natively (`result` < 0), with what the op was asked for in it:
 * a connect's address and port, a lookup's name, an O_DIRECT open's path.
 */
export function failureOf(rec: OpRecord, result: number, payload: unknown): EngineError {
  const err = errorFromNative(result, payload);
  if (rec.kind === Kind.Connect && rec.peerHost !== undefined && err.syscall === 'connect') {
    withAddress(err, rec.peerHost, rec.peerPort);
  } else if (rec.kind === Kind.Resolve && err.syscall === 'getaddrinfo') {
    withHostname(err, rec.a as string);
  } else if (rec.kind === Kind.Open && rec.direct && err.code === 'EINVAL') {
    err.message = `open EINVAL: the file system refuses O_DIRECT for ${rec.path}`;
  }
  return err;
}

/**
 * The value of an op that succeeded (`result` >= 0), or the failure its payload shows: a line
 * that does not match its expectation, a length-prefixed record whose trailer is wrong.
 */
export function resultValue(rec: OpRecord, result: number, payload: unknown): unknown {
  switch (rec.kind) {
    case Kind.ReadLine: {
      const line =
        typeof payload === 'string' ? payload : (payload as Buffer).toString(rec.encoding);
      return lineError(line, rec.expect) ?? line;
    }
    case Kind.ReadLines:
      // A batch too large for the arena came as a Buffer of its own.
      return Buffer.isBuffer(payload)
        ? linesOf(payload, 0, payload.length, result, rec.encoding, Array.isArray(rec.b))
        : payload;
    case Kind.ReadGlob: {
      const lines = payload as Array<string | Buffer>;
      return lines.map((l) => (typeof l === 'string' ? l : l.toString(rec.encoding)));
    }
    case Kind.ReadUntil: {
      const list = rec.delimiters;
      if (list === undefined) return payload;
      // Several delimiters: the frame, then one byte, the index of the one found.
      const bytes = payload as Buffer;
      const index = bytes[bytes.length - 1]!;
      const value: ReadUntilResult = {
        data: bytes.subarray(0, bytes.length - 1),
        delimiter: list[index]!,
        index,
      };
      return value;
    }
    case Kind.ReadRegex:
      return { data: payload as Buffer, match: rec.match! } satisfies RegexResult;
    case Kind.ReadPrefixed:
      return recordOf(rec.prefix!, payload as Buffer, 0);
    case Kind.Write:
    case Kind.ReadInto:
      return result;
    case Kind.Fsync:
    case Kind.Sleep:
      return undefined;
    case Kind.Stat:
      return statFrom(payload as Buffer);
    case Kind.Resolve:
      return addrsFrom(payload as string[]);
    default:
      return payload;
  }
}

// getaddrinfo's addresses, as the native side flattens them: address, family, address, ...
function addrsFrom(flat: string[]): AddrInfo[] {
  const addrs: AddrInfo[] = [];
  for (let k = 0; k < flat.length; k += 2) {
    addrs.push({ address: flat[k]!, family: flat[k + 1] === '6' ? 6 : 4 });
  }
  return addrs;
}

// statx's fields, as the native side packs them: 14 doubles.
function statFrom(b: Buffer): FileStat {
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
