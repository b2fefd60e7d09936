// An HTTP/1.1 plaintext server on async-engine: keep-alive, request heads framed natively by
// readUntil('\r\n\r\n'), every request answered `Hello, World!`. The benchmarks' wrk target.
import { Callback } from 'async-engine';
import { MAX_HEAD, errorResponse, helloResponse, parseHead } from './http.js';

/** Replies queued but not yet written past which a connection stops reading. */
const HIGH_WATER = 64;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * One connection: reads a head, answers it, reads the next one at once (pipelined requests
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
    this.request = null; // the parsed head while its body is read
    this.headCallback = new Callback({
      success: (buf) => this.onHead(buf),
      failure: (err) => this.onReadError(err),
    });
    this.bodyCallback = new Callback({
      success: () => this.respond(this.request),
      failure: () => this.destroy(),
    });
    this.writeCallback = new Callback({
      success: () => this.onWritten(),
      failure: () => this.destroy(),
    });
  }

  readHead() {
    this.engine.readUntil(this.sock, HEAD_END, this.server.headOptions, this.headCallback);
  }

  onHead(buf) {
    const request = parseHead(buf.toString('latin1'));
    if (request.status !== undefined) {
      this.send(errorResponse(request.status, request.reason));
      this.end();
      return;
    }
    if (request.bodyLength > 0) {
      this.request = request;
      this.engine.readExactly(this.sock, request.bodyLength, this.bodyCallback);
      return;
    }
    this.respond(request);
  }

  respond(request) {
    this.request = null;
    this.send(helloResponse(request.head, request.connection));
    if (!request.keepAlive) this.end();
    else if (this.queue.length > HIGH_WATER) this.paused = true;
    else this.readHead();
  }

  onReadError(err) {
    if (err.code === 'ERR_LIMIT') {
      this.send(errorResponse(431, 'Request Header Fields Too Large'));
      this.end();
    } else {
      this.destroy(); // EOF between requests, reset, cancel
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
        this.readHead();
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
 * @returns {{ listener, address, connections, close(): void }}
 */
export function startHttpServer({ engine, host = '127.0.0.1', port = 8080, backlog = 511 }) {
  const listener = engine.listen({ host, port, backlog });
  const server = {
    engine,
    listener,
    address: listener.address(),
    connections: new Set(),
    headOptions: { maxBytes: MAX_HEAD },
    closed: false,
    close,
  };

  const accepted = new Callback({
    success: (sock) => {
      const conn = new Connection(server, sock);
      server.connections.add(conn);
      conn.readHead();
      accept();
    },
    failure: (err) => {
      if (server.closed || err.code === 'ECANCELED' || err.code === 'EBADF') return;
      // EMFILE, ENFILE, ECONNABORTED...: try again shortly rather than spin.
      engine.callLater(err.code === 'EMFILE' || err.code === 'ENFILE' ? 100 : 1, accept);
    },
  });

  function accept() {
    if (!server.closed) engine.accept(listener, accepted);
  }

  /** Stops accepting and closes every connection. */
  function close() {
    if (server.closed) return;
    server.closed = true;
    engine.close(listener);
    for (const conn of server.connections) conn.destroy();
  }

  accept();
  return server;
}
