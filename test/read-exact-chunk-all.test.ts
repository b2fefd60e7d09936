// readExactly, readChunk and readAll: byte counts, reassembly across segments, EOF behaviour
// and the maxBytes bound of readAll.
import crypto from 'node:crypto';
import {
  expectErr,
  expectOk,
  forEachImpl,
  once,
  sleep,
  tcpPair,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl('readExactly(n) gives exactly n bytes and leaves the rest', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('hello world');
  const r1 = once<Buffer>();
  const r2 = once<Buffer>();
  engine.readExactly(p.sock, 5, r1.cb);
  engine.readExactly(p.sock, 6, r2.cb);
  t.is((await expectOk(t, r1)).toString(), 'hello');
  t.is((await expectOk(t, r2)).toString(), ' world');
});

forEachImpl('readExactly assembles one-byte segments', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readExactly(p.sock, 6, r.cb);
  for (const ch of 'abcdef') {
    await p.write(ch);
    await sleep(3);
  }
  t.is((await expectOk(t, r)).toString(), 'abcdef');
});

forEachImpl('readExactly of 1 MiB is bounded by its size, not maxBytes', async (t, engine) => {
  const p = await tcpPair(engine);
  const data = crypto.randomBytes(1 << 20);
  const r = once<Buffer>();
  engine.readExactly(p.sock, data.length, r.cb);
  void p.write(data);
  const got = await expectOk(t, r, 30_000);
  t.is(got.length, data.length);
  t.true(got.equals(data), 'same bytes');
});

forEachImpl('readExactly: EOF first is ERR_INCOMPLETE with partial', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readExactly(p.sock, 10, r.cb);
  p.client.end('1234');
  const err = await expectErr(t, r, 'ERR_INCOMPLETE');
  t.is(err.partial?.toString(), '1234');
});

forEachImpl('readChunk gives 1..size bytes as soon as any are there', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readChunk(p.sock, 4096, r.cb);
  await p.write('abc');
  const v = await expectOk(t, r);
  t.true(v.length >= 1 && v.length <= 3, `got ${v.length} bytes`);
  t.true('abc'.startsWith(v.toString()));
});

forEachImpl(
  'readChunk never gives more than size; successive chunks rebuild the stream',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    await p.write(data);
    const parts: Buffer[] = [];
    let total = 0;
    while (total < data.length) {
      const r = once<Buffer>();
      engine.readChunk(p.sock, 5, r.cb);
      const v = await expectOk(t, r);
      t.true(v.length >= 1 && v.length <= 5, `chunk of ${v.length}`);
      parts.push(v);
      total += v.length;
    }
    t.deepEqual(Buffer.concat(parts), data);
  },
);

forEachImpl('readChunk delivers bytes left over by an earlier op first', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('line\nleft');
  const l = once<string>();
  engine.expectLine(p.sock, null, l.cb);
  t.is(await expectOk(t, l), 'line');
  const c = once<Buffer>();
  engine.readChunk(p.sock, 100, c.cb);
  const v = await expectOk(t, c);
  t.true('left'.startsWith(v.toString()) && v.length >= 1, JSON.stringify(v.toString()));
});

forEachImpl('readChunk at EOF succeeds with an empty Buffer (every time)', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.end('xy');
  const parts: string[] = [];
  for (;;) {
    const r = once<Buffer>();
    engine.readChunk(p.sock, 64, r.cb);
    const v = await expectOk(t, r);
    t.true(Buffer.isBuffer(v));
    if (v.length === 0) break;
    parts.push(v.toString());
  }
  t.is(parts.join(''), 'xy');
  const again = once<Buffer>();
  engine.readChunk(p.sock, 64, again.cb);
  t.is((await expectOk(t, again)).length, 0, 'EOF again');
});

forEachImpl('readAll gives everything until EOF', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readAll(p.sock, r.cb);
  await p.write('part one, ');
  await sleep(10);
  p.client.end('part two');
  t.is((await expectOk(t, r)).toString(), 'part one, part two');
});

forEachImpl('readAll after a line op includes the leftover bytes', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.end('head\nbody bytes');
  const l = once<string>();
  const a = once<Buffer>();
  engine.expectLine(p.sock, 'head', l.cb);
  engine.readAll(p.sock, a.cb);
  t.is(await expectOk(t, l), 'head');
  t.is((await expectOk(t, a)).toString(), 'body bytes');
});

forEachImpl('readAll of an empty stream is an empty Buffer', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.end();
  const r = once<Buffer>();
  engine.readAll(p.sock, r.cb);
  const v = await expectOk(t, r);
  t.true(Buffer.isBuffer(v));
  t.is(v.length, 0);
});

forEachImpl(
  'readAll: total of exactly maxBytes is fine, one more is ERR_LIMIT',
  async (t, engine) => {
    const a = await tcpPair(engine);
    a.client.end('0123456789');
    const ok = once<Buffer>();
    engine.readAll(a.sock, { maxBytes: 10 }, ok.cb);
    t.is((await expectOk(t, ok)).toString(), '0123456789');

    const b = await tcpPair(engine);
    b.client.end('0123456789X');
    const over = once<Buffer>();
    engine.readAll(b.sock, { maxBytes: 10 }, over.cb);
    await expectErr(t, over, 'ERR_LIMIT');
  },
);

forEachImpl('readAll with maxBytes: Infinity takes 300 kB', async (t, engine) => {
  const p = await tcpPair(engine);
  const data = crypto.randomBytes(300_000);
  const r = once<Buffer>();
  engine.readAll(p.sock, { maxBytes: Infinity }, r.cb);
  p.client.end(data);
  const v = await expectOk(t, r, 30_000);
  t.true(v.equals(data));
});
