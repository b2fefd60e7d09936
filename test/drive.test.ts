// Driving the engine: manual drive delivers nothing until runOnce(), runOnce() returns how many
// ops it settled, run() resolves when nothing is pending; callSoon / callLater order and cancel.
import net from 'node:net';
import type { Socket } from 'async-engine';
import {
  type Engine,
  expectOk,
  forEachImpl,
  onCleanup,
  once,
  portOf,
  sleep,
  type Tracked,
  waitUntil,
  withDeadline,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

const manual = { config: { drive: 'manual' as const } };

/** Calls runOnce until pred() holds (or ms pass); returns whether it holds. */
async function pump(engine: Engine, pred: () => boolean, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    engine.runOnce({ timeout: 5 });
    await sleep(1);
  }
  return true;
}

/** A loopback pair on a manual-drive engine: engine-side socket and a node:net client. */
async function manualPair(engine: Engine): Promise<{ sock: Socket; client: net.Socket }> {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const client = net.connect(portOf(l), '127.0.0.1');
  client.on('error', () => {});
  onCleanup(engine, () => void client.destroy());
  await new Promise<void>((r) => client.once('connect', () => r()));
  if (!(await pump(engine, () => acc.calls.length > 0))) throw new Error('accept not delivered');
  engine.close(l);
  const o = acc.calls[0]!;
  if (!o.ok) throw new Error(`accept failed: ${o.err?.code}`);
  return { sock: o.value as Socket, client };
}

forEachImpl(
  'manual drive: nothing is delivered until runOnce; then it is delivered inside runOnce',
  async (t, engine) => {
    const { sock, client } = await manualPair(engine);
    let inRunOnce = false;
    let ranInside: boolean | undefined;
    const r = once<Buffer>({ success: () => (ranInside = inRunOnce) });
    engine.readUntil(sock, '\n', r.cb);
    client.write('data\n');
    await sleep(200);
    t.is(r.calls.length, 0, 'not delivered while nobody calls runOnce');
    let total = 0;
    for (let i = 0; i < 200 && r.calls.length === 0; i++) {
      inRunOnce = true;
      total += engine.runOnce({ timeout: 20 });
      inRunOnce = false;
    }
    t.true(ranInside, 'the callback ran inside runOnce');
    t.is(total, 1, 'runOnce counted the one op it settled');
    t.is((await expectOk(t, r)).toString(), 'data\n');
  },
  manual,
);

forEachImpl(
  'manual drive: each runOnce returns the number of ops it dispatched',
  async (t, engine) => {
    const pairs = [await manualPair(engine), await manualPair(engine), await manualPair(engine)];
    let invoked = 0;
    const trs: Tracked<string>[] = [];
    for (const p of pairs) {
      const r = once<string>({ success: () => invoked++, failure: () => invoked++ });
      engine.expectLine(p.sock, null, r.cb);
      trs.push(r);
      p.client.write('line\r\n');
    }
    await sleep(100);
    const mismatches: string[] = [];
    let total = 0;
    for (let i = 0; i < 300 && invoked < 3; i++) {
      const before = invoked;
      const n = engine.runOnce({ timeout: 10 });
      total += n;
      if (n !== invoked - before) mismatches.push(`returned ${n}, ran ${invoked - before}`);
    }
    t.deepEqual(mismatches, []);
    t.is(total, 3);
    for (const r of trs) t.is(await expectOk(t, r), 'line');
  },
  manual,
);

forEachImpl(
  'manual drive: runOnce with nothing ready returns 0; a 50 ms wait returns within 2 s',
  async (t, engine) => {
    let started = Date.now();
    t.is(engine.runOnce({ timeout: 0 }), 0);
    t.is(engine.runOnce(), 0);
    t.true(Date.now() - started < 1_000);
    const { sock } = await manualPair(engine);
    engine.readUntil(sock, '\n', once<Buffer>().cb);
    started = Date.now();
    t.is(engine.runOnce({ timeout: 50 }), 0);
    t.true(Date.now() - started < 2_000);
  },
  manual,
);

forEachImpl(
  'manual drive: op timeouts and callLater fire through runOnce',
  async (t, engine) => {
    const { sock } = await manualPair(engine);
    const r = once<Buffer>({ timeout: 50 });
    engine.readUntil(sock, '\n', r.cb);
    let fired = false;
    engine.callLater(30, () => (fired = true));
    await sleep(100);
    t.false(fired, 'callLater waits for runOnce');
    t.is(r.calls.length, 0, 'the timeout waits for runOnce');
    t.true(await pump(engine, () => fired && r.calls.length > 0, 2_000));
    t.is(r.calls[0]?.err?.code, 'ETIMEDOUT');
  },
  manual,
);

forEachImpl(
  'manual drive: callSoon runs only from runOnce, in order',
  async (t, engine) => {
    const order: number[] = [];
    engine.callSoon(() => order.push(1));
    engine.callSoon(() => order.push(2));
    await sleep(50);
    t.deepEqual(order, []);
    t.true(await pump(engine, () => order.length === 2, 2_000));
    t.deepEqual(order, [1, 2]);
  },
  manual,
);

forEachImpl(
  'manual drive: run() resolves once nothing is pending',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const got: string[] = [];
    const acc = once<Socket>({
      success: (s) => engine.readUntil(s, '\n', read.cb),
    });
    const read = once<Buffer>({ success: (b) => got.push(b.toString()) });
    const write = once<number>();
    const con = once<Socket>({ success: (c) => engine.write(c, 'via run\n', write.cb) });
    engine.accept(l, acc.cb);
    engine.connect({ host: '127.0.0.1', port: portOf(l) }, con.cb);
    await withDeadline(engine.run(), 10_000, 'run() to resolve');
    t.is(acc.calls.length, 1);
    t.is(con.calls.length, 1);
    t.is(write.calls.length, 1);
    t.deepEqual(got, ['via run\n']);
    t.is(engine.stats().opsInFlight, 0);
  },
  manual,
);

forEachImpl(
  'manual drive: run() with nothing pending resolves',
  async (t, engine) => {
    await withDeadline(engine.run(), 5_000, 'run() to resolve');
    t.is(engine.stats().opsInFlight, 0);
  },
  manual,
);

forEachImpl('auto drive: run() resolves once pending ops are done', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>();
  const con = once<Socket>();
  engine.accept(l, acc.cb);
  engine.connect({ host: '127.0.0.1', port: portOf(l) }, con.cb);
  await withDeadline(engine.run(), 10_000, 'run() to resolve');
  t.is(acc.calls.length + con.calls.length, 2);
});

forEachImpl('callSoon: FIFO, never synchronous', async (t, engine) => {
  const order: number[] = [];
  let after = false;
  let sawAfter: boolean | undefined;
  engine.callSoon(() => {
    sawAfter = after;
    order.push(0);
  });
  after = true;
  for (let i = 1; i < 50; i++) engine.callSoon(() => order.push(i));
  t.true(await waitUntil(() => order.length === 50, 5_000));
  t.true(sawAfter);
  t.deepEqual(
    order,
    Array.from({ length: 50 }, (_, i) => i),
  );
});

forEachImpl('callLater: deadline order', async (t, engine) => {
  const order: string[] = [];
  engine.callLater(80, () => order.push('c'));
  engine.callLater(10, () => order.push('a'));
  engine.callLater(40, () => order.push('b'));
  t.true(await waitUntil(() => order.length === 3, 5_000));
  t.deepEqual(order, ['a', 'b', 'c']);
});

forEachImpl(
  'callLater / callSoon cancel: true before, false after, false twice, false inside',
  async (t, engine) => {
    let ran = 0;
    const h = engine.callLater(30, () => ran++);
    t.true(h.cancel());
    t.false(h.cancel());

    const s = engine.callSoon(() => ran++);
    t.true(s.cancel());

    let inside: boolean | undefined;
    const self: { h?: { cancel(): boolean } } = {};
    self.h = engine.callLater(5, () => (inside = self.h!.cancel()));

    let doneRan = false;
    const done = engine.callSoon(() => (doneRan = true));
    t.true(await waitUntil(() => doneRan && inside !== undefined, 5_000));
    t.false(done.cancel(), 'already ran');
    t.false(inside, 'cancel inside its own callback');
    await sleep(80);
    t.is(ran, 0, 'cancelled callbacks never ran');
  },
);
