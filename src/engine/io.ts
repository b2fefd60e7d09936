// IO objects: opaque handles for sockets, listeners and files made by the engine.
import { X509Certificate } from 'node:crypto';
import type { NativeEngine } from './internal/native.js';
import type { ListenerAddress } from './types.js';

/** A TLS socket's cipher suite ({@link Socket.cipher}), named as `tls.TLSSocket#getCipher()`. */
export interface TlsCipher {
  /** OpenSSL's name, e.g. `'TLS_AES_256_GCM_SHA384'` or `'ECDHE-ECDSA-AES128-GCM-SHA256'`. */
  name: string;
  /** The IANA name. */
  standardName: string;
  /** The protocol version the suite belongs to, e.g. `'TLSv1.3'`. */
  version: string;
}

/** The engine-side state an IO object needs. @internal */
export interface IoOwner {
  readonly native: NativeEngine;
}

/** What sockets and listeners share: the engine that made them, their handle and fd. */
abstract class IoObject {
  /** @internal */
  readonly _owner: IoOwner;
  /** @internal */
  readonly _handle: number;
  /** @internal */
  _fd: number;
  /** @internal */
  _closed = false;

  /** @internal */
  constructor(owner: IoOwner, handle: number, fd: number) {
    this._owner = owner;
    this._handle = handle;
    this._fd = fd;
  }

  /** The file descriptor, or -1 once closed. */
  fileno(): number {
    return this._closed ? -1 : this._fd;
  }

  /** True once `engine.close()` (or shutdown) closed it. */
  get closed(): boolean {
    return this._closed;
  }
}

/** A connected stream socket (TCP or Unix), made by `accept`, `connect` or `adopt`. */
export class Socket extends IoObject {
  #peer: ReturnType<NativeEngine['address']> | null = null;
  #local: ReturnType<NativeEngine['address']> | null = null;
  /**
   * @internal Bytes handed over in bulk by the native side and not consumed yet: `_in` from
   * `_off` on. Ops whose frame is in them settle without a crossing of their own. Only while
   * `_nreads` is 0; `undefined` once consumed, so an idle socket holds no JavaScript buffer.
   */
  _in: Buffer | undefined = undefined;
  /** @internal */
  _off = 0;
  /** @internal `_in` as a latin1 string, made when a search first needs it. */
  _text: string | undefined = undefined;
  /** @internal Whether `_in` is all ASCII, found out when a UTF-8 line first needs it. */
  _ascii: boolean | undefined = undefined;
  /** @internal Read ops on this socket submitted to the native side and not yet delivered. */
  _nreads = 0;
  /**
   * @internal At most how many bytes the next hand-over takes (it adapts: see the engine's
   * `#uncount`), and how many the last one took.
   */
  _takeCap = 256 * 1024;
  /** @internal */
  _took = 0;

  /** @internal A TLS handshake succeeded on it. */
  _encrypted = false;

  /**
   * Whether TLS runs on the socket (a handshake succeeded: accepted by a TLS listener,
   * connected with `tls`, or upgraded by `startTls`), as `tls.TLSSocket#encrypted`.
   */
  get encrypted(): boolean {
    return this._encrypted;
  }

  #tlsInfo(): ReturnType<NativeEngine['tlsInfo']> {
    return this._encrypted && !this._closed ? this._owner.native.tlsInfo(this._handle) : undefined;
  }

  /**
   * The ALPN protocol agreed on (`'h2'`, `'http/1.1'`, ...), or `false`: none (no TLS, or no
   * protocol in common), as `tls.TLSSocket#alpnProtocol`.
   */
  get alpnProtocol(): string | false {
    return this.#tlsInfo()?.[5] ?? false;
  }

  /** The TLS protocol version negotiated (`'TLSv1.3'`, `'TLSv1.2'`); undefined without TLS. */
  get tlsVersion(): string | undefined {
    return this.#tlsInfo()?.[0];
  }

  /**
   * The cipher suite negotiated, as `tls.TLSSocket#getCipher()` gives it: OpenSSL's `name`, the
   * IANA `standardName`, and the protocol `version` it belongs to; undefined without TLS.
   */
  get cipher(): TlsCipher | undefined {
    const i = this.#tlsInfo();
    return i === undefined ? undefined : { name: i[1], standardName: i[2], version: i[3] };
  }

  /**
   * The peer's certificate as a `crypto.X509Certificate` (subject, issuer, validFrom, validTo,
   * fingerprint256, raw DER, ...), or undefined: no TLS, or the peer sent none (a client that
   * was not asked for one).
   */
  peerCertificate(): X509Certificate | undefined {
    const der = this.#tlsInfo()?.[4];
    return der === undefined ? undefined : new X509Certificate(der);
  }

  #tlsSessionInfo(withSession: boolean): ReturnType<NativeEngine['tlsSessionInfo']> {
    return this._encrypted && !this._closed
      ? this._owner.native.tlsSessionInfo(this._handle, withSession)
      : undefined;
  }

  /**
   * The server name (SNI) of the TLS connection, as `tls.TLSSocket#servername`: on a socket a
   * TLS listener accepted, the name the client asked for; on a client, the name it sent.
   * Undefined without TLS or without a name (a client that sent none, or connected to an IP
   * address).
   */
  get servername(): string | undefined {
    return this.#tlsSessionInfo(false)?.[0];
  }

  /**
   * The latest TLS session of a client socket, as `tls.TLSSocket#getSession()` gives it (DER of
   * OpenSSL's SSL_SESSION), to pass as `tls.session` on a later connect to resume it; undefined
   * without TLS or while there is none that can be resumed. TLS 1.3 sends its tickets after the
   * handshake, so it is there once the socket has read past them (after the first read from the
   * server); each read gives the latest.
   */
  get tlsSession(): Buffer | undefined {
    return this.#tlsSessionInfo(true)?.[2];
  }

  /**
   * Whether the TLS handshake resumed an earlier session (an abbreviated handshake) rather than
   * making a new one, as `tls.TLSSocket#isSessionReused()`; false without TLS.
   */
  isSessionReused(): boolean {
    return this.#tlsSessionInfo(false)?.[1] ?? false;
  }

  /** Bytes received and not yet consumed by an op. */
  get bufferedBytes(): number {
    if (this._closed) return 0;
    const held = this._in === undefined ? 0 : this._in.length - this._off;
    return held + this._owner.native.bufferedBytes(this._handle);
  }

  /**
   * @internal bytesRead and bytesWritten as they were when the socket was closed (a closed
   * socket's native counters are gone).
   */
  _final: [number, number] | undefined = undefined;

  /**
   * Bytes received from the kernel on this socket so far, whether an op consumed them yet or
   * not (as `net.Socket#bytesRead`). Bytes handed to JavaScript in bulk, or given back, count
   * once. After close: its last value.
   */
  get bytesRead(): number {
    return this.#counter(0);
  }

  /**
   * Bytes of this socket's writes the kernel has accepted so far (chain write stages included).
   * After close: its last value.
   */
  get bytesWritten(): number {
    return this.#counter(1);
  }

  /**
   * Bytes handed to write ops (and chain write stages) on this socket that the kernel has not
   * accepted yet, as `net.Socket#writableLength`: the measure for backpressure. 0 when no write
   * is queued, and after close (the writes still queued then fail with `ECANCELED`).
   */
  get pendingWriteBytes(): number {
    return this._closed ? 0 : this.#counter(2);
  }

  #counter(which: 0 | 1 | 2): number {
    if (!this._closed) {
      const v = this._owner.native.counter(this._handle, which);
      if (v >= 0) return v;
    }
    return this._final?.[which as 0 | 1] ?? 0;
  }

  /** @internal Keeps bytesRead and bytesWritten, just before the native socket is closed. */
  _keepCounters(): void {
    if (this._closed || this._final !== undefined) return;
    const r = this._owner.native.counter(this._handle, 0);
    const w = this._owner.native.counter(this._handle, 1);
    if (r >= 0 && w >= 0) this._final = [r, w];
  }

  #addr(peer: boolean): ReturnType<NativeEngine['address']> {
    if (peer) {
      if (this.#peer === null && !this._closed)
        this.#peer = this._owner.native.address(this._handle, true);
      return this.#peer ?? undefined;
    }
    if (this.#local === null && !this._closed)
      this.#local = this._owner.native.address(this._handle, false);
    return this.#local ?? undefined;
  }

  /** The peer's IP address (undefined for a Unix socket). */
  get remoteAddress(): string | undefined {
    const a = this.#addr(true);
    return Array.isArray(a) ? a[0] : undefined;
  }
  /** The peer's port (undefined for a Unix socket). */
  get remotePort(): number | undefined {
    const a = this.#addr(true);
    return Array.isArray(a) ? a[1] : undefined;
  }
  /** `'IPv4'` or `'IPv6'` (undefined for a Unix socket). */
  get remoteFamily(): 'IPv4' | 'IPv6' | undefined {
    const a = this.#addr(true);
    return Array.isArray(a) ? a[2] : undefined;
  }
  /** This end's IP address (undefined for a Unix socket). */
  get localAddress(): string | undefined {
    const a = this.#addr(false);
    return Array.isArray(a) ? a[0] : undefined;
  }
  /** This end's port (undefined for a Unix socket). */
  get localPort(): number | undefined {
    const a = this.#addr(false);
    return Array.isArray(a) ? a[1] : undefined;
  }
}

/**
 * A listening socket, made by `engine.listen`. `A` is what {@link Listener.address} returns:
 * `ListenerAddress` for a TCP listener (`engine.listen({ port: 0 }).address().port` is a
 * number), `string` for a Unix socket's path, either when the options' kind is not known
 * statically.
 */
export class Listener<
  A extends ListenerAddress | string = ListenerAddress | string,
> extends IoObject {
  #address: ListenerAddress | string | null = null;

  /**
   * The bound address, as `net.Server#address()` gives it: `{ address, family, port }`, or the
   * path of a Unix socket.
   */
  address(): A {
    if (this.#address === null) {
      const a = this._owner.native.address(this._handle, false);
      if (a === undefined) throw new Error('the listener is closed');
      this.#address = Array.isArray(a) ? { address: a[0], family: a[2], port: a[1] } : a;
    }
    return this.#address as A;
  }
}

/**
 * An open file, made by `engine.open()`. The socket read ops, `readInto`, `write`, `fsync` and
 * `stat` accept it. Sequential reads share one read position and sequential writes one write
 * position (or the end, when opened for appending); `{ position }` reads or writes elsewhere.
 */
export class File extends IoObject {
  /** The path given to `engine.open()`. */
  readonly path: string;
  /** True when opened with `direct: true` (O_DIRECT). */
  readonly direct: boolean;
  /**
   * The alignment O_DIRECT needs, in bytes, of positions and sizes (the file system's, from
   * statx, or 4096); 1 when the file is not direct.
   */
  readonly alignment: number;

  /** @internal */
  constructor(
    owner: IoOwner,
    handle: number,
    fd: number,
    path: string,
    direct: boolean,
    alignment: number,
  ) {
    super(owner, handle, fd);
    this.path = path;
    this.direct = direct;
    this.alignment = alignment;
  }
}
