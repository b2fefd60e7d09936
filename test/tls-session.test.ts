// Client session resumption: socket.tlsSession gives the latest session (DER, as
// tls.TLSSocket#getSession()), tls.session on a later connect resumes it (isSessionReused),
// against the engine's own TLS listener and a node:tls server, and the buffers go both ways
// between the engine and node:tls. A buffer that is no session means a full handshake, as
// node:tls does. A listener's context (and its ticket key) outlives 20 other configurations.
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

/** A node:tls server with the CA-signed leaf that greets each client with a line; its port. */
async function nodeServer(engine: Engine, maxVersion?: tls.SecureVersion): Promise<number> {
  const { leaf } = testCerts();
  const server = tls.createServer({ ...leaf, ...(maxVersion ? { maxVersion } : {}) }, (s) => {
    s.on('error', () => {});
    s.write('hi\n');
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(engine, () => void server.close());
  return (server.address() as { port: number }).port;
}

/** An engine client of `port` that reads the greeting (so TLS 1.3 tickets are in); its socket. */
async function engineClient(
  t: Parameters<Parameters<typeof forEachImpl>[1]>[0],
  engine: Engine,
  port: number,
  extra: object = {},
): Promise<Socket> {
  const { ca } = testCerts();
  const conn = once<Socket>({}, 'connect');
  engine.connect(
    { host: '127.0.0.1', port, tls: { ca, servername: 'localhost', ...extra } },
    conn.cb,
  );
  const sock = await expectOk(t, conn);
  const line = once<string>({}, 'greeting');
  engine.expectLine(sock, null, line.cb);
  t.is(await expectOk(t, line), 'hi');
  return sock;
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  forEachImpl(
    `session resumption against a node:tls server (${version}); the session works in node:tls too`,
    async (t, engine) => {
      const { ca } = testCerts();
      const port = await nodeServer(engine, version);
      const first = await engineClient(t, engine, port);
      t.is(first.tlsVersion, version);
      t.false(first.isSessionReused());
      const session = first.tlsSession;
      t.true(Buffer.isBuffer(session) && session.length > 0);
      engine.close(first);
      t.is(first.tlsSession, undefined, 'none once closed');
      const second = await engineClient(t, engine, port, { session });
      t.true(second.isSessionReused());
      t.true(second.peerCertificate()?.subject.includes('CN=localhost'));
      engine.close(second);
      // node:tls takes the engine's session buffer.
      const client = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', session });
      onCleanup(engine, () => void client.destroy());
      client.on('error', () => {});
      await withDeadline(
        new Promise((r) => client.once('secureConnect', r)),
        10_000,
        'node:tls resumption',
      );
      t.true(client.isSessionReused());
      client.destroy();
    },
  );
}

forEachImpl("the engine resumes node:tls's own session buffer", async (t, engine) => {
  const { ca } = testCerts();
  const port = await nodeServer(engine);
  const client = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  onCleanup(engine, () => void client.destroy());
  client.on('error', () => {});
  const session = await withDeadline(
    new Promise<Buffer>((r) => client.once('session', r)),
    10_000,
    'node:tls session',
  );
  client.destroy();
  const sock = await engineClient(t, engine, port, { session });
  t.true(sock.isSessionReused());
  engine.close(sock);
});

forEachImpl(
  "session resumption against the engine's own TLS listener, both sides see it",
  async (t, engine) => {
    const { leaf } = testCerts();
    const listener = engine.listen({ port: 0, tls: leaf });
    const port = portOf(listener);
    const pair = async (session?: Buffer): Promise<[Socket, Socket]> => {
      const acc = once<Socket>({}, 'accept');
      engine.accept(listener, acc.cb);
      const connect = engineClient(t, engine, port, session ? { session } : {});
      const server = await expectOk(t, acc);
      const w = once<number>({}, 'greet');
      engine.write(server, 'hi\n', w.cb);
      await expectOk(t, w);
      return [await connect, server];
    };
    const [c1, s1] = await pair();
    t.false(c1.isSessionReused());
    t.false(s1.isSessionReused());
    const session = c1.tlsSession;
    t.truthy(session);
    t.is(s1.servername, 'localhost');
    const [c2, s2] = await pair(session);
    t.true(c2.isSessionReused());
    t.true(s2.isSessionReused());
    t.is(s2.servername, 'localhost');
    // The resumed connection carries data as any other.
    const line = once<string>({}, 'line');
    engine.expectLine(s2, null, line.cb);
    engine.write(c2, 'resumed\n', () => {});
    t.is(await expectOk(t, line), 'resumed');
    for (const s of [c1, s1, c2, s2]) engine.close(s);
    engine.close(listener);
  },
);

forEachImpl(
  'a session buffer that is no session means a full handshake, as node:tls does',
  async (t, engine) => {
    const port = await nodeServer(engine);
    const sock = await engineClient(t, engine, port, { session: Buffer.from('not a session') });
    t.false(sock.isSessionReused());
    t.truthy(sock.tlsSession);
    engine.close(sock);
    const empty = await engineClient(t, engine, port, { session: Buffer.alloc(0) });
    t.false(empty.isSessionReused());
    engine.close(empty);
    // node:tls: the same buffer, the same outcome.
    const { ca } = testCerts();
    const client = tls.connect({
      host: '127.0.0.1',
      port,
      ca,
      servername: 'localhost',
      session: Buffer.from('not a session'),
    });
    onCleanup(engine, () => void client.destroy());
    client.on('error', () => {});
    await withDeadline(
      new Promise((r) => client.once('secureConnect', r)),
      10_000,
      'node:tls handshake',
    );
    t.false(client.isSessionReused());
    client.destroy();
    t.throws(
      () => engine.connect({ host: '127.0.0.1', port, tls: { session: 'abc' as never } }, () => {}),
      { code: 'ERR_INVALID_ARG_TYPE', message: /address\.tls\.session/ },
    );
  },
);

forEachImpl(
  'a resumed session is checked against the name of the connection resuming it',
  async (t, engine) => {
    const port = await nodeServer(engine);
    const first = await engineClient(t, engine, port);
    const session = first.tlsSession;
    engine.close(first);
    const { ca } = testCerts();
    const conn = once<Socket>({}, 'connect as example.com with a localhost session');
    engine.connect(
      { host: '127.0.0.1', port, tls: { ca, servername: 'example.com', session } },
      conn.cb,
    );
    await expectErr(t, conn, 'ERR_TLS_CERT_ALTNAME_INVALID');
  },
);

forEachImpl('startTls takes a session to resume', async (t, engine) => {
  const port = await nodeServer(engine);
  const first = await engineClient(t, engine, port);
  const session = first.tlsSession!;
  engine.close(first);
  const { ca } = testCerts();
  const conn = once<Socket>({}, 'plain connect');
  engine.connect({ host: '127.0.0.1', port }, conn.cb);
  const plain = await expectOk(t, conn);
  const up = once<Socket>({}, 'startTls');
  engine.startTls(plain, { ca, servername: 'localhost', session }, up.cb);
  const sock = await expectOk(t, up);
  t.true(sock.isSessionReused());
  engine.close(sock);
});

forEachImpl(
  "an open listener's context outlives 20 other TLS configurations: its tickets still resume",
  async (t, engine) => {
    const { leaf, self } = testCerts();
    const listener = engine.listen({ port: 0, tls: leaf });
    const acc1 = once<Socket>({}, 'accept 1');
    engine.accept(listener, acc1.cb);
    const connect1 = engineClient(t, engine, portOf(listener));
    const s1 = await expectOk(t, acc1);
    engine.write(s1, 'hi\n', () => {});
    const c1 = await connect1;
    const session = c1.tlsSession;
    t.truthy(session);
    engine.close(c1);
    engine.close(s1);
    // 20 listeners and 20 clients, each with a configuration of its own.
    for (let i = 0; i < 20; i++) {
      const alpn = [`p${i}`];
      const other = engine.listen({ port: 0, tls: { ...self, alpn } });
      const acc = once<Socket>({}, `accept other ${i}`);
      engine.accept(other, acc.cb);
      const conn = once<Socket>({}, `connect other ${i}`);
      engine.connect(
        { host: '127.0.0.1', port: portOf(other), tls: { ca: self.cert, alpn } },
        conn.cb,
      );
      const c = await expectOk(t, conn);
      const s = await expectOk(t, acc);
      t.is(c.alpnProtocol, alpn[0]);
      engine.close(c);
      engine.close(s);
      engine.close(other);
    }
    const acc2 = once<Socket>({}, 'accept 2');
    engine.accept(listener, acc2.cb);
    const connect2 = engineClient(t, engine, portOf(listener), { session });
    const s2 = await expectOk(t, acc2);
    engine.write(s2, 'hi\n', () => {});
    const c2 = await connect2;
    t.true(c2.isSessionReused());
    t.true(s2.isSessionReused());
    engine.close(c2);
    engine.close(s2);
    engine.close(listener);
  },
);
