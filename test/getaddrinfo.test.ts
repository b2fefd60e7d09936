// getaddrinfo and getaddrinfoThenConnect: localhost and numeric hosts, a name that does not
// resolve, and the chain's stages.
import net from 'node:net';
import { EngineError, type AddrInfo, type Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  netServer,
  once,
  portOf,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

/** A name that cannot resolve: the .invalid TLD is reserved (RFC 2606). */
const badName = 'no-such-host.invalid';

forEachImpl('getaddrinfo("localhost") gives loopback addresses', async (t, engine) => {
  const r = once<AddrInfo[]>();
  engine.getaddrinfo('localhost', 80, r.cb);
  const addrs = await expectOk(t, r);
  t.true(Array.isArray(addrs) && addrs.length > 0);
  for (const a of addrs) {
    t.true(a.family === 4 || a.family === 6, `family ${a.family}`);
    t.is(net.isIP(a.address), a.family, `${a.address} is an IPv${a.family} address`);
  }
  t.true(
    addrs.some((a) => a.address === '127.0.0.1' || a.address === '::1'),
    JSON.stringify(addrs),
  );
});

forEachImpl('getaddrinfo of numeric hosts returns them as they are', async (t, engine) => {
  const v4 = once<AddrInfo[]>();
  const v6 = once<AddrInfo[]>();
  engine.getaddrinfo('127.0.0.1', 0, v4.cb);
  engine.getaddrinfo('::1', 0, v6.cb);
  t.deepEqual(await expectOk(t, v4), [{ address: '127.0.0.1', family: 4 }]);
  t.deepEqual(await expectOk(t, v6), [{ address: '::1', family: 6 }]);
});

forEachImpl(
  'getaddrinfo of a name that does not resolve fails ENOTFOUND / EAI_*',
  async (t, engine) => {
    const r = once<AddrInfo[]>();
    engine.getaddrinfo(badName, 80, r.cb);
    const o = await r.result(30_000);
    t.false(o.ok, `resolved to ${JSON.stringify(o.value)}`);
    t.true(o.err instanceof EngineError);
    t.regex(o.err?.code ?? '', /^(ENOTFOUND|EAI_[A-Z]+)$/);
  },
);

forEachImpl('many lookups at once all settle', async (t, engine) => {
  const trs = Array.from({ length: 50 }, (_, i) => {
    const r = once<AddrInfo[]>();
    engine.getaddrinfo(i % 5 === 0 ? badName : 'localhost', 80, r.cb);
    return r;
  });
  const outcomes = await Promise.all(trs.map((r) => r.result(30_000)));
  t.is(outcomes.filter((o, i) => o.ok === (i % 5 !== 0)).length, 50);
});

forEachImpl('a getaddrinfo can be cancelled', async (t, engine) => {
  const r = once<AddrInfo[]>();
  engine.getaddrinfo('localhost', 80, r.cb);
  const won = r.cancel();
  const o = await r.result();
  if (won) t.is(o.err?.code, 'ECANCELED');
  else t.true(o.ok, 'a lost cancel leaves the real outcome');
});

forEachImpl(
  'getaddrinfoThenConnect("localhost"): addresses, then a connected socket',
  async (t, engine) => {
    // A dual-stack node server, so whichever loopback address comes first is answered.
    const srv = await netServer(engine, { host: '::' });
    const a = once<AddrInfo[]>();
    const s = once<Socket>();
    engine.getaddrinfoThenConnect('localhost', srv.port, [a.cb, s.cb]);
    const addrs = await expectOk(t, a);
    t.true(addrs.length > 0);
    const sock = await expectOk(t, s);
    t.is(sock.remotePort, srv.port);
    t.true(
      addrs.some(
        (x) => x.address === sock.remoteAddress || `::ffff:${x.address}` === sock.remoteAddress,
      ),
    );
    const peer = await srv.nextConnection();
    const w = once<number>();
    engine.write(sock, 'hi\n', w.cb);
    await expectOk(t, w);
    t.is((await peer.waitForBytes(3)).toString(), 'hi\n');
  },
);

forEachImpl('getaddrinfoThenConnect to an engine listener on 127.0.0.1', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const a = once<AddrInfo[]>();
  const s = once<Socket>();
  engine.getaddrinfoThenConnect('127.0.0.1', portOf(l), [a.cb, s.cb]);
  await expectOk(t, a);
  const sock = await expectOk(t, s);
  const server = await expectOk(t, acc);
  t.is(server.remotePort, sock.localPort);
});

forEachImpl(
  'getaddrinfoThenConnect: unresolvable name aborts the connect stage',
  async (t, engine) => {
    const a = once<AddrInfo[]>();
    const s = once<Socket>();
    engine.getaddrinfoThenConnect(badName, 80, [a.cb, s.cb]);
    const first = await a.result(30_000);
    t.false(first.ok);
    const err = await expectErr(t, s, 'ERR_ABORTED', 30_000);
    t.true(err.cause instanceof EngineError);
    t.is<string, string>((err.cause as EngineError).code, first.err?.code ?? 'missing');
  },
);

forEachImpl(
  'getaddrinfoThenConnect: refused connect fails the second stage only',
  async (t, engine) => {
    const tmp = net.createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    const port = (tmp.address() as net.AddressInfo).port;
    await new Promise<void>((r) => tmp.close(() => r()));
    const a = once<AddrInfo[]>();
    const s = once<Socket>();
    engine.getaddrinfoThenConnect('127.0.0.1', port, [a.cb, s.cb]);
    t.deepEqual(await expectOk(t, a), [{ address: '127.0.0.1', family: 4 }]);
    await expectErr(t, s, 'ECONNREFUSED');
  },
);

forEachImpl('connect({ host: name }) resolves the name, then connects', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const con = once<Socket>();
  engine.connect({ host: 'localhost', port: portOf(l) }, con.cb);
  const sock = await expectOk(t, con);
  t.is(sock.remotePort, portOf(l));
  await expectOk(t, acc);

  const bad = once<Socket>();
  engine.connect({ host: badName, port: 80 }, bad.cb);
  const o = await bad.result(30_000);
  t.false(o.ok);
  t.regex(o.err?.code ?? '', /^(ENOTFOUND|EAI_[A-Z]+)$/);
});
