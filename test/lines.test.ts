// Line ops: expectLine with null / string / RegExp, \n and \r\n terminators, ERR_MISMATCH
// (the line is consumed), encodings, and readUntilLineglob with fnmatch patterns.
import { expectErr, expectOk, forEachImpl, once, tcpPair, noFdLeaks } from './helpers/harness.js';

noFdLeaks();

forEachImpl('expectLine(null) accepts any line and strips \\n and \\r\\n', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('hello\r\nworld\n\r\n\nlast\r\n');
  const got: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = once<string>();
    engine.expectLine(p.sock, null, r.cb);
    got.push(await expectOk(t, r));
  }
  t.deepEqual(got, ['hello', 'world', '', '', 'last']);
});

forEachImpl('expectLine delivers a string and the socket', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('x\n');
  const r = once<string>();
  engine.expectLine(p.sock, null, r.cb);
  const o = await r.result();
  t.true(o.ok);
  t.is(typeof o.value, 'string');
  t.is(o.sock, p.sock);
});

forEachImpl('a lone \\r inside a line is part of the line', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('a\rb\n\rc\r\n');
  const r1 = once<string>();
  const r2 = once<string>();
  engine.expectLine(p.sock, null, r1.cb);
  engine.expectLine(p.sock, null, r2.cb);
  t.is(await expectOk(t, r1), 'a\rb');
  t.is(await expectOk(t, r2), '\rc');
});

forEachImpl('expectLine(string) must equal the whole line', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('OK\r\nOK then\r\n');
  const good = once<string>();
  engine.expectLine(p.sock, 'OK', good.cb);
  t.is(await expectOk(t, good), 'OK');
  const prefixOnly = once<string>();
  engine.expectLine(p.sock, 'OK', prefixOnly.cb);
  const err = await expectErr(t, prefixOnly, 'ERR_MISMATCH');
  t.is(err.line, 'OK then');
});

forEachImpl('ERR_MISMATCH consumes the line: the next op gets the next one', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('500 nope\r\n250 fine\r\n');
  const first = once<string>();
  const second = once<string>();
  engine.expectLine(p.sock, /^250 /, first.cb);
  engine.expectLine(p.sock, /^250 /, second.cb);
  const err = await expectErr(t, first, 'ERR_MISMATCH');
  t.is(err.line, '500 nope', 'err.line has the terminator stripped');
  t.is(await expectOk(t, second), '250 fine');
});

forEachImpl('expectLine(RegExp) must match the line', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('220 mail.example ESMTP\r\nHELO\r\nabc123\n');
  const r1 = once<string>();
  const r2 = once<string>();
  const r3 = once<string>();
  engine.expectLine(p.sock, /^220 /, r1.cb);
  engine.expectLine(p.sock, /^helo$/i, r2.cb);
  engine.expectLine(p.sock, /^\d+$/, r3.cb);
  t.is(await expectOk(t, r1), '220 mail.example ESMTP');
  t.is(await expectOk(t, r2), 'HELO');
  t.is((await expectErr(t, r3, 'ERR_MISMATCH')).line, 'abc123');
});

forEachImpl('a RegExp does not see the terminator', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('end\r\n');
  const r = once<string>();
  engine.expectLine(p.sock, /^end$/, r.cb);
  t.is(await expectOk(t, r), 'end');
});

forEachImpl('lines are decoded as utf8 by default; encoding per op', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write(Buffer.concat([Buffer.from('héllo ✓ 日本\n', 'utf8'), Buffer.from([0xe9, 0x0a])]));
  const u = once<string>();
  engine.expectLine(p.sock, 'héllo ✓ 日本', u.cb);
  t.is(await expectOk(t, u), 'héllo ✓ 日本');
  const l = once<string>();
  engine.expectLine(p.sock, null, { encoding: 'latin1' }, l.cb);
  t.is(await expectOk(t, l), 'é');
});

forEachImpl(
  'a multi-byte utf8 character split across segments decodes whole',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const bytes = Buffer.from('→x\n', 'utf8');
    const r = once<string>();
    engine.expectLine(p.sock, null, r.cb);
    await p.write(bytes.subarray(0, 1));
    await new Promise((res) => setTimeout(res, 15));
    await p.write(bytes.subarray(1));
    t.is(await expectOk(t, r), '→x');
  },
);

forEachImpl('lineglob `*`: every line up to and including the first match', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('alpha\r\nbeta\nEND 42\r\nafter\n');
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'END *', g.cb);
  t.deepEqual(await expectOk(t, g), ['alpha', 'beta', 'END 42']);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  t.is(await expectOk(t, next), 'after', 'the rest stays buffered');
});

forEachImpl('lineglob matches the whole line, not a substring', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('xEND 1\nEND 1x\nEND 2\n');
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'END ?', g.cb);
  t.deepEqual(await expectOk(t, g), ['xEND 1', 'END 1x', 'END 2']);
});

forEachImpl('lineglob `*` matches the empty string', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('OKAY\nOK\n');
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'OK*', g.cb);
  t.deepEqual(await expectOk(t, g), ['OKAY'], '"OKAY" already matches OK*');
  const g2 = once<string[]>();
  engine.readUntilLineglob(p.sock, 'OK*', g2.cb);
  t.deepEqual(await expectOk(t, g2), ['OK']);
});

forEachImpl('lineglob `?` matches exactly one character', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('xy\nxaby\nx1y\n');
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'x?y', g.cb);
  t.deepEqual(await expectOk(t, g), ['xy', 'xaby', 'x1y']);
});

forEachImpl('lineglob `[a-z]` matches one character of the class', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('code=Q\ncode=7\ncode=q\ncode=z\n');
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'code=[a-z]', g.cb);
  t.deepEqual(await expectOk(t, g), ['code=Q', 'code=7', 'code=q']);
  const g2 = once<string[]>();
  engine.readUntilLineglob(p.sock, '*=[xyz]', g2.cb);
  t.deepEqual(await expectOk(t, g2), ['code=z']);
});

forEachImpl('lineglob waits for a matching line across segments', async (t, engine) => {
  const p = await tcpPair(engine);
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, '+OK*', g.cb);
  await p.write('* 1 EXISTS\r\n');
  await new Promise((res) => setTimeout(res, 20));
  t.is(g.calls.length, 0, 'no match yet');
  await p.write('* 2 RECENT\r\n+O');
  await new Promise((res) => setTimeout(res, 20));
  t.is(g.calls.length, 0, 'a partial line is not matched');
  await p.write('K done\r\n');
  t.deepEqual(await expectOk(t, g), ['* 1 EXISTS', '* 2 RECENT', '+OK done']);
});

forEachImpl('lineglob: EOF before a match is ERR_INCOMPLETE', async (t, engine) => {
  const p = await tcpPair(engine);
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, 'DONE', g.cb);
  p.client.end('a\nb\n');
  const err = await expectErr(t, g, 'ERR_INCOMPLETE');
  t.is(err.partial?.toString(), 'a\nb\n');
});

forEachImpl('expectLine: EOF in the middle of a line is ERR_INCOMPLETE', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, null, r.cb);
  p.client.end('no newline');
  const err = await expectErr(t, r, 'ERR_INCOMPLETE');
  t.is(err.partial?.toString(), 'no newline');
});

forEachImpl(
  'the engine-wide encoding applies to line results',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0xff, 0x0a]));
    const a = once<string>();
    const b = once<string[]>();
    engine.expectLine(p.sock, 'café', a.cb);
    engine.readUntilLineglob(p.sock, '?', b.cb);
    t.is(await expectOk(t, a), 'café');
    t.deepEqual(await expectOk(t, b), ['ÿ']);
  },
  { config: { encoding: 'latin1' } },
);

forEachImpl('readUntilLineglob honours a per-op encoding', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write(Buffer.from([0x61, 0x0a, 0xe9, 0x74, 0xe9, 0x0a]));
  const g = once<string[]>();
  engine.readUntilLineglob(p.sock, '?t?', { encoding: 'latin1' }, g.cb);
  t.deepEqual(await expectOk(t, g), ['a', 'été']);
});

forEachImpl(
  'lineglob: NUL inside a line is an ordinary byte, not the end of the line',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('END\0garbage\nEND\n');
    const g = once<string[]>();
    engine.readUntilLineglob(p.sock, 'END', g.cb);
    t.deepEqual(await expectOk(t, g), ['END\0garbage', 'END']);
  },
);

forEachImpl('lineglob: `?`, `*` and classes match a NUL byte like any other', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('a\0\nb\0c\nx\0\0y\n[\0]\n');
  const q = once<string[]>();
  engine.readUntilLineglob(p.sock, 'a?', q.cb);
  t.deepEqual(await expectOk(t, q), ['a\0']);
  const neg = once<string[]>();
  engine.readUntilLineglob(p.sock, 'b[!a-z]c', neg.cb);
  t.deepEqual(await expectOk(t, neg), ['b\0c']);
  const star = once<string[]>();
  engine.readUntilLineglob(p.sock, 'x*y', star.cb);
  t.deepEqual(await expectOk(t, star), ['x\0\0y']);
  const esc = once<string[]>();
  engine.readUntilLineglob(p.sock, '\\[?\\]', esc.cb);
  t.deepEqual(await expectOk(t, esc), ['[\0]']);
});

forEachImpl(
  'lineglob: bracket negation with `^`, ranges, `]` first and escapes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('k1\nk-\nk]\nk*\nkx\n');
    const caret = once<string[]>();
    engine.readUntilLineglob(p.sock, 'k[^0-9]', caret.cb);
    t.deepEqual(await expectOk(t, caret), ['k1', 'k-']);
    const bracket = once<string[]>();
    engine.readUntilLineglob(p.sock, 'k[]]', bracket.cb);
    t.deepEqual(await expectOk(t, bracket), ['k]']);
    const star = once<string[]>();
    engine.readUntilLineglob(p.sock, 'k\\*', star.cb);
    t.deepEqual(await expectOk(t, star), ['k*']);
    const last = once<string[]>();
    engine.readUntilLineglob(p.sock, 'k[!]*-]', last.cb);
    t.deepEqual(await expectOk(t, last), ['kx']);
  },
);

forEachImpl(
  'lineglob: maxBytes counts earlier lines with their terminators; empty lines past it fail ERR_LIMIT',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // Only empty lines after the first, then the end of the stream: each fits a budget of 0
    // bytes, but together they pass the bound long before EOF.
    await p.write('abc\r\n' + '\n'.repeat(1000));
    p.client.end();
    const r = once<string[]>();
    engine.readUntilLineglob(p.sock, 'END', { maxBytes: 3 }, r.cb);
    await expectErr(t, r, 'ERR_LIMIT');
    // Nothing was consumed: the first line is still there.
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'abc');
  },
);

forEachImpl(
  'lineglob: named classes, escapes and ranges inside brackets, an unterminated bracket as text',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // [glob, lines sent; the last one is the first that matches]
    const cases: Array<[string, string[]]> = [
      ['[[:digit:]][[:alpha:]]', ['x1', '1a']],
      ['[[:upper:]]*', ['abc', 'Abc']],
      ['[[:space:]]x', ['ax', ' x']],
      ['[[:xdigit:]][[:punct:]]', ['g!', 'f!']],
      ['[[:alnum:]][[:blank:]][[:cntrl:]]', ['a b', 'a\t\x01']],
      ['[[:lower:]][[:graph:]][[:print:]]', ['A!!', 'a! ']],
      ['[[:bogus:]x]', ['a', 'x']],
      ['[\\]]', ['a', ']']],
      ['[a-\\z]', ['{', 'q']],
      ['[!a-y]', ['b', 'z']],
      ['[ab', ['a', '[ab']],
    ];
    for (const [glob, lines] of cases) {
      await p.write(lines.map((l) => l + '\r\n').join(''));
      const r = once<string[]>({}, glob);
      engine.readUntilLineglob(p.sock, glob, r.cb);
      t.deepEqual(await expectOk(t, r), lines, glob);
    }
  },
);
