// TLS against peers that misbehave or leave: plaintext sent to a TLS listener, a stream cut in
// the middle of a record, a handshake that never finishes (its timeout), close() during a
// handshake, renegotiation asked for; and close_notify sent by close(). No fd leaks.
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Engine,
  deferred,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  sleep,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

/** Listens on 127.0.0.1:0; the server and every connection it took go when the test ends. */
async function served(
  engine: Engine,
  server: net.Server,
  extra: net.Socket[] = [],
): Promise<number> {
  const conns = new Set<net.Socket>();
  server.on('connection', (c: net.Socket) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
  });
  server.on('secureConnection', (c: net.Socket) => void conns.add(c));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(engine, () => {
    for (const c of conns) c.destroy();
    for (const c of extra) c.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

function tlsListener(engine: Engine) {
  const { leaf } = testCerts();
  return engine.listen({ port: 0, tls: leaf });
}

function rawClient(engine: Engine, port: number): net.Socket {
  const c = net.connect({ host: '127.0.0.1', port });
  c.on('error', () => {});
  onCleanup(engine, () => void c.destroy());
  return c;
}

forEachImpl(
  'plaintext sent to a TLS listener fails the handshake with EPROTO and closes that connection',
  async (t, engine) => {
    const listener = tlsListener(engine);
    const acc = once<Socket>();
    engine.accept(listener, acc.cb);
    const c = rawClient(engine, portOf(listener));
    const closed = deferred<void>();
    c.on('close', () => closed.resolve());
    c.resume();
    c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const err = await expectErr(t, acc, 'EPROTO');
    t.regex(err.message, /^TLS: /);
    await withDeadline(closed.promise, 5_000, 'the connection to be closed');
    t.is(engine.stats().sockets, 0, 'the failed connection is closed');
    engine.close(listener);
  },
);

forEachImpl(
  'a peer that never speaks: the handshake stage times out with ETIMEDOUT',
  async (t, engine) => {
    const listener = tlsListener(engine);
    const acc = once<Socket>({ timeout: 300 });
    engine.accept(listener, acc.cb);
    rawClient(engine, portOf(listener));
    await expectErr(t, acc, 'ETIMEDOUT');
    t.is(engine.stats().sockets, 0);
    // A client whose server never answers the ClientHello.
    const silent = net.createServer((s) => void s.on('error', () => {}));
    const silentPort = await served(engine, silent);
    const conn = once<Socket>({ timeout: 300 });
    engine.connect({ host: '127.0.0.1', port: silentPort, tls: {} }, conn.cb);
    await expectErr(t, conn, 'ETIMEDOUT');
    t.is(engine.stats().sockets, 0);
    engine.close(listener);
  },
);

forEachImpl('close() during a handshake settles it once with ECANCELED', async (t, engine) => {
  const server = net.createServer((s) => void s.on('error', () => {}));
  const serverPort = await served(engine, server);
  const conn = once<Socket>();
  engine.connect({ host: '127.0.0.1', port: serverPort }, conn.cb);
  const sock = await expectOk(t, conn);
  const up = once<Socket>();
  engine.startTls(sock, { ca: testCerts().ca }, up.cb);
  await sleep(20);
  engine.close(sock);
  await expectErr(t, up, 'ECANCELED');
  await sleep(20);
  t.is(up.calls.length, 1);
});

forEachImpl(
  'a stream cut in the middle of a record: the read fails with ERR_INCOMPLETE, no hang',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    // A proxy that forwards the server's first flights, then some of a record, then ends.
    const server = tls.createServer({ key: leaf.key, cert: leaf.cert }, (s) => {
      s.on('error', () => {});
      s.write(Buffer.alloc(4000, 'a'));
    });
    const outbounds: net.Socket[] = [];
    const serverPort = await served(engine, server);
    const cut = net.createServer((inbound) => {
      inbound.on('error', () => {});
      const outbound = net.connect(serverPort, '127.0.0.1');
      outbounds.push(outbound);
      outbound.on('error', () => {});
      inbound.pipe(outbound);
      let total = 0;
      outbound.on('data', (d: Buffer) => {
        total += d.length;
        // The 4000-byte record comes after the handshake: pass half of it, then end.
        if (total > 3000) {
          inbound.end(d.subarray(0, d.length - 2500));
          outbound.destroy();
          return;
        }
        inbound.write(d);
      });
    });
    const cutPort = await served(engine, cut, outbounds);
    const conn = once<Socket>();
    engine.connect({ host: '127.0.0.1', port: cutPort, tls: { ca } }, conn.cb);
    const sock = await expectOk(t, conn);
    const r = once<Buffer>();
    engine.readExactly(sock, 4000, r.cb);
    await expectErr(t, r, 'ERR_INCOMPLETE');
    engine.close(sock);
  },
);

forEachImpl('renegotiation asked for by a TLS 1.2 client is refused', async (t, engine) => {
  const { leaf, ca } = testCerts();
  const listener = engine.listen({ port: 0, tls: leaf });
  const acc = once<Socket>();
  engine.accept(listener, acc.cb);
  const c = tls.connect({ host: '127.0.0.1', port: portOf(listener), ca, maxVersion: 'TLSv1.2' });
  c.on('error', () => {});
  onCleanup(engine, () => void c.destroy());
  await withDeadline(new Promise((r) => c.once('secureConnect', r)), 10_000, 'handshake');
  const sock = await expectOk(t, acc);
  const refused = deferred<Error>();
  c.removeAllListeners('error');
  c.on('error', (e) => refused.resolve(e));
  c.renegotiate({ rejectUnauthorized: false }, () => {});
  c.write('after\n');
  const l = once<string>();
  engine.expectLine(sock, null, l.cb);
  const err = await withDeadline(refused.promise, 10_000, 'the client to see the refusal');
  t.regex(err.message, /no renegotiation/, 'the server answered with a no_renegotiation alert');
  await l.result();
  engine.close(sock);
  engine.close(listener);
});

forEachImpl('close() sends close_notify after the last record', async (t, engine) => {
  const { leaf, ca } = testCerts();
  // TLS 1.2, where an alert record shows its type (21) in the clear.
  const server = tls.createServer(
    { key: leaf.key, cert: leaf.cert, maxVersion: 'TLSv1.2' },
    (s) => {
      s.on('error', () => {});
      s.resume();
    },
  );
  const outbounds: net.Socket[] = [];
  const serverPort = await served(engine, server);
  const fromEngine: Buffer[] = [];
  const ended = deferred<void>();
  const proxy = net.createServer((inbound) => {
    inbound.on('error', () => {});
    const outbound = net.connect(serverPort, '127.0.0.1');
    outbounds.push(outbound);
    outbound.on('error', () => {});
    outbound.pipe(inbound);
    inbound.on('data', (d: Buffer) => {
      fromEngine.push(d);
      outbound.write(d);
    });
    inbound.on('end', () => {
      ended.resolve();
      outbound.end();
    });
  });
  const proxyPort = await served(engine, proxy, outbounds);
  const conn = once<Socket>();
  engine.connect({ host: '127.0.0.1', port: proxyPort, tls: { ca } }, conn.cb);
  const sock = await expectOk(t, conn);
  const w = once<number>();
  engine.write(sock, 'bye\n', w.cb);
  await expectOk(t, w);
  engine.close(sock);
  await withDeadline(ended.promise, 5_000, 'the engine side to end');
  // Walk the records the engine sent: the last one is an alert.
  const all = Buffer.concat(fromEngine);
  let at = 0;
  let lastType = -1;
  while (at + 5 <= all.length) {
    lastType = all[at]!;
    at += 5 + all.readUInt16BE(at + 3);
  }
  t.is(at, all.length, 'whole records');
  t.is(lastType, 21, 'the last record is an alert (close_notify)');
});
