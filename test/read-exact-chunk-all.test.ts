// readExactly, readChunk and readAll: byte counts, reassembly across segments, EOF behaviour
// and the maxBytes bound of readAll.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

forEachImpl(
  'readExactly(0) is an empty Buffer, in order, never inside the call, even at EOF',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // Nothing buffered: it settles at once, after the call returns.
    const cold = once<Buffer>();
    engine.readExactly(p.sock, 0, cold.cb);
    t.is(cold.calls.length, 0, 'not inside the call');
    t.is((await expectOk(t, cold)).length, 0);
    // Behind a read that waits: after it, and it takes no byte.
    const order: string[] = [];
    const first = once<Buffer>();
    const zero = once<Buffer>();
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 3, first.cb);
    engine.readExactly(p.sock, 0, zero.cb);
    engine.readExactly(p.sock, 2, rest.cb);
    void first.result().then(() => order.push('first'));
    void zero.result().then(() => order.push('zero'));
    await p.write('abcde');
    t.is((await expectOk(t, first)).toString(), 'abc');
    t.is((await expectOk(t, zero)).length, 0);
    t.is((await expectOk(t, rest)).toString(), 'de');
    t.deepEqual(order, ['first', 'zero']);
    // Among bytes already held: empty, and the next read still gets them all.
    await p.write('xyz\n');
    const line = once<string>();
    engine.expectLine(p.sock, null, line.cb);
    await p.write('more');
    t.is(await expectOk(t, line), 'xyz');
    const held = once<Buffer>();
    const more = once<Buffer>();
    engine.readExactly(p.sock, 0, held.cb);
    engine.readExactly(p.sock, 4, more.cb);
    t.is((await expectOk(t, held)).length, 0);
    t.is((await expectOk(t, more)).toString(), 'more');
    // At the end of the stream: still an empty Buffer, where any n > 0 is ERR_INCOMPLETE.
    p.client.end();
    const eof = once<Buffer>();
    engine.readExactly(p.sock, 1, eof.cb);
    await expectErr(t, eof, 'ERR_INCOMPLETE');
    const atEnd = once<Buffer>();
    engine.readExactly(p.sock, 0, atEnd.cb);
    t.is((await expectOk(t, atEnd)).length, 0);
    t.throws(() => engine.readExactly(p.sock, -1, once<Buffer>().cb), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
  },
);

forEachImpl(
  'readExactly(0) on a file: an empty Buffer, sequential and positioned',
  async (t, engine) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-rx0-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'f.txt');
    fs.writeFileSync(file, 'hello');
    const opened = once<import('async-engine').File>();
    engine.open(file, opened.cb);
    const f = await expectOk(t, opened);
    try {
      const seq = once<Buffer>();
      engine.readExactly(f, 0, seq.cb);
      t.is((await expectOk(t, seq)).length, 0);
      const at = once<Buffer>();
      engine.readExactly(f, 0, { position: 5 }, at.cb);
      t.is((await expectOk(t, at)).length, 0);
      const all = once<Buffer>();
      engine.readExactly(f, 5, all.cb);
      t.is((await expectOk(t, all)).toString(), 'hello', 'the empty reads took nothing');
    } finally {
      engine.close(f);
    }
  },
);

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
