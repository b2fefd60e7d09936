// TLS options: what listen, connect and startTls take, checked and turned into what the native
// side's handshake op reads (native/core/tls.h, TlsConfig).
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates } from 'node:tls';
import { invalidArgType, invalidArgValue } from './errors.js';
import { checkDelay, checkKeys } from './validate.js';

/** PEM text: a string, or a Buffer holding it. */
export type Pem = string | Buffer;

/**
 * TLS options of a listener ({@link ListenOptions.tls}): every socket it accepts runs a server
 * handshake before the accept succeeds.
 */
export interface TlsServerOptions {
  /** The private key, PEM. */
  key: Pem;
  /** The certificate, PEM: the leaf first, then any intermediates. */
  cert: Pem;
  /**
   * Trusted CA certificates, PEM (one or a bundle, or an array of them). Given on a server, a
   * client must present a certificate that verifies against them.
   */
  ca?: Pem | Pem[];
  /**
   * ALPN protocols the server speaks, in its order of preference (`['h2', 'http/1.1']`); the
   * first the client also offers is chosen, none when there is none in common.
   */
  alpn?: string[];
  /**
   * Server name indication: a key and certificate per name a client may ask for, as
   * `{ 'example.test': { key, cert }, '*.wild.test': { key, cert } }`. An exact name is tried
   * first, then a wildcard standing for one leading label (`*.wild.test` serves `a.wild.test`,
   * not `wild.test` nor `a.b.wild.test`); names match in any case. A client that sends no name,
   * or one with no entry, gets the listener's own `key` and `cert`. The `ca` and `alpn` of the
   * listener apply whichever certificate is served. See {@link Socket.servername}.
   */
  sni?: Record<string, TlsKeyPair>;
  /**
   * How long the handshake may take, in ms (as `node:tls`'s `handshakeTimeout`), from the moment
   * it starts (after the accept or the connect): past it, the Callback's `failure` gets
   * `ETIMEDOUT`, and after an accept or a connect the connection is closed (the caller never got
   * it). `0`: no deadline for the handshake. Not given: the op's or chain's `timeout` bounds the
   * handshake as it bounds every stage, and with none either, 120 s (as `node:tls` servers).
   * Any finite number >= 0.
   */
  handshakeTimeout?: number;
}

/** A private key and its certificate, PEM: one entry of {@link TlsServerOptions.sni}. */
export interface TlsKeyPair {
  /** The private key, PEM. */
  key: Pem;
  /** The certificate, PEM: the leaf first, then any intermediates. */
  cert: Pem;
}

/** TLS options of a client: {@link AsyncEngine.connect}'s `tls` key, or `startTls`. */
export interface TlsClientOptions {
  /**
   * The name sent as SNI and that the server's certificate must match; default: the host
   * connected to. An IP address is matched against the certificate's IP entries (no SNI is sent).
   */
  servername?: string;
  /** Trusted CA certificates, PEM; default: Node's bundled Mozilla roots (`tls.rootCertificates`). */
  ca?: Pem | Pem[];
  /**
   * `false`: accept a certificate that does not verify (the handshake succeeds all the same).
   * Default `true`, as in `node:tls`.
   */
  rejectUnauthorized?: boolean;
  /** ALPN protocols to offer, in order of preference; see {@link Socket.alpnProtocol}. */
  alpn?: string[];
  /**
   * A session to resume, as {@link Socket.tlsSession} or `tls.TLSSocket#getSession()` gives it
   * (DER of OpenSSL's SSL_SESSION). The server may accept it (an abbreviated handshake, see
   * {@link Socket.isSessionReused}) or not (a full one). A buffer that is no session is passed
   * over and the handshake is a full one, as `node:tls` does.
   */
  session?: Buffer;
  /**
   * The client's own private key, PEM (mutual TLS): sent with {@link TlsClientOptions.cert}
   * when the server asks for a certificate. Both or neither.
   */
  key?: Pem;
  /** The client's own certificate, PEM: the leaf first, then any intermediates. With `key`. */
  cert?: Pem;
  /**
   * How long the handshake may take, in ms (as `node:tls`'s `handshakeTimeout`), from the moment
   * it starts (after the accept or the connect): past it, the Callback's `failure` gets
   * `ETIMEDOUT`, and after an accept or a connect the connection is closed (the caller never got
   * it). `0`: no deadline for the handshake. Not given: the op's or chain's `timeout` bounds the
   * handshake as it bounds every stage. Any finite number >= 0.
   */
  handshakeTimeout?: number;
}

/** The `tls` key of {@link AsyncEngine.connect}'s address: connect, then a client handshake. */
export interface TlsConnectOption {
  tls?: TlsClientOptions;
}

/**
 * Options of {@link AsyncEngine.startTls}: a server handshake with `isServer: true` (and
 * {@link TlsServerOptions}), a client handshake otherwise ({@link TlsClientOptions}).
 */
export type StartTlsOptions =
  ({ isServer: true } & TlsServerOptions) | ({ isServer?: false } & TlsClientOptions);

/** @internal What the native handshake op reads. */
export interface NativeTlsConfig {
  server: boolean;
  key: string;
  cert: string;
  ca: string;
  servername: string;
  verify: boolean;
  alpn?: Buffer;
  /** Server: [name, key, cert] per SNI entry, flat. */
  sni?: string[];
  /** Client: a session to resume, DER. */
  session?: Buffer;
}

const SERVER_KEYS: ReadonlySet<string> = new Set([
  'key',
  'cert',
  'ca',
  'alpn',
  'sni',
  'handshakeTimeout',
]);
const CLIENT_KEYS: ReadonlySet<string> = new Set([
  'servername',
  'ca',
  'rejectUnauthorized',
  'alpn',
  'session',
  'key',
  'cert',
  'handshakeTimeout',
]);
const START_SERVER_KEYS: ReadonlySet<string> = new Set(['isServer', ...SERVER_KEYS]);
const START_CLIENT_KEYS: ReadonlySet<string> = new Set(['isServer', ...CLIENT_KEYS]);

let defaultCa: string | undefined;

function pem(v: unknown, name: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  throw invalidArgType(name, 'a string or Buffer (PEM)', v);
}

function pemList(v: unknown, name: string): string {
  if (Array.isArray(v)) return v.map((x, i) => pem(x, `${name}[${i}]`)).join('\n');
  return pem(v, name);
}

// ALPN names in the wire format: each one's length (1 to 255 bytes), then its bytes.
function alpnWire(v: unknown, name: string): Buffer | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidArgType(name, 'an array of strings', v);
  const parts: Buffer[] = [];
  v.forEach((p: unknown, i) => {
    if (typeof p !== 'string') throw invalidArgType(`${name}[${i}]`, 'a string', p);
    const b = Buffer.from(p, 'utf8');
    if (b.length === 0 || b.length > 255) {
      throw invalidArgValue(`${name}[${i}]`, 'must be 1 to 255 bytes long', p);
    }
    parts.push(Buffer.from([b.length]), b);
  });
  return parts.length === 0 ? undefined : Buffer.concat(parts);
}

function checkObject(v: unknown, name: string): object {
  if (v === null || typeof v !== 'object') throw invalidArgType(name, 'an object', v);
  return v;
}

/** @internal Checks a listener's `tls` options. */
export function checkTlsServer(v: unknown, name: string, keys = SERVER_KEYS): NativeTlsConfig {
  const o = checkObject(v, name) as TlsServerOptions;
  checkKeys(o, keys, name);
  if (o.key === undefined) throw invalidArgType(`${name}.key`, 'a string or Buffer (PEM)', o.key);
  if (o.cert === undefined)
    throw invalidArgType(`${name}.cert`, 'a string or Buffer (PEM)', o.cert);
  const cfg: NativeTlsConfig = {
    server: true,
    key: pem(o.key, `${name}.key`),
    cert: pem(o.cert, `${name}.cert`),
    ca: o.ca === undefined ? '' : pemList(o.ca, `${name}.ca`),
    servername: '',
    verify: false,
  };
  const alpn = alpnWire(o.alpn, `${name}.alpn`);
  if (alpn !== undefined) cfg.alpn = alpn;
  keepHandshakeTimeout(cfg, o.handshakeTimeout, name);
  // A key or certificate that cannot be used is refused now, not at the first handshake.
  try {
    createSecureContext({ key: cfg.key, cert: cfg.cert, ...(cfg.ca ? { ca: cfg.ca } : {}) });
  } catch (e) {
    throw invalidArgValue(name, `cannot be used: ${(e as Error).message}`, '(PEM)');
  }
  const sni = sniEntries(o.sni, `${name}.sni`);
  if (sni !== undefined) cfg.sni = sni;
  return cfg;
}

// A host name as SNI carries it, or one with a leading one-label wildcard (`*.example.test`):
// letters, digits and hyphens in labels of 1 to 63, at most 253 in all.
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const SNI_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

// A key pair that cannot be used is refused now, as the listener's own.
function keyPair(v: unknown, name: string): { key: string; cert: string } {
  const o = checkObject(v, name) as TlsKeyPair;
  checkKeys(o, KEY_PAIR_KEYS, name);
  if (o.key === undefined) throw invalidArgType(`${name}.key`, 'a string or Buffer (PEM)', o.key);
  if (o.cert === undefined)
    throw invalidArgType(`${name}.cert`, 'a string or Buffer (PEM)', o.cert);
  const pair = { key: pem(o.key, `${name}.key`), cert: pem(o.cert, `${name}.cert`) };
  try {
    createSecureContext(pair);
  } catch (e) {
    throw invalidArgValue(name, `cannot be used: ${(e as Error).message}`, '(PEM)');
  }
  return pair;
}

const KEY_PAIR_KEYS: ReadonlySet<string> = new Set(['key', 'cert']);

// SNI entries as the native side reads them: [name, key, cert, ...], names lowercase.
function sniEntries(v: unknown, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  const o = checkObject(v, name);
  if (Array.isArray(o)) throw invalidArgType(name, 'an object of names to { key, cert }', v);
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [host, pair] of Object.entries(o)) {
    const lower = host.toLowerCase();
    if (lower.length > 253 || !SNI_NAME.test(lower) || isIP(lower) !== 0) {
      throw invalidArgValue(
        name,
        `has a name that is no host name (or *. and one): ${JSON.stringify(host)}`,
        host,
      );
    }
    if (seen.has(lower)) {
      throw invalidArgValue(name, `names ${JSON.stringify(host)} twice (in any case)`, host);
    }
    seen.add(lower);
    const { key, cert } = keyPair(pair, `${name}[${JSON.stringify(host)}]`);
    out.push(lower, key, cert);
  }
  return out.length === 0 ? undefined : out;
}

/** @internal Checks a client's `tls` options; `host`: what the certificate must match by default. */
export function checkTlsClient(
  v: unknown,
  name: string,
  host: string,
  keys = CLIENT_KEYS,
): NativeTlsConfig {
  const o = checkObject(v, name) as TlsClientOptions;
  checkKeys(o, keys, name);
  if (o.servername !== undefined && (typeof o.servername !== 'string' || o.servername === '')) {
    throw invalidArgType(`${name}.servername`, 'a non-empty string', o.servername);
  }
  if (o.servername?.includes('\0')) {
    throw invalidArgValue(`${name}.servername`, 'must not contain NUL', o.servername);
  }
  if (o.rejectUnauthorized !== undefined && typeof o.rejectUnauthorized !== 'boolean') {
    throw invalidArgType(`${name}.rejectUnauthorized`, 'a boolean', o.rejectUnauthorized);
  }
  // Node's bundled roots, as node:tls trusts by default.
  const ca =
    o.ca === undefined ? (defaultCa ??= rootCertificates.join('\n')) : pemList(o.ca, `${name}.ca`);
  const cfg: NativeTlsConfig = {
    server: false,
    key: '',
    cert: '',
    ca,
    servername: o.servername ?? host,
    verify: o.rejectUnauthorized !== false,
  };
  const alpn = alpnWire(o.alpn, `${name}.alpn`);
  if (alpn !== undefined) cfg.alpn = alpn;
  if (o.session !== undefined) {
    if (!Buffer.isBuffer(o.session)) throw invalidArgType(`${name}.session`, 'a Buffer', o.session);
    cfg.session = o.session;
  }
  if (o.key !== undefined || o.cert !== undefined) {
    if (o.key === undefined || o.cert === undefined) {
      const missing = o.key === undefined ? 'key' : 'cert';
      throw invalidArgValue(
        `${name}.${missing}`,
        'must be given with the other of key and cert',
        undefined,
      );
    }
    const own = keyPair({ key: o.key, cert: o.cert }, name);
    cfg.key = own.key;
    cfg.cert = own.cert;
  }
  keepHandshakeTimeout(cfg, o.handshakeTimeout, name);
  return cfg;
}

/** @internal Checks startTls's options. */
export function checkStartTls(v: unknown, host: string): NativeTlsConfig {
  const o = checkObject(v, 'options') as { isServer?: unknown };
  if (o.isServer !== undefined && typeof o.isServer !== 'boolean') {
    throw invalidArgType('options.isServer', 'a boolean', o.isServer);
  }
  return o.isServer === true
    ? checkTlsServer(o, 'options', START_SERVER_KEYS)
    : checkTlsClient(o, 'options', host, START_CLIENT_KEYS);
}

// ---- the handshake's own timeout ----

// A configuration's handshake deadline stays on the JavaScript side: the native side gets it as
// the handshake op's timeout, like every op's.
const handshakeTimeouts = new WeakMap<NativeTlsConfig, number>();

function keepHandshakeTimeout(cfg: NativeTlsConfig, v: unknown, name: string): void {
  if (v === undefined) return;
  checkDelay(v, `${name}.handshakeTimeout`);
  handshakeTimeouts.set(cfg, v as number);
}

/**
 * A server handshake's deadline when neither its `handshakeTimeout` nor the op's `timeout` gives
 * one: 120 s, as `node:tls` servers have. Without it a peer that connects and never sends its
 * ClientHello would hold its connection (and a `serve` loop's slot) until it goes away.
 */
export const DEFAULT_SERVER_HANDSHAKE_TIMEOUT = 120_000;

/**
 * @internal The handshake's deadline in ms: its own `handshakeTimeout`, else `fallback` (the
 * op's), else for a server {@link DEFAULT_SERVER_HANDSHAKE_TIMEOUT}.
 */
export function handshakeTimeoutOf(cfg: NativeTlsConfig, fallback: number): number {
  const own = handshakeTimeouts.get(cfg) ?? fallback;
  return own === 0 && cfg.server && !handshakeTimeouts.has(cfg)
    ? DEFAULT_SERVER_HANDSHAKE_TIMEOUT
    : own;
}
