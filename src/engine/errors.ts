// EngineError, and the one place where native result codes become error codes.
import { getSystemErrorName } from 'node:util';
import { Code } from './internal/native.js';
import type { File, Socket } from './io.js';

/**
 * Every `code` the engine produces, as a runtime list: {@link EngineErrorCode} is its union, so
 * a misspelled code in a comparison (`err.code === 'ECONNRESTE'`) does not compile.
 */
export const ENGINE_ERROR_CODES = [
  // The engine's own.
  'ECANCELED',
  'ETIMEDOUT',
  'EBADF',
  'ERR_INCOMPLETE',
  'ERR_LIMIT',
  'ERR_MISMATCH',
  'ERR_INVALID_LENGTH',
  'ERR_ABORTED',
  'ERR_USER_CODE',
  'ERR_ENGINE_CLOSED',
  'ERR_IMPL_UNAVAILABLE',
  'ERR_INVALID_STATE',
  // TLS: a certificate that does not verify (named as node:tls names them, after OpenSSL's
  // X509_V_ERR_* constants), a hostname it does not cover, plaintext left ahead of STARTTLS.
  // Other TLS failures are EPROTO, with OpenSSL's reason in the message.
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_PLAINTEXT_BUFFERED',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  // Programmer errors, thrown synchronously as Node's (a TypeError or RangeError), and the
  // Promise layer's AbortError.
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_ARG_VALUE',
  'ERR_OUT_OF_RANGE',
  'ABORT_ERR',
  // Name lookups (getaddrinfo's EAI_* results, named as Node's dns module names them).
  'ENOTFOUND',
  'ENODATA',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_FAMILY',
  'EAI_SERVICE',
  'EAI_MEMORY',
  'EAI_SYSTEM',
  'EAI_BADFLAGS',
  'EAI_SOCKTYPE',
  'EAI_ADDRFAMILY',
  'EAI_OVERFLOW',
  // System calls: every errno name `util.getSystemErrorName` gives on Linux; an errno it does
  // not name is `UNKNOWN` (its number stays in `errno`).
  'EPERM',
  'ENOENT',
  'ESRCH',
  'EINTR',
  'EIO',
  'ENXIO',
  'E2BIG',
  'EAGAIN',
  'ENOMEM',
  'EACCES',
  'EFAULT',
  'EBUSY',
  'EEXIST',
  'EXDEV',
  'ENODEV',
  'ENOTDIR',
  'EISDIR',
  'EINVAL',
  'ENFILE',
  'EMFILE',
  'ENOTTY',
  'ETXTBSY',
  'EFBIG',
  'ENOSPC',
  'ESPIPE',
  'EROFS',
  'EMLINK',
  'EPIPE',
  'ERANGE',
  'ENAMETOOLONG',
  'ENOSYS',
  'ENOTEMPTY',
  'ELOOP',
  'EUNATCH',
  'ENONET',
  'EPROTO',
  'EOVERFLOW',
  'EILSEQ',
  'ENOTSOCK',
  'EDESTADDRREQ',
  'EMSGSIZE',
  'EPROTOTYPE',
  'ENOPROTOOPT',
  'EPROTONOSUPPORT',
  'ESOCKTNOSUPPORT',
  'ENOTSUP',
  'EAFNOSUPPORT',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'ENETDOWN',
  'ENETUNREACH',
  'ECONNABORTED',
  'ECONNRESET',
  'ENOBUFS',
  'EISCONN',
  'ENOTCONN',
  'ESHUTDOWN',
  'ECONNREFUSED',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'EALREADY',
  'EREMOTEIO',
  'UNKNOWN',
] as const;

/**
 * The `code` of an {@link EngineError}: a closed union of every code the engine produces
 * ({@link ENGINE_ERROR_CODES}): its own (`ERR_LIMIT`, ...), the errno names of failed system
 * calls (`ECONNRESET`, ...), the name lookup's (`ENOTFOUND`, `EAI_AGAIN`, ...), and the Node
 * codes of the errors it throws for bad arguments (`ERR_INVALID_ARG_TYPE`, ...).
 */
export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

const knownCodes: ReadonlySet<string> = new Set(ENGINE_ERROR_CODES);

/**
 * The error every failed op hands to its `failure` slot, and that engine calls throw for
 * operational errors (e.g. `listen` on a port in use).
 */
export class EngineError extends Error {
  /** A stable string: an errno name (`ECONNRESET`) or an engine code (`ERR_LIMIT`). */
  code: EngineErrorCode;
  /** The negative errno value, when a system call failed. */
  declare errno?: number;
  /** The system call that failed (`recv`, `connect`, ...). */
  declare syscall?: string;
  /** `ERR_INCOMPLETE`: every byte received before the end of the stream (now consumed). */
  declare partial?: Buffer;
  /**
   * `ERR_MISMATCH` (and `ERR_USER_CODE` on a line op): the line that did not match, or whose
   * check threw (terminator stripped; it was consumed). On `readLengthPrefixed`'s
   * `ERR_INVALID_LENGTH`, `ERR_LIMIT` and `ERR_USER_CODE`: the header (it stays buffered); on
   * its `ERR_MISMATCH`: the header of the record whose trailer was wrong (consumed).
   */
  declare line?: string;
  /** A failed, cancelled or timed-out write: the bytes the kernel had accepted. */
  declare bytesWritten?: number;
  /**
   * A failed `connect` or `listen`: the address asked for (an IP address, a host name that was
   * resolved, or a Unix socket path), as Node's errors carry it.
   */
  declare address?: string;
  /** A failed `connect` or `listen` on TCP: the port asked for. */
  declare port?: number;
  /** A failed name lookup (`getaddrinfo`, or a connect to a name): the name. */
  declare hostname?: string;
  /**
   * A promise chain's rejection (`engine.promises.connectThenExpectLine`, ...): the socket the
   * chain ran on, the one it accepted or connected included, left open: closing it is the
   * program's.
   */
  declare socket?: Socket | File;

  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.code = code;
  }
}

const messages: Partial<Record<EngineErrorCode, string>> = {
  ECANCELED: 'operation cancelled',
  ETIMEDOUT: 'operation timed out',
  EBADF: 'the socket or listener is closed',
  ERR_INCOMPLETE: 'the stream ended before the operation completed',
  ERR_LIMIT: 'more than maxBytes would have to be buffered',
  ERR_ABORTED: 'an earlier stage of the chain failed',
  ERR_INVALID_STATE: 'the buffer was detached or shrunk while the op waited',
  ERR_INVALID_LENGTH: 'the header gave no valid body length',
};

/**
 * An op whose own user code threw while the engine settled it (an `expect` or `readUntilRegex`
 * RegExp whose `exec` throws, a frozen `lastIndex`): the thrown value is the `cause`. The rest
 * of the batch goes on; bytes the op had not consumed stay buffered for the next read.
 */
export function userCodeError(thrown: unknown): EngineError {
  const what = thrown instanceof Error ? thrown.message : String(thrown);
  return new EngineError('ERR_USER_CODE', `code run for this op threw: ${what}`, {
    cause: thrown,
  });
}

/** Makes the error for a native result code (< 0) with its payload. */
export function errorFromNative(result: number, payload: unknown, cause?: unknown): EngineError {
  if (Array.isArray(payload) && result !== Code.Resolve) {
    // A failed write: [syscall, bytes the kernel accepted before it failed].
    const err = errorFromNative(result, payload[0], cause);
    err.bytesWritten = payload[1] as number;
    return err;
  }
  let code: EngineErrorCode;
  switch (result) {
    case Code.Incomplete:
      code = 'ERR_INCOMPLETE';
      break;
    case Code.Limit:
      code = 'ERR_LIMIT';
      break;
    case Code.Aborted:
      code = 'ERR_ABORTED';
      break;
    case Code.TimedOut:
      code = 'ETIMEDOUT';
      break;
    case Code.Canceled:
      code = 'ECANCELED';
      break;
    case Code.BadHandle:
      code = 'EBADF';
      break;
    case Code.BufferGone:
      code = 'ERR_INVALID_STATE';
      break;
    case Code.InvalidLength:
      code = 'ERR_INVALID_LENGTH';
      break;
    case Code.Resolve:
      return resolveError(payload as [number, number]);
    case Code.Tls: {
      // "CODE\tOpenSSL's reason"
      const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : '';
      const tab = text.indexOf('\t');
      const name = tab < 0 ? 'EPROTO' : text.slice(0, tab);
      const reason = tab < 0 ? text : text.slice(tab + 1);
      const err = new EngineError(
        knownCodes.has(name) ? (name as EngineErrorCode) : 'EPROTO',
        `TLS: ${reason}`,
        cause === undefined ? undefined : { cause },
      );
      return err;
    }
    default: {
      const name = getSystemErrorName(result);
      const err = new EngineError(knownCodes.has(name) ? (name as EngineErrorCode) : 'UNKNOWN', '');
      err.errno = result;
      if (typeof payload === 'string') err.syscall = payload;
      err.message = `${err.syscall ?? 'io'} ${err.code}`;
      return err;
    }
  }
  const err = new EngineError(
    code,
    messages[code] ?? code,
    cause === undefined ? undefined : { cause },
  );
  if (result === Code.Incomplete)
    err.partial = Buffer.isBuffer(payload) ? payload : Buffer.alloc(0);
  if (result === Code.TimedOut && typeof payload === 'string') {
    // A socket's own timeout (engine.setTimeouts), not the op's: the call it was waiting in.
    err.syscall = payload;
    err.message =
      payload === 'read'
        ? "read ETIMEDOUT: the socket's idle timeout passed with no byte received or sent"
        : "write ETIMEDOUT: the socket's write timeout passed with no byte taken by the kernel";
  }
  return err;
}

// getaddrinfo's EAI_* values (glibc), named as Node's dns module names them.
const gaiCodes: Record<number, EngineErrorCode> = {
  [-1]: 'EAI_BADFLAGS',
  [-2]: 'ENOTFOUND', // EAI_NONAME
  [-3]: 'EAI_AGAIN',
  [-4]: 'EAI_FAIL',
  [-5]: 'ENODATA', // EAI_NODATA
  [-6]: 'EAI_FAMILY',
  [-7]: 'EAI_SOCKTYPE',
  [-8]: 'EAI_SERVICE',
  [-9]: 'EAI_ADDRFAMILY',
  [-10]: 'EAI_MEMORY',
  [-11]: 'EAI_SYSTEM',
  [-12]: 'EAI_OVERFLOW',
};

function resolveError([gai, sysErrno]: [number, number]): EngineError {
  // A value glibc does not document is a lookup that failed for good.
  const code = gaiCodes[gai] ?? (gai === 0 ? 'ENOTFOUND' : 'EAI_FAIL');
  const err = new EngineError(code, `getaddrinfo ${code}`);
  err.syscall = 'getaddrinfo';
  if (sysErrno) err.errno = -sysErrno;
  return err;
}

/**
 * Adds what a connect or listen was asked for, as Node does: the `address` and `port` fields,
 * and the message `connect ECONNREFUSED 127.0.0.1:6390` (a Unix path: `connect ENOENT /path`).
 * `port` < 0: a path.
 */
export function withAddress(err: EngineError, address: string, port: number): EngineError {
  err.address = address;
  if (port >= 0) err.port = port;
  err.message = `${err.syscall ?? 'io'} ${err.code} ${port >= 0 ? `${address}:${port}` : address}`;
  return err;
}

/** Adds the name a lookup failed for: `getaddrinfo ENOTFOUND example.invalid`, `hostname`. */
export function withHostname(err: EngineError, hostname: string): EngineError {
  err.hostname = hostname;
  err.message = `getaddrinfo ${err.code} ${hostname}`;
  return err;
}

/** A programmer error about an argument's type: thrown synchronously, as Node does. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(
    `The "${name}" argument must be ${expected}. Received ${describe(actual)}`,
  ) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** A programmer error about an argument's value. */
export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError {
  const err = new TypeError(
    `The argument "${name}" ${reason}. Received ${describe(actual)}`,
  ) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** A number out of its range. */
export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  const err = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${describe(actual)}`,
  ) as RangeError & { code: string };
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'function') return 'function';
  if (typeof v === 'object') return `an instance of ${v.constructor?.name ?? 'Object'}`;
  if (typeof v === 'string') return `'${v.length > 28 ? v.slice(0, 25) + '...' : v}'`;
  return `${typeof v} (${String(v)})`;
}
