// An HTTP/1.1 plaintext server on async-engine: keep-alive, each request (its head, through
// `\r\n\r\n`, and the body its Content-Length gives) read with one readLengthPrefixed, every
// request answered `Hello, World!`. The benchmarks' wrk target. With `tls`, HTTPS: the same
// server on a TLS listener, ALPN `http/1.1`.
import { Callback } from 'async-engine';
import { MAX_BODY, MAX_HEAD, errorResponse, helloResponse, parseHeadLines } from './http.js';

/** Replies queued but not yet written past which a connection stops reading. */
const HIGH_WATER = 64;

/**
 * Over TLS, an accept settles once its connection's handshake is done, so a client that never
 * sends its hello would hold a lone accept (and serve()'s loop has one) forever. TLS_ACCEPTS
 * accepts wait at once, each bounding the handshake with HANDSHAKE_TIMEOUT_MS.
 */
const TLS_ACCEPTS = 8;
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * One connection: reads a request, answers it, reads the next one at once (pipelined requests
 * stay in the engine's buffer); at most one write in flight, later replies queued and
 * written together.
 */
class Connection {
  constructor(server, sock) {
    this.server = server;
    this.engine = server.engine;
    this.sock = sock;
    this.queue = [];
    this.writing = false;
    this.paused = false;
    this.closeAfterWrite = false;
    this.closed = false;
    // The head the length rule parsed last: the one of the request being read (one read at a
    // time), so the success does not parse it again.
    this.request = null;
    // A head is the request's first lines; its body (read, then dropped) is as long as its
    // Content-Length says, 0 without one. A head that gets an error response gives no length
    // (NaN): the read fails with ERR_INVALID_LENGTH, nothing of the body read.
    this.requestOptions = {
      delimiter: '\r\n\r\n',
      length: (head) => {
        const request = parseHeadLines(head);
        this.request = request;
        return request.status === undefined ? request.bodyLength : NaN;
      },
      maxBytes: MAX_HEAD,
      maxBody: MAX_BODY,
      encoding: 'latin1',
    };
    this.requestCallback = new Callback({
      success: () => this.respond(this.request),
      failure: (err) => this.onReadError(err),
    });
    this.writeCallback = new Callback({
      success: () => this.onWritten(),
      failure: () => this.destroy(),
    });
  }

  readRequest() {
    this.engine.readLengthPrefixed(this.sock, this.requestOptions, this.requestCallback);
  }

  respond(request) {
    this.request = null;
    this.send(helloResponse(request.head, request.connection));
    if (!request.keepAlive) this.end();
    else if (this.queue.length > HIGH_WATER) this.paused = true;
    else this.readRequest();
  }

  onReadError(err) {
    const request = this.request;
    this.request = null;
    if (err.code === 'ERR_INVALID_LENGTH') {
      this.send(errorResponse(request.status, request.reason));
      this.end();
    } else if (err.code === 'ERR_LIMIT') {
      // Without a head, the head is over MAX_HEAD; with one, the body over MAX_BODY (which
      // parseHeadLines refuses first).
      if (err.line === undefined) this.send(errorResponse(431, 'Request Header Fields Too Large'));
      else this.send(errorResponse(413, 'Payload Too Large'));
      this.end();
    } else {
      this.destroy(); // EOF between or inside requests, reset, cancel
    }
  }

  send(buf) {
    if (this.closed) return;
    if (this.writing) {
      this.queue.push(buf);
    } else {
      this.writing = true;
      this.engine.write(this.sock, buf, this.writeCallback);
    }
  }

  onWritten() {
    if (this.closed) return;
    if (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      this.engine.write(this.sock, batch, this.writeCallback);
      if (this.paused) {
        this.paused = false;
        this.readRequest();
      }
      return;
    }
    this.writing = false;
    if (this.closeAfterWrite) this.destroy();
  }

  end() {
    this.closeAfterWrite = true;
    if (!this.writing) this.destroy();
  }

  destroy() {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.server.connections.delete(this);
    this.engine.close(this.sock);
  }
}

/**
 * Starts the HTTP server on `engine`.
 * @param {object} options
 * @param {import('async-engine').AsyncEngine} options.engine
 * @param {string} [options.host] default 127.0.0.1
 * @param {number} [options.port] default 8080; 0 picks a free port
 * @param {number} [options.backlog] default 511
 * @param {object} [options.tls] serve HTTPS: the listener's `tls` options (`key`, `cert`, `ca?`);
 *   ALPN offers `http/1.1` unless `tls.alpn` says otherwise
 * @returns {{ listener, address, connections, close(): void }}
 */
export function startHttpServer({ engine, host = '127.0.0.1', port = 8080, backlog = 511, tls }) {
  const listener = engine.listen({
    host,
    port,
    backlog,
    ...(tls && { tls: { alpn: ['http/1.1'], ...tls } }),
  });
  const server = {
    engine,
    listener,
    address: listener.address(),
    connections: new Set(),
    closed: false,
    close,
  };

  function onConnection(sock) {
    const conn = new Connection(server, sock);
    server.connections.add(conn);
    conn.readRequest();
  }

  // The accept loop: re-armed after each connection, waiting when out of fds; close() ends it.
  if (tls === undefined) engine.serve(listener, onConnection);
  else for (let i = 0; i < TLS_ACCEPTS; i++) armTlsAccept();

  // One of the TLS accepts: re-armed with the same Callback after each connection, at once
  // after a handshake timeout or an aborted connection, after 100 ms on other errors (EMFILE).
  function armTlsAccept() {
    const accepted = new Callback({
      timeout: HANDSHAKE_TIMEOUT_MS,
      success: (sock) => {
        if (server.closed) return engine.close(sock);
        engine.accept(listener, accepted);
        onConnection(sock);
      },
      failure: (err) => {
        if (server.closed || err.code === 'ECANCELED' || err.code === 'EBADF') return;
        const delay = err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' ? 0 : 100;
        engine.callLater(delay, () => {
          if (!server.closed && !engine.closed) engine.accept(listener, accepted);
        });
      },
    });
    engine.accept(listener, accepted);
  }

  /** Stops accepting and closes every connection. */
  function close() {
    if (server.closed) return;
    server.closed = true;
    engine.close(listener);
    for (const conn of server.connections) conn.destroy();
  }

  return server;
}
