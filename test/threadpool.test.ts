// What only the `threadpool` implementation has: more blocked primitives than worker threads,
// cancelling a read a worker is waiting on, one worker holding a burst of 2,000 (stats().queueDepth,
// busyWorkers), and shutdown with every worker busy leaving no thread and no fd behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import test from 'ava';
import { createEngine, type Socket } from 'async-engine';
import {
  type Engine,
  engineUrl,
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

/**
 * Threads of this process (from /proc/self/task). A thread pthread_join() has returned for may
 * still be listed for a moment, until the kernel has reaped it: compare with waitUntil.
 */
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
  '[threadpool] a burst of 2,000 reads on 1 thread: one worker holds them all, all complete',
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
    // The one worker takes every read up: none waits for a turn.
    t.true(
      await waitUntil(() => engine.stats().queueDepth === 0),
      `queueDepth = ${engine.stats().queueDepth}`,
    );
    t.is(engine.stats().busyWorkers, 1, 'the worker is busy');
    t.true(threadCount() <= before + 1, `threads: ${before} before, ${threadCount()} now`);

    // Cancel the first 100 and the last 100.
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
    t.true(
      await waitUntil(() => threadCount() === threadsBefore),
      `no worker thread outlives shutdown(): ${threadsBefore} → ${threadCount()}`,
    );
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
    t.true(
      await waitUntil(() => threadCount() === threadsBefore),
      `threads: ${threadsBefore} → ${threadCount()}`,
    );
    t.true(await waitUntil(() => fdCount() === fdsBefore), `fds: ${fdsBefore} → ${fdCount()}`);
  },
);

// A child under a raised fd limit: an engine server answers `PING` lines on every connection;
// node:net clients open `N` connections (200 at a time) and leave them idle with a read pending
// on each, then one more client sends PING. Prints one JSON line.
const HOLD_IDLE = `
import net from 'node:net';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const N = Number(process.env.N);
const engine = createEngine({ impl: 'threadpool', threadpool: { threads: Number(process.env.THREADS) } });
const l = engine.listen({ host: '127.0.0.1', port: 0, backlog: 4096 });
const port = l.address().port;
let accepted = 0;
const serve = (s) =>
  engine.expectLine(s, null, new Callback({
    success: (line, sock) =>
      engine.write(sock, '+PONG\\r\\n', new Callback({ success: () => serve(sock), failure: () => engine.close(sock) })),
    failure: () => engine.close(s),
  }));
const acceptLoop = () =>
  engine.accept(l, new Callback({
    success: (s) => { accepted++; serve(s); acceptLoop(); },
    failure: (e) => console.error('accept failed', e.code),
  }));
acceptLoop();
const clients = [];
const open = () => new Promise((resolve, reject) => {
  const c = net.connect(port, '127.0.0.1');
  c.on('error', reject);
  c.once('connect', () => { clients.push(c); resolve(); });
});
for (let opened = 0; opened < N; ) {
  const wave = [];
  for (let i = 0; i < 200 && opened < N; i++, opened++) wave.push(open());
  await Promise.all(wave);
}
const settle = Date.now() + 10_000;
while ((accepted < N || engine.stats().queueDepth !== 0) && Date.now() < settle) {
  await new Promise((r) => setTimeout(r, 20));
}
const held = engine.stats();
const idle = accepted;
const c = net.connect(port, '127.0.0.1');
await new Promise((r) => c.once('connect', r));
c.write('PING\\r\\n');
const reply = await new Promise((r) => c.once('data', (b) => r(String(b))));
console.log(JSON.stringify({ accepted: idle, held, reply, nofile: process.env.NOFILE }));
for (const x of [c, ...clients]) x.destroy();
await engine.shutdown();
`;

test.serial(
  '[threadpool] 2,500 idle connections on 2 threads: every read is watched, a new client is served',
  async (t) => {
    t.timeout(60_000);
    const n = 2_500;
    const script = `ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"; NOFILE=$(ulimit -n) exec "$@"`;
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(
          '/bin/sh',
          ['-c', script, 'sh', process.execPath, '--input-type=module', '-e', HOLD_IDLE],
          {
            env: { ...process.env, ENGINE_URL: engineUrl, N: String(n), THREADS: '2' },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      },
    );
    t.is(r.code, 0, `child failed: ${r.stderr.slice(0, 2000)}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      accepted: number;
      held: { opsInFlight: number; queueDepth: number; busyWorkers: number; sockets: number };
      reply: string;
      nofile: string;
    };
    t.true(Number(out.nofile) >= 2 * n + 64, `fd limit ${out.nofile} too low for ${n} pairs`);
    t.is(out.accepted, n, 'every connection accepted');
    t.is(out.held.queueDepth, 0, 'no read waits for a turn');
    t.true(out.held.opsInFlight >= n, `reads pending: ${out.held.opsInFlight}`);
    t.true(out.held.busyWorkers <= 2, `busyWorkers: ${out.held.busyWorkers}`);
    t.is(out.reply, '+PONG\r\n', 'the new client is served');
  },
);
