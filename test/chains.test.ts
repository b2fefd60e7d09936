// Chained ops: every chain's happy path, a failing stage aborting the later ones
// (ERR_ABORTED with cause), cancel from any stage, per-stage timeouts, and the accepted or
// connected socket staying the caller's after a later stage fails.
import net from 'node:net';
import { Callback, EngineError, type AddrInfo, type RegexResult, type Socket } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  netClient,
  netServer,
  once,
  portOf,
  sleep,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Checks the socket still works: the engine writes, the peer reads. */
async function stillOpen(
  engine: Engine,
  sock: Socket,
  peer: { waitForBytes(n: number): Promise<Buffer>; received(): Buffer },
): Promise<boolean> {
  if (sock.closed) return false;
  const before = peer.received().length;
  const w = once<number>();
  engine.write(sock, 'still here\n', w.cb);
  const o = await w.result();
  if (!o.ok) return false;
  const got = await peer.waitForBytes(before + 11);
  return got.subarray(before).toString() === 'still here\n';
}

forEachImpl(
  'acceptThenWrite: socket, then the byte count; the client gets the greeting',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const w = once<number>();
    engine.acceptThenWrite(l, '220 ready\r\n', [s.cb, w.cb]);
    const peer = await netClient(engine, { port: portOf(l) });
    const sock = await expectOk(t, s);
    t.is(await expectOk(t, w), 11);
    t.is((await w.result()).sock, sock, 'the write stage reports the accepted socket');
    t.is((await peer.waitForBytes(11)).toString(), '220 ready\r\n');
  },
);

forEachImpl('acceptThenExpectLine: socket, then the line', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s = once<Socket>();
  const line = once<string>();
  engine.acceptThenExpectLine(l, /^HELO /, [s.cb, line.cb]);
  const peer = await netClient(engine, { port: portOf(l) });
  await peer.write('HELO client.example\r\n');
  const sock = await expectOk(t, s);
  t.is(await expectOk(t, line), 'HELO client.example');
  t.is((await line.result()).sock, sock);
});

forEachImpl('acceptThenExpectMultilineRegex: socket, then { data, match }', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s = once<Socket>();
  const m = once<RegexResult>();
  engine.acceptThenExpectMultilineRegex(l, /^END$/m, [s.cb, m.cb]);
  const peer = await netClient(engine, { port: portOf(l) });
  await peer.write('a\nb\nEND\nafter\n');
  await expectOk(t, s);
  const v = await expectOk(t, m);
  t.is(v.match[0], 'END');
  t.is(v.data.toString(), 'a\nb\nEND');
});

forEachImpl('writeThenExpectLine: count, then the reply', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const peer = await netClient(engine, { port: portOf(l) });
  const sock = await expectOk(t, acc);
  const w = once<number>();
  const line = once<string>();
  engine.writeThenExpectLine(sock, 'PING\r\n', 'PONG', [w.cb, line.cb]);
  t.is(await expectOk(t, w), 6);
  t.is((await peer.waitForBytes(6)).toString(), 'PING\r\n');
  await peer.write('PONG\r\n');
  t.is(await expectOk(t, line), 'PONG');
});

forEachImpl('connectThenExpectLine: socket, then the greeting', async (t, engine) => {
  const srv = await netServer(engine);
  srv.server.on('connection', (c) => c.write('220 hello\r\n'));
  const s = once<Socket>();
  const line = once<string>();
  engine.connectThenExpectLine({ host: '127.0.0.1', port: srv.port }, /^220/, [s.cb, line.cb]);
  const sock = await expectOk(t, s);
  t.is(sock.remotePort, srv.port);
  t.is(await expectOk(t, line), '220 hello');
});

forEachImpl(
  'connectThenWriteLine: socket, then the count; \\r\\n is appended',
  async (t, engine) => {
    const srv = await netServer(engine);
    const s = once<Socket>();
    const w = once<number>();
    engine.connectThenWriteLine({ host: '127.0.0.1', port: srv.port }, 'HELLO', [s.cb, w.cb]);
    await expectOk(t, s);
    t.is(await expectOk(t, w), 7);
    const peer = await srv.nextConnection();
    t.is((await peer.waitForBytes(7)).toString(), 'HELLO\r\n');
  },
);

forEachImpl('getaddrinfoThenConnect: addresses, then the socket', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const a = once<AddrInfo[]>();
  const s = once<Socket>();
  engine.getaddrinfoThenConnect('127.0.0.1', portOf(l), [a.cb, s.cb]);
  const addrs = await expectOk(t, a);
  t.deepEqual(addrs[0], { address: '127.0.0.1', family: 4 });
  const sock = await expectOk(t, s);
  t.is(sock.remotePort, portOf(l));
});

forEachImpl('a failed connect stage aborts the next: ERR_ABORTED with cause', async (t, engine) => {
  const port = await closedPort();
  const s = once<Socket>();
  const line = once<string>();
  engine.connectThenExpectLine({ host: '127.0.0.1', port }, null, [s.cb, line.cb]);
  const first = await expectErr(t, s, 'ECONNREFUSED');
  const err = await expectErr(t, line, 'ERR_ABORTED');
  t.true(err.cause instanceof EngineError, 'cause is an EngineError');
  t.is((err.cause as EngineError).code, 'ECONNREFUSED');
  t.is((err.cause as EngineError).code, first.code);

  const s2 = once<Socket>();
  const w2 = once<number>();
  engine.connectThenWriteLine({ host: '127.0.0.1', port }, 'x', [s2.cb, w2.cb]);
  await expectErr(t, s2, 'ECONNREFUSED');
  const e2 = await expectErr(t, w2, 'ERR_ABORTED');
  t.is((e2.cause as EngineError | undefined)?.code, 'ECONNREFUSED');
});

forEachImpl('a timed-out accept stage aborts the next with cause ETIMEDOUT', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s = once<Socket>({ timeout: 50 });
  const line = once<string>();
  engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
  await expectErr(t, s, 'ETIMEDOUT', 2_000);
  const err = await expectErr(t, line, 'ERR_ABORTED');
  t.is((err.cause as EngineError | undefined)?.code, 'ETIMEDOUT');
  // the listener is still usable
  const again = once<Socket>();
  engine.accept(l, again.cb);
  await netClient(engine, { port: portOf(l) });
  await expectOk(t, again);
});

forEachImpl(
  'a mismatched line fails the last stage; the accepted socket stays open',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const line = once<string>();
    engine.acceptThenExpectLine(l, 'A', [s.cb, line.cb]);
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('B\n');
    const sock = await expectOk(t, s);
    const err = await expectErr(t, line, 'ERR_MISMATCH');
    t.is(err.line, 'B');
    t.false(sock.closed);
    t.true(await stillOpen(engine, sock, peer), 'the caller still owns a working socket');
  },
);

forEachImpl(
  'cancel on the later stage before the first finished cancels both',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const line = once<string>();
    engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
    t.true(line.cancel(), 'cancel() on the second stage wins');
    await expectErr(t, s, 'ECANCELED');
    await expectErr(t, line, 'ECANCELED');
    t.false(s.cancel(), 'nothing left to cancel');
    t.false(line.cancel());
  },
);

forEachImpl('cancel on the first stage cancels the unstarted second stage', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s = once<Socket>();
  const w = once<number>();
  engine.acceptThenWrite(l, 'x', [s.cb, w.cb]);
  t.true(s.cancel());
  await expectErr(t, s, 'ECANCELED');
  await expectErr(t, w, 'ECANCELED');
  // nothing of the chain survives: a later client is not greeted by it
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const peer = await netClient(engine, { port: portOf(l) });
  await expectOk(t, acc);
  await sleep(50);
  t.is(peer.received().length, 0);
});

forEachImpl(
  'cancel after the accept stage: the line stage ECANCELED, socket kept',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const line = once<string>();
    engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
    const peer = await netClient(engine, { port: portOf(l) });
    const sock = await expectOk(t, s);
    await sleep(20);
    t.true(s.cancel(), 'cancel via the finished stage still cancels the unfinished one');
    await expectErr(t, line, 'ECANCELED');
    t.is(s.calls.length, 1, 'the finished stage is not called again');
    t.false(line.cancel());
    t.true(await stillOpen(engine, sock, peer));
  },
);

forEachImpl('each stage timeout runs from the start of its own stage', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s = once<Socket>({ timeout: 10_000 });
  const line = once<string>({ timeout: 1_500 });
  engine.acceptThenExpectLine(l, 'hi', [s.cb, line.cb]);
  // Connect only after the line stage's 1.5 s would have passed if it counted from submission.
  await sleep(2_500);
  const peer = await netClient(engine, { port: portOf(l) });
  await peer.write('hi\n');
  await expectOk(t, s);
  t.is(await expectOk(t, line), 'hi');
});

forEachImpl(
  'a timed-out line stage: ETIMEDOUT, socket stays open and usable',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const line = once<string>({ timeout: 50 });
    engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
    const peer = await netClient(engine, { port: portOf(l) });
    const sock = await expectOk(t, s);
    await expectErr(t, line, 'ETIMEDOUT', 2_000);
    t.true(await stillOpen(engine, sock, peer));
    await peer.write('late line\n');
    const next = once<string>();
    engine.expectLine(sock, null, next.cb);
    t.is(await expectOk(t, next), 'late line');
  },
);

forEachImpl(
  'an early-closing client fails the line stage ERR_INCOMPLETE; others still accepted',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s1 = once<Socket>();
    const line1 = once<string>();
    engine.acceptThenExpectLine(l, null, [s1.cb, line1.cb]);
    const early = await netClient(engine, { port: portOf(l) });
    early.client.end('half a li');
    await expectOk(t, s1);
    const err = await expectErr(t, line1, 'ERR_INCOMPLETE');
    t.is(err.partial?.toString(), 'half a li');

    const s2 = once<Socket>();
    const line2 = once<string>();
    engine.acceptThenExpectLine(l, null, [s2.cb, line2.cb]);
    const good = await netClient(engine, { port: portOf(l) });
    await good.write('whole line\n');
    await expectOk(t, s2);
    t.is(await expectOk(t, line2), 'whole line');
  },
);

forEachImpl('a silent client does not stall a second accept chain', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const s1 = once<Socket>();
  const line1 = once<string>();
  engine.acceptThenExpectLine(l, null, [s1.cb, line1.cb]);
  await netClient(engine, { port: portOf(l) }); // silent
  await expectOk(t, s1);
  const s2 = once<Socket>();
  const line2 = once<string>();
  engine.acceptThenExpectLine(l, null, [s2.cb, line2.cb]);
  const talker = await netClient(engine, { port: portOf(l) });
  await talker.write('quick\n');
  t.is(await expectOk(t, line2), 'quick');
  t.is(line1.calls.length, 0, 'the silent one is still waiting');
  t.true(line1.cancel());
  await expectErr(t, line1, 'ECANCELED');
});

forEachImpl(
  'close(sock) during the line stage: that stage fails ECANCELED once',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const s = once<Socket>();
    const line = once<string>();
    engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
    await netClient(engine, { port: portOf(l) });
    const sock = await expectOk(t, s);
    engine.close(sock);
    await expectErr(t, line, 'ECANCELED');
    await sleep(30);
    t.is(s.calls.length, 1);
    t.is(line.calls.length, 1);
  },
);

forEachImpl(
  "a later stage's failure gets the chain's socket, as success does; a failed connect or accept gets none",
  async (t, engine) => {
    const srv = await netServer(engine);
    srv.server.on('connection', (c) => c.write('554 go away\r\n'));
    const seen: Array<[string, unknown]> = [];
    const settled = new Promise<void>((resolve) => {
      engine.connectThenExpectLine({ host: '127.0.0.1', port: srv.port }, /^220/, [
        new Callback<Socket>({}),
        new Callback<string>({
          failure: (err, sock) => {
            seen.push([err.code, sock]);
            resolve();
          },
        }),
      ]);
    });
    await settled;
    const [code, sock] = seen[0]!;
    t.is(code, 'ERR_MISMATCH');
    t.true(sock instanceof Object && typeof (sock as Socket).remotePort === 'number');
    t.is((sock as Socket).remotePort, srv.port, "the chain's socket, to close");
    t.false((sock as Socket).closed);
    engine.close(sock as Socket);

    // A single op on a socket: its socket too.
    const p = await engine.promises.connect({ host: '127.0.0.1', port: srv.port });
    const read = await new Promise<[string, unknown]>((resolve) => {
      engine.readExactly(p, 100, new Callback({ failure: (e, s) => resolve([e.code, s]) }));
      engine.close(p);
    });
    t.is(read[0], 'ECANCELED');
    t.is(read[1], p);

    // A connect that fails made no socket.
    const port = srv.port;
    srv.server.close();
    await sleep(20);
    const none = await new Promise<unknown[]>((resolve) => {
      engine.connect(
        { host: '127.0.0.1', port },
        new Callback({ failure: (...args: unknown[]) => resolve(args) }),
      );
    });
    t.is((none[0] as EngineError).code, 'ECONNREFUSED');
    t.is(none[1], undefined);
  },
);
