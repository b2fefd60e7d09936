// No data lost: pipelined input, bytes after a delimiter, the partial bytes of a timed-out or
// cancelled read, bytes over the limit (ERR_LIMIT keeps them), the limit boundary, EOF partials,
// and 100k lines in one write.
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

/** Writes data and waits (up to 10 s) until the engine has read that many more bytes. */
async function feed(engine: Engine, p: Pair, data: string | Buffer): Promise<boolean> {
  const before = engine.stats().bytesRead;
  await p.write(data);
  return waitUntil(() => engine.stats().bytesRead >= before + Buffer.byteLength(data), 10_000);
}

forEachImpl('pipelined lines in one write reach successive ops in order', async (t, engine) => {
  const p = await tcpPair(engine);
  const before = [once<string>(), once<string>(), once<string>()];
  for (const r of before) engine.expectLine(p.sock, null, r.cb);
  await p.write('a\nb\r\nc\nd\ne\r\nf\n');
  t.deepEqual(
    [await expectOk(t, before[0]!), await expectOk(t, before[1]!), await expectOk(t, before[2]!)],
    ['a', 'b', 'c'],
  );
  // three more lines are already buffered; ops submitted now get them
  const after = [once<string>(), once<string>(), once<string>()];
  for (const r of after) engine.expectLine(p.sock, null, r.cb);
  t.deepEqual(
    [await expectOk(t, after[0]!), await expectOk(t, after[1]!), await expectOk(t, after[2]!)],
    ['d', 'e', 'f'],
  );
});

forEachImpl('bytes after a delimiter reach the next op', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('ab|cdef');
  const r1 = once<Buffer>();
  engine.readUntil(p.sock, '|', r1.cb);
  t.is((await expectOk(t, r1)).toString(), 'ab|');
  const r2 = once<Buffer>();
  engine.readExactly(p.sock, 4, r2.cb);
  t.is((await expectOk(t, r2)).toString(), 'cdef');
});

forEachImpl("a timed-out readUntil's partial bytes reach the next read", async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>({ timeout: 300 });
  engine.readUntil(p.sock, '\n', r.cb);
  await p.write('part');
  await expectErr(t, r, 'ETIMEDOUT', 5_000);
  const next = once<Buffer>();
  engine.readUntil(p.sock, '\n', next.cb);
  await p.write('ial\n');
  t.is((await expectOk(t, next)).toString(), 'partial\n');
});

forEachImpl("a cancelled readUntil's partial bytes reach the next read", async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readUntil(p.sock, '\n', r.cb);
  t.true(await feed(engine, p, 'half of '), 'the engine read the first half');
  t.true(r.cancel());
  await expectErr(t, r, 'ECANCELED');
  t.is(p.sock.bufferedBytes, 8, 'the partial bytes are buffered');
  const next = once<Buffer>();
  engine.readUntil(p.sock, '\n', next.cb);
  await p.write('a line\n');
  t.is((await expectOk(t, next)).toString(), 'half of a line\n');
});

forEachImpl('a cancelled readExactly keeps its partial bytes too', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>();
  engine.readExactly(p.sock, 10, r.cb);
  await feed(engine, p, '12345');
  t.true(r.cancel());
  await expectErr(t, r, 'ECANCELED');
  const next = once<Buffer>();
  engine.readExactly(p.sock, 8, next.cb);
  await p.write('678');
  t.is((await expectOk(t, next)).toString(), '12345678');
});

forEachImpl(
  'ERR_LIMIT keeps the bytes: bufferedBytes, then a following read sees them',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const data = '0123456789abcdef';
    await p.write(data);
    await sleep(20);
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', { maxBytes: 8 }, r.cb);
    await expectErr(t, r, 'ERR_LIMIT');
    t.true(p.sock.bufferedBytes >= 9, `bufferedBytes = ${p.sock.bufferedBytes}`);
    t.true(p.sock.bufferedBytes <= data.length);
    const c = once<Buffer>();
    engine.readChunk(p.sock, 100, c.cb);
    const first = await expectOk(t, c);
    t.true(first.length >= 1);
    t.is(first.toString(), data.slice(0, first.length), 'the chunk starts at the first kept byte');
    let all = first.toString();
    if (all.length < data.length) {
      const rest = once<Buffer>();
      engine.readExactly(p.sock, data.length - first.length, rest.cb);
      all += (await expectOk(t, rest)).toString();
    }
    t.is(all, data);
  },
);

forEachImpl(
  'ERR_LIMIT on expectLine keeps the line for a later, larger read',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('a rather long line\r\nnext\r\n');
    const small = once<string>();
    engine.expectLine(p.sock, null, { maxBytes: 5 }, small.cb);
    await expectErr(t, small, 'ERR_LIMIT');
    const big = once<string>();
    engine.expectLine(p.sock, null, big.cb);
    t.is(await expectOk(t, big), 'a rather long line');
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'next');
  },
);

forEachImpl(
  'a line of exactly maxBytes succeeds, maxBytes + 1 fails ERR_LIMIT',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const ten = '0123456789';
    await p.write(`${ten}\r\n${ten}\n${ten}X\n`);
    const crlf = once<string>();
    const lf = once<string>();
    const over = once<string>();
    engine.expectLine(p.sock, null, { maxBytes: 10 }, crlf.cb);
    engine.expectLine(p.sock, null, { maxBytes: 10 }, lf.cb);
    engine.expectLine(p.sock, null, { maxBytes: 10 }, over.cb);
    t.is(await expectOk(t, crlf), ten);
    t.is(await expectOk(t, lf), ten);
    await expectErr(t, over, 'ERR_LIMIT');
  },
);

forEachImpl('readUntil: maxBytes counts the bytes before the delimiter', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('abcde<END>abcdef<END>');
  const ok = once<Buffer>();
  const over = once<Buffer>();
  engine.readUntil(p.sock, '<END>', { maxBytes: 5 }, ok.cb);
  engine.readUntil(p.sock, '<END>', { maxBytes: 5 }, over.cb);
  t.is((await expectOk(t, ok)).toString(), 'abcde<END>');
  await expectErr(t, over, 'ERR_LIMIT');
});

forEachImpl(
  'an unfinished line of maxBytes + "\\r" waits for the "\\n" instead of failing',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<string>();
    engine.expectLine(p.sock, null, { maxBytes: 10 }, r.cb);
    await feed(engine, p, '0123456789\r');
    await sleep(30);
    t.is(r.calls.length, 0, 'no ERR_LIMIT: the \\r may start the terminator');
    await p.write('\n');
    t.is(await expectOk(t, r), '0123456789');
  },
);

forEachImpl('ERR_INCOMPLETE on EOF carries the partial line; then EOF', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.end('complete\nincompl');
  const a = once<string>();
  const b = once<string>();
  const c = once<Buffer>();
  engine.expectLine(p.sock, null, a.cb);
  engine.expectLine(p.sock, null, b.cb);
  engine.readChunk(p.sock, 10, c.cb);
  t.is(await expectOk(t, a), 'complete');
  t.is((await expectErr(t, b, 'ERR_INCOMPLETE')).partial?.toString(), 'incompl');
  t.is((await expectOk(t, c)).length, 0, 'the partial was consumed: only EOF is left');
});

forEachImpl(
  '100k lines in one write arrive in order, one op after another',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const n = 100_000;
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(`line ${i.toString().padStart(6, '0')}`);
    void p.write(lines.join('\n') + '\ntail');
    let i = 0;
    let bad: string | undefined;
    const done = new Promise<void>((resolve, reject) => {
      const next = (): void => {
        const r = once<string>({
          success: (line) => {
            if (line !== lines[i] && bad === undefined) bad = `line ${i}: ${line}`;
            i++;
            if (i === n) resolve();
            else next();
          },
          failure: (e) => reject(e),
        });
        engine.expectLine(p.sock, null, r.cb);
      };
      next();
    });
    await done;
    t.is(bad, undefined);
    t.is(i, n);
    const tail = once<Buffer>();
    engine.readExactly(p.sock, 4, tail.cb);
    t.is((await expectOk(t, tail)).toString(), 'tail');
  },
  { timeout: 120_000, serial: true },
);

forEachImpl(
  '100k lines in one write: 100k ops submitted at once',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const n = 100_000;
    const got: string[] = new Array(n);
    let settled = 0;
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const r = once<string>({
        success: (line) => {
          got[i] = line;
          settled++;
        },
        failure: () => {
          failed++;
          settled++;
        },
      });
      engine.expectLine(p.sock, null, r.cb);
    }
    let payload = '';
    for (let i = 0; i < n; i++) payload += `${i}\r\n`;
    void p.write(payload);
    t.true(await waitUntil(() => settled === n, 60_000, 20), `settled ${settled} of ${n}`);
    t.is(failed, 0);
    let wrong = -1;
    for (let i = 0; i < n; i++)
      if (got[i] !== String(i)) {
        wrong = i;
        break;
      }
    t.is(wrong, -1, wrong >= 0 ? `first wrong line at ${wrong}: ${got[wrong]}` : '');
  },
  { timeout: 120_000, serial: true },
);
