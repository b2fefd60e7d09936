// peek: a copy of up to n buffered bytes, none consumed, the next read seeing them again; it
// waits for a first byte, takes its turn among the reads queued on the socket, settles an empty
// Buffer at EOF, and a timed-out or cancelled peek settles once and loses nothing. Sockets only.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { File } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  sleep,
  tcpPair,
  tempDir,
} from './helpers/harness.js';
import { heldPair } from './helpers/held.js';

noFdLeaks();

forEachImpl('peek then readExactly sees the same bytes', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('hello world');
  await sleep(5);
  const peek = once<Buffer>();
  const read = once<Buffer>();
  engine.peek(p.sock, 5, peek.cb);
  engine.readExactly(p.sock, 11, read.cb);
  const seen = await expectOk(t, peek);
  t.true(seen.length >= 1 && seen.length <= 5, `1 to 5 bytes, got ${seen.length}`);
  t.is(seen.toString(), 'hello'.slice(0, seen.length));
  t.is((await peek.result()).sock, p.sock, 'success gets the socket the op ran on');
  t.is((await expectOk(t, read)).toString(), 'hello world');
});

forEachImpl('peek waits for the first byte, then delivers what is buffered', async (t, engine) => {
  const p = await tcpPair(engine);
  const peek = once<Buffer>();
  engine.peek(p.sock, 100, peek.cb);
  await sleep(20);
  t.is(peek.calls.length, 0, 'nothing buffered: it waits');
  await p.write('abc');
  const seen = await expectOk(t, peek);
  t.true(seen.length >= 1, 'at least one byte');
  t.is(seen.toString(), 'abc'.slice(0, seen.length));
  // Nothing was consumed.
  const read = once<Buffer>();
  engine.readExactly(p.sock, 3, read.cb);
  t.is((await expectOk(t, read)).toString(), 'abc');
});

forEachImpl(
  'peek(n) with more buffered returns n bytes, natively and from held bytes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('abcdef');
    await sleep(10);
    const native = once<Buffer>();
    engine.peek(p.sock, 3, native.cb);
    // The bytes arrive in one segment on loopback; a slow scheduler may still split them.
    const n1 = await expectOk(t, native);
    t.is(n1.toString(), 'abc'.slice(0, n1.length));
    t.true(n1.length >= 1);
    const h = await heldPair(t, engine, 'xyz123');
    const before = engine.stats().framedInJs;
    const held = once<Buffer>();
    const again = once<Buffer>();
    engine.peek(h.sock, 3, held.cb);
    engine.peek(h.sock, 100, again.cb);
    t.is((await expectOk(t, held)).toString(), 'xyz');
    t.is((await expectOk(t, again)).toString(), 'xyz123', 'the first peek consumed nothing');
    t.is(engine.stats().framedInJs - before, 2, 'both settled from held bytes');
    const read = once<Buffer>();
    engine.readExactly(h.sock, 6, read.cb);
    t.is((await expectOk(t, read)).toString(), 'xyz123');
    const all = once<Buffer>();
    engine.readExactly(p.sock, 6, all.cb);
    t.is((await expectOk(t, all)).toString(), 'abcdef');
  },
);

forEachImpl('peek delivers a copy: changing it changes nothing read later', async (t, engine) => {
  const h = await heldPair(t, engine, 'secret');
  const peek = once<Buffer>({ success: (b) => b.fill(0x21) });
  engine.peek(h.sock, 6, peek.cb);
  await expectOk(t, peek);
  const read = once<Buffer>();
  engine.readExactly(h.sock, 6, read.cb);
  t.is((await expectOk(t, read)).toString(), 'secret');
  // The same on the native path.
  const p = await tcpPair(engine);
  const peek2 = once<Buffer>({ success: (b) => b.fill(0x21) });
  engine.peek(p.sock, 6, peek2.cb);
  await p.write('hidden');
  await expectOk(t, peek2);
  const read2 = once<Buffer>();
  engine.readExactly(p.sock, 6, read2.cb);
  t.is((await expectOk(t, read2)).toString(), 'hidden');
});

forEachImpl(
  'at EOF with nothing buffered peek succeeds with an empty Buffer; with bytes left it shows them',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('last');
    p.client.end();
    const peek = once<Buffer>();
    engine.peek(p.sock, 10, peek.cb);
    const seen = await expectOk(t, peek);
    t.is(seen.toString(), 'last'.slice(0, seen.length));
    t.true(seen.length >= 1);
    const all = once<Buffer>();
    engine.readAll(p.sock, all.cb);
    t.is((await expectOk(t, all)).toString(), 'last');
    const atEof = once<Buffer>();
    engine.peek(p.sock, 10, atEof.cb);
    const empty = await expectOk(t, atEof);
    t.true(Buffer.isBuffer(empty));
    t.is(empty.length, 0);
    // And again: EOF stays EOF.
    const again = once<Buffer>();
    engine.peek(p.sock, 1, again.cb);
    t.is((await expectOk(t, again)).length, 0);
  },
);

forEachImpl(
  'a peek queued behind a pending line read sees the bytes after that line',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const line = once<string>();
    const peek = once<Buffer>();
    const rest = once<Buffer>();
    engine.expectLine(p.sock, null, line.cb);
    engine.peek(p.sock, 4, peek.cb);
    engine.readExactly(p.sock, 6, rest.cb);
    await p.write('first line\nsecond');
    t.is(await expectOk(t, line), 'first line');
    const seen = await expectOk(t, peek);
    t.is(seen.toString(), 'seco'.slice(0, seen.length));
    t.true(seen.length >= 1);
    t.is((await expectOk(t, rest)).toString(), 'second');
    // Held bytes: a line framed in JavaScript, then a peek, in submission order.
    const h = await heldPair(t, engine, 'L1\nL2\n');
    const l1 = once<string>();
    const pk = once<Buffer>();
    engine.expectLine(h.sock, null, l1.cb);
    engine.peek(h.sock, 10, pk.cb);
    t.is(await expectOk(t, l1), 'L1');
    t.is((await expectOk(t, pk)).toString(), 'L2\n');
  },
);

forEachImpl(
  'a peek that times out or is cancelled settles once and loses nothing',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const timed = once<Buffer>({ timeout: 20 });
    engine.peek(p.sock, 4, timed.cb);
    await expectErr(t, timed, 'ETIMEDOUT');
    const cancelled = once<Buffer>();
    engine.peek(p.sock, 4, cancelled.cb);
    t.true(cancelled.cancel());
    await expectErr(t, cancelled, 'ECANCELED');
    await p.write('data');
    await sleep(10);
    // A peek that has already delivered cannot be cancelled; its bytes are still there.
    const done = once<Buffer>();
    engine.peek(p.sock, 4, done.cb);
    await expectOk(t, done);
    t.false(done.cancel());
    const read = once<Buffer>();
    engine.readExactly(p.sock, 4, read.cb);
    t.is((await expectOk(t, read)).toString(), 'data');
    for (const tr of [timed, cancelled, done]) t.is(tr.calls.length, 1, `${tr.label} settled once`);
  },
);

forEachImpl('peek refuses a bad n, a File and a position synchronously', async (t, engine) => {
  const p = await tcpPair(engine);
  const cb = once<Buffer>().cb;
  const code = (fn: () => void, c: string, type: ErrorConstructor): void => {
    const err = t.throws(fn, { instanceOf: type }) as Error & { code?: string };
    t.is(err?.code, c, err?.message);
  };
  code(() => engine.peek(p.sock, 0, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(() => engine.peek(p.sock, -1, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(() => engine.peek(p.sock, 1.5, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(() => engine.peek(p.sock, 2 ** 31, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(() => engine.peek(p.sock, '3' as never, cb), 'ERR_INVALID_ARG_TYPE', TypeError);
  code(() => engine.peek(p.sock, NaN, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(
    () => engine.peek(p.sock, 1, { position: 0 } as never, cb),
    'ERR_INVALID_ARG_VALUE',
    TypeError,
  );
  const path = join(tempDir(engine), 'f');
  writeFileSync(path, 'abc');
  const open = once<File>();
  engine.open(path, open.cb);
  const file = await expectOk(t, open);
  code(() => engine.peek(file as never, 1, cb), 'ERR_INVALID_ARG_TYPE', TypeError);
  code(() => engine.peek({} as never, 1, cb), 'ERR_INVALID_ARG_TYPE', TypeError);
  engine.close(file);
  // The refused calls left the Callback free.
  await p.write('x');
  const r = once<Buffer>();
  engine.peek(p.sock, 1, r.cb);
  t.is((await expectOk(t, r)).toString(), 'x');
});

forEachImpl('engine.promises.peek resolves the bytes, leaving them buffered', async (t, engine) => {
  const p = await tcpPair(engine);
  const pending = engine.promises.peek(p.sock, 2);
  await p.write('ok!');
  const seen = await pending;
  t.is(seen.toString(), 'ok'.slice(0, seen.length));
  t.is((await engine.promises.readExactly(p.sock, 3)).toString(), 'ok!');
  const ac = new AbortController();
  const aborted = engine.promises.peek(p.sock, 1, { signal: ac.signal });
  ac.abort();
  await t.throwsAsync(aborted, { name: 'AbortError' });
  await t.throwsAsync(engine.promises.peek(p.sock, 0), { code: 'ERR_OUT_OF_RANGE' });
});
