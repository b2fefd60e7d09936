// write: Buffer, string and Buffer[] payloads, a 16 MiB write to a slow reader, ordering of
// queued writes, reads and writes at the same time, and writes to a peer that has gone away.
import {
  type Ctx,
  type Engine,
  expectOk,
  forEachImpl,
  once,
  type Pair,
  sleep,
  tcpPair,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl(
  'write(Buffer) resolves with the byte count; the peer gets the bytes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const data = Buffer.from([0, 1, 2, 250, 251, 252, 10]);
    const w = once<number>();
    engine.write(p.sock, data, w.cb);
    const o = await w.result();
    t.true(o.ok);
    t.is(o.value, data.length);
    t.is(o.sock, p.sock);
    t.deepEqual(await p.waitForBytes(data.length), data);
  },
);

forEachImpl('write(string) sends utf8 and counts bytes, not characters', async (t, engine) => {
  const p = await tcpPair(engine);
  const w = once<number>();
  engine.write(p.sock, 'héllo ✓', w.cb);
  const expected = Buffer.from('héllo ✓', 'utf8');
  t.is(await expectOk(t, w), expected.length);
  t.deepEqual(await p.waitForBytes(expected.length), expected);
});

forEachImpl('write(Buffer[]) sends the buffers in order and counts them all', async (t, engine) => {
  const p = await tcpPair(engine);
  const parts = [Buffer.from('one '), Buffer.from('two '), Buffer.alloc(0), Buffer.from('three')];
  const w = once<number>();
  engine.write(p.sock, parts, w.cb);
  t.is(await expectOk(t, w), 13);
  t.is((await p.waitForBytes(13)).toString(), 'one two three');
});

forEachImpl(
  '16 MiB to a slow reader: the write completes with every byte, in order',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const size = 16 * 1024 * 1024;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) data.writeUInt32LE(i, i);
    p.client.pause();
    const w = once<number>();
    engine.write(p.sock, data, w.cb);
    await sleep(100);
    t.is(w.calls.length, 0, 'cannot have finished while the peer reads nothing');
    // Read in short bursts with pauses in between.
    let stop = false;
    const drip = (async () => {
      while (!stop) {
        p.client.resume();
        await sleep(2);
        p.client.pause();
        await sleep(3);
      }
      p.client.resume();
    })();
    const got = await p.waitForBytes(size, 90_000);
    stop = true;
    await drip;
    t.is(await expectOk(t, w, 30_000), size);
    t.is(got.length, size);
    t.true(got.equals(data), 'same bytes in the same order');
  },
  { timeout: 120_000 },
);

forEachImpl('queued writes go out in submission order and complete in order', async (t, engine) => {
  const p = await tcpPair(engine);
  const n = 200;
  const done: number[] = [];
  const ws = [];
  let expected = '';
  for (let i = 0; i < n; i++) {
    const msg = `msg-${i};`.repeat(1 + (i % 7) * 50);
    expected += msg;
    const w = once<number>({ success: () => done.push(i) });
    engine.write(p.sock, i % 2 ? msg : Buffer.from(msg), w.cb);
    ws.push(w);
  }
  for (const w of ws) await expectOk(t, w);
  t.deepEqual(
    done,
    Array.from({ length: n }, (_, i) => i),
  );
  t.is((await p.waitForBytes(expected.length)).toString(), expected);
});

forEachImpl('a pending read does not hold up a write on the same socket', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, null, r.cb);
  const w = once<number>();
  engine.write(p.sock, 'PING\r\n', w.cb);
  t.is(await expectOk(t, w), 6);
  t.is((await p.waitForBytes(6)).toString(), 'PING\r\n');
  t.is(r.calls.length, 0);
  await p.write('PONG\r\n');
  t.is(await expectOk(t, r), 'PONG');
});

/** Writes 64 KiB at a time until a write fails (at most ~200 tries); returns its error code. */
async function writeUntilFailure(t: Ctx, engine: Engine, p: Pair): Promise<string | undefined> {
  const chunk = Buffer.alloc(64 * 1024, 'z');
  for (let i = 0; i < 200; i++) {
    const w = once<number>();
    engine.write(p.sock, chunk, w.cb);
    const o = await w.result(20_000);
    t.false(o.sync);
    if (!o.ok) return o.err?.code;
    await sleep(5);
  }
  return undefined;
}

forEachImpl(
  'write to a peer that closed: EPIPE or ECONNRESET, and the process lives',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.destroy();
    await p.ended;
    await sleep(20);
    const code = await writeUntilFailure(t, engine, p);
    t.true(code === 'EPIPE' || code === 'ECONNRESET', `got ${code}`);
    // no SIGPIPE: we are still here, and the engine still works
    const q = await tcpPair(engine);
    const w = once<number>();
    engine.write(q.sock, 'alive\n', w.cb);
    t.is(await expectOk(t, w), 6);
  },
);

forEachImpl('write to a peer that reset: EPIPE or ECONNRESET', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.resetAndDestroy();
  await sleep(50);
  const code = await writeUntilFailure(t, engine, p);
  t.true(code === 'EPIPE' || code === 'ECONNRESET', `got ${code}`);
});

forEachImpl('a write pending on a full socket fails when the peer goes away', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.pause();
  const w = once<number>();
  engine.write(p.sock, Buffer.alloc(32 * 1024 * 1024, 'q'), w.cb);
  await sleep(100);
  t.is(w.calls.length, 0);
  p.client.resetAndDestroy();
  const o = await w.result(20_000);
  t.false(o.ok, 'cannot succeed');
  t.true(o.err?.code === 'EPIPE' || o.err?.code === 'ECONNRESET', `got ${o.err?.code}`);
});
