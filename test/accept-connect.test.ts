// accept / connect / listen / adopt: TCP over IPv4 and IPv6 loopback, Unix paths, bind and
// connect errors, listener and socket addresses.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Callback, EngineError, type Listener, type Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  netServer,
  once,
  portOf,
  tempDir,
  onCleanup,
  withDeadline,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

/** Connects on the engine and accepts on the engine; returns both ends. */
async function enginePair(
  t: Ctx,
  engine: Engine,
  listener: Listener,
  to: { host: string; port: number } | { path: string },
): Promise<{ accepted: Socket; connected: Socket }> {
  const acc = once<Socket>({}, 'accept');
  const con = once<Socket>({}, 'connect');
  engine.accept(listener, acc.cb);
  engine.connect(to, con.cb);
  const accepted = await expectOk(t, acc);
  const connected = await expectOk(t, con);
  return { accepted, connected };
}

/** Sends a line from one engine socket to the other and checks it arrives. */
async function roundTrip(t: Ctx, engine: Engine, from: Socket, to: Socket, text: string) {
  const w = once<number>({}, 'write');
  const r = once<string>({}, 'expectLine');
  engine.write(from, `${text}\r\n`, w.cb);
  engine.expectLine(to, null, r.cb);
  t.is(await expectOk(t, w), Buffer.byteLength(text) + 2);
  t.is(await expectOk(t, r), text);
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound once by node, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

forEachImpl('listen on 127.0.0.1:0 reports the bound address', (t, engine) => {
  const l = engine.listen({ port: 0 });
  const a = l.address();
  t.is(typeof a, 'object');
  if (typeof a === 'string') return;
  t.is(a.address, '127.0.0.1');
  t.is(a.family, 'IPv4');
  t.true(Number.isInteger(a.port) && a.port > 0 && a.port < 65536, `port ${a.port}`);
  t.true(Number.isInteger(l.fileno()) && l.fileno() >= 0);
});

forEachImpl(
  'TCP v4: connect + accept, addresses on both ends, data both ways',
  async (t, engine) => {
    const l = engine.listen({ host: '127.0.0.1', port: 0 });
    const port = portOf(l);
    const { accepted, connected } = await enginePair(t, engine, l, { host: '127.0.0.1', port });
    t.is(connected.remoteAddress, '127.0.0.1');
    t.is(connected.remotePort, port);
    t.is(accepted.localAddress, '127.0.0.1');
    t.is(accepted.localPort, port);
    t.is(accepted.remoteAddress, '127.0.0.1');
    t.is(accepted.remotePort, connected.localPort);
    t.is(connected.localAddress, '127.0.0.1');
    t.not(accepted.fileno(), connected.fileno());
    t.false(accepted.closed);
    t.false(connected.closed);
    await roundTrip(t, engine, connected, accepted, 'client to server');
    await roundTrip(t, engine, accepted, connected, 'server to client');
  },
);

forEachImpl('TCP v6: listen and connect on ::1', async (t, engine) => {
  const l = engine.listen({ host: '::1', port: 0 });
  const a = l.address();
  if (typeof a === 'string') return t.fail('TCP listener reported a path');
  t.is(a.address, '::1');
  t.is(a.family, 'IPv6');
  const { accepted, connected } = await enginePair(t, engine, l, { host: '::1', port: a.port });
  t.is(connected.remoteAddress, '::1');
  t.is(connected.remotePort, a.port);
  t.is(accepted.remoteAddress, '::1');
  t.is(accepted.localPort, a.port);
  t.is(accepted.remotePort, connected.localPort);
  await roundTrip(t, engine, connected, accepted, 'over v6');
});

forEachImpl(
  "listen on '::' is dual-stack, as net's: an IPv4 client is accepted; ipv6Only: true refuses it",
  async (t, engine) => {
    const l = engine.listen({ host: '::', port: 0 });
    const a = l.address();
    if (typeof a === 'string') return t.fail('TCP listener reported a path');
    t.is(a.family, 'IPv6');
    const { accepted, connected } = await enginePair(t, engine, l, {
      host: '127.0.0.1',
      port: a.port,
    });
    t.is(accepted.remoteAddress, '::ffff:127.0.0.1', 'an IPv4 client, as an IPv4-mapped address');
    await roundTrip(t, engine, connected, accepted, 'v4 to a dual-stack listener');
    const only = engine.listen({ host: '::', port: 0, ipv6Only: true });
    const b = only.address();
    if (typeof b === 'string') return t.fail('TCP listener reported a path');
    const refused = once<Socket>({}, 'connect over IPv4');
    engine.connect({ host: '127.0.0.1', port: b.port }, refused.cb);
    await expectErr(t, refused, 'ECONNREFUSED');
    const v6 = await enginePair(t, engine, only, { host: '::1', port: b.port });
    await roundTrip(t, engine, v6.connected, v6.accepted, 'v6 to an IPv6-only listener');
    t.throws(() => engine.listen({ host: '::', port: 0, ipv6Only: 1 as unknown as boolean }), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_TYPE',
    });
  },
);

forEachImpl('Unix socket path: listen, connect, accept, data', async (t, engine) => {
  const p = path.join(tempDir(engine), 's.sock');
  const l = engine.listen({ path: p });
  t.is(l.address(), p);
  t.true(fs.statSync(p).isSocket());
  const { accepted, connected } = await enginePair(t, engine, l, { path: p });
  t.is(connected.localPort, undefined);
  t.is(connected.remotePort, undefined);
  t.is(accepted.localPort, undefined);
  t.is(accepted.remotePort, undefined);
  await roundTrip(t, engine, connected, accepted, 'over unix');
  await roundTrip(t, engine, accepted, connected, 'and back');
});

forEachImpl(
  'Unix socket path: a node:net client reaches the engine listener',
  async (t, engine) => {
    const p = path.join(tempDir(engine), 'n.sock');
    const l = engine.listen({ path: p });
    const acc = once<Socket>();
    engine.accept(l, acc.cb);
    const client = net.connect({ path: p });
    client.on('error', () => {});
    onCleanup(engine, () => void client.destroy());
    client.write('hello unix\n');
    const sock = await expectOk(t, acc);
    const line = once<string>();
    engine.expectLine(sock, 'hello unix', line.cb);
    t.is(await expectOk(t, line), 'hello unix');
  },
);

forEachImpl('accept a node:net client and connect to a node:net server', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const client = net.connect({ host: '127.0.0.1', port: portOf(l) });
  client.on('error', () => {});
  onCleanup(engine, () => void client.destroy());
  const connected = new Promise<void>((r) => client.once('connect', () => r()));
  const sock = await expectOk(t, acc);
  await connected;
  t.is(sock.remotePort, client.localPort);

  const srv = await netServer(engine);
  const con = once<Socket>();
  engine.connect({ host: '127.0.0.1', port: srv.port }, con.cb);
  const out = await expectOk(t, con);
  const peer = await srv.nextConnection();
  t.is(out.remotePort, srv.port);
  t.is(out.localPort, peer.client.remotePort);
  const w = once<number>();
  engine.write(out, 'to node\n', w.cb);
  t.is(await expectOk(t, w), 8);
  t.is((await peer.waitForBytes(8)).toString(), 'to node\n');
});

forEachImpl(
  'connect to a closed port fails ECONNREFUSED with errno and syscall',
  async (t, engine) => {
    const port = await closedPort();
    const con = once<Socket>();
    engine.connect({ host: '127.0.0.1', port }, con.cb);
    const err = await expectErr(t, con, 'ECONNREFUSED');
    t.is(typeof err.errno, 'number');
    t.is(typeof err.syscall, 'string');
    t.true(err instanceof Error);
  },
);

forEachImpl(
  'connect to a missing Unix path fails ENOENT; a dead socket file ECONNREFUSED',
  async (t, engine) => {
    const dir = tempDir(engine);
    const missing = once<Socket>();
    engine.connect({ path: path.join(dir, 'nothing-here.sock') }, missing.cb);
    await expectErr(t, missing, 'ENOENT');

    // A socket file whose listener is gone (if the engine leaves the file behind on close).
    const p = path.join(dir, 'dead.sock');
    const l = engine.listen({ path: p });
    engine.close(l);
    if (fs.existsSync(p)) {
      const dead = once<Socket>();
      engine.connect({ path: p }, dead.cb);
      await expectErr(t, dead, ['ECONNREFUSED', 'ENOENT']);
    } else {
      t.log('the engine unlinks the path on close: stale-socket case not applicable');
    }
  },
);

forEachImpl('listen on a port in use throws EADDRINUSE synchronously', async (t, engine) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  onCleanup(engine, () => new Promise<void>((r) => srv.close(() => r())));
  const port = (srv.address() as net.AddressInfo).port;
  const err = t.throws(() => engine.listen({ host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
  t.true(err instanceof EngineError, 'an EngineError');

  // The same between two engine listeners.
  const l = engine.listen({ port: 0 });
  t.throws(() => engine.listen({ port: portOf(l) }), { code: 'EADDRINUSE' });
  t.is(engine.stats().listeners, 1, 'the failed listen left no listener behind');
});

forEachImpl('listen on a Unix path in use throws EADDRINUSE', (t, engine) => {
  const p = path.join(tempDir(engine), 'busy.sock');
  engine.listen({ path: p });
  t.throws(() => engine.listen({ path: p }), { code: 'EADDRINUSE' });
});

forEachImpl('two accepts pending on one listener each get one connection', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const a1 = once<Socket>();
  const a2 = once<Socket>();
  engine.accept(l, a1.cb);
  engine.accept(l, a2.cb);
  const c1 = once<Socket>();
  const c2 = once<Socket>();
  engine.connect({ host: '127.0.0.1', port: portOf(l) }, c1.cb);
  engine.connect({ host: '127.0.0.1', port: portOf(l) }, c2.cb);
  const s1 = await expectOk(t, a1);
  const s2 = await expectOk(t, a2);
  const k1 = await expectOk(t, c1);
  const k2 = await expectOk(t, c2);
  t.not(s1.fileno(), s2.fileno());
  t.deepEqual(
    [s1.remotePort, s2.remotePort].sort(),
    [k1.localPort, k2.localPort].sort(),
    'each connection accepted exactly once',
  );
});

forEachImpl('backlog and reusePort options are accepted', async (t, engine) => {
  const l1 = engine.listen({ port: 0, backlog: 8, reusePort: true });
  const l2 = engine.listen({ port: portOf(l1), reusePort: true });
  t.is(portOf(l2), portOf(l1));
  t.is(engine.stats().listeners, 2);
});

forEachImpl(
  'adopt(fd): a connected socket made elsewhere becomes an engine Socket',
  async (t, engine) => {
    // A node server that never reads (pauseOnConnect): its accepted fd is handed to the engine.
    // Node keeps its (paused, never destroyed) handle object; only the engine uses the fd.
    const srv = net.createServer({ pauseOnConnect: true });
    const accepted = new Promise<net.Socket>((resolve) => srv.once('connection', resolve));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    client.on('error', () => {});
    onCleanup(engine, () => void client.destroy());
    const clientConnected = new Promise<void>((r) => client.once('connect', () => r()));
    const nodeSide = await accepted;
    await clientConnected;
    srv.close();
    const fd = (nodeSide as unknown as { _handle: { fd: number } })._handle.fd;
    t.true(fd > 2, `node exposes the fd (${fd})`);

    const sock = engine.adopt(fd);
    t.is(sock.fileno(), fd);
    t.is(sock.remotePort, client.localPort);
    t.is(sock.remoteAddress, '127.0.0.1');
    t.is(sock.localPort, client.remotePort);

    client.write('adopted?\r\n');
    const line = once<string>();
    engine.expectLine(sock, 'adopted?', line.cb);
    t.is(await expectOk(t, line), 'adopted?');

    const received = new Promise<string>((resolve) => {
      let acc = '';
      client.on('data', (b: Buffer) => {
        acc += b.toString();
        if (acc.endsWith('\n')) resolve(acc);
      });
    });
    const w = once<number>();
    engine.write(sock, 'yes\n', w.cb);
    t.is(await expectOk(t, w), 4);
    t.is(await received, 'yes\n');

    const ended = new Promise<void>((r) => client.once('end', () => r()));
    engine.close(sock);
    t.true(sock.closed);
    await withDeadline(ended, 5_000, 'the peer to see the adopted fd closed');
    t.is(engine.stats().sockets, 0);
  },
);

forEachImpl(
  "a port given as a string is a TypeError; connect's range starts at 1, listen's at 0",
  (t, engine) => {
    const cb = new Callback<Socket>({});
    const typeErr = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
    const asString = t.throws(
      () => engine.connect({ host: '127.0.0.1', port: '80' as unknown as number }, cb),
      typeErr,
    );
    t.regex(asString!.message, /"address\.port" argument must be a number/);
    t.throws(() => engine.listen({ port: '80' as unknown as number }), typeErr);
    t.throws(
      () => engine.getaddrinfo('localhost', '80' as unknown as number, new Callback({})),
      typeErr,
    );
    const zero = t.throws(() => engine.connect({ host: '127.0.0.1', port: 0 }, cb), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.regex(zero!.message, /an integer from 1 to 65535/);
    const big = t.throws(() => engine.listen({ port: 65536 }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.regex(big!.message, /an integer from 0 to 65535/);
    t.is(engine.stats().opsInFlight, 0);
  },
);

forEachImpl(
  "errors name what was asked for, as Node's do: connect's address and port, listen's, a lookup's name",
  async (t, engine) => {
    const l = engine.listen({ host: '127.0.0.1', port: 0 });
    const a = l.address();
    if (typeof a === 'string') return t.fail('TCP listener reported a path');
    engine.close(l);
    const refused = once<Socket>({}, 'connect to a closed port');
    engine.connect({ host: '127.0.0.1', port: a.port }, refused.cb);
    const e1 = await expectErr(t, refused, 'ECONNREFUSED');
    t.is(e1.message, `connect ECONNREFUSED 127.0.0.1:${a.port}`);
    t.is(e1.syscall, 'connect');
    t.is(e1.address, '127.0.0.1');
    t.is(e1.port, a.port);

    const byName = once<Socket>({}, 'connect to localhost');
    engine.connect({ host: 'localhost', port: a.port }, byName.cb);
    const e2 = await expectErr(t, byName, 'ECONNREFUSED');
    t.is(e2.message, `connect ECONNREFUSED localhost:${a.port}`);
    t.is(e2.address, 'localhost');

    const nowhere = once<Socket>({}, 'connect to a name that does not resolve');
    engine.connect({ host: 'no-such-host.invalid', port: 80 }, nowhere.cb);
    const o3 = await nowhere.result(30_000);
    t.false(o3.ok, 'a name under .invalid does not resolve');
    const e3 = o3.err as EngineError;
    t.regex(e3.code, /^(ENOTFOUND|EAI_[A-Z]+)$/);
    t.is(e3.message, `getaddrinfo ${e3.code} no-such-host.invalid`);
    t.is(e3.hostname, 'no-such-host.invalid');

    const taken = engine.listen({ host: '127.0.0.1', port: 0 });
    const tp = taken.address();
    if (typeof tp === 'string') return t.fail('TCP listener reported a path');
    const e4 = t.throws(() => engine.listen({ host: '127.0.0.1', port: tp.port }), {
      instanceOf: EngineError,
    }) as EngineError;
    t.is(e4.code, 'EADDRINUSE');
    t.is(e4.message, `bind EADDRINUSE 127.0.0.1:${tp.port}`, 'the call that refused it, bind(2)');
    t.is(e4.syscall, 'bind');
    t.is(e4.address, '127.0.0.1');
    t.is(e4.port, tp.port);
    engine.close(taken);
  },
);
