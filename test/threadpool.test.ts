// What only the `threadpool` implementation has: more blocked primitives than worker threads,
// cancelling a read a worker is waiting on, a bounded pool under a burst (stats().queueDepth,
// busyWorkers), and shutdown with every worker busy leaving no thread and no fd behind.
import fs from 'node:fs';
import net from 'node:net';
import test from 'ava';
import { createEngine, type Socket } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  fdCount,
  noFdLeaks,
  once,
  portOf,
  settleCounter,
  sleep,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

/** Threads of this process (from /proc/self/task). */
function threadCount(): number {
  return fs.readdirSync('/proc/self/task').length;
}

interface Peers {
  socks: Socket[];
  clients: net.Socket[];
  destroy(): void;
}

/** n loopback connections: engine-side sockets and node:net clients, in the same order. */
async function peers(engine: Engine, n: number): Promise<Peers> {
  const l = engine.listen({ port: 0, backlog: Math.max(n, 16) });
  const port = portOf(l);
  const socks: Socket[] = [];
  const clients: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const acc = once<Socket>({}, `accept #${i}`);
    engine.accept(l, acc.cb);
    const c = net.connect(port, '127.0.0.1');
    c.setNoDelay(true);
    c.on('error', () => {});
    clients.push(c);
    const o = await acc.result();
    if (!o.ok) throw new Error(`accept #${i} failed: ${o.err?.code}`);
    socks.push(o.value as Socket);
  }
  await Promise.all(
    clients.map((c) =>
      c.connecting ? new Promise<void>((r) => c.once('connect', () => r())) : undefined,
    ),
  );
  engine.close(l);
  return { socks, clients, destroy: () => clients.forEach((c) => c.destroy()) };
}

test.serial(
  '[threadpool] 64 pending reads on 4 threads all complete, data sent in reverse order',
  async (t) => {
    const before = threadCount();
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 4 } });
    t.is(engine.impl, 'threadpool');
    const p = await peers(engine, 64);
    const reads = p.socks.map((s, i) => {
      const r = once<string>({}, `read #${i}`);
      engine.expectLine(s, null, r.cb);
      return r;
    });
    t.true(
      await waitUntil(() => engine.stats().busyWorkers === 4),
      'the reads spread over the 4 workers',
    );
    t.true(threadCount() <= before + 4, `threads: ${before} before, ${threadCount()} now`);
    const order: number[] = [];
    reads.forEach((r, i) => void r.promise.then(() => order.push(i)));
    for (let i = 63; i >= 0; i--) {
      p.clients[i]!.write(`line ${i}\n`);
      // Each read completes on its own, while the others still wait.
      await withDeadline(reads[i]!.promise, 5_000, `read #${i}`);
    }
    for (let i = 0; i < 64; i++) t.is(await expectOk(t, reads[i]!), `line ${i}`);
    t.deepEqual(
      order,
      Array.from({ length: 64 }, (_, k) => 63 - k),
      'each read completed when its data arrived',
    );
    t.is(engine.stats().opsInFlight, 0);
    p.destroy();
    await engine.shutdown();
  },
);

test.serial(
  '[threadpool] cancel of a read blocked in a worker: true, one ECANCELED, socket usable',
  async (t) => {
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 4 } });
    const p = await peers(engine, 1);
    const sock = p.socks[0]!;
    const r = once<Buffer>({}, 'blocked read');
    engine.readUntil(sock, '\n', r.cb);
    t.true(await waitUntil(() => engine.stats().busyWorkers === 1), 'a worker waits on the read');
    await sleep(20);
    t.true(r.cancel(), 'the cancel wins');
    t.false(r.cancel(), 'a second cancel does not');
    await expectErr(t, r, 'ECANCELED');
    t.true(await waitUntil(() => engine.stats().busyWorkers === 0), 'the worker gave the read up');
    await sleep(30);
    t.is(r.calls.length, 1, 'exactly one settlement');

    // The socket still works: bytes sent after the cancel reach the next read.
    p.clients[0]!.write('later\n');
    const next = once<Buffer>({}, 'next read');
    engine.readUntil(sock, '\n', next.cb);
    t.is((await expectOk(t, next)).toString(), 'later\n');

    // And a read blocked again can still complete normally.
    const again = once<Buffer>({}, 'read after');
    engine.readUntil(sock, '\n', again.cb);
    await sleep(20);
    p.clients[0]!.write('again\n');
    t.is((await expectOk(t, again)).toString(), 'again\n');
    p.destroy();
    await engine.shutdown();
  },
);

test.serial(
  '[threadpool] a read that times out in a worker frees it; its late data is kept',
  async (t) => {
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 1 } });
    const p = await peers(engine, 2);
    const timed = once<Buffer>({ timeout: 50 }, 'timed read');
    engine.readUntil(p.socks[0]!, '\n', timed.cb);
    await expectErr(t, timed, 'ETIMEDOUT');
    t.true(await waitUntil(() => engine.stats().busyWorkers === 0), 'the worker gave the read up');
    const other = once<Buffer>({}, 'other socket');
    engine.readUntil(p.socks[1]!, '\n', other.cb);
    p.clients[1]!.write('b\n');
    t.is((await expectOk(t, other)).toString(), 'b\n');
    p.clients[0]!.write('a\n');
    const late = once<Buffer>({}, 'late read');
    engine.readUntil(p.socks[0]!, '\n', late.cb);
    t.is((await expectOk(t, late)).toString(), 'a\n');
    p.destroy();
    await engine.shutdown();
  },
);

test.serial(
  '[threadpool] a burst of 2,000 reads on 1 thread: bounded pool, queue, all complete',
  async (t) => {
    t.timeout(90_000);
    const before = threadCount();
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 1 } });
    const n = 2_000;
    const p = await peers(engine, n);
    const counter = settleCounter();
    const reads = p.socks.map((s, i) => {
      const r = counter.wrap<string>({}, `read #${i}`);
      engine.expectLine(s, null, r.cb);
      return r;
    });
    const s = engine.stats();
    t.is(s.opsInFlight, n);
    t.true(s.busyWorkers !== undefined && s.busyWorkers <= 1, `busyWorkers = ${s.busyWorkers}`);
    t.true(s.queueDepth !== undefined && s.queueDepth > 0, `queueDepth = ${s.queueDepth}`);
    await sleep(50);
    const later = engine.stats();
    t.is(later.busyWorkers, 1, 'the worker is busy');
    t.true((later.queueDepth ?? 0) > 0, `still queued: ${later.queueDepth}`);
    t.true(threadCount() <= before + 1, `threads: ${before} before, ${threadCount()} now`);

    // Cancel the last 100 (waiting in the queue) and the first 100 (held by workers).
    for (let i = 0; i < n; i++) {
      if (i < 100 || i >= n - 100) t.true(reads[i]!.cancel(), `cancel #${i}`);
    }
    for (let i = 100; i < n - 100; i++) p.clients[i]!.write(`line ${i}\n`);
    await counter.allSettled(60_000);
    counter.assertExactlyOnce(t);
    t.deepEqual(counter.tally(), { ok: n - 200, ECANCELED: 200 });
    for (let i = 100; i < n - 100; i++) {
      if (reads[i]!.calls[0]?.value !== `line ${i}`)
        t.fail(`read #${i}: ${reads[i]!.calls[0]?.value}`);
    }
    t.true(
      await waitUntil(() => engine.stats().busyWorkers === 0 && engine.stats().queueDepth === 0),
      'nothing left in the pool',
    );
    t.true(threadCount() <= before + 1, `threads: ${before} before, ${threadCount()} now`);

    // The cancelled ones lost nothing: a new read on a cancelled socket gets its data.
    p.clients[0]!.write('after 0\n');
    p.clients[n - 1]!.write('after last\n');
    const r0 = once<string>();
    const rLast = once<string>();
    engine.expectLine(p.socks[0]!, null, r0.cb);
    engine.expectLine(p.socks[n - 1]!, null, rLast.cb);
    t.is(await expectOk(t, r0), 'after 0');
    t.is(await expectOk(t, rLast), 'after last');
    p.destroy();
    await engine.shutdown();
  },
);

test.serial(
  '[threadpool] shutdown with every worker busy joins every thread and closes every fd',
  async (t) => {
    const threadsBefore = threadCount();
    const fdsBefore = fdCount();
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 4 } });
    const p = await peers(engine, 12);
    const counter = settleCounter();
    // Reads on 8 sockets, writes far larger than the socket buffers on 4 more (peers not reading),
    // an accept nobody connects to, and a connect.
    for (let i = 0; i < 8; i++) engine.readUntil(p.socks[i]!, '\n', counter.wrap<Buffer>().cb);
    for (let i = 8; i < 12; i++) {
      p.clients[i]!.pause();
      engine.write(p.socks[i]!, Buffer.alloc(8 * 1024 * 1024, 'w'), counter.wrap<number>().cb);
    }
    const l = engine.listen({ port: 0 });
    engine.accept(l, counter.wrap<Socket>().cb);
    t.true(await waitUntil(() => engine.stats().busyWorkers === 4), 'every worker busy');
    t.true(threadCount() > threadsBefore, 'the workers exist');
    await withDeadline(engine.shutdown(), 5_000, 'engine.shutdown()');
    await counter.allSettled(5_000);
    counter.assertExactlyOnce(t);
    t.deepEqual(counter.tally(), { ECANCELED: 13 });
    t.is(threadCount(), threadsBefore, 'no worker thread outlives shutdown()');
    p.destroy();
    t.true(await waitUntil(() => fdCount() === fdsBefore), `fds: ${fdsBefore} → ${fdCount()}`);
  },
);

test.serial(
  '[threadpool] connect, write and read through the pool; fds and threads return to where they were',
  async (t) => {
    const threadsBefore = threadCount();
    const fdsBefore = fdCount();
    const engine = createEngine({ impl: 'threadpool', threadpool: { threads: 2 } });
    const l = engine.listen({ port: 0 });
    const port = portOf(l);
    for (let round = 0; round < 20; round++) {
      const acc = once<Socket>();
      const con = once<Socket>();
      engine.accept(l, acc.cb);
      engine.connect({ host: '127.0.0.1', port }, con.cb);
      const a = await expectOk(t, acc);
      const c = await expectOk(t, con);
      const big = Buffer.alloc(1024 * 1024, round % 256);
      const w = once<number>();
      const r = once<Buffer>();
      engine.write(c, big, w.cb);
      engine.readExactly(a, big.length, r.cb);
      t.is(await expectOk(t, w), big.length);
      t.true((await expectOk(t, r)).equals(big));
      engine.close(a);
      engine.close(c);
    }
    await engine.shutdown();
    t.is(threadCount(), threadsBefore);
    t.true(await waitUntil(() => fdCount() === fdsBefore), `fds: ${fdsBefore} → ${fdCount()}`);
  },
);
