// The TLS handshake as a stage of the accept and connect chains: each chain on a TLS listener
// or with `address.tls` runs [accept | connect, handshake, the rest], its first Callback getting
// the socket once the handshake is done; a handshake that fails there closes the connection and
// the later stage gets no socket. The handshake's own timeout (`handshakeTimeout`) on a
// listener, a client and startTls, else the chain's `timeout`: ETIMEDOUT, the connection closed.
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Callback, type Socket } from 'async-engine';
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
  tcpPair,
  withDeadline,
} from './helpers/harness.js';
import test from 'ava';
import {
  DEFAULT_SERVER_HANDSHAKE_TIMEOUT,
  checkTlsClient,
  checkTlsServer,
  handshakeTimeoutOf,
} from '../src/engine/tls.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

/** A node:tls client of `port`: what it receives, and a promise of its end or close. */
function tlsClient(
  engine: Engine,
  port: number,
): {
  client: tls.TLSSocket;
  waitFor: (n: number) => Promise<Buffer>;
  closed: Promise<void>;
} {
  const { self } = testCerts();
  const client = tls.connect({ host: '127.0.0.1', port, ca: self.cert, servername: 'localhost' });
  onCleanup(engine, () => void client.destroy());
  client.on('error', () => {});
  const chunks: Buffer[] = [];
  const closed = deferred<void>();
  client.on('close', () => closed.resolve());
  client.on('data', (b: Buffer) => chunks.push(b));
  const waitFor = (n: number): Promise<Buffer> =>
    withDeadline(
      new Promise<Buffer>((resolve) => {
        const check = (): void => {
          const all = Buffer.concat(chunks);
          if (all.length >= n) {
            client.off('data', check);
            resolve(all);
          }
        };
        client.on('data', check);
        check();
      }),
      15_000,
      `${n} bytes at the node:tls client`,
    );
  return { client, waitFor, closed: closed.promise };
}

/** A node:tls server: its connections' received bytes and the sockets, to answer on. */
async function tlsServer(engine: Engine): Promise<{ port: number; next: Promise<tls.TLSSocket> }> {
  const { self } = testCerts();
  const next = deferred<tls.TLSSocket>();
  const server = tls.createServer({ key: self.key, cert: self.cert }, (s) => {
    s.on('error', () => {});
    next.resolve(s);
  });
  const sockets: net.Socket[] = [];
  server.on('connection', (s: net.Socket) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(engine, async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, next: next.promise };
}

const selfListener = (engine: Engine, extra: object = {}) => {
  const { self } = testCerts();
  return engine.listen({ port: 0, tls: { key: self.key, cert: self.cert, ...extra } });
};

const clientTls = (extra: object = {}) => ({
  ca: testCerts().self.cert,
  servername: 'localhost',
  ...extra,
});

forEachImpl(
  'acceptThenWrite on a TLS listener: the socket after the handshake',
  async (t, engine) => {
    const listener = selfListener(engine);
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<number>({}, 'written');
    engine.acceptThenWrite(listener, 'hello over tls\r\n', { timeout: 10_000 }, [s1.cb, s2.cb]);
    const peer = tlsClient(engine, portOf(listener));
    const sock = await expectOk(t, s1);
    t.true(sock.encrypted, 'cbSocket gets the socket once the handshake is done');
    t.is(await expectOk(t, s2), 16);
    t.is((await peer.waitFor(16)).toString(), 'hello over tls\r\n');
    engine.close(sock);
    engine.close(listener);
  },
);

forEachImpl(
  'acceptThenExpectLine on a TLS listener reads the line through TLS',
  async (t, engine) => {
    const listener = selfListener(engine);
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'line');
    engine.acceptThenExpectLine(listener, /^EHLO /, { timeout: 10_000 }, [s1.cb, s2.cb]);
    const peer = tlsClient(engine, portOf(listener));
    peer.client.write('EHLO me\r\nQUIT\r\n');
    const sock = await expectOk(t, s1);
    t.true(sock.encrypted);
    t.is(await expectOk(t, s2), 'EHLO me');
    t.is(await engine.promises.expectLine(sock, 'QUIT'), 'QUIT', 'the rest stays buffered');
    engine.close(sock);
    engine.close(listener);
  },
);

forEachImpl('acceptThenExpectMultilineRegex on a TLS listener', async (t, engine) => {
  const listener = selfListener(engine);
  const s1 = once<Socket>({}, 'socket');
  const s2 = once<{ data: Buffer; match: RegExpExecArray }>({}, 'match');
  engine.acceptThenExpectMultilineRegex(listener, /^END$/m, { timeout: 10_000 }, [s1.cb, s2.cb]);
  const peer = tlsClient(engine, portOf(listener));
  peer.client.write('a\r\nb\r\n');
  setTimeout(() => peer.client.write('END\r\n'), 20);
  const sock = await expectOk(t, s1);
  const m = await expectOk(t, s2);
  t.is(m.data.toString(), 'a\r\nb\r\nEND');
  t.is(m.match[0], 'END');
  engine.close(sock);
  engine.close(listener);
});

forEachImpl(
  'connectThenExpectLine and connectThenWriteLine with address.tls',
  async (t, engine) => {
    const server = await tlsServer(engine);
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'greeting');
    const address = { host: '127.0.0.1', port: server.port, tls: clientTls() };
    engine.connectThenExpectLine(address, /^220 /, { timeout: 10_000 }, [s1.cb, s2.cb]);
    const peer = await withDeadline(server.next, 10_000, 'the node:tls server connection');
    peer.write('220 hi\r\n');
    const sock = await expectOk(t, s1);
    t.true(sock.encrypted);
    t.is(await expectOk(t, s2), '220 hi');
    engine.close(sock);

    const server2 = await tlsServer(engine);
    const w1 = once<Socket>({}, 'socket');
    const w2 = once<number>({}, 'written');
    engine.connectThenWriteLine(
      { host: '127.0.0.1', port: server2.port, tls: clientTls() },
      'PING',
      [w1.cb, w2.cb],
    );
    const peer2 = await withDeadline(server2.next, 10_000, 'the node:tls server connection');
    const got = new Promise<string>((r) => peer2.once('data', (b: Buffer) => r(b.toString())));
    const sock2 = await expectOk(t, w1);
    t.true(sock2.encrypted);
    t.is(await expectOk(t, w2), 6);
    t.is(await withDeadline(got, 10_000, 'PING at the server'), 'PING\r\n');
    engine.close(sock2);
  },
);

forEachImpl('the promise chains take TLS the same way', async (t, engine) => {
  const p = engine.promises;
  const listener = selfListener(engine);
  const accepted = p.acceptThenExpectLine(listener, null, { timeout: 10_000 });
  const peer = tlsClient(engine, portOf(listener));
  peer.client.write('over tls\n');
  const { value, socket } = await accepted;
  t.is(value, 'over tls');
  t.true((socket as Socket).encrypted);
  // The engine is its own peer: connectThenWriteLine with tls to its own TLS listener.
  const acc = p.accept(listener);
  const client = await p.connectThenWriteLine(
    { host: '127.0.0.1', port: portOf(listener), tls: clientTls() },
    'to myself',
  );
  const server = await acc;
  t.true(client.socket.encrypted && server.encrypted);
  t.is(await p.expectLine(server, null), 'to myself');
  engine.close(client.socket);
  engine.close(server);
  engine.close(socket as Socket);
  engine.close(listener);
});

forEachImpl(
  'a handshake that fails in a chain: cbSocket fails, the connection is closed, the later stage gets no socket',
  async (t, engine) => {
    const listener = selfListener(engine);
    const s1 = once<Socket>({}, 'socket');
    const later = deferred<{ code: string | undefined; io: unknown }>();
    const s2 = new Callback<string>({
      success: () => later.resolve({ code: 'success', io: undefined }),
      failure: (e, io) => later.resolve({ code: (e as { code?: string }).code, io }),
    });
    engine.acceptThenExpectLine(listener, null, { timeout: 10_000 }, [s1.cb, s2]);
    // Plaintext to a TLS listener.
    const c = net.connect(portOf(listener), '127.0.0.1');
    onCleanup(engine, () => void c.destroy());
    c.on('error', () => {});
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    c.write('EHLO plaintext\r\n');
    await expectErr(t, s1, 'EPROTO');
    const l = await withDeadline(later.promise, 10_000, 'the later stage to settle');
    t.is(l.code, 'ERR_ABORTED');
    t.is(l.io, undefined, 'the later stage is not handed the closed socket');
    await withDeadline(closed, 10_000, 'the plaintext peer to see the connection closed');
    engine.close(listener);
  },
);

forEachImpl(
  'handshakeTimeout on a listener: a peer that connects and sends nothing fails the accept with ETIMEDOUT, closed',
  async (t, engine) => {
    const listener = selfListener(engine, { handshakeTimeout: 150 });
    const a = once<Socket>({}, 'accept');
    // The accept's own timeout is far off: the handshake's bounds the handshake.
    engine.accept(listener, { timeout: 30_000 }, a.cb);
    const c = net.connect(portOf(listener), '127.0.0.1');
    onCleanup(engine, () => void c.destroy());
    c.on('error', () => {});
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    const err = await expectErr(t, a, 'ETIMEDOUT', 10_000);
    t.truthy(err.message);
    await withDeadline(closed, 10_000, 'the silent peer to see the connection closed');
    // The same in a chain, both Callbacks settled once.
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<number>({}, 'written');
    engine.acceptThenWrite(listener, 'x', { timeout: 30_000 }, [s1.cb, s2.cb]);
    const c2 = net.connect(portOf(listener), '127.0.0.1');
    onCleanup(engine, () => void c2.destroy());
    c2.on('error', () => {});
    const closed2 = new Promise<void>((r) => c2.on('close', () => r()));
    await expectErr(t, s1, 'ETIMEDOUT', 10_000);
    await expectErr(t, s2, 'ERR_ABORTED');
    await withDeadline(closed2, 10_000, 'the second silent peer to see the connection closed');
    engine.close(listener);
  },
);

forEachImpl(
  "no handshakeTimeout: the chain's timeout bounds the handshake stage",
  async (t, engine) => {
    const listener = selfListener(engine);
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'line');
    engine.acceptThenExpectLine(listener, null, { timeout: 150 }, [s1.cb, s2.cb]);
    const c = net.connect(portOf(listener), '127.0.0.1');
    onCleanup(engine, () => void c.destroy());
    c.on('error', () => {});
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    // The accept is quick; the handshake is what runs out of time.
    await expectErr(t, s1, 'ETIMEDOUT', 10_000);
    await expectErr(t, s2, 'ERR_ABORTED');
    await withDeadline(closed, 10_000, 'the silent peer to see the connection closed');
    engine.close(listener);
  },
);

forEachImpl(
  'handshakeTimeout on a client: a server that accepts and never answers fails the connect with ETIMEDOUT, closed',
  async (t, engine) => {
    const conns: net.Socket[] = [];
    const closedAtServer: Promise<void>[] = [];
    const server = net.createServer((s) => {
      conns.push(s);
      s.on('error', () => {});
      s.resume(); // reads (and drops) the ClientHello, so it sees the end
      closedAtServer.push(new Promise<void>((r) => s.on('close', () => r())));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(engine, async () => {
      for (const s of conns) s.destroy();
      await new Promise((r) => server.close(r));
    });
    const port = (server.address() as net.AddressInfo).port;
    const c = once<Socket>({}, 'connect');
    engine.connect(
      { host: '127.0.0.1', port, tls: clientTls({ handshakeTimeout: 150 }) },
      { timeout: 30_000 },
      c.cb,
    );
    await expectErr(t, c, 'ETIMEDOUT', 10_000);
    t.is(conns.length, 1);
    await withDeadline(closedAtServer[0]!, 10_000, 'the server to see the connection closed');
    // The connect chains, the same.
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'greeting');
    engine.connectThenExpectLine(
      { host: '127.0.0.1', port, tls: clientTls({ handshakeTimeout: 150 }) },
      null,
      { timeout: 30_000 },
      [s1.cb, s2.cb],
    );
    await expectErr(t, s1, 'ETIMEDOUT', 10_000);
    await expectErr(t, s2, 'ERR_ABORTED');
    await withDeadline(closedAtServer[1]!, 10_000, 'the server to see the second one closed');
  },
);

forEachImpl(
  'handshakeTimeout on startTls: ETIMEDOUT, the socket left open to its owner',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    const up = once<Socket>({}, 'startTls');
    engine.startTls(
      pair.sock,
      clientTls({ servername: 'localhost', handshakeTimeout: 150 }),
      {
        timeout: 30_000,
      },
      up.cb,
    );
    await expectErr(t, up, 'ETIMEDOUT', 10_000);
    t.false(pair.sock.encrypted);
    engine.close(pair.sock);
  },
);

forEachImpl(
  'handshakeTimeout: 0 is no deadline for the handshake, bad values throw',
  async (t, engine) => {
    const listener = selfListener(engine, { handshakeTimeout: 0 });
    const a = once<Socket>({}, 'accept');
    engine.accept(listener, a.cb);
    const peer = tlsClient(engine, portOf(listener));
    const sock = await expectOk(t, a);
    t.true(sock.encrypted);
    t.is(await engine.promises.write(sock, 'x'), 1);
    t.is((await peer.waitFor(1)).toString(), 'x');
    engine.close(sock);
    engine.close(listener);
    const { self } = testCerts();
    for (const bad of [-1, Number.NaN, Infinity]) {
      t.throws(() => engine.listen({ port: 0, tls: { ...self, handshakeTimeout: bad } }), {
        code: 'ERR_OUT_OF_RANGE',
      });
    }
    t.throws(() => engine.listen({ port: 0, tls: { ...self, handshakeTimeout: '1' as never } }), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(
      () =>
        engine.connect(
          { host: '127.0.0.1', port: 1, tls: { handshakeTimeout: -5 } },
          once<Socket>().cb,
        ),
      { code: 'ERR_OUT_OF_RANGE', message: /address\.tls\.handshakeTimeout/ },
    );
    const pair = await tcpPair(engine);
    t.throws(
      () => engine.startTls(pair.sock, { handshakeTimeout: null as never }, once<Socket>().cb),
      {
        code: 'ERR_INVALID_ARG_TYPE',
        message: /options\.handshakeTimeout/,
      },
    );
    engine.close(pair.sock);
  },
);

forEachImpl(
  'cancel and AbortSignal reach the handshake stage of a chain: the connection is closed',
  async (t, engine) => {
    const listener = selfListener(engine);
    const silent = (): Promise<void> => {
      const c = net.connect(portOf(listener), '127.0.0.1');
      onCleanup(engine, () => void c.destroy());
      c.on('error', () => {});
      c.resume();
      return new Promise<void>((r) => c.on('close', () => r()));
    };
    // cancel() on the first Callback while the handshake waits for a ClientHello.
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'line');
    engine.acceptThenExpectLine(listener, null, [s1.cb, s2.cb]);
    const closed = silent();
    // The accept completes at once; the handshake then waits for a ClientHello.
    await sleep(100);
    t.true(s1.cancel());
    await expectErr(t, s1, 'ECANCELED');
    await expectErr(t, s2, 'ECANCELED');
    await withDeadline(closed, 10_000, 'the silent peer to see the connection closed');
    // An AbortSignal on the Promise form: AbortError, no socket handed over.
    const ac = new AbortController();
    const r = engine.promises.acceptThenWrite(listener, 'x', { signal: ac.signal });
    const closed2 = silent();
    await sleep(100);
    ac.abort();
    const err = (await t.throwsAsync(r)) as Error & { socket?: unknown };
    t.is(err.name, 'AbortError');
    t.is(err.socket, undefined);
    await withDeadline(closed2, 10_000, 'the second silent peer to see the connection closed');
    engine.close(listener);
  },
);

forEachImpl(
  'a promise chain whose handshake fails rejects with its code and no socket',
  async (t, engine) => {
    const listener = selfListener(engine);
    const r = engine.promises.acceptThenExpectLine(listener, null, { timeout: 10_000 });
    const c = net.connect(portOf(listener), '127.0.0.1');
    onCleanup(engine, () => void c.destroy());
    c.on('error', () => {});
    c.write('GET / HTTP/1.1\r\n\r\n');
    const err = (await t.throwsAsync(r)) as Error & { code?: string; socket?: unknown };
    t.is(err.code, 'EPROTO');
    t.is(err.socket, undefined);
    engine.close(listener);
  },
);

forEachImpl(
  'close(listener) cancels an accept that is in its handshake: ECANCELED, the connection closed',
  async (t, engine) => {
    const listener = selfListener(engine);
    const a = once<Socket>({}, 'accept');
    engine.accept(listener, a.cb);
    const s1 = once<Socket>({}, 'socket');
    const s2 = once<string>({}, 'line');
    engine.acceptThenExpectLine(listener, null, [s1.cb, s2.cb]);
    // Two peers that start a TLS record and never finish it: OpenSSL waits for the rest.
    const peers = [0, 1].map(() => {
      const c = net.connect(portOf(listener), '127.0.0.1');
      onCleanup(engine, () => void c.destroy());
      c.on('error', () => {});
      c.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]));
      return new Promise<void>((r) => c.on('close', () => r()));
    });
    // Both accepts have taken their connection and wait in the handshake.
    await withDeadline(
      (async () => {
        while (engine.stats().sockets < 2) await sleep(5);
      })(),
      10_000,
      'both connections to be accepted',
    );
    engine.close(listener);
    await expectErr(t, a, 'ECANCELED', 10_000);
    await expectErr(t, s1, 'ECANCELED', 10_000);
    await expectErr(t, s2, 'ECANCELED', 10_000);
    await withDeadline(Promise.all(peers), 10_000, 'the peers to see their connections closed');
    t.is(engine.stats().sockets, 0);
  },
);

test('a server handshake with no deadline of its own nor the op’s has node:tls’s 120 s', (t) => {
  const { self } = testCerts();
  const server = checkTlsServer({ key: self.key, cert: self.cert }, 'tls');
  t.is(handshakeTimeoutOf(server, 0), DEFAULT_SERVER_HANDSHAKE_TIMEOUT);
  t.is(DEFAULT_SERVER_HANDSHAKE_TIMEOUT, 120_000);
  t.is(handshakeTimeoutOf(server, 500), 500, "the op's timeout when it has one");
  const none = checkTlsServer({ key: self.key, cert: self.cert, handshakeTimeout: 0 }, 'tls');
  t.is(handshakeTimeoutOf(none, 0), 0, 'handshakeTimeout: 0 is no deadline');
  const client = checkTlsClient({}, 'tls', 'localhost');
  t.is(handshakeTimeoutOf(client, 0), 0, 'a client has none, as node:tls clients');
});
