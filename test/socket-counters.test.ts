// Socket counters: bytesRead, bytesWritten and pendingWriteBytes, exact after known traffic on
// both ends of an engine-to-engine connection (chain stages, gathered and corked writes, bytes
// handed to JavaScript in bulk and given back), pendingWriteBytes under backpressure, and the
// values a socket keeps after close and after shutdown.
import type { Socket } from 'async-engine';
import {
  type Engine,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  portOf,
  shutdownEngine,
  sleep,
  tcpPair,
  waitUntil,
} from './helpers/harness.js';

noFdLeaks();

// Both ends on the engine: [client, server].
async function enginePair(engine: Engine): Promise<[Socket, Socket]> {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const acc = once<Socket>({}, 'accept');
  engine.accept(listener, acc.cb);
  const con = once<Socket>({}, 'connect');
  engine.connect({ host: '127.0.0.1', port: portOf(listener) }, con.cb);
  const [c, s] = [await con.result(), await acc.result()];
  engine.close(listener);
  if (!c.ok || !s.ok) throw new Error(`enginePair: ${c.err?.message ?? s.err?.message}`);
  return [c.value!, s.value!];
}

function counters(s: Socket): [number, number, number] {
  return [s.bytesRead, s.bytesWritten, s.pendingWriteBytes];
}

forEachImpl('a fresh socket counts nothing on either end', async (t, engine) => {
  const [client, server] = await enginePair(engine);
  t.deepEqual(counters(client), [0, 0, 0]);
  t.deepEqual(counters(server), [0, 0, 0]);
});

forEachImpl(
  'exact counts on both ends: corked and gathered writes, lines taken in bulk, bytes given back',
  async (t, engine) => {
    const [client, server] = await enginePair(engine);
    // Three writes in one turn go out corked, one of them gathered from three Buffers.
    const w1 = once<number>();
    const w2 = once<number>();
    const w3 = once<number>();
    engine.write(client, 'a\n', w1.cb);
    engine.write(client, [Buffer.from('b'), Buffer.from('\n'), Buffer.from('c\n')], w2.cb);
    engine.write(client, 'dd', w3.cb);
    // Queued and not yet handed to the kernel (corked until the end of this turn).
    t.is(client.pendingWriteBytes, 8);
    t.is(await expectOk(t, w1), 2);
    t.is(await expectOk(t, w2), 4);
    t.is(await expectOk(t, w3), 2);
    t.deepEqual(counters(client), [0, 8, 0]);

    // The first line is read natively; the rest comes to JavaScript in bulk and the next lines
    // are framed there. readExactly(4) then needs more than is held: the held bytes go back.
    const l1 = once<string>();
    engine.expectLine(server, null, l1.cb);
    t.is(await expectOk(t, l1), 'a');
    t.true(await waitUntil(() => server.bytesRead === 8), `bytesRead ${server.bytesRead}`);
    const l2 = once<string>();
    const l3 = once<string>();
    engine.expectLine(server, null, l2.cb);
    engine.expectLine(server, null, l3.cb);
    t.is(await expectOk(t, l2), 'b');
    t.is(await expectOk(t, l3), 'c');
    const x = once<Buffer>();
    engine.readExactly(server, 4, x.cb);
    const w4 = once<number>();
    engine.write(client, 'ee', w4.cb);
    await expectOk(t, w4);
    t.is((await expectOk(t, x)).toString(), 'ddee');
    t.deepEqual(counters(server), [10, 0, 0], 'every byte counted once');
    t.deepEqual(counters(client), [0, 10, 0]);

    // The other way, through a chain's write stage.
    const cw = once<number>();
    const cl = once<string>();
    engine.writeThenExpectLine(server, 'hello\r\n', null, [cw.cb, cl.cb]);
    const r = once<Buffer>();
    engine.readExactly(client, 7, r.cb);
    t.is(await expectOk(t, cw), 7);
    t.is((await expectOk(t, r)).toString(), 'hello\r\n');
    const w5 = once<number>();
    engine.write(client, 'ok\n', w5.cb);
    t.is(await expectOk(t, cl), 'ok');
    await expectOk(t, w5);
    t.deepEqual(counters(server), [13, 7, 0]);
    t.deepEqual(counters(client), [7, 13, 0]);
  },
);

forEachImpl(
  'chain stages count on the sockets they make: acceptThenWrite, connectThenWriteLine',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const as = once<Socket>();
    const aw = once<number>();
    engine.acceptThenWrite(listener, Buffer.alloc(100_000, 7), [as.cb, aw.cb]);
    const cs = once<Socket>();
    const cw = once<number>();
    engine.connectThenWriteLine({ host: '127.0.0.1', port: portOf(listener) }, 'HELO x', [
      cs.cb,
      cw.cb,
    ]);
    const server = await expectOk(t, as);
    const client = await expectOk(t, cs);
    engine.close(listener);
    t.is(await expectOk(t, cw), 8);
    const line = once<string>();
    engine.expectLine(server, 'HELO x', line.cb);
    await expectOk(t, line);
    const all = once<Buffer>();
    engine.readExactly(client, 100_000, all.cb);
    t.is((await expectOk(t, all)).length, 100_000);
    t.is(await expectOk(t, aw), 100_000);
    t.deepEqual(counters(server), [8, 100_000, 0]);
    t.deepEqual(counters(client), [100_000, 8, 0]);
  },
);

forEachImpl(
  'pendingWriteBytes: above 0 while a peer that does not read holds a large write back, 0 once it drains',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause();
    const size = 16 * 1024 * 1024;
    const w = once<number>();
    engine.write(p.sock, Buffer.alloc(size, 1), w.cb);
    t.is(p.sock.pendingWriteBytes, size, 'queued, not yet sent');
    await sleep(300);
    // What the kernel holds is bounded by the socket buffers: most of 16 MiB waits.
    t.true(p.sock.pendingWriteBytes > 0, `pending ${p.sock.pendingWriteBytes}`);
    t.is(p.sock.bytesWritten + p.sock.pendingWriteBytes, size);
    t.is(w.calls.length, 0, 'the write still waits');
    p.client.resume();
    t.is(await expectOk(t, w, 30_000), size);
    t.is(p.sock.pendingWriteBytes, 0);
    t.is(p.sock.bytesWritten, size);
    await p.waitForBytes(size, 30_000);
  },
);

forEachImpl(
  'after close the counters keep their last values; writes still queued then are not pending',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('12345');
    const r = once<Buffer>();
    engine.readExactly(p.sock, 5, r.cb);
    await expectOk(t, r);
    const w = once<number>();
    engine.write(p.sock, 'abc', w.cb);
    await expectOk(t, w);
    p.client.pause();
    const big = once<number>();
    engine.write(p.sock, Buffer.alloc(16 * 1024 * 1024), big.cb);
    await sleep(200);
    const written = p.sock.bytesWritten;
    t.true(written >= 3 && p.sock.pendingWriteBytes > 0);
    engine.close(p.sock);
    const o = await big.result();
    t.is(o.err?.code, 'ECANCELED');
    t.is(p.sock.bytesRead, 5);
    t.is(p.sock.bytesWritten, written);
    t.is(p.sock.pendingWriteBytes, 0);
  },
);

forEachImpl('after shutdown the counters keep their last values', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('xyz\n');
  const l = once<string>();
  engine.expectLine(p.sock, 'xyz', l.cb);
  await expectOk(t, l);
  const w = once<number>();
  engine.write(p.sock, 'hi', w.cb);
  await expectOk(t, w);
  await shutdownEngine(engine);
  t.true(p.sock.closed);
  t.deepEqual(counters(p.sock), [4, 2, 0]);
});
