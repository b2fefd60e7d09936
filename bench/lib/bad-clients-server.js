// The server of the "bad clients" case (bench/cases/bad-clients.js), one protocol in three
// builds: a client's first line must be GREETING, answered `OK`, after which each `PING n` line
// is answered `PONG n`; any other first line, one over the line limit, or none within the
// timeout gets REPLY and the server closes the connection.
//   --kind filter  engine: acceptWhen refuses bad connections natively; good ones are served
//                  with expectLine + write
//   --kind plain   engine: accept + expectLine, and a JavaScript reply write and close for bad ones
//   --kind net     node:net, the same logic on its stream events
// Every JavaScript callback the engine builds run is counted and charged to the connection it
// ran for (`good` or `rejected`, once the first line has decided which) or to no connection
// (`other`: an accept that failed). A control port on the loopback (printed on stdout as
// `control PORT`) answers each line with the counters as one JSON line, so the runner can read
// them before and after a round.
// With --defer-accept S, an engine server's listener sets TCP_DEFER_ACCEPT (listen's
// deferAccept): the kernel completes an accept once the client has sent data, or after S s.
// usage: node bench/lib/bad-clients-server.js --kind filter|plain|net [--impl IMPL] --port PORT
//        [--timeout MS] [--max-bytes N] [--defer-accept S]
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Callback, createEngine } from 'async-engine';

export const GREETING = 'HELLO bench';
export const REPLY = 'ERR bad greeting\r\n';

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    impl: { type: 'string', default: 'auto' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    timeout: { type: 'string', default: '250' },
    'max-bytes': { type: 'string', default: '128' },
    'defer-accept': { type: 'string', default: '0' },
  },
});
const kind = values.kind;
const host = values.host;
const port = Number(values.port);
const timeout = Number(values.timeout);
const maxBytes = Number(values['max-bytes']);
const deferAccept = Number(values['defer-accept']);
if (!['filter', 'plain', 'net'].includes(kind) || !Number.isInteger(port)) {
  console.error('usage: bad-clients-server.js --kind filter|plain|net [--impl IMPL] --port PORT');
  process.exit(2);
}

/** Counters the control port reports; callbacks are charged per connection as it is decided. */
const counts = {
  callbacks: 0,
  goodCallbacks: 0,
  rejectedCallbacks: 0,
  otherCallbacks: 0,
  good: 0,
  rejected: 0, // rejections that JavaScript saw (plain and net; filter: none expected)
  pings: 0,
};

/**
 * One connection's callback tally: callbacks that ran before its first line decided what it is
 * are held, then charged to `good` or `rejected`.
 */
class Tally {
  constructor() {
    this.held = 0;
    this.verdict = null;
  }

  /** Counts one callback that ran for this connection. */
  tick() {
    counts.callbacks++;
    if (this.verdict === 'good') counts.goodCallbacks++;
    else if (this.verdict === 'rejected') counts.rejectedCallbacks++;
    else this.held++;
  }

  decide(verdict) {
    this.verdict = verdict;
    if (verdict === 'good') {
      counts.good++;
      counts.goodCallbacks += this.held;
    } else {
      counts.rejected++;
      counts.rejectedCallbacks += this.held;
    }
    this.held = 0;
  }
}

function otherCallback() {
  counts.callbacks++;
  counts.otherCallbacks++;
}

let engine;
let stats = () => ({});

if (kind === 'net') {
  serveNet();
} else {
  engine = createEngine({ impl: values.impl });
  const listener = engine.listen({
    host,
    port,
    backlog: 4096,
    deferAccept: deferAccept > 0 ? deferAccept : false,
  });
  stats = () => {
    const s = engine.stats();
    return {
      impl: s.impl,
      completions: s.completions,
      batches: s.batches,
      syscalls: s.syscalls,
      filtered: s.filteredConnections,
    };
  };
  if (kind === 'filter') armFilter(listener);
  else armPlain(listener);
}

/** Serves a connection whose greeting passed: OK, then PONG n for each PING n, until EOF. */
function serveGood(sock, tally) {
  const done = () => engine.close(sock);
  const wrote = { success: () => tally.tick(), failure: () => (tally.tick(), done()) };
  engine.write(sock, 'OK\r\n', wrote);
  const next = () =>
    engine.expectLine(
      sock,
      null,
      { maxBytes },
      {
        success(line) {
          tally.tick();
          if (!line.startsWith('PING ')) {
            done();
            return;
          }
          counts.pings++;
          engine.write(sock, `PONG ${line.slice(5)}\r\n`, wrote);
          next();
        },
        failure() {
          tally.tick();
          done();
        },
      },
    );
  next();
}

// filter: one acceptWhen armed at a time; connections that pass while its callback runs wait in
// the listener's queue for the next one, and refused ones never reach this code.
function armFilter(listener) {
  engine.acceptWhen(
    listener,
    GREETING,
    { reply: REPLY, timeout, maxBytes },
    {
      success(line, sock) {
        const tally = new Tally();
        tally.tick();
        armFilter(listener);
        if (line === GREETING) {
          tally.decide('good');
          serveGood(sock, tally);
        } else {
          tally.decide('rejected');
          rejectInJs(sock, tally);
        }
      },
      failure(err) {
        otherCallback();
        if (err.code !== 'ECANCELED' && err.code !== 'EBADF') armFilter(listener);
      },
    },
  );
}

/** The plain server's rejection: the reply written from JavaScript, then the close. */
function rejectInJs(sock, tally) {
  const close = () => {
    tally.tick();
    engine.close(sock);
  };
  engine.write(sock, REPLY, { success: close, failure: close });
}

// plain: one accept armed at a time, re-armed from its callback; each connection's first line
// read with expectLine, under the same timeout and line limit as the filter.
function armPlain(listener) {
  engine.accept(listener, {
    success(sock) {
      const tally = new Tally();
      tally.tick();
      armPlain(listener);
      engine.expectLine(
        sock,
        GREETING,
        { maxBytes },
        new Callback({
          timeout,
          success() {
            tally.tick();
            tally.decide('good');
            serveGood(sock, tally);
          },
          failure() {
            tally.tick();
            tally.decide('rejected');
            rejectInJs(sock, tally);
          },
        }),
      );
    },
    failure(err) {
      otherCallback();
      if (err.code !== 'ECANCELED' && err.code !== 'EBADF') armPlain(listener);
    },
  });
}

// net: node:net with the same rules, framing by hand on 'data' events (not counted: node:net's
// callbacks are its own event machinery, not engine callbacks).
function serveNet() {
  const server = net.createServer({ noDelay: true }, (s) => {
    let buf = '';
    let good = false;
    s.setEncoding('latin1');
    const refuse = () => {
      clearTimeout(timer);
      counts.rejected++;
      s.removeAllListeners('data');
      s.end(REPLY);
    };
    const timer = setTimeout(refuse, timeout);
    s.on('error', () => {});
    s.on('close', () => clearTimeout(timer));
    s.on('data', (chunk) => {
      buf += chunk;
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) {
          if (buf.length > maxBytes + 1) refuse();
          return;
        }
        const line = buf.slice(0, buf[nl - 1] === '\r' ? nl - 1 : nl);
        buf = buf.slice(nl + 1);
        if (!good) {
          if (line.length > maxBytes || line !== GREETING) {
            refuse();
            return;
          }
          clearTimeout(timer);
          good = true;
          counts.good++;
          s.write('OK\r\n');
        } else if (line.startsWith('PING ')) {
          counts.pings++;
          s.write(`PONG ${line.slice(5)}\r\n`);
        } else {
          s.end();
          return;
        }
      }
    });
  });
  server.listen({ host, port, backlog: 4096 });
}

// The control port: any line in, the counters out.
const control = net.createServer((s) => {
  s.setEncoding('utf8');
  s.on('error', () => {});
  s.on('data', () => s.write(`${JSON.stringify({ ...counts, engine: stats() })}\n`));
});
control.listen({ host: '127.0.0.1', port: 0 }, () => {
  console.log(`control ${control.address().port}`);
});

const stop = () => {
  control.close();
  if (engine) engine.shutdown().finally(() => process.exit(0));
  else process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
