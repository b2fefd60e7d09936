// engine.stats(): shape, open sockets and listeners, ops in flight, completions and batches,
// bytes read and written.
import type { EngineStats } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  once,
  tcpPair,
  waitUntil,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

const counters: Array<keyof EngineStats> = [
  'opsInFlight',
  'completions',
  'batches',
  'syscalls',
  'bytesRead',
  'bytesWritten',
  'sockets',
  'listeners',
];

forEachImpl(
  'a fresh engine: impl set, all counters zero or more, nothing open',
  (t, engine, impl) => {
    const s = engine.stats();
    t.is(s.impl, impl);
    for (const k of counters) {
      const v = s[k] as number;
      t.true(Number.isInteger(v) && v >= 0, `${k} = ${v}`);
    }
    t.is(s.opsInFlight, 0);
    t.is(s.sockets, 0);
    t.is(s.listeners, 0);
    t.is(s.completions, 0);
  },
);

forEachImpl('listeners and sockets are counted while open', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  t.is(engine.stats().listeners, 1);
  const p = await tcpPair(engine); // its own listener is closed again
  t.is(engine.stats().listeners, 1);
  t.is(engine.stats().sockets, 1);
  engine.close(p.sock);
  engine.close(l);
  t.true(
    await waitUntil(() => engine.stats().sockets === 0 && engine.stats().listeners === 0, 2_000),
  );
});

forEachImpl('opsInFlight counts pending ops until they settle', async (t, engine) => {
  const p = await tcpPair(engine);
  const a = once<Buffer>();
  const b = once<Buffer>();
  engine.readUntil(p.sock, '\n', a.cb);
  engine.readUntil(p.sock, '\n', b.cb);
  t.is(engine.stats().opsInFlight, 2);
  a.cancel();
  await expectErr(t, a, 'ECANCELED');
  t.is(engine.stats().opsInFlight, 1);
  await p.write('x\n');
  await expectOk(t, b);
  t.is(engine.stats().opsInFlight, 0);
});

forEachImpl('completions and batches grow; batches never exceed completions', async (t, engine) => {
  const p = await tcpPair(engine);
  const before = engine.stats();
  const trs = [once<string>(), once<string>(), once<string>(), once<string>()];
  for (const r of trs) engine.expectLine(p.sock, null, r.cb);
  await p.write('1\n2\n3\n4\n');
  for (const r of trs) await expectOk(t, r);
  const after = engine.stats();
  t.is(after.completions - before.completions, 4);
  const batches = after.batches - before.batches;
  t.true(batches >= 1 && batches <= 4, `${batches} batches for 4 completions`);
  t.true(after.batches <= after.completions);
  t.true(after.syscalls > before.syscalls, 'I/O took system calls');
});

forEachImpl('bytesRead and bytesWritten follow the traffic', async (t, engine) => {
  const p = await tcpPair(engine);
  const before = engine.stats();
  const w = once<number>();
  engine.write(p.sock, Buffer.alloc(100, 'a'), w.cb);
  t.is(await expectOk(t, w), 100);
  await p.waitForBytes(100);
  const mid = engine.stats();
  t.is(mid.bytesWritten - before.bytesWritten, 100);
  await p.write(Buffer.alloc(50, 'b'));
  const r = once<Buffer>();
  engine.readExactly(p.sock, 50, r.cb);
  await expectOk(t, r);
  const after = engine.stats();
  t.is(after.bytesRead - mid.bytesRead, 50);
  t.is(after.bytesWritten, mid.bytesWritten);
});
