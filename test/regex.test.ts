// readUntilRegex: data through the end of the match is consumed, the rest stays buffered;
// matches split across segments; a match that needs later data; limits and EOF.
import type { RegexResult } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  once,
  type Pair,
  sleep,
  tcpPair,
  waitUntil,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

/** Writes part and waits (up to 1 s) until the engine has read it, so segments stay apart. */
async function feed(engine: Engine, p: Pair, part: string): Promise<void> {
  const before = engine.stats().bytesRead;
  await p.write(part);
  if (!(await waitUntil(() => engine.stats().bytesRead >= before + part.length, 1_000))) {
    await sleep(20);
  }
}

forEachImpl(
  'readUntilRegex: data through the match, the match, the rest buffered',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('foo 123 bar');
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /\d+/, r.cb);
    const o = await r.result();
    t.true(o.ok);
    const { data, match } = o.value as RegexResult;
    t.true(Buffer.isBuffer(data));
    t.is(data.toString(), 'foo 123');
    t.is(match[0], '123');
    t.is(match.index, 4);
    t.is(o.sock, p.sock);
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 4, rest.cb);
    t.is((await expectOk(t, rest)).toString(), ' bar');
  },
);

forEachImpl('readUntilRegex: capture groups', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('key=42\nname=x\n');
  const r1 = once<RegexResult>();
  const r2 = once<RegexResult>();
  engine.readUntilRegex(p.sock, /(\w+)=(\w+)\n/, r1.cb);
  engine.readUntilRegex(p.sock, /(\w+)=(\w+)\n/, r2.cb);
  const a = await expectOk(t, r1);
  const b = await expectOk(t, r2);
  t.deepEqual([a.match[1], a.match[2]], ['key', '42']);
  t.is(a.data.toString(), 'key=42\n');
  t.deepEqual([b.match[1], b.match[2]], ['name', 'x']);
  t.is(b.data.toString(), 'name=x\n');
});

forEachImpl('/a{3}/ fed as "aa" then "a" matches once all three arrived', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<RegexResult>();
  engine.readUntilRegex(p.sock, /a{3}/, r.cb);
  await feed(engine, p, 'aa');
  await sleep(20);
  t.is(r.calls.length, 0, 'no match on "aa"');
  await feed(engine, p, 'a');
  const v = await expectOk(t, r);
  t.is(v.data.toString(), 'aaa');
  t.is(v.match[0], 'aaa');
});

forEachImpl(
  'a regex that only matches after later data is not committed early',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /(\d+);/, r.cb);
    await feed(engine, p, 'n=12');
    await feed(engine, p, '34');
    await sleep(20);
    t.is(r.calls.length, 0);
    await feed(engine, p, ';rest');
    const v = await expectOk(t, r);
    t.is(v.match[1], '1234', 'the whole number, not the part seen first');
    t.is(v.data.toString(), 'n=1234;');
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 4, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'rest');
  },
);

forEachImpl('a multiline regex across lines and segments', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<RegexResult>();
  engine.readUntilRegex(p.sock, /^DATA\r\n([\s\S]*?)\r\n\.\r\n/m, r.cb);
  await feed(engine, p, 'HELO\r\nDATA\r\nline one\r\n');
  await feed(engine, p, 'line two\r\n.');
  await feed(engine, p, '\r\nQUIT\r\n');
  const v = await expectOk(t, r);
  t.is(v.match[1], 'line one\r\nline two');
  t.is(v.data.toString(), 'HELO\r\nDATA\r\nline one\r\nline two\r\n.\r\n');
  const quit = once<string>();
  engine.expectLine(p.sock, 'QUIT', quit.cb);
  t.is(await expectOk(t, quit), 'QUIT');
});

forEachImpl('a regex that never matches within maxBytes fails ERR_LIMIT', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<RegexResult>();
  engine.readUntilRegex(p.sock, /NEVER/, { maxBytes: 100 }, r.cb);
  await p.write(Buffer.alloc(300, 'x'));
  await expectErr(t, r, 'ERR_LIMIT');
});

forEachImpl('EOF before a regex match is ERR_INCOMPLETE with partial', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<RegexResult>();
  engine.readUntilRegex(p.sock, /\d{4}/, r.cb);
  p.client.end('12 34');
  const err = await expectErr(t, r, 'ERR_INCOMPLETE');
  t.is(err.partial?.toString(), '12 34');
});

forEachImpl(
  'readUntilRegex matches against text decoded with the op encoding',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x21, 0x7a]));
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /caf\u00e9!/, { encoding: 'latin1' }, r.cb);
    const v = await expectOk(t, r);
    t.is(v.match[0], 'café!');
    t.deepEqual(
      v.data,
      Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x21]),
      'data ends with the match, in bytes',
    );
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 1, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'z');
  },
);

forEachImpl(
  'readUntilRegex: data is counted in bytes when the text has multi-byte characters',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('ünïcödé=42;tail');
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /=(\d+);/, r.cb);
    const v = await expectOk(t, r);
    t.is(v.match[1], '42');
    t.is(v.data.toString(), 'ünïcödé=42;');
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 4, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'tail');
  },
);

forEachImpl(
  'readUntilRegex (utf8) over bytes that are not valid UTF-8 consumes exactly through the match',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write(Buffer.concat([Buffer.from([0xff, 0xc0, 0xaf]), Buffer.from('OK\r\nNEXT\r\n')]));
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /OK\r\n/, r.cb);
    const v = await expectOk(t, r);
    t.deepEqual(v.data, Buffer.from([0xff, 0xc0, 0xaf, 0x4f, 0x4b, 0x0d, 0x0a]));
    t.is(v.match[0], 'OK\r\n');
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'NEXT', 'the bytes after the match stay buffered');
  },
);

forEachImpl(
  'readUntilRegex (utf8) after readExactly split a UTF-8 character consumes exactly through the match',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // 'é' is c3 a9; readExactly(2) takes 'x' and c3, leaving a lone continuation byte.
    await p.write(Buffer.from('xéOK\r\nNEXT\r\n', 'utf8'));
    const head = once<Buffer>();
    engine.readExactly(p.sock, 2, head.cb);
    t.deepEqual(await expectOk(t, head), Buffer.from([0x78, 0xc3]));
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /OK\r\n/, r.cb);
    const v = await expectOk(t, r);
    t.deepEqual(v.data, Buffer.from([0xa9, 0x4f, 0x4b, 0x0d, 0x0a]));
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'NEXT');
  },
);

forEachImpl(
  'readUntilRegex (utf8): a match ending inside a 4-byte character takes the whole character',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // U+1F600 is one 4-byte UTF-8 sequence and two UTF-16 code units; the regex (no `u` flag)
    // matches its first code unit only.
    await p.write(Buffer.from('a\u{1F600}b\n', 'utf8'));
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /a\uD83D/, r.cb);
    const v = await expectOk(t, r);
    t.deepEqual(v.data, Buffer.from('a\u{1F600}', 'utf8'));
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'b');
  },
);

forEachImpl(
  'readUntilRegex (utf8): replacement characters in the match map back to their bytes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // e2 82 is a truncated 3-byte sequence (one U+FFFD), f0 9f 98 another (one U+FFFD).
    const bytes = Buffer.from([0x3c, 0xe2, 0x82, 0x3e, 0xf0, 0x9f, 0x98, 0x21, 0x7a]);
    await p.write(bytes);
    const r = once<RegexResult>();
    engine.readUntilRegex(p.sock, /<\uFFFD>\uFFFD!/, r.cb);
    const v = await expectOk(t, r);
    t.deepEqual(v.data, bytes.subarray(0, 8));
    const rest = once<Buffer>();
    engine.readExactly(p.sock, 1, rest.cb);
    t.is((await expectOk(t, rest)).toString(), 'z');
  },
);

forEachImpl(
  'a zero-width match succeeds: at the start with no bytes (/\\b/), later with the bytes before it',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // Submitted before any byte: matched natively as they arrive.
    const cold = once<RegexResult>();
    engine.readUntilRegex(p.sock, /\b/, cold.cb);
    await p.write('hello world\n');
    const v1 = await expectOk(t, cold);
    t.is(v1.data.length, 0, 'no bytes');
    t.is(v1.match[0], '');
    t.is(v1.match.index, 0);
    // Among bytes already here: the same, and nothing was consumed.
    const la = once<RegexResult>();
    engine.readUntilRegex(p.sock, /(?=\n)/, la.cb);
    const v2 = await expectOk(t, la);
    t.is(v2.data.toString(), 'hello world', 'the bytes before a lookahead that matches later');
    const held = once<RegexResult>();
    engine.readUntilRegex(p.sock, /(?=\n)/, held.cb);
    t.is((await expectOk(t, held)).data.length, 0, 'a lookahead that matches at the start');
    // One that matches the empty string is refused up front: it would never consume a byte.
    t.throws(() => engine.readUntilRegex(p.sock, /^/, once<RegexResult>().cb), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
    const rest = once<string>();
    engine.expectLine(p.sock, null, rest.cb);
    t.is(await expectOk(t, rest), '', 'the newline is still there');
  },
);
