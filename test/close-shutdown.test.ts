// close() and shutdown(): pending ops fail ECANCELED exactly once and never synchronously,
// a reused fd number sees no stale completion or bytes, shutdown with ops in every state,
// nothing after shutdown, no fds left, and what keeps the process alive (child processes).
import fs from 'node:fs';
import net from 'node:net';
import { createEngine, type Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  fdCount,
  forEachImpl,
  netClient,
  netServer,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  runNodeScript,
  settleCounter,
  shutdownEngine,
  sleep,
  tcpPair,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl(
  'close(sock) with a pending read and write: ECANCELED each, exactly once, later',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause();
    let closeReturned = false;
    const seen: boolean[] = [];
    const r = once<Buffer>({ failure: () => seen.push(closeReturned) });
    const w = once<number>({ failure: () => seen.push(closeReturned) });
    engine.readUntil(p.sock, '\n', r.cb);
    engine.write(p.sock, Buffer.alloc(32 * 1024 * 1024, 'w'), w.cb);
    await sleep(50);
    t.is(r.calls.length + w.calls.length, 0, 'both still pending');
    engine.close(p.sock);
    closeReturned = true;
    t.true(p.sock.closed);
    await expectErr(t, r, 'ECANCELED');
    await expectErr(t, w, 'ECANCELED');
    t.deepEqual(seen, [true, true], 'neither ran inside close()');
    await sleep(50);
    t.is(r.calls.length, 1);
    t.is(w.calls.length, 1);
    t.false(r.cancel());
  },
);

forEachImpl(
  'close(sock) whose read timed out, with nothing else going on: the peer sees the end',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>({ timeout: 50 });
    engine.readChunk(p.sock, 1024, r.cb);
    await expectErr(t, r, 'ETIMEDOUT');
    engine.close(p.sock);
    // No other traffic: the close itself must release the socket.
    await withDeadline(p.ended, 5_000, 'the peer to see the end');
    t.pass();
  },
);

forEachImpl('close(listener) with a pending accept: ECANCELED', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const a = once<Socket>();
  engine.accept(l, a.cb);
  engine.close(l);
  await expectErr(t, a, 'ECANCELED');
});

forEachImpl('close from inside a callback cancels the next queued op once', async (t, engine) => {
  const p = await tcpPair(engine);
  const second = once<Buffer>();
  const first = once<Buffer>({ success: () => engine.close(p.sock) });
  engine.readUntil(p.sock, '\n', first.cb);
  engine.readUntil(p.sock, '\n', second.cb);
  await p.write('one\ntw');
  t.is((await expectOk(t, first)).toString(), 'one\n');
  await expectErr(t, second, 'ECANCELED');
  // Had both already finished in one batch, close() could not cancel the second: that case
  // only has to settle once, whichever way.
  const third = once<Buffer>();
  const fourth = once<Buffer>();
  const q = await tcpPair(engine);
  const closer = once<Buffer>({ success: () => engine.close(q.sock) });
  engine.readUntil(q.sock, '\n', closer.cb);
  engine.readUntil(q.sock, '\n', third.cb);
  engine.readUntil(q.sock, '\n', fourth.cb);
  await q.write('a\nb\n');
  await expectOk(t, closer);
  const o3 = await third.result();
  t.true(o3.ok || o3.err?.code === 'ECANCELED');
  await expectErr(t, fourth, 'ECANCELED');
});

forEachImpl(
  "a new socket with the closed one's fd number gets no stale bytes or completions",
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const port = portOf(l);
    const accA = once<Socket>();
    engine.accept(l, accA.cb);
    const clientA = await netClient(engine, { port });
    const A = await expectOk(t, accA);
    // The peer of the new socket: a server made now, so that its fds are taken before A's
    // number is free again.
    const server = await netServer(engine);

    const rA = once<Buffer>();
    engine.readUntil(A, '\n', rA.cb);
    const before = engine.stats().bytesRead;
    await clientA.write('stale-partial');
    t.true(
      await waitUntil(() => engine.stats().bytesRead >= before + 13, 10_000),
      'A read its bytes',
    );
    const fdA = A.fileno();
    engine.close(A);
    await expectErr(t, rA, 'ECANCELED');
    // An impl may close the fd a little later (after its last in-flight primitive): wait for it.
    t.true(
      await waitUntil(() => !fs.existsSync(`/proc/self/fd/${fdA}`), 5_000),
      'the closed socket fd is released',
    );

    // Occupy every free fd number below fdA, so that the connect's socket gets fdA itself.
    const placeholders: number[] = [];
    for (;;) {
      const fd = fs.openSync('/dev/null', 'r');
      if (fd >= fdA) {
        fs.closeSync(fd);
        break;
      }
      placeholders.push(fd);
    }
    const conB = once<Socket>();
    engine.connect({ host: '127.0.0.1', port: server.port }, conB.cb);
    for (const fd of placeholders) fs.closeSync(fd);
    const B = await expectOk(t, conB);
    const peerB = await server.nextConnection();
    t.is(B.fileno(), fdA, 'the new socket got the old fd number');
    t.is(B.bufferedBytes, 0, 'no bytes inherited from the old socket');
    clientA.client.write('more stale\n');
    const rB = once<Buffer>();
    engine.readUntil(B, '\n', rB.cb);
    await sleep(30);
    t.is(rB.calls.length, 0, 'nothing arrives for B before its peer writes');
    await peerB.write('fresh\n');
    t.is((await expectOk(t, rB)).toString(), 'fresh\n');
    await sleep(30);
    t.is(rA.calls.length, 1, 'the old op was not called again');
  },
);

forEachImpl(
  'shutdown() with ops pending in every state: all settle once, before it resolves',
  async (t, engine) => {
    const sc = settleCounter();
    // an accept with no client
    const idle = engine.listen({ port: 0 });
    const accept = sc.wrap<Socket>({}, 'pending accept');
    engine.accept(idle, accept.cb);
    // a connect into a full backlog (may stay in flight, may complete)
    const full = engine.listen({ port: 0, backlog: 1 });
    const fillers: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const c = net.connect(portOf(full), '127.0.0.1');
      c.on('error', () => {});
      fillers.push(c);
    }
    onCleanup(engine, () => fillers.forEach((f) => f.destroy()));
    await sleep(50);
    const connect = sc.wrap<Socket>({}, 'connect into a full backlog');
    engine.connect({ host: '127.0.0.1', port: portOf(full) }, connect.cb);
    // a read in progress, a read queued behind it, a read with a long timeout elsewhere
    const p = await tcpPair(engine);
    const q = await tcpPair(engine);
    const read = sc.wrap<Buffer>({}, 'pending read');
    const queued = sc.wrap<Buffer>({}, 'queued read');
    engine.readUntil(p.sock, '\n', read.cb);
    engine.readUntil(p.sock, '\n', queued.cb);
    await p.write('partial');
    const timed = sc.wrap<string>({ timeout: 60_000 }, 'read with timeout');
    engine.expectLine(q.sock, null, timed.cb);
    // a write that cannot finish
    q.client.pause();
    const write = sc.wrap<number>({}, 'pending write');
    engine.write(q.sock, Buffer.alloc(32 * 1024 * 1024, 'x'), write.cb);
    // a chain past its first stage, and one before it
    const chainL = engine.listen({ port: 0 });
    const c1s = sc.wrap<Socket>({}, 'chain stage 1 (done)');
    const c1l = sc.wrap<string>({}, 'chain stage 2 (pending)');
    engine.acceptThenExpectLine(chainL, null, [c1s.cb, c1l.cb]);
    await netClient(engine, { port: portOf(chainL) });
    await expectOk(t, c1s);
    const c2s = sc.wrap<Socket>({}, 'chain 2 stage 1 (pending)');
    const c2w = sc.wrap<number>({}, 'chain 2 stage 2 (not started)');
    engine.acceptThenWrite(idle, 'never', [c2s.cb, c2w.cb]);
    // timers
    let laterRan = false;
    engine.callLater(100, () => (laterRan = true));
    await sleep(30);
    // an op cancelled just before shutdown, whose ECANCELED is not delivered yet
    const cancelled = sc.wrap<Buffer>({}, 'cancelled just before');
    engine.readChunk(q.sock, 10, cancelled.cb);
    t.true(cancelled.cancel());

    let resolved = false;
    const beforeCounts = sc.all.map((x) => x.calls.length);
    const done = shutdownEngine(engine).then(() => (resolved = true));
    t.deepEqual(
      sc.all.map((x) => x.calls.length),
      beforeCounts,
      'nothing ran inside shutdown()',
    );
    await done;
    const atResolve = sc.all.map((x) => x.calls.length);
    t.deepEqual(
      sc.all.filter((x) => x.calls.length !== 1).map((x) => x.label),
      [],
      'every op settled before shutdown resolved',
    );
    for (const x of [accept, read, queued, timed, write, c1l, c2s, c2w, cancelled]) {
      t.is(x.calls[0]?.err?.code, 'ECANCELED', `${x.label}: ${x.calls[0]?.err?.code ?? 'ok'}`);
    }
    const cc = connect.calls[0];
    t.true(cc?.ok === true || cc?.err?.code === 'ECANCELED', `connect: ${cc?.err?.code}`);
    t.true(resolved);
    t.is(connect.calls.length, 1);

    // Nothing after shutdown.
    await sleep(250);
    t.deepEqual(
      sc.all.map((x) => x.calls.length),
      atResolve,
      'no callback after shutdown resolved',
    );
    t.false(laterRan, 'a pending callLater does not run after shutdown');
    sc.assertExactlyOnce(t);
  },
);

forEachImpl('after shutdown: submitting throws ERR_ENGINE_CLOSED', async (t, engine) => {
  const p = await tcpPair(engine);
  const l = engine.listen({ port: 0 });
  await shutdownEngine(engine);
  const cb = once<Buffer>();
  t.throws(() => engine.readUntil(p.sock, '\n', cb.cb), { code: 'ERR_ENGINE_CLOSED' });
  t.throws(() => engine.write(p.sock, 'x', once<number>().cb), { code: 'ERR_ENGINE_CLOSED' });
  t.throws(() => engine.accept(l, once<Socket>().cb), { code: 'ERR_ENGINE_CLOSED' });
  t.throws(() => engine.connect({ host: '127.0.0.1', port: 1 }, once<Socket>().cb), {
    code: 'ERR_ENGINE_CLOSED',
  });
  await sleep(50);
  t.is(cb.calls.length, 0);
});

forEachImpl(
  'manual drive: shutdown settles completed-but-undelivered ops exactly once',
  async (t, engine, impl) => {
    t.truthy(engine);
    const m = createEngine({ impl, drive: 'manual' });
    const sc = settleCounter();
    const clients: net.Socket[] = [];
    let shutDown = false;
    try {
      const l = m.listen({ port: 0 });
      const acc = sc.wrap<Socket>({}, 'accept');
      m.accept(l, acc.cb);
      const c = net.connect(portOf(l), '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
      await new Promise<void>((r) => c.once('connect', () => r()));
      // Dispatch until the accept is delivered.
      for (let i = 0; i < 200 && acc.calls.length === 0; i++) {
        m.runOnce({ timeout: 10 });
        await sleep(1);
      }
      const sock = (await expectOk(t, acc)) as Socket;
      c.write('ready\n');
      await sleep(50);
      const ready = sc.wrap<string>({}, 'completed, undelivered');
      m.expectLine(sock, null, ready.cb);
      const pending = sc.wrap<string>({}, 'pending');
      m.expectLine(sock, null, pending.cb);
      await sleep(50);
      t.is(ready.calls.length, 0, 'manual drive: nothing delivered without runOnce');
      shutDown = true;
      await m.shutdown();
      t.is(ready.calls.length, 1);
      t.is(pending.calls[0]?.err?.code, 'ECANCELED');
      await sleep(50);
      sc.assertExactlyOnce(t);
    } finally {
      if (!shutDown) await m.shutdown();
      for (const c of clients) c.destroy();
    }
  },
);

forEachImpl('after shutdown every fd the engine opened is closed', async (t, engine, impl) => {
  t.truthy(engine);
  const clients: net.Socket[] = [];
  const base = fdCount();
  const e2 = createEngine({ impl });
  try {
    const l = e2.listen({ port: 0 });
    const l6 = e2.listen({ host: '::1', port: 0 });
    t.truthy(l6);
    const socks: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      const acc = once<Socket>();
      e2.accept(l, acc.cb);
      const c = net.connect(portOf(l), '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
      socks.push(await expectOk(t, acc));
    }
    const con = once<Socket>();
    e2.connect({ host: '127.0.0.1', port: portOf(l) }, con.cb);
    await expectOk(t, con);
    for (const s of socks) e2.readUntil(s, '\n', once<Buffer>().cb);
    e2.accept(l, once<Socket>().cb);
    e2.getaddrinfo('localhost', 80, once<unknown>().cb as never);
    t.true(fdCount() > base);
  } finally {
    await e2.shutdown();
  }
  for (const c of clients) c.destroy();
  const back = await waitUntil(() => fdCount() === base, 5_000, 20);
  t.true(back, `fd count ${fdCount()} after shutdown, ${base} before the engine`);
});

const idleScript = `
const { createEngine } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
console.log('created ' + e.impl);
`;

forEachImpl('an idle engine does not keep the process alive', async (t, engine, impl) => {
  t.truthy(engine);
  const r = await runNodeScript(idleScript, { IMPL: impl }, 15_000);
  t.false(r.timedOut, 'the child exited by itself');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `created ${impl}`);
});

const afterWorkScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
const l = e.listen({ port: 0 });
e.accept(l, new Callback({ success: (s) => {
  e.readUntil(s, '\\n', new Callback({ success: (b) => {
    console.log('got ' + b.toString().trim());
    e.close(s);
    e.close(l);
  } }));
} }));
e.connect({ host: '127.0.0.1', port: l.address().port }, new Callback({ success: (c) => {
  e.write(c, 'hi\\n', new Callback({ success: () => e.close(c) }));
} }));
`;

forEachImpl(
  'an engine whose work is done and sockets closed lets the process exit',
  async (t, engine, impl) => {
    t.truthy(engine);
    const r = await runNodeScript(afterWorkScript, { IMPL: impl }, 15_000);
    t.false(r.timedOut, 'the child exited by itself');
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.trim(), 'got hi');
  },
);

const pendingAcceptScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
const l = e.listen({ port: 0 });
e.accept(l, new Callback({ failure: (err) => console.log('accept ' + err.code) }));
setTimeout(() => {
  console.log('timer');
  e.shutdown().then(() => console.log('shutdown done'));
}, 500).unref();
`;

forEachImpl('a pending accept keeps the process alive until shutdown', async (t, engine, impl) => {
  t.truthy(engine);
  const r = await runNodeScript(pendingAcceptScript, { IMPL: impl }, 15_000);
  t.false(r.timedOut, 'the child exited after shutdown');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['timer', 'accept ECANCELED', 'shutdown done']);
});

const exitWithOpsScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
const l = e.listen({ port: 0 });
e.accept(l, new Callback({ success: (s) => e.readUntil(s, '\\n', new Callback({})) }));
e.connect({ host: '127.0.0.1', port: l.address().port }, new Callback({}));
e.accept(l, new Callback({}));
e.callLater(10_000, () => {});
setTimeout(() => process.exit(3), 200);
`;

forEachImpl('process.exit with ops pending exits cleanly', async (t, engine, impl) => {
  t.truthy(engine);
  const r = await runNodeScript(exitWithOpsScript, { IMPL: impl }, 15_000);
  t.false(r.timedOut);
  t.is(r.signal, null, `no crash; stderr: ${r.stderr}`);
  t.is(r.code, 3, r.stderr);
  t.is(r.stderr.trim(), '');
});

forEachImpl('shutdown of an engine with nothing pending resolves', async (t, engine) => {
  t.is(engine.stats().opsInFlight, 0);
  const before = Date.now();
  await shutdownEngine(engine);
  t.true(Date.now() - before < 5_000);
});

const gcScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
(function start() {
  // Nothing outside this function keeps the engine, its listener or its callbacks.
  const e = createEngine({ impl: process.env.IMPL });
  const l = e.listen({ port: 0 });
  const port = l.address().port;
  e.accept(l, new Callback({ success: (s) => {
    e.expectLine(s, null, new Callback({ success: (line) => {
      console.log('line ' + line);
      e.shutdown().then(() => console.log('done'));
    } }));
  } }));
  e.callLater(300, () => {
    e.connect({ host: '127.0.0.1', port }, new Callback({
      success: (c) => e.write(c, 'survived gc\\n', new Callback({})),
    }));
  });
})();
for (let i = 0; i < 5; i++) {
  await new Promise((r) => setTimeout(r, 40));
  globalThis.gc();
}
`;

forEachImpl(
  'an engine nobody references keeps working through gc() while ops are pending',
  async (t, engine, impl) => {
    t.truthy(engine);
    const r = await runNodeScript(gcScript, { IMPL: impl }, 15_000, ['--expose-gc']);
    t.false(r.timedOut, `the child hung; stdout: ${r.stdout} stderr: ${r.stderr}`);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.stdout.trim().split('\n'), ['line survived gc', 'done']);
  },
);

forEachImpl(
  'shutdown() called from inside a callback: the rest settles once, then it resolves',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const sc = settleCounter();
    let shut: Promise<void> | undefined;
    const first = sc.wrap<string>({ success: () => (shut = shutdownEngine(engine)) }, 'first');
    const second = sc.wrap<string>({}, 'second (same batch)');
    const third = sc.wrap<string>({}, 'third (never has data)');
    engine.expectLine(p.sock, null, first.cb);
    engine.expectLine(p.sock, null, second.cb);
    engine.expectLine(p.sock, null, third.cb);
    await p.write('one\ntwo\n');
    await expectOk(t, first);
    t.truthy(shut);
    await withDeadline(shut!, 10_000, 'shutdown() to resolve');
    t.deepEqual(
      sc.all.map((x) => x.calls.length),
      [1, 1, 1],
      'everything settled before shutdown resolved',
    );
    const o2 = second.calls[0]!;
    t.true(
      o2.ok ? o2.value === 'two' : o2.err?.code === 'ECANCELED',
      `second: ${o2.err?.code ?? o2.value}`,
    );
    t.is(third.calls[0]?.err?.code, 'ECANCELED');
    await sleep(50);
    sc.assertExactlyOnce(t);
  },
);
