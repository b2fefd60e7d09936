// readUntil with several delimiters: the one whose match ends first wins (the longer of two
// ending at the same byte), reported as given with its index; delimiters split across packets,
// one a prefix of another, maxBytes, EOF, bad input, the frame held in JavaScript and the one
// waited for natively, cancel, files and the promise form.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { File, ReadUntilResult } from 'async-engine';
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

const CRLF_LF = ['\r\n', '\n'];

forEachImpl(
  "['\\r\\n', '\\n'] on a\\nb\\r\\nc: a\\n with index 1, then b\\r\\n with index 0",
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('a\nb\r\nc');
    const r1 = once<ReadUntilResult>();
    const r2 = once<ReadUntilResult>();
    engine.readUntil(p.sock, CRLF_LF, r1.cb);
    engine.readUntil(p.sock, CRLF_LF, r2.cb);
    const v1 = await expectOk(t, r1);
    t.is(v1.data.toString(), 'a\n');
    t.is(v1.index, 1);
    t.is(v1.delimiter, '\n');
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), 'b\r\n');
    t.is(v2.index, 0);
    t.is(v2.delimiter, '\r\n');
    t.is((await r2.result()).sock, p.sock, 'success gets the socket the op ran on');
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 1, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'c');
  },
);

forEachImpl(
  'delimiters arriving one byte per write are found as they complete, the one given as a Buffer reported as that Buffer',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const end = Buffer.from('END!');
    const r1 = once<ReadUntilResult>();
    const r2 = once<ReadUntilResult>();
    // Both wait natively: nothing has arrived yet.
    engine.readUntil(p.sock, [end, '\r\n'], r1.cb);
    engine.readUntil(p.sock, [end, '\r\n'], r2.cb);
    for (const byte of 'xy\r\nEN\rEND!tail') {
      await p.write(byte);
      await sleep(2);
    }
    const v1 = await expectOk(t, r1);
    t.is(v1.data.toString(), 'xy\r\n');
    t.is(v1.index, 1);
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), 'EN\rEND!');
    t.is(v2.index, 0);
    t.is(v2.delimiter, end, 'the Buffer given, not a copy');
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 4, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'tail');
  },
);

forEachImpl(
  'of two delimiters ending at the same byte the longer wins, whatever their order and however the bytes arrive',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // "ab\r" first: '\n' has not arrived, nothing ends yet; then "\n" completes both.
    const r1 = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], r1.cb);
    await p.write('ab\r');
    await sleep(10);
    t.is(r1.calls.length, 0, 'no delimiter has ended yet');
    await p.write('\ncd\r\n');
    const v1 = await expectOk(t, r1);
    t.is(v1.data.toString(), 'ab\r\n');
    t.is(v1.index, 1);
    t.is(v1.delimiter, '\r\n');
    const r2 = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\r\n', '\n'], r2.cb);
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), 'cd\r\n');
    t.is(v2.index, 0);
    // Equal delimiters: the first given.
    await p.write('e;');
    const r3 = once<ReadUntilResult>();
    engine.readUntil(p.sock, [';', Buffer.from(';')], r3.cb);
    const v3 = await expectOk(t, r3);
    t.is(v3.index, 0);
    t.is(v3.delimiter, ';');
  },
);

forEachImpl(
  'a delimiter that begins another ends first and wins; the rest stays buffered',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('xabcd');
    const r = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['abcd', 'ab'], r.cb);
    const v = await expectOk(t, r);
    t.is(v.data.toString(), 'xab');
    t.is(v.index, 1);
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 2, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'cd');
    // One that starts earlier but ends later loses to one inside it.
    await p.write('abcd-');
    const r2 = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['abcd-', 'c'], r2.cb);
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), 'abc');
    t.is(v2.index, 1);
  },
);

forEachImpl(
  'maxBytes bounds the bytes before the delimiter found; past it ERR_LIMIT leaves the bytes buffered',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('abc\r\nabcd\n');
    const ok = once<ReadUntilResult>();
    engine.readUntil(p.sock, CRLF_LF, { maxBytes: 3 }, ok.cb);
    t.is((await expectOk(t, ok)).data.toString(), 'abc\r\n');
    const over = once<ReadUntilResult>();
    engine.readUntil(p.sock, CRLF_LF, { maxBytes: 3 }, over.cb);
    await expectErr(t, over, 'ERR_LIMIT');
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 5, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'abcd\n');
    // The delimiter that ends first is the one found, and it starts past the bound: ERR_LIMIT,
    // though a longer one starts within the bound and ends a byte later.
    await p.write('abc\nz');
    const first = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', 'bc\nz'], { maxBytes: 1 }, first.cb);
    await expectErr(t, first, 'ERR_LIMIT');
    // No delimiter at all: ERR_LIMIT once maxBytes + the longest delimiter are buffered.
    const none = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['#', '##'], { maxBytes: 2 }, none.cb);
    await expectErr(t, none, 'ERR_LIMIT');
    const all = once<Buffer>();
    engine.readExactly(p.sock, 5, all.cb);
    t.is((await expectOk(t, all)).toString(), 'abc\nz');
  },
);

forEachImpl(
  'EOF before any delimiter: ERR_INCOMPLETE with every byte in err.partial',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<ReadUntilResult>();
    engine.readUntil(p.sock, CRLF_LF, r.cb);
    await p.write('abc\r');
    p.client.end();
    const err = await expectErr(t, r, 'ERR_INCOMPLETE');
    t.is(err.partial?.toString(), 'abc\r');
  },
);

forEachImpl('bad delimiter lists are refused synchronously', async (t, engine) => {
  const p = await tcpPair(engine);
  const cb = once<ReadUntilResult>().cb;
  const code = (fn: () => void, c: string, type: ErrorConstructor): void => {
    const err = t.throws(fn, { instanceOf: type }) as Error & { code?: string };
    t.is(err?.code, c, err?.message);
  };
  code(() => engine.readUntil(p.sock, [], cb), 'ERR_OUT_OF_RANGE', RangeError);
  const seventeen = Array.from({ length: 17 }, (_, i) => `d${i}`);
  code(() => engine.readUntil(p.sock, seventeen, cb), 'ERR_OUT_OF_RANGE', RangeError);
  code(() => engine.readUntil(p.sock, ['\n', ''], cb), 'ERR_INVALID_ARG_VALUE', TypeError);
  code(() => engine.readUntil(p.sock, [Buffer.alloc(0)], cb), 'ERR_INVALID_ARG_VALUE', TypeError);
  code(() => engine.readUntil(p.sock, ['\n', 5 as never], cb), 'ERR_INVALID_ARG_TYPE', TypeError);
  code(() => engine.readUntil(p.sock, [null as never], cb), 'ERR_INVALID_ARG_TYPE', TypeError);
  // Sixteen is allowed, and the refused calls left the Callback free to use.
  const sixteen = Array.from({ length: 16 }, (_, i) => `<${i}>`);
  await p.write('a<15>');
  engine.readUntil(p.sock, sixteen, cb);
  const r = once<ReadUntilResult>();
  engine.readUntil(p.sock, sixteen, r.cb);
  await p.write('b<3>');
  const v = await expectOk(t, r);
  t.is(v.data.toString(), 'b<3>');
  t.is(v.index, 3);
});

forEachImpl(
  'many frames arriving in one packet settle from the bytes held in JavaScript, as the native framing cuts them',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'a\nb\r\nc\r\n\nEND\r\ntoolong\n');
    const before = engine.stats().framedInJs;
    const rs = [0, 1, 2, 3, 4].map(() => once<ReadUntilResult>());
    for (const r of rs) engine.readUntil(p.sock, ['\n', '\r\n', 'END\r\n'], r.cb);
    const got = await Promise.all(rs.map((r) => expectOk(t, r)));
    t.deepEqual(
      got.map((v) => [v.data.toString(), v.index]),
      [
        ['a\n', 0],
        ['b\r\n', 1],
        ['c\r\n', 1],
        ['\n', 0],
        ['END\r\n', 2],
      ],
    );
    t.is(engine.stats().framedInJs - before, 5, 'all five framed from held bytes');
    // A delimiter held, but past the bound: the native side decides (ERR_LIMIT), and nothing
    // is consumed.
    const over = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], { maxBytes: 2 }, over.cb);
    await expectErr(t, over, 'ERR_LIMIT');
    const rest = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], rest.cb);
    t.is((await expectOk(t, rest)).data.toString(), 'toolong\n');
  },
);

forEachImpl(
  'frames far into the held bytes, and a delimiter across the first 256 held bytes, are cut as natively',
  async (t, engine) => {
    const a = 'a'.repeat(255);
    const b = 'b'.repeat(1000);
    const c = 'c'.repeat(600);
    const p = await heldPair(t, engine, `${a}\r\n${b}\n${c}\nEND`);
    const before = engine.stats().framedInJs;
    const r1 = once<ReadUntilResult>();
    const r2 = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], r1.cb);
    engine.readUntil(p.sock, ['\n', '\r\n'], r2.cb);
    const v1 = await expectOk(t, r1);
    t.is(v1.data.toString(), `${a}\r\n`);
    t.is(v1.index, 1, 'the longer of two ending at the same byte');
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), `${b}\n`);
    t.is(v2.index, 0);
    t.is(engine.stats().framedInJs - before, 2);
    // 600 bytes before the delimiter, over a bound of 599: ERR_LIMIT, nothing consumed.
    const over = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], { maxBytes: 599 }, over.cb);
    await expectErr(t, over, 'ERR_LIMIT');
    const ok = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\n', '\r\n'], { maxBytes: 600 }, ok.cb);
    t.is((await expectOk(t, ok)).data.toString(), `${c}\n`);
  },
);

forEachImpl(
  'held bytes without a whole frame go back to the native side, which finds the delimiter when it arrives',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'one\r\ntwo\r');
    const r1 = once<ReadUntilResult>();
    const r2 = once<ReadUntilResult>();
    engine.readUntil(p.sock, CRLF_LF, r1.cb);
    engine.readUntil(p.sock, CRLF_LF, r2.cb);
    t.is((await expectOk(t, r1)).data.toString(), 'one\r\n');
    await sleep(10);
    t.is(r2.calls.length, 0);
    await p.write('\n');
    const v2 = await expectOk(t, r2);
    t.is(v2.data.toString(), 'two\r\n');
    t.is(v2.index, 0);
  },
);

forEachImpl(
  "a 300 KB frame, delivered as a Buffer of its own rather than in the batch's shared memory, still reports its delimiter",
  async (t, engine) => {
    const p = await tcpPair(engine);
    const big = 'z'.repeat(300 * 1024);
    const r = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\r\n', '\n'], { maxBytes: Infinity }, r.cb);
    await p.write(`${big}\r\nnext\n`);
    const v = await expectOk(t, r, 30_000);
    t.is(v.data.length, big.length + 2);
    t.true(v.data.subarray(0, big.length).equals(Buffer.from(big)));
    t.is(v.data.subarray(big.length).toString(), '\r\n');
    t.is(v.index, 0);
    const next = once<ReadUntilResult>();
    engine.readUntil(p.sock, ['\r\n', '\n'], next.cb);
    const w = await expectOk(t, next);
    t.deepEqual([w.data.toString(), w.index], ['next\n', 1]);
  },
);

forEachImpl('a cancelled readUntil of several delimiters loses no bytes', async (t, engine) => {
  const p = await tcpPair(engine);
  const r1 = once<ReadUntilResult>();
  engine.readUntil(p.sock, ['\r\n\r\n', '\n\n'], r1.cb);
  await p.write('head\r\n\r');
  await sleep(10);
  t.true(r1.cancel());
  await expectErr(t, r1, 'ECANCELED');
  const r2 = once<ReadUntilResult>();
  engine.readUntil(p.sock, ['\r\n\r\n', '\n\n'], r2.cb);
  await p.write('\nbody');
  const v = await expectOk(t, r2);
  t.is(v.data.toString(), 'head\r\n\r\n');
  t.is(v.index, 0);
  const timed = once<ReadUntilResult>({ timeout: 20 });
  engine.readUntil(p.sock, ['\n', '!'], timed.cb);
  await expectErr(t, timed, 'ETIMEDOUT');
  const rest = once<Buffer>();
  engine.readExactly(p.sock, 4, rest.cb);
  t.is((await expectOk(t, rest)).toString(), 'body');
});

forEachImpl('a File read as a stream frames several delimiters too', async (t, engine) => {
  const path = join(tempDir(engine), 'lines');
  writeFileSync(path, 'a\r\nb\nc');
  const open = once<File>();
  engine.open(path, open.cb);
  const file = await expectOk(t, open);
  const r1 = once<ReadUntilResult>();
  const r2 = once<ReadUntilResult>();
  const r3 = once<ReadUntilResult>();
  engine.readUntil(file, ['\n', '\r\n'], r1.cb);
  engine.readUntil(file, ['\n', '\r\n'], r2.cb);
  engine.readUntil(file, ['\n', '\r\n'], r3.cb);
  const v1 = await expectOk(t, r1);
  t.deepEqual([v1.data.toString(), v1.index], ['a\r\n', 1]);
  const v2 = await expectOk(t, r2);
  t.deepEqual([v2.data.toString(), v2.index], ['b\n', 0]);
  const err = await expectErr(t, r3, 'ERR_INCOMPLETE');
  t.is(err.partial?.toString(), 'c');
  engine.close(file);
});

forEachImpl(
  'engine.promises.readUntil with an array resolves { data, delimiter, index }',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('GET / HTTP/1.0\nHost: x\r\n');
    // Typed by overload: an array gives a ReadUntilResult, a single delimiter a Buffer.
    const v1: ReadUntilResult = await engine.promises.readUntil(p.sock, CRLF_LF);
    t.deepEqual(v1, { data: Buffer.from('GET / HTTP/1.0\n'), delimiter: '\n', index: 1 });
    const v2 = await engine.promises.readUntil(p.sock, CRLF_LF, { maxBytes: 100 });
    t.deepEqual(v2, { data: Buffer.from('Host: x\r\n'), delimiter: '\r\n', index: 0 });
    // The single-delimiter form still resolves a Buffer.
    await p.write('z;');
    const single: Buffer = await engine.promises.readUntil(p.sock, ';');
    t.true(Buffer.isBuffer(single));
    t.is(single.toString(), 'z;');
    await t.throwsAsync(engine.promises.readUntil(p.sock, []), { code: 'ERR_OUT_OF_RANGE' });
  },
);
