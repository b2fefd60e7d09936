// A small Redis-compatible (RESP2) server on async-engine: accept-then-expect-line chains,
// a RespReader per connection, and one keyspace (16 databases, typed values, expiry) shared
// by every connection of the server. The commands live in commands/, the keyspace in db.js.
import { Callback } from 'async-engine';
import {
  DEFAULT_MAX_BULK,
  DEFAULT_MAX_LINE,
  DEFAULT_MAX_REQUEST,
  OK,
  RespReader,
  errorReply,
} from './protocol.js';
import { EXPIRE_PERIOD_MS, Keyspace } from './db.js';
import { QUIT, executeCommand } from './commands/index.js';

export { executeCommand } from './commands/index.js';

/**
 * Queued reply bytes past which a connection stops reading until its writes drain. A client
 * that sends requests and never reads the replies is not closed (as Redis does for its normal
 * clients, whose output limit is off by default) and its replies do not pile up: the server
 * stops reading from it, the kernel's buffers fill, and the client's own writes block. One
 * connection holds at most two batches of replies: the one being written and the one queued,
 * each at most HIGH_WATER plus one reply.
 */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * After a protocol error reply, the server goes on reading (and dropping) what the peer still
 * sends until it has been quiet for LINGER_QUIET_MS, for LINGER_MS at most, and only then
 * closes. Closing with unread bytes makes the kernel send a reset, and a client that is still
 * writing (an oversized line, say) then fails on its write and never reads the error reply.
 */
const LINGER_MS = 2000;
const LINGER_QUIET_MS = 200;
/** Bytes dropped per read while lingering. */
const LINGER_CHUNK = 64 * 1024;

/**
 * Over TLS, an accept settles only once its connection's handshake is done, so a client that
 * connects and never sends its hello would hold a lone accept forever and nobody else would
 * get in. TLS_ACCEPTS accepts wait at once, each bounding the handshake with
 * HANDSHAKE_TIMEOUT_MS (the accept's timeout bounds the wait for a connection and the
 * handshake on their own; an accept that timed out is re-armed).
 */
const TLS_ACCEPTS = 8;
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * One client connection: reads requests with a RespReader, answers each one, and keeps at
 * most one write in flight; replies produced meanwhile are queued and written together.
 * Callbacks are made once per connection and reused for every request.
 */
class Connection {
  constructor(server) {
    this.server = server;
    this.engine = server.engine;
    this.sock = undefined;
    this.reader = new RespReader(server.engine, this, server.limits);
    this.writing = false;
    this.queue = [];
    this.queuedBytes = 0;
    this.paused = false; // the next read waits for the write queue to drain
    this.closeAfterWrite = false;
    this.lingerAfterWrite = false; // drop the peer's input a while before closing
    this.closed = false;
    this.writer = undefined; // the write Callback, made with the first reply
    // What commands see of this connection: its selected database (SELECT), its name (CLIENT
    // SETNAME), and the server's keyspace and counters.
    this.client = {
      id: ++server.clientSerial,
      name: undefined,
      dbIndex: 0,
      db: server.keyspace.db(0),
      keyspace: server.keyspace,
      server,
      sock: undefined,
      createdAt: Date.now(),
    };
  }

  get writeCallback() {
    this.writer ??= new Callback({
      success: () => this.onWritten(),
      failure: () => this.destroy(),
    });
    return this.writer;
  }

  // RespReader handler: one complete request.
  onRequest(args, reader) {
    const reply = executeCommand(args, this.client);
    if (reply === QUIT) {
      this.send(OK);
      this.end();
      return;
    }
    this.send(reply);
    if (this.queuedBytes > HIGH_WATER) this.paused = true;
    else reader.next();
  }

  // RespReader handler: malformed or over-limit frame. Like Redis: reply, then close.
  onProtocolError(message) {
    this.server.protocolErrors++;
    if (this.sock === undefined) return this.destroy();
    this.send(errorReply(`ERR ${message}`));
    this.end(true);
  }

  // RespReader handler: the request would outgrow maxRequest. Redis closes a client whose
  // query buffer passes client-query-buffer-limit at once, without a reply; so does the demo.
  onRequestLimit() {
    this.server.requestLimitCloses++;
    this.destroy();
  }

  // RespReader handler: EOF, reset, cancellation (also: the accept stage failed).
  onEnd() {
    this.destroy();
  }

  // Replies are queued and written together once the current batch of callbacks has run (a
  // microtask), so sixteen pipelined requests answered in one turn make one write op.
  send(buf) {
    if (this.closed) return;
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    if (!this.writing) {
      this.writing = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush() {
    if (this.closed) return;
    if (this.engine.closed) return this.destroy();
    const batch = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.engine.write(this.sock, batch.length === 1 ? batch[0] : batch, this.writeCallback);
    if (this.paused) {
      this.paused = false;
      this.reader.next();
    }
  }

  onWritten() {
    if (this.closed || this.engine.closed) return this.destroy();
    if (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      this.queuedBytes = 0;
      this.engine.write(this.sock, batch, this.writeCallback);
      if (this.paused) {
        this.paused = false;
        this.reader.next();
      }
      return;
    }
    this.writing = false;
    if (this.closeAfterWrite) this.finish();
  }

  /** Closes once every queued reply is written; with `linger`, see LINGER_MS. */
  end(linger = false) {
    this.closeAfterWrite = true;
    this.lingerAfterWrite = linger;
    if (!this.writing) this.finish();
  }

  finish() {
    if (this.lingerAfterWrite) this.linger();
    else this.destroy();
  }

  /** Reads and drops the peer's input until it goes quiet or closes (LINGER_MS at most). */
  linger() {
    if (this.closed) return;
    const until = Date.now() + LINGER_MS;
    const drop = new Callback({
      timeout: LINGER_QUIET_MS,
      success: (chunk) => {
        if (chunk.length === 0 || Date.now() >= until) this.destroy();
        else this.engine.readChunk(this.sock, LINGER_CHUNK, drop);
      },
      failure: () => this.destroy(),
    });
    this.engine.readChunk(this.sock, LINGER_CHUNK, drop);
  }

  destroy() {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.server.connections.delete(this);
    if (this.sock !== undefined) this.engine.close(this.sock);
  }
}

/** Throws, as Node does, unless `value` is a whole number of bytes from 1 up. */
function checkLimit(name, value) {
  if (typeof value !== 'number') {
    const err = new TypeError(
      `The "${name}" option must be of type number. Received ${typeof value}`,
    );
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    const err = new RangeError(
      `The value of "${name}" is out of range. It must be an integer >= 1. Received ${value}`,
    );
    err.code = 'ERR_OUT_OF_RANGE';
    throw err;
  }
}

/**
 * Starts a Redis-protocol server on `engine`.
 * @param {object} options
 * @param {import('async-engine').AsyncEngine} options.engine
 * @param {string} [options.host] default 127.0.0.1
 * @param {number} [options.port] default 6380; 0 picks a free port
 * @param {number} [options.maxLine] bound on one line in bytes (an inline request or a `*N` /
 *   `$len` header), default 64 KiB as in Redis; longer: `-ERR Protocol error: too big ...`
 * @param {number} [options.maxBulk] bound on one bulk argument in bytes, default 32 MiB; larger:
 *   `-ERR Protocol error: invalid bulk length`
 * @param {number} [options.maxRequest] bound on one request as sent in bytes (every line and
 *   payload), default 64 MiB; a request that would grow past it closes the connection without
 *   a reply, as Redis does past client-query-buffer-limit
 * Each limit must be an integer from 1 up: otherwise a TypeError (ERR_INVALID_ARG_TYPE) or a
 * RangeError (ERR_OUT_OF_RANGE) is thrown before anything listens.
 * @param {Keyspace} [options.keyspace] the 16 databases this server serves (db.js), default a
 *   new one
 * @param {boolean} [options.activeExpiry] run Redis's active expiry cycle every
 *   EXPIRE_PERIOD_MS on the engine's timers (default true); without it keys past their deadline
 *   go only when they are touched (lazy expiry, which always runs)
 * @param {number} [options.workerIndex] with `--workers N`, this server's worker (1 to N), for
 *   INFO; default 1
 * @param {number} [options.workerCount] with `--workers N`, N, for INFO; default 1
 * @param {boolean} [options.reusePort] set SO_REUSEPORT, so that several engines (one per worker
 *   thread) can listen on the same port and the kernel spreads connections across them
 * @param {object} [options.tls] serve TLS: the listener's `tls` options (`key`, `cert`, `ca?`,
 *   `alpn?`); each connection is read once its handshake is done
 * @param {number} [options.handshakeTimeout] with `tls`: ms a connection has to finish its
 *   handshake before it is closed, default 10 s
 * @returns {{ listener, address, keyspace, store, connections, accepted: number,
 *   protocolErrors: number, requestLimitCloses: number, close(): void }}
 *   `store` is `keyspace` under its former name (its `size` counts the keys of every database)
 *   `accepted` counts the connections accepted so far, `protocolErrors` those closed after a
 *   `-ERR Protocol error` reply, `requestLimitCloses` those closed for passing `maxRequest`
 */
export function startRedisServer({
  engine,
  host = '127.0.0.1',
  port = 6380,
  backlog = 511,
  maxLine = DEFAULT_MAX_LINE,
  maxBulk = DEFAULT_MAX_BULK,
  maxRequest = DEFAULT_MAX_REQUEST,
  keyspace = new Keyspace(),
  activeExpiry = true,
  workerIndex = 1,
  workerCount = 1,
  reusePort = false,
  tls,
  handshakeTimeout = HANDSHAKE_TIMEOUT_MS,
}) {
  checkLimit('maxLine', maxLine);
  checkLimit('maxBulk', maxBulk);
  checkLimit('maxRequest', maxRequest);
  const listener = engine.listen({ host, port, backlog, reusePort, ...(tls && { tls }) });
  const server = {
    engine,
    listener,
    address: listener.address(),
    keyspace,
    store: keyspace,
    connections: new Set(),
    accepted: 0,
    commandsProcessed: 0,
    clientSerial: 0,
    startedAt: Date.now(),
    workerIndex,
    workerCount,
    scanCursors: new Map(), // SCAN's live walks, by cursor (commands/keys.js)
    scanSerial: 0,
    expiryTimer: undefined,
    protocolErrors: 0,
    requestLimitCloses: 0,
    limits: { maxLine, maxBulk, maxRequest },
    closed: false,
    close,
  };

  function onAcceptFailure(err) {
    // The chain's line stage fails too (ERR_ABORTED) and destroys the unused connection.
    if (server.closed || err.code === 'ECANCELED' || err.code === 'EBADF') return;
    // A peer that gave up while queued (ECONNABORTED): next one at once. Anything else
    // (EMFILE, ENFILE, ...): try again in a while rather than spin.
    engine.callLater(err.code === 'ECONNABORTED' ? 0 : 100, armAccept);
  }

  // Over TLS: TLS_ACCEPTS plain accepts (the accept-then-expect-line chain takes no TLS
  // listener), each reading its connection's first request once the handshake is done and
  // re-armed with the same Callback. A handshake that fails closes that connection unseen.
  function armTlsAccept() {
    const accepted = new Callback({
      timeout: handshakeTimeout,
      success: (sock) => {
        if (server.closed) return engine.close(sock);
        const conn = new Connection(server);
        conn.sock = sock;
        conn.client.sock = sock;
        server.accepted++;
        server.connections.add(conn);
        engine.accept(listener, accepted);
        conn.reader.next(sock);
      },
      failure: (err) => {
        if (server.closed || err.code === 'ECANCELED' || err.code === 'EBADF') return;
        const delay = err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' ? 0 : 100;
        engine.callLater(delay, () => {
          if (!server.closed) engine.accept(listener, accepted);
        });
      },
    });
    engine.accept(listener, accepted);
  }

  // One accept-then-expect-line chain per connection: the accept stage's Callback stays tied
  // to its chain (a cancel through it would reach the line stage) until the first line has
  // arrived, so each chain gets a fresh one rather than reusing it from its own success.
  function armAccept() {
    if (server.closed) return;
    const conn = new Connection(server);
    const accepted = new Callback({
      success: (sock) => {
        conn.sock = sock;
        conn.client.sock = sock;
        conn.reader.sock = sock;
        server.accepted++;
        server.connections.add(conn);
        armAccept(); // re-arm at once; this conn's first line arrives on its reader's callback
      },
      failure: onAcceptFailure,
    });
    engine.acceptThenExpectLine(listener, null, conn.reader.lineOptions, [
      accepted,
      conn.reader.lineCallback,
    ]);
  }

  // Active expiry: one bounded cycle (db.js) per EXPIRE_PERIOD_MS on the engine's timers. The
  // pending timer would keep the process alive, so close() cancels it; shutdown() drops it.
  function expireTick() {
    server.expiryTimer = undefined;
    if (server.closed || engine.closed) return;
    keyspace.activeExpireCycle();
    server.expiryTimer = engine.callLater(EXPIRE_PERIOD_MS, expireTick);
  }

  /** Stops accepting and closes every connection (their pending ops fail ECANCELED). */
  function close() {
    if (server.closed) return;
    server.closed = true;
    server.expiryTimer?.cancel();
    server.expiryTimer = undefined;
    server.scanCursors.clear();
    engine.close(listener);
    for (const conn of server.connections) conn.destroy();
  }

  if (activeExpiry) server.expiryTimer = engine.callLater(EXPIRE_PERIOD_MS, expireTick);
  if (tls === undefined) armAccept();
  else for (let i = 0; i < TLS_ACCEPTS; i++) armTlsAccept();
  return server;
}
