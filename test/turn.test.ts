// Turn-local settlement and bulk bytes: what a socket read leaves buffered comes to JavaScript in
// one call, and the ops whose whole frame is in it settle in the engine's current dispatch turn
// (or a microtask, or runOnce() in manual drive), never inside the submitting call, in order,
// with no byte lost across cancel, timeouts, close and shutdown.
import net from 'node:net';
import { Callback, type LengthPrefixedRecord, type RegexResult, type Socket } from 'async-engine';
import {
  deferred,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  prng,
  shutdownEngine,
  sleep,
  tcpPair,
  tick,
  type Tracked,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';
import { heldPair, PRIME, RESP } from './helpers/held.js';

noFdLeaks();

const framed = (engine: Engine): number => engine.stats().framedInJs;

// One op of each kind that can settle in JavaScript, each with a frame of 'abc' held.
interface HeldCase {
  name: string;
  rest: string;
  submit(engine: Engine, sock: Socket, cb: Callback<any>): void;
  text(value: unknown): string;
}

const asText = (v: unknown): string => (v as Buffer).toString('latin1');

const cases: HeldCase[] = [
  {
    name: 'expectLine',
    rest: 'abc\r\n',
    submit: (e, s, cb) => e.expectLine(s, 'abc', cb),
    text: (v) => v as string,
  },
  {
    name: 'readUntil',
    rest: 'ab;c;',
    submit: (e, s, cb) => e.readUntil(s, 'c;', cb),
    text: asText,
  },
  {
    name: 'readExactly',
    rest: 'abcd',
    submit: (e, s, cb) => e.readExactly(s, 4, cb),
    text: asText,
  },
  {
    name: 'readChunk',
    rest: 'abcd',
    submit: (e, s, cb) => e.readChunk(s, 4, cb),
    text: asText,
  },
  {
    name: 'readLengthPrefixed',
    rest: '$4\r\nabcd\r\n',
    submit: (e, s, cb) => e.readLengthPrefixed(s, RESP, cb),
    text: (v) => `${(v as LengthPrefixedRecord).body!.toString('latin1')}`,
  },
];
const expected: Record<string, string> = {
  expectLine: 'abc',
  readUntil: 'ab;c;',
  readExactly: 'abcd',
  readChunk: 'abcd',
  readLengthPrefixed: 'abcd',
};

// ---------------------------------------------------------------------------------------------
// 1. Bulk

forEachImpl(
  '100,000 pipelined lines, one expectLine at a time: all of them, in order, exact, framed in JavaScript',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const N = 100_000;
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      let s = `line ${i} ${'x'.repeat(i % 17)}`;
      if (i % 1000 === 999) s += ' é✓'; // a non-ASCII stretch now and then
      lines.push(s);
    }
    // \r\n and \n terminators mixed
    const payload = lines.map((s, i) => s + (i % 3 === 0 ? '\r\n' : '\n')).join('');
    const before = framed(engine);
    const done = deferred<void>();
    let got = 0;
    let wrong: string | undefined;
    let submitting = false;
    let reentered = 0;
    const cb: Callback<string> = new Callback<string>({
      success: (line) => {
        if (submitting) reentered++;
        if (line !== lines[got] && wrong === undefined) {
          wrong = `line ${got}: ${JSON.stringify(line)} instead of ${JSON.stringify(lines[got])}`;
        }
        got++;
        if (got === N) {
          done.resolve();
          return;
        }
        submitting = true;
        engine.expectLine(p.sock, null, cb);
        submitting = false;
      },
      failure: (err) => done.reject(err),
    });
    engine.expectLine(p.sock, null, cb);
    p.client.write(payload);
    await withDeadline(done.promise, 50_000, () => `all ${N} lines (have ${got})`);
    t.is(wrong, undefined);
    t.is(got, N);
    t.is(reentered, 0, 'no line settled inside the call that submitted it');
    const local = framed(engine) - before;
    t.true(local >= 0.9 * N, `${local} of ${N} lines framed in JavaScript`);
    t.log(`${local} of ${N} lines framed in JavaScript`);
    t.is(p.sock.bufferedBytes, 0);
  },
  { timeout: 90_000 },
);

// ---------------------------------------------------------------------------------------------
// 2. Never inside the submitting call

forEachImpl(
  'an op submitted from a callback with its frame held settles in that turn, never inside the submitting call',
  async (t, engine) => {
    for (const c of cases) {
      let submitting = false;
      let inside: boolean | undefined;
      let nested: boolean | undefined;
      let submitted = false;
      const before = framed(engine);
      // and from the callback of an op settled so: the next op, also held
      const y = once<string>({ success: () => (nested = submitting) }, `${c.name} then a line`);
      const x = once<unknown>(
        {
          success: (_v, sock) => {
            inside = submitting;
            submitting = true;
            engine.expectLine(sock as Socket, 'next', y.cb);
            submitting = false;
          },
        },
        c.name,
      );
      await heldPair(t, engine, `${c.rest}next\n`, (sock) => {
        submitting = true;
        c.submit(engine, sock, x.cb);
        submitting = false;
        submitted = true;
      });
      t.true(submitted);
      t.is(c.text(await expectOk(t, x)), expected[c.name], c.name);
      t.is(await expectOk(t, y), 'next');
      t.is(inside, false, `${c.name}: settled inside the submitting call`);
      t.is(nested, false, `${c.name}: the next op settled inside the submitting call`);
      t.is(framed(engine) - before, 2, `${c.name}: both settled in JavaScript`);
    }
  },
);

forEachImpl(
  'an op submitted from top-level code with its frame held settles after that code returns, in a microtask',
  async (t, engine) => {
    for (const c of cases) {
      const p = await heldPair(t, engine, c.rest);
      const before = framed(engine);
      let returned = false;
      let early: boolean | undefined;
      const x = once<unknown>({ success: () => (early = !returned) }, c.name);
      c.submit(engine, p.sock, x.cb);
      t.is(x.calls.length, 0, `${c.name}: settled inside the submitting call`);
      returned = true;
      await tick(); // the microtask runs before any I/O turn
      t.is(x.calls.length, 1, `${c.name}: settled by the next macrotask`);
      t.is(c.text(await expectOk(t, x)), expected[c.name]);
      t.is(early, false);
      t.is(framed(engine) - before, 1, `${c.name}: settled in JavaScript`);
    }
  },
);

/** A loopback pair on a manual-drive engine (runOnce delivers the accept). */
async function manualPair(engine: Engine): Promise<{ sock: Socket; client: net.Socket }> {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>({}, 'manual accept');
  engine.accept(l, acc.cb);
  const client = net.connect(portOf(l), '127.0.0.1');
  client.setNoDelay(true);
  client.on('error', () => {});
  onCleanup(engine, () => void client.destroy());
  await new Promise<void>((r) => client.once('connect', () => r()));
  await pump(engine, () => acc.calls.length > 0);
  engine.close(l);
  const o = acc.calls[0]!;
  if (!o.ok) throw new Error(`accept failed: ${o.err?.code}`);
  return { sock: o.value as Socket, client };
}

/** Calls runOnce until pred() holds; returns the sum of what runOnce returned. */
async function pump(engine: Engine, pred: () => boolean, ms = 10_000): Promise<number> {
  const deadline = Date.now() + ms;
  let n = 0;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('runOnce never delivered what was awaited');
    n += engine.runOnce({ timeout: 5 });
    await sleep(1);
  }
  return n;
}

function writeAll(client: net.Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => client.write(data, (e) => (e ? reject(e) : resolve())));
}

forEachImpl(
  "drive: 'manual': a held frame settles only in runOnce(), which counts it",
  async (t, engine) => {
    const { sock, client } = await manualPair(engine);
    for (const c of cases) {
      // From top-level code: nothing until runOnce(), not even a microtask.
      await writeAll(client, `${PRIME}\n${c.rest}`);
      await sleep(5);
      const prime = once<string>({}, 'prime');
      engine.expectLine(sock, PRIME, prime.cb);
      await pump(engine, () => prime.calls.length > 0);
      t.true(prime.calls[0]!.ok);
      let inRunOnce = false;
      let ranInRunOnce: boolean | undefined;
      const x = once<unknown>({ success: () => (ranInRunOnce = inRunOnce) }, c.name);
      c.submit(engine, sock, x.cb);
      await sleep(20);
      t.is(x.calls.length, 0, `${c.name}: settled without runOnce()`);
      inRunOnce = true;
      const n = engine.runOnce();
      inRunOnce = false;
      t.is(n, 1, `${c.name}: runOnce() counts the op it settled`);
      t.is(x.calls.length, 1);
      t.true(ranInRunOnce);
      t.is(c.text(await expectOk(t, x)), expected[c.name]);

      // From a callback run by runOnce(): in that same runOnce(), counted there too.
      await writeAll(client, `${PRIME}\n${c.rest}`);
      await sleep(5);
      let submitting = false;
      let inside: boolean | undefined;
      const y = once<unknown>({ success: () => (inside = submitting || !inRunOnce) }, c.name);
      const prime2 = once<string>(
        {
          success: (_l, io) => {
            submitting = true;
            c.submit(engine, io as Socket, y.cb);
            submitting = false;
          },
        },
        'prime 2',
      );
      engine.expectLine(sock, PRIME, prime2.cb);
      let total = 0;
      const deadline = Date.now() + 10_000;
      while (prime2.calls.length === 0 && Date.now() < deadline) {
        inRunOnce = true;
        total += engine.runOnce({ timeout: 5 });
        inRunOnce = false;
        await sleep(1);
      }
      t.is(y.calls.length, 1, `${c.name}: settled in the runOnce() that ran its submitter`);
      t.is(inside, false);
      t.is(total, 2, `${c.name}: runOnce() counted the op settled in JavaScript`);
      t.is(c.text(await expectOk(t, y)), expected[c.name]);
    }
  },
  { config: { drive: 'manual' } },
);

// ---------------------------------------------------------------------------------------------
// 3. cancel()

forEachImpl(
  'cancel() of an op settled in JavaScript but not dispatched yet returns false; its success follows once',
  async (t, engine) => {
    let inTurn: boolean | undefined;
    const x = once<string>({}, 'in a callback');
    const p = await heldPair(t, engine, 'abc\ndef\nghi\n', (sock) => {
      engine.expectLine(sock, 'abc', x.cb);
      inTurn = x.cancel();
    });
    t.is(inTurn, false);
    t.is(await expectOk(t, x), 'abc');

    const y = once<string>({}, 'from top-level code');
    engine.expectLine(p.sock, 'def', y.cb);
    t.false(y.cancel());
    t.false(y.cancel(), 'a second cancel() as well');
    t.is(await expectOk(t, y), 'def');

    // The promise form: an abort after the op settled in JavaScript loses to it.
    const ctl = new AbortController();
    const z = engine.promises.expectLine(p.sock, 'ghi', { signal: ctl.signal });
    ctl.abort('too late');
    t.is(await z, 'ghi');

    await sleep(30);
    t.is(x.calls.length, 1);
    t.is(y.calls.length, 1);
  },
);

forEachImpl(
  'cancel() of a native read that took the held bytes back returns true; no byte is lost',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'abc');
    t.is(p.sock.bufferedBytes, 3);
    const x = once<string>({}, 'waits for the rest of the line');
    engine.expectLine(p.sock, null, x.cb);
    t.is(p.sock.bufferedBytes, 3, 'the held bytes went back, none lost');
    t.true(x.cancel());
    await expectErr(t, x, 'ECANCELED');
    await p.write('def\nghi\n');
    const y = once<string>();
    engine.expectLine(p.sock, null, y.cb);
    t.is(await expectOk(t, y), 'abcdef');
    const z = once<string>();
    engine.expectLine(p.sock, null, z.cb);
    t.is(await expectOk(t, z), 'ghi');
  },
);

// ---------------------------------------------------------------------------------------------
// 4. Deadlines

forEachImpl(
  'timeout 0 (no deadline) and a 5 ms timeout vs held data: success',
  async (t, engine) => {
    for (const timeout of [0, 5]) {
      const before = framed(engine);
      const x = once<string>({ timeout }, `in a callback, timeout ${timeout}`);
      const y = once<Buffer>({ timeout }, `readExactly, timeout ${timeout}`);
      const p = await heldPair(t, engine, 'one\ntwo;three', (sock) => {
        engine.expectLine(sock, 'one', x.cb);
        engine.readUntil(sock, ';', y.cb);
      });
      t.is(await expectOk(t, x), 'one');
      t.is((await expectOk(t, y)).toString(), 'two;');
      const z = once<Buffer>({ timeout }, `top-level, timeout ${timeout}`);
      engine.readExactly(p.sock, 5, z.cb);
      t.is((await expectOk(t, z)).toString(), 'three');
      t.is(framed(engine) - before, 3);
      await sleep(20);
      t.is(x.calls.length + y.calls.length + z.calls.length, 3, 'no late ETIMEDOUT');
    }
  },
);

// ---------------------------------------------------------------------------------------------
// 5. maxBytes across held and native bytes

forEachImpl(
  'maxBytes vs a line half held, half still to come: ERR_LIMIT, and every byte is still there',
  async (t, engine) => {
    for (const op of ['expectLine', 'readUntil'] as const) {
      const p = await heldPair(t, engine, `ok\n${'a'.repeat(10)}`);
      const first = once<string>();
      engine.expectLine(p.sock, 'ok', first.cb);
      t.is(await expectOk(t, first), 'ok');
      const x = once<unknown>({}, `${op} maxBytes 15`);
      if (op === 'expectLine') engine.expectLine(p.sock, null, { maxBytes: 15 }, x.cb);
      else engine.readUntil(p.sock, '\n', { maxBytes: 15 }, x.cb);
      await sleep(10);
      t.is(x.calls.length, 0, 'ten bytes are within the bound');
      await p.write(`${'a'.repeat(20)}\nnext\n`);
      await expectErr(t, x, 'ERR_LIMIT');
      const all = once<Buffer>();
      engine.readExactly(p.sock, 31, all.cb);
      t.is((await expectOk(t, all)).toString(), `${'a'.repeat(30)}\n`);
      const next = once<string>();
      engine.expectLine(p.sock, 'next', next.cb);
      t.is(await expectOk(t, next), 'next');
    }
  },
);

forEachImpl(
  'maxBytes vs a whole line held but over the bound: ERR_LIMIT, the line still there',
  async (t, engine) => {
    const line = 'b'.repeat(40);
    const p = await heldPair(t, engine, `${line}\r\nafter\n`);
    const x = once<string>();
    engine.expectLine(p.sock, null, { maxBytes: 39 }, x.cb);
    await expectErr(t, x, 'ERR_LIMIT');
    const y = once<Buffer>();
    engine.readUntil(p.sock, '\n', { maxBytes: 39 }, y.cb);
    await expectErr(t, y, 'ERR_LIMIT');
    // exactly at the bound: fine
    const z = once<string>();
    engine.expectLine(p.sock, line, { maxBytes: 40 }, z.cb);
    t.is(await expectOk(t, z), line);
    const w = once<string>();
    engine.expectLine(p.sock, 'after', w.cb);
    t.is(await expectOk(t, w), 'after');
  },
);

forEachImpl(
  'a frame whose first half is held and second half arrives later settles whole',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'first half ');
    const x = once<string>();
    engine.expectLine(p.sock, null, x.cb);
    await sleep(10);
    t.is(x.calls.length, 0);
    await p.write('second half\nrest');
    t.is(await expectOk(t, x), 'first half second half');
    const y = once<Buffer>();
    engine.readExactly(p.sock, 8, y.cb);
    await sleep(10);
    await p.write('ing!');
    t.is((await expectOk(t, y)).toString(), 'resting!');
    const z = once<Buffer>();
    engine.readUntil(p.sock, 'END', z.cb);
    await p.write('xxE');
    await sleep(10);
    await p.write('ND');
    t.is((await expectOk(t, z)).toString(), 'xxEND');
  },
);

// ---------------------------------------------------------------------------------------------
// 6. No byte lost

forEachImpl(
  'held bytes survive a cancelled native read: the next read gets them, then what follows',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'xyz123');
    const x = once<Buffer>();
    engine.readUntil(p.sock, ';', x.cb);
    t.true(x.cancel());
    await expectErr(t, x, 'ECANCELED');
    await p.write('456;');
    const y = once<Buffer>();
    engine.readUntil(p.sock, ';', y.cb);
    t.is((await expectOk(t, y)).toString(), 'xyz123456;');
  },
);

forEachImpl(
  'held bytes survive a timed-out read: they come first, then the later bytes, in order',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'abc');
    const x = once<string>({ timeout: 30 });
    engine.expectLine(p.sock, null, x.cb);
    await expectErr(t, x, 'ETIMEDOUT');
    t.is(p.sock.bufferedBytes, 3);
    await p.write('def\nghi\n');
    const y = once<string>();
    const z = once<string>();
    engine.expectLine(p.sock, null, y.cb);
    engine.expectLine(p.sock, null, z.cb);
    t.is(await expectOk(t, y), 'abcdef');
    t.is(await expectOk(t, z), 'ghi');
  },
);

forEachImpl('socket.bufferedBytes counts the held bytes and the native ones', async (t, engine) => {
  const rest = 'line1\nline2\npartial';
  const p = await heldPair(t, engine, rest);
  t.is(p.sock.bufferedBytes, rest.length);
  const before = framed(engine);
  const a = once<string>();
  engine.expectLine(p.sock, 'line1', a.cb);
  t.is(p.sock.bufferedBytes, rest.length - 6, 'consumed as the op was framed');
  await expectOk(t, a);
  t.is(p.sock.bufferedBytes, rest.length - 6);
  const b = once<string>();
  engine.expectLine(p.sock, 'line2', b.cb);
  await expectOk(t, b);
  t.is(framed(engine) - before, 2);
  t.is(p.sock.bufferedBytes, 7);
  const c = once<string>();
  engine.expectLine(p.sock, null, c.cb); // not held whole: the bytes go back
  t.is(p.sock.bufferedBytes, 7);
  await p.write(' and more');
  t.true(await waitUntil(() => p.sock.bufferedBytes === 16), 'the native side counts them all');
  await p.write('\n');
  t.is(await expectOk(t, c), 'partial and more');
  t.is(p.sock.bufferedBytes, 0);
});

forEachImpl(
  'close() right after ops settled in JavaScript: they still deliver their values, once',
  async (t, engine) => {
    const x = once<string>({}, 'in a callback');
    const x2 = once<Buffer>({}, 'in a callback, second');
    let closed = false;
    await heldPair(t, engine, 'abc\ndef;', (sock) => {
      engine.expectLine(sock, 'abc', x.cb);
      engine.readUntil(sock, ';', x2.cb);
      engine.close(sock);
      closed = true;
    });
    t.true(closed);
    t.is(await expectOk(t, x), 'abc');
    t.is((await expectOk(t, x2)).toString(), 'def;');

    const p = await heldPair(t, engine, 'ghi\njkl');
    const y = once<string>({}, 'from top-level code');
    const z = once<Buffer>({}, 'a native read, pending');
    engine.expectLine(p.sock, 'ghi', y.cb);
    engine.readUntil(p.sock, ';', z.cb);
    engine.close(p.sock);
    t.is(await expectOk(t, y), 'ghi');
    await expectErr(t, z, 'ECANCELED');
    await sleep(30);
    for (const tr of [x, x2, y, z] as Tracked<unknown>[]) t.is(tr.calls.length, 1, tr.label);
  },
);

forEachImpl(
  'shutdown() right after ops settled in JavaScript: they deliver their data, once',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'abc\ndef\nghi');
    const x = once<string>();
    const y = once<Buffer>();
    const z = once<string>({}, 'pending natively');
    engine.expectLine(p.sock, 'abc', x.cb);
    engine.readExactly(p.sock, 4, y.cb);
    engine.expectLine(p.sock, null, z.cb);
    await shutdownEngine(engine);
    t.is(await expectOk(t, x), 'abc');
    t.is((await expectOk(t, y)).toString(), 'def\n');
    await expectErr(t, z, 'ECANCELED');
    await sleep(30);
    t.is(x.calls.length + y.calls.length + z.calls.length, 3);
  },
);

forEachImpl(
  'shutdown() from a callback right after submitting held ops: they deliver their data, once',
  async (t, engine) => {
    const x = once<string>();
    const y = once<LengthPrefixedRecord>();
    let shut: Promise<void> | undefined;
    await heldPair(t, engine, 'abc\n$2\r\nde\r\n', (sock) => {
      engine.expectLine(sock, 'abc', x.cb);
      engine.readLengthPrefixed(sock, RESP, y.cb);
      shut = shutdownEngine(engine);
    });
    t.is(await expectOk(t, x), 'abc');
    t.deepEqual(await expectOk(t, y), { header: '$2', body: Buffer.from('de') });
    await shut;
    t.is(x.calls.length + y.calls.length, 2);
  },
);

// ---------------------------------------------------------------------------------------------
// 7. Ordering across ops that settle in JavaScript and ops that go native

interface Step {
  op: string;
  bytes: Buffer; // what the peer sends for this step
  run(engine: Engine, sock: Socket, cb: Callback<any>): void;
  check(value: unknown): string; // the value as it must compare to `want`
  want: string;
}

function mixedSteps(rounds: number, seed: number): Step[] {
  const rnd = prng(seed);
  const bin = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  const word = (n: number): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(97 + Math.floor(rnd() * 26));
    return s;
  };
  const hex = (v: unknown): string => (v as Buffer).toString('hex');
  const steps: Step[] = [];
  for (let r = 0; r < rounds; r++) {
    const line = `line ${r} ${word(1 + (r % 9))}`;
    steps.push({
      op: 'expectLine',
      bytes: Buffer.from(`${line}\r\n`),
      run: (e, s, cb) => e.expectLine(s, line, cb),
      check: (v) => v as string,
      want: line,
    });
    const rec = bin(1 + (r % 11));
    steps.push({
      op: 'readExactly',
      bytes: rec,
      run: (e, s, cb) => e.readExactly(s, rec.length, cb),
      check: hex,
      want: rec.toString('hex'),
    });
    const kv = `k${r}=${word(3)};`;
    steps.push({
      op: 'readUntil',
      bytes: Buffer.from(kv),
      run: (e, s, cb) => e.readUntil(s, ';', cb),
      check: (v) => (v as Buffer).toString(),
      want: kv,
    });
    const chunk = bin(5);
    steps.push({
      op: 'readChunk',
      bytes: chunk,
      run: (e, s, cb) => readChunkN(e, s, chunk.length, cb),
      check: hex,
      want: chunk.toString('hex'),
    });
    const rx = `${word(2)}${r}xyz!`;
    steps.push({
      op: 'readUntilRegex',
      bytes: Buffer.from(rx),
      run: (e, s, cb) => e.readUntilRegex(s, /\d+xyz!/, cb),
      check: (v) => (v as RegexResult).data.toString(),
      want: rx,
    });
    const globbed = [`l${r}`, word(4), `done ${r}`];
    steps.push({
      op: 'readUntilLineglob',
      bytes: Buffer.from(globbed.map((s) => `${s}\n`).join('')),
      run: (e, s, cb) => e.readUntilLineglob(s, 'done *', cb),
      check: (v) => (v as string[]).join('|'),
      want: globbed.join('|'),
    });
    const body = bin(r % 7);
    steps.push({
      op: 'readLengthPrefixed',
      bytes: Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, Buffer.from('\r\n')]),
      run: (e, s, cb) => e.readLengthPrefixed(s, RESP, cb),
      check: (v) => hex((v as LengthPrefixedRecord).body),
      want: body.toString('hex'),
    });
  }
  return steps;
}

// readChunk until exactly n bytes came (a chunk is whatever is buffered, up to its size).
function readChunkN(engine: Engine, sock: Socket, n: number, cb: Callback<Buffer>): void {
  const parts: Buffer[] = [];
  let have = 0;
  const next = (): void => {
    engine.readChunk(
      sock,
      n - have,
      new Callback<Buffer>({
        success: (b) => {
          parts.push(b);
          have += b.length;
          if (b.length === 0) cb.failure!(new Error('EOF') as never);
          else if (have < n) next();
          else cb.success!(Buffer.concat(parts), sock);
        },
        failure: (e) => cb.failure!(e),
      }),
    );
  };
  next();
}

/** Runs the steps one after the other, each submitted from the previous one's success. */
function runSteps(engine: Engine, sock: Socket, steps: Step[]): Promise<string[]> {
  const d = deferred<string[]>();
  const got: string[] = [];
  const next = (i: number): void => {
    if (i === steps.length) {
      d.resolve(got);
      return;
    }
    const s = steps[i]!;
    s.run(
      engine,
      sock,
      new Callback<unknown>({
        success: (v) => {
          try {
            got.push(s.check(v));
          } catch (e) {
            d.reject(e);
            return;
          }
          next(i + 1);
        },
        failure: (e) => d.reject(new Error(`step ${i} (${s.op}): ${e.code}: ${e.message}`)),
      }),
    );
  };
  next(0);
  return withDeadline(d.promise, 30_000, () => `the steps (${got.length} done)`);
}

forEachImpl(
  'mixed ops from callbacks over lines and binary records sent at once get the exact stream in order',
  async (t, engine) => {
    const rounds = 40;
    const steps = mixedSteps(rounds, 7);
    const p = await tcpPair(engine);
    const before = framed(engine);
    const done = runSteps(engine, p.sock, steps);
    p.client.write(Buffer.concat(steps.map((s) => s.bytes)));
    const got = await done;
    t.deepEqual(
      got,
      steps.map((s) => s.want),
    );
    // regex and glob go native each round; the ops after them frame what those left held
    const local = framed(engine) - before;
    t.true(local >= rounds * 4, `${local} ops settled in JavaScript`);
    t.is(p.sock.bufferedBytes, 0);
  },
);

forEachImpl(
  'mixed ops from callbacks over a stream sent in random pieces get the exact stream in order',
  async (t, engine) => {
    const steps = mixedSteps(25, 11);
    const p = await tcpPair(engine);
    const done = runSteps(engine, p.sock, steps);
    const all = Buffer.concat(steps.map((s) => s.bytes));
    const rnd = prng(3);
    for (let at = 0; at < all.length;) {
      const n = 1 + Math.floor(rnd() * 60);
      await p.write(all.subarray(at, at + n));
      at += n;
      if (rnd() < 0.3) await sleep(1);
    }
    t.deepEqual(
      await done,
      steps.map((s) => s.want),
    );
  },
);

forEachImpl(
  'a chain and a regex read after held bytes take them back and get them first',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'one\ntwo\nthree 3!\nfour\n');
    const a = once<string>();
    engine.expectLine(p.sock, 'one', a.cb);
    t.is(await expectOk(t, a), 'one');
    const w = once<number>();
    const b = once<string>();
    engine.writeThenExpectLine(p.sock, 'ping\n', 'two', [w.cb, b.cb]);
    t.is(await expectOk(t, b), 'two');
    t.is(await expectOk(t, w), 5);
    const c = once<RegexResult>();
    engine.readUntilRegex(p.sock, /\d!\n/, c.cb);
    t.is((await expectOk(t, c)).data.toString(), 'three 3!\n');
    const d = once<string>();
    engine.expectLine(p.sock, 'four', d.cb);
    t.is(await expectOk(t, d), 'four');
    t.is((await p.waitForBytes(5)).toString(), 'ping\n');
  },
);

// ---------------------------------------------------------------------------------------------
// 8. Several reads at once

forEachImpl(
  'reads submitted several at once while bytes are held settle in submission order',
  async (t, engine) => {
    for (const where of ['in a callback', 'from top-level code']) {
      const order: number[] = [];
      const trs: Tracked<unknown>[] = [];
      const mk = <V>(i: number): Tracked<V> => {
        const tr = once<V>({ success: () => order.push(i) }, `${where} #${i}`);
        trs.push(tr as Tracked<unknown>);
        return tr;
      };
      const r0 = mk<string>(0);
      const r1 = mk<Buffer>(1);
      const r2 = mk<Buffer>(2);
      const r3 = mk<LengthPrefixedRecord>(3);
      const r4 = mk<string>(4); // not held whole: goes native
      const r5 = mk<Buffer>(5); // queued behind it
      const r6 = mk<Buffer>(6);
      const submitAll = (sock: Socket): void => {
        engine.expectLine(sock, 'a', r0.cb);
        engine.readExactly(sock, 2, r1.cb);
        engine.readUntil(sock, ';', r2.cb);
        engine.readLengthPrefixed(sock, RESP, r3.cb);
        engine.expectLine(sock, null, r4.cb);
        engine.readExactly(sock, 3, r5.cb);
        engine.readChunk(sock, 64, r6.cb);
      };
      const rest = 'a\nbbccc;$2\r\ndd\r\ntai';
      const p =
        where === 'in a callback'
          ? await heldPair(t, engine, rest, submitAll)
          : await heldPair(t, engine, rest);
      if (where !== 'in a callback') submitAll(p.sock);
      await sleep(10);
      t.deepEqual(order, [0, 1, 2, 3], `${where}: the held frames settled in order`);
      await p.write('l end\nxyzrest');
      t.is(await expectOk(t, r0), 'a');
      t.is((await expectOk(t, r1)).toString(), 'bb');
      t.is((await expectOk(t, r2)).toString(), 'ccc;');
      t.deepEqual(await expectOk(t, r3), { header: '$2', body: Buffer.from('dd') });
      t.is(await expectOk(t, r4), 'tail end');
      t.is((await expectOk(t, r5)).toString(), 'xyz');
      t.is((await expectOk(t, r6)).toString(), 'rest');
      t.deepEqual(order, [0, 1, 2, 3, 4, 5, 6], where);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Outcomes settled in JavaScript match the native ones

class ThrowingRegExp extends RegExp {
  // The engine checks the empty string at submit: only real input throws.
  override exec(s: string): RegExpExecArray | null {
    if (s.length > 0) throw new Error('exec exploded');
    return super.exec(s);
  }
}

forEachImpl(
  'a line that does not match, framed in JavaScript: ERR_MISMATCH with err.line, the line consumed',
  async (t, engine) => {
    const before = framed(engine);
    const x = once<string>();
    const y = once<string>();
    const p = await heldPair(t, engine, 'abc\r\ndef\nghi\n', (sock) => {
      engine.expectLine(sock, 'xyz', x.cb);
      engine.expectLine(sock, /^d/, y.cb);
    });
    t.is((await expectErr(t, x, 'ERR_MISMATCH')).line, 'abc');
    t.is(await expectOk(t, y), 'def');
    const z = once<string>();
    engine.expectLine(p.sock, new ThrowingRegExp('g'), z.cb);
    const err = await expectErr(t, z, 'ERR_USER_CODE');
    t.is((err.cause as Error).message, 'exec exploded');
    t.is(err.line, 'ghi');
    t.is(framed(engine) - before, 3);
    t.is(p.sock.bufferedBytes, 0);
  },
);

forEachImpl(
  'lines in other encodings and with non-ASCII bytes: the same string held or native',
  async (t, engine) => {
    const bytes = Buffer.concat([
      Buffer.from('héllo ✓\n', 'utf8'),
      Buffer.from([0x41, 0xe9, 0xff, 0x0a]),
      Buffer.from('plain\n'),
      Buffer.from([0x00, 0x01, 0x7f, 0x0d, 0x0a]),
    ]);
    const want = ['héllo ✓', 'Aéÿ', 'plain', '00017f'];
    const encodings: Array<BufferEncoding | undefined> = [undefined, 'latin1', undefined, 'hex'];
    for (const mode of ['native', 'held'] as const) {
      const p = mode === 'held' ? await heldPair(t, engine, bytes) : await tcpPair(engine);
      const got: Tracked<string>[] = [];
      for (const encoding of encodings) {
        const tr = once<string>({}, `${mode} ${encoding ?? 'default'}`);
        if (encoding === undefined) engine.expectLine(p.sock, null, tr.cb);
        else engine.expectLine(p.sock, null, { encoding }, tr.cb);
        got.push(tr);
      }
      if (mode === 'native') await p.write(bytes);
      for (let i = 0; i < got.length; i++) t.is(await expectOk(t, got[i]!), want[i], mode);
    }
  },
);

forEachImpl(
  'EOF after held bytes: held frames settle, readAll and a short line get the rest',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'abc\ndef');
    p.client.end('ghi');
    await sleep(10);
    const a = once<string>();
    engine.expectLine(p.sock, 'abc', a.cb);
    t.is(await expectOk(t, a), 'abc');
    const all = once<Buffer>();
    engine.readAll(p.sock, all.cb);
    t.is((await expectOk(t, all)).toString(), 'defghi');

    const q = await heldPair(t, engine, 'one\ntw');
    q.client.end('o');
    const b = once<string>();
    const c = once<string>();
    engine.expectLine(q.sock, 'one', b.cb);
    engine.expectLine(q.sock, null, c.cb);
    t.is(await expectOk(t, b), 'one');
    const err = await expectErr(t, c, 'ERR_INCOMPLETE');
    t.is(err.partial?.toString(), 'two');
  },
);

forEachImpl(
  'an op settled in JavaScript is in flight until its callback runs',
  async (t, engine) => {
    const p = await heldPair(t, engine, 'abc\n');
    t.is(engine.stats().opsInFlight, 0);
    const x = once<string>();
    engine.expectLine(p.sock, 'abc', x.cb);
    t.is(engine.stats().opsInFlight, 1);
    t.is(await expectOk(t, x), 'abc');
    t.is(engine.stats().opsInFlight, 0);
    await engine.run();
  },
);

// ---------------------------------------------------------------------------------------------
// A failure that consumes nothing, answered by submitting the same read again, goes round
// through the native side: each round is a later one, so the event loop keeps turning (a timer
// fires) instead of the engine settling the same refusal again and again in one turn.

for (const [what, submit] of [
  [
    'readLengthPrefixed refused by its length rule (ERR_INVALID_LENGTH)',
    (engine: Engine, sock: Socket, cb: Callback<unknown>) =>
      engine.readLengthPrefixed(sock, RESP, cb as Callback<LengthPrefixedRecord>),
  ],
  [
    'readUntilRegex over maxBytes (ERR_LIMIT)',
    (engine: Engine, sock: Socket, cb: Callback<unknown>) =>
      engine.readUntilRegex(sock, /;/, { maxBytes: 4 }, cb as Callback<RegexResult>),
  ],
] as const) {
  forEachImpl(
    `${what}, submitted again from its failure: timers still fire between the rounds`,
    async (t, engine) => {
      const p = await heldPair(t, engine, '$x\r\nabcdefgh\r\n');
      let fired = false;
      let rounds = 0;
      const timer = setTimeout(() => {
        fired = true;
      }, 20);
      const done = deferred<string>();
      const cb: Callback<unknown> = new Callback<unknown>({
        success: () => done.reject(new Error('the read succeeded')),
        failure: (err) => {
          rounds++;
          if (fired || rounds > 5_000_000) {
            done.resolve(err.code);
            return;
          }
          submit(engine, p.sock, cb);
        },
      });
      submit(engine, p.sock, cb);
      const code = await withDeadline(done.promise, 30_000, () => `the timer (${rounds} rounds)`);
      clearTimeout(timer);
      t.true(fired, `the timer fired after ${rounds} rounds`);
      t.true(code === 'ERR_INVALID_LENGTH' || code === 'ERR_LIMIT', code);
      t.is(p.sock.bufferedBytes, 14, 'nothing consumed');
    },
  );
}
