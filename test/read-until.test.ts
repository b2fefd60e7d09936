// readUntil: string and Buffer delimiters, multi-byte delimiters split across segments,
// queued reads in submission order, EOF, per-op maxBytes and timeouts.
import { Callback } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  once,
  sleep,
  tcpPair,
  waitUntil,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl('readUntil with a string delimiter includes the delimiter', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('hello\r\nworld!');
  const r1 = once<Buffer>();
  engine.readUntil(p.sock, '\r\n', r1.cb);
  t.is((await expectOk(t, r1)).toString(), 'hello\r\n');
  const r2 = once<Buffer>();
  engine.readUntil(p.sock, 'd!', r2.cb);
  const o = await r2.result();
  t.true(o.ok);
  t.true(Buffer.isBuffer(o.value));
  t.is(o.value?.toString(), 'world!');
  t.is(o.sock, p.sock, 'success gets the socket the op ran on');
});

forEachImpl('readUntil with a binary Buffer delimiter', async (t, engine) => {
  const p = await tcpPair(engine);
  const delim = Buffer.from([0x00, 0xff, 0x00]);
  const payload = Buffer.concat([Buffer.from([1, 2, 0x00, 0xff, 3]), delim, Buffer.from([9, 9])]);
  await p.write(payload);
  const r = once<Buffer>();
  engine.readUntil(p.sock, delim, r.cb);
  t.deepEqual(await expectOk(t, r), Buffer.from([1, 2, 0x00, 0xff, 3, 0x00, 0xff, 0x00]));
  const rest = once<Buffer>();
  engine.readExactly(p.sock, 2, rest.cb);
  t.deepEqual(await expectOk(t, rest), Buffer.from([9, 9]));
});

forEachImpl('a delimiter at the very start gives just the delimiter', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('\nabc\n');
  const r1 = once<Buffer>();
  const r2 = once<Buffer>();
  engine.readUntil(p.sock, '\n', r1.cb);
  engine.readUntil(p.sock, '\n', r2.cb);
  t.is((await expectOk(t, r1)).toString(), '\n');
  t.is((await expectOk(t, r2)).toString(), 'abc\n');
});

forEachImpl('a multi-byte delimiter split across segments is found', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readUntil(p.sock, '<END>', r.cb);
  for (const part of ['abc<E', 'N', 'D', '>tail']) {
    await p.write(part);
    await sleep(15);
  }
  t.is((await expectOk(t, r)).toString(), 'abc<END>');
  const tail = once<Buffer>();
  engine.readExactly(p.sock, 4, tail.cb);
  t.is((await expectOk(t, tail)).toString(), 'tail');
});

forEachImpl('a false start of the delimiter does not end the read', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readUntil(p.sock, 'abab', r.cb);
  await p.write('xaba');
  await sleep(20);
  await p.write('bab!');
  // "xaba" + "bab!" = "xababab!": the first "abab" ends at index 5.
  t.is((await expectOk(t, r)).toString(), 'xabab');
  const rest = once<Buffer>();
  engine.readExactly(p.sock, 3, rest.cb);
  t.is((await expectOk(t, rest)).toString(), 'ab!');
});

forEachImpl('readUntils queued before the data complete in submission order', async (t, engine) => {
  const p = await tcpPair(engine);
  const order: number[] = [];
  const rs = [0, 1, 2, 3, 4].map((i) => once<Buffer>({ success: () => order.push(i) }));
  for (const r of rs) engine.readUntil(p.sock, ';', r.cb);
  await p.write('a;bb;');
  await sleep(10);
  await p.write('ccc;dddd;eeeee;');
  const got = [];
  for (const r of rs) got.push((await expectOk(t, r)).toString());
  t.deepEqual(got, ['a;', 'bb;', 'ccc;', 'dddd;', 'eeeee;']);
  t.deepEqual(order, [0, 1, 2, 3, 4]);
});

forEachImpl('EOF before the delimiter: ERR_INCOMPLETE with partial', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readUntil(p.sock, '\n', r.cb);
  p.client.end('abc');
  const err = await expectErr(t, r, 'ERR_INCOMPLETE');
  t.true(Buffer.isBuffer(err.partial));
  t.is(err.partial?.toString(), 'abc');
});

forEachImpl(
  'EOF with nothing buffered: ERR_INCOMPLETE with an empty partial',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.end();
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    const err = await expectErr(t, r, 'ERR_INCOMPLETE');
    t.true(Buffer.isBuffer(err.partial));
    t.is(err.partial?.length, 0);
  },
);

forEachImpl('per-op maxBytes overrides the engine default', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('0123456789\n');
  const small = once<Buffer>();
  engine.readUntil(p.sock, '\n', { maxBytes: 5 }, small.cb);
  await expectErr(t, small, 'ERR_LIMIT');
  const enough = once<Buffer>();
  engine.readUntil(p.sock, '\n', { maxBytes: 10 }, enough.cb);
  t.is((await expectOk(t, enough)).toString(), '0123456789\n');
});

forEachImpl('engine-wide maxBytes applies to readUntil', async (t, engine) => {
  const p = await tcpPair(engine);
  // default 65536: a 70000-byte frame is over it, a 60000-byte one is not
  await p.write(Buffer.concat([Buffer.alloc(60_000, 'a'), Buffer.from('|')]));
  const ok = once<Buffer>();
  engine.readUntil(p.sock, '|', ok.cb);
  t.is((await expectOk(t, ok)).length, 60_001);
  await p.write(Buffer.concat([Buffer.alloc(70_000, 'b'), Buffer.from('|')]));
  const tooBig = once<Buffer>();
  engine.readUntil(p.sock, '|', tooBig.cb);
  await expectErr(t, tooBig, 'ERR_LIMIT');
  const lifted = once<Buffer>();
  engine.readUntil(p.sock, '|', { maxBytes: Infinity }, lifted.cb);
  t.is((await expectOk(t, lifted)).length, 70_001);
});

forEachImpl('a 50 ms timeout on a silent peer fires ETIMEDOUT within 2 s', async (t, engine) => {
  const p = await tcpPair(engine);
  const started = Date.now();
  const r = once<Buffer>({ timeout: 50 });
  engine.readUntil(p.sock, '\n', r.cb);
  await expectErr(t, r, 'ETIMEDOUT', 2_000);
  t.true(Date.now() - started < 2_000);
  // the socket is still usable
  const next = once<Buffer>();
  engine.readUntil(p.sock, '\n', next.cb);
  await p.write('after timeout\n');
  t.is((await expectOk(t, next)).toString(), 'after timeout\n');
});

forEachImpl(
  'a read with a generous timeout that completes does not time out later',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>({ timeout: 1_000 });
    engine.readUntil(p.sock, '\n', r.cb);
    await p.write('quick\n');
    t.is((await expectOk(t, r)).toString(), 'quick\n');
    await sleep(1_200);
    t.is(r.calls.length, 1, 'no late ETIMEDOUT after success');
  },
);

forEachImpl('a Callback may be reused after it settled', async (t, engine) => {
  const p = await tcpPair(engine);
  const seen: string[] = [];
  const errors: string[] = [];
  const cb = new Callback<Buffer>({
    success: (v) => seen.push(v.toString()),
    failure: (e) => errors.push(e.code),
  });
  engine.readUntil(p.sock, '\n', cb);
  await p.write('one\ntwo\n');
  t.true(await waitUntil(() => seen.length === 1, 5_000), 'first use settled');
  engine.readUntil(p.sock, '\n', cb);
  t.true(await waitUntil(() => seen.length === 2, 5_000), 'second use settled');
  await sleep(20);
  t.deepEqual(seen, ['one\n', 'two\n']);
  t.deepEqual(errors, []);
});

forEachImpl(
  'the engine-wide maxBytes is the default limit of every buffered read',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('0123456789abcdef|0123456789abcdefX|');
    const ok = once<Buffer>();
    const over = once<Buffer>();
    engine.readUntil(p.sock, '|', ok.cb);
    engine.readUntil(p.sock, '|', over.cb);
    t.is((await expectOk(t, ok)).toString(), '0123456789abcdef|');
    await expectErr(t, over, 'ERR_LIMIT');
    const perOp = once<Buffer>();
    engine.readUntil(p.sock, '|', { maxBytes: 17 }, perOp.cb);
    t.is(
      (await expectOk(t, perOp)).toString(),
      '0123456789abcdefX|',
      'a per-op maxBytes overrides it',
    );
  },
  { config: { maxBytes: 16 } },
);
