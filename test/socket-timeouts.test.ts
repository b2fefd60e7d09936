// A socket's own timeouts (engine.setTimeouts): the idle timeout fails waiting reads of a
// silent connection, the write timeout fails writes that make no progress; activity and
// progress push them out; cancel, close and per-op timeouts racing them settle once.
import type { Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  prng,
  sleep,
  tcpPair,
  tempDir,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl(
  'idle: a silent peer fails the waiting read with ETIMEDOUT (syscall read) through failure, once; the socket stays usable',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 100 });
    // The op's own deadline is far away: what fires is the socket's idle timeout.
    const r = once<Buffer>({ timeout: 60_000 });
    engine.readChunk(p.sock, 100, r.cb);
    const err = await expectErr(t, r, 'ETIMEDOUT');
    t.is(err.syscall, 'read');
    t.regex(err.message, /idle timeout/);
    await sleep(150);
    t.is(r.calls.length, 1, 'settled exactly once');
    t.false(p.sock.closed);
    // Later reads work, and arm it again.
    const r2 = once<Buffer>();
    engine.readChunk(p.sock, 100, r2.cb);
    await p.write('x');
    t.is((await expectOk(t, r2)).toString(), 'x');
    const r3 = once<Buffer>();
    engine.readChunk(p.sock, 100, r3.cb);
    t.is((await expectErr(t, r3, 'ETIMEDOUT')).syscall, 'read');
  },
);

forEachImpl(
  'idle: every queued read fails, a chain read stage too, and the buffered bytes stay for the next read',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 100 });
    const w = once<number>();
    const l = once<string>();
    engine.writeThenExpectLine(p.sock, 'ping\r\n', null, [w.cb, l.cb]);
    t.is(await expectOk(t, w), 6);
    // Queued behind the chain's read stage, which started when the write finished.
    const x = once<Buffer>();
    engine.readExactly(p.sock, 10, x.cb);
    await p.write('no newline');
    t.is((await expectErr(t, l, 'ETIMEDOUT')).syscall, 'read');
    t.is((await expectErr(t, x, 'ETIMEDOUT')).syscall, 'read');
    const y = once<Buffer>();
    engine.readExactly(p.sock, 10, y.cb);
    t.is((await expectOk(t, y)).toString(), 'no newline');
  },
);

forEachImpl(
  'idle: bytes that arrived while JavaScript was busy past the deadline are activity, not a timeout',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 50 });
    const r = once<Buffer>();
    engine.readChunk(p.sock, 10, r.cb);
    p.client.write('x'); // into the kernel now
    const until = Date.now() + 200;
    while (Date.now() < until) {
      // busy: the engine cannot look at the socket before its idle deadline passes
    }
    t.is((await expectOk(t, r)).toString(), 'x');
  },
);

forEachImpl(
  'idle: a peer sending a byte every idle/3 ms keeps the read alive for several idle periods',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 400 });
    const r = once<Buffer>();
    engine.readExactly(p.sock, 12, r.cb); // 12 bytes at one per 133 ms: 4 idle periods
    for (let i = 0; i < 12; i++) {
      await sleep(133);
      t.is(r.calls.length, 0, `still waiting after ${i} bytes`);
      await p.write(String.fromCharCode(97 + i));
    }
    t.is((await expectOk(t, r)).toString(), 'abcdefghijkl');
  },
);

forEachImpl(
  'idle: bytes sent count as activity too: a read stays alive while the engine writes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 400 });
    const r = once<Buffer>();
    engine.readChunk(p.sock, 10, r.cb);
    for (let i = 0; i < 12; i++) {
      await sleep(133);
      const w = once<number>();
      engine.write(p.sock, '.', w.cb);
      await expectOk(t, w);
    }
    t.is(r.calls.length, 0, 'the read still waits');
    await p.write('z');
    t.is((await expectOk(t, r)).toString(), 'z');
  },
);

forEachImpl(
  'idle: with no read waiting nothing fires, and a read made after a long quiet time gets a full period',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 200 });
    await sleep(700);
    t.false(p.sock.closed);
    const r = once<Buffer>();
    engine.readChunk(p.sock, 10, r.cb);
    await p.write('late');
    t.is((await expectOk(t, r)).toString(), 'late');
  },
);

forEachImpl('idle: 0 turns it off, also for a read already waiting', async (t, engine) => {
  const p = await tcpPair(engine);
  engine.setTimeouts(p.sock, { idle: 100 });
  const r = once<Buffer>();
  engine.readChunk(p.sock, 10, r.cb);
  engine.setTimeouts(p.sock, { idle: 0 });
  await sleep(400);
  t.is(r.calls.length, 0);
  await p.write('k');
  t.is((await expectOk(t, r)).toString(), 'k');
});

forEachImpl(
  "the op's own timeout and the idle timeout: whichever comes first wins, once",
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { idle: 2_000 });
    const own = once<Buffer>({ timeout: 50 });
    engine.readChunk(p.sock, 10, own.cb);
    const e1 = await expectErr(t, own, 'ETIMEDOUT');
    t.is(e1.syscall, undefined, "the op's own deadline");
    engine.setTimeouts(p.sock, { idle: 50 });
    const idle = once<Buffer>({ timeout: 2_000 });
    engine.readChunk(p.sock, 10, idle.cb);
    t.is((await expectErr(t, idle, 'ETIMEDOUT')).syscall, 'read');
    await sleep(100);
    t.is(own.calls.length + idle.calls.length, 2);
  },
);

forEachImpl(
  'write: a peer that never reads fails the write with ETIMEDOUT (syscall write, bytesWritten), the writes queued behind it and later ones too',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause();
    engine.setTimeouts(p.sock, { write: 200 });
    const size = 32 * 1024 * 1024;
    const big = once<number>();
    const next = once<number>();
    engine.write(p.sock, Buffer.alloc(size, 2), big.cb);
    engine.write(p.sock, 'after', next.cb);
    const err = await expectErr(t, big, 'ETIMEDOUT', 30_000);
    t.is(err.syscall, 'write');
    t.regex(err.message, /write timeout/);
    t.true(
      typeof err.bytesWritten === 'number' && err.bytesWritten > 0 && err.bytesWritten < size,
      `bytesWritten ${err.bytesWritten}`,
    );
    const e2 = await expectErr(t, next, 'ETIMEDOUT');
    t.is(e2.syscall, 'write');
    t.is(e2.bytesWritten, 0);
    t.is(p.sock.pendingWriteBytes, 0);
    const later = once<number>();
    engine.write(p.sock, 'later', later.cb);
    t.is((await expectErr(t, later, 'ETIMEDOUT')).syscall, 'write');
    // Reads go on.
    const r = once<Buffer>();
    engine.readChunk(p.sock, 10, r.cb);
    await p.write('still');
    t.is((await expectOk(t, r)).toString(), 'still');
  },
);

forEachImpl(
  'write: a slow but steady reader never times the write out',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.setTimeouts(p.sock, { write: 2_000 });
    // The peer takes a chunk, then pauses 20 ms: the write takes more than two write periods
    // (about 2 MB/s here), while the kernel takes bytes at least every ~700 ms (when half of
    // the send buffer has drained).
    p.client.on('data', () => {
      p.client.pause();
      setTimeout(() => p.client.resume(), 20);
    });
    const size = 12 * 1024 * 1024;
    const w = once<number>();
    const started = Date.now();
    engine.write(p.sock, Buffer.alloc(size, 3), w.cb);
    let last = 0;
    let lastAt = Date.now();
    let gap = 0;
    const probe = setInterval(() => {
      const n = p.sock.bytesWritten;
      if (n !== last) {
        gap = Math.max(gap, Date.now() - lastAt);
        last = n;
        lastAt = Date.now();
      }
    }, 5);
    t.is(await expectOk(t, w, 60_000), size);
    clearInterval(probe);
    await p.waitForBytes(size, 30_000);
    t.log(`${size} bytes in ${Date.now() - started} ms, longest wait for progress ${gap} ms`);
  },
  { timeout: 120_000 },
);

forEachImpl('write: with no write waiting nothing fires; 0 turns it off', async (t, engine) => {
  const p = await tcpPair(engine);
  engine.setTimeouts(p.sock, { write: 100 });
  await sleep(300);
  const w = once<number>();
  engine.write(p.sock, 'fine', w.cb);
  t.is(await expectOk(t, w), 4);
  p.client.pause();
  engine.setTimeouts(p.sock, { write: 0 });
  const big = once<number>();
  engine.write(p.sock, Buffer.alloc(32 * 1024 * 1024), big.cb);
  await sleep(400);
  t.is(big.calls.length, 0, 'no write timeout');
  engine.close(p.sock);
  await expectErr(t, big, 'ECANCELED');
});

forEachImpl(
  'cancel and close racing the idle and write deadlines settle every op exactly once',
  async (t, engine) => {
    const rand = prng(14);
    for (let round = 0; round < 12; round++) {
      const p = await tcpPair(engine);
      p.client.pause();
      engine.setTimeouts(p.sock, { idle: 15, write: 15 });
      const r = once<Buffer>();
      const w = once<number>();
      engine.readChunk(p.sock, 10, r.cb);
      engine.write(p.sock, Buffer.alloc(16 * 1024 * 1024), w.cb);
      await sleep(5 + Math.floor(rand() * 25));
      if (round % 2 === 0) {
        r.cancel();
        w.cancel();
      }
      engine.close(p.sock);
      const [or, ow] = [await r.result(), await w.result()];
      t.true(['ETIMEDOUT', 'ECANCELED'].includes(or.err?.code ?? ''), `read ${or.err?.code}`);
      t.true(['ETIMEDOUT', 'ECANCELED'].includes(ow.err?.code ?? ''), `write ${ow.err?.code}`);
      await sleep(30);
      t.is(r.calls.length, 1);
      t.is(w.calls.length, 1);
      p.client.destroy();
    }
  },
);

forEachImpl(
  'setTimeouts refuses what is not a socket, unknown keys and bad numbers',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const dir = tempDir(engine);
    const f = once<import('async-engine').File>();
    engine.open(`${dir}/f`, { flags: 'w+' }, f.cb);
    const file = await expectOk(t, f);
    const bad = (fn: () => void, name: string, code: string): void => {
      const e = t.throws(fn, { instanceOf: name === 'RangeError' ? RangeError : TypeError });
      t.is((e as Error & { code?: string }).code, code);
    };
    bad(
      () => engine.setTimeouts(listener as unknown as Socket, { idle: 1 }),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
    );
    bad(
      () => engine.setTimeouts(file as unknown as Socket, { idle: 1 }),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
    );
    bad(() => engine.setTimeouts(p.sock, null as never), 'TypeError', 'ERR_INVALID_ARG_TYPE');
    bad(
      () => engine.setTimeouts(p.sock, { idel: 5 } as never),
      'TypeError',
      'ERR_INVALID_ARG_VALUE',
    );
    bad(
      () => engine.setTimeouts(p.sock, { idle: '5' } as never),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
    );
    bad(() => engine.setTimeouts(p.sock, { idle: -1 }), 'RangeError', 'ERR_OUT_OF_RANGE');
    bad(() => engine.setTimeouts(p.sock, { write: NaN }), 'RangeError', 'ERR_OUT_OF_RANGE');
    bad(() => engine.setTimeouts(p.sock, { write: Infinity }), 'RangeError', 'ERR_OUT_OF_RANGE');
    // Nothing was set by the refused calls: a read waits past 100 ms.
    const r = once<Buffer>();
    engine.readChunk(p.sock, 10, r.cb);
    await sleep(150);
    t.is(r.calls.length, 0);
    engine.setTimeouts(p.sock, { idle: undefined, write: 0 });
    engine.close(p.sock);
    engine.setTimeouts(p.sock, { idle: 5 }); // a closed socket: nothing to do
    await expectErr(t, r, 'ECANCELED');
    engine.close(listener);
    engine.close(file);
  },
);
