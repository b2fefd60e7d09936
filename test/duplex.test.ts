// toDuplex: a stream.Duplex over an engine socket. Echo through pipeline(), 64 MiB into a slow
// consumer with bounded buffering, a gzip/gunzip round trip between two engine sockets,
// destroy and peer close in both directions, a socket closed behind the Duplex's back,
// engine.shutdown() with Duplexes in flight, and no fds left behind.
import { createHash, randomBytes } from 'node:crypto';
import { once as eventOnce } from 'node:events';
import net from 'node:net';
import { Duplex, Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { createEngine, toDuplex, type Socket } from 'async-engine';
import {
  type Engine,
  fdCount,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  sleep,
  tcpPair,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

const MiB = 1024 * 1024;

/** Two engine sockets connected to each other (the listener is closed afterwards). */
async function enginePair(engine: Engine): Promise<{ client: Socket; server: Socket }> {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const acc = once<Socket>({}, 'enginePair accept');
  const con = once<Socket>({}, 'enginePair connect');
  engine.accept(listener, acc.cb);
  engine.connect({ host: '127.0.0.1', port: portOf(listener) }, con.cb);
  const server = await expectOkQuiet(acc);
  const client = await expectOkQuiet(con);
  engine.close(listener);
  return { client, server };
}

async function expectOkQuiet<V>(tr: ReturnType<typeof once<V>>): Promise<V> {
  const o = await tr.result();
  if (!o.ok) throw new Error(`${tr.label} failed: ${o.err?.code}`);
  return o.value as V;
}

/** Records the events a stream emits, in order, and its first error. */
function watch(s: Duplex): { events: string[]; errors: Error[]; closed: Promise<unknown> } {
  const events: string[] = [];
  const errors: Error[] = [];
  for (const ev of ['end', 'finish', 'close'] as const) s.on(ev, () => events.push(ev));
  s.on('error', (e: Error) => {
    events.push('error');
    errors.push(e);
  });
  return { events, errors, closed: new Promise((r) => s.once('close', r)) };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Chunks of mixed compressible text and random bytes, `total` bytes in all. */
function* mixedChunks(total: number, chunk = 64 * 1024): Generator<Buffer> {
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const n = Math.min(chunk, total - sent);
    const b =
      i % 3 === 2 ? randomBytes(n) : Buffer.from(`line ${i} of the stream\n`.repeat(n).slice(0, n));
    yield b;
    sent += n;
    i++;
  }
}

forEachImpl('echo round trip: pipeline(duplex, duplex) returns every byte', async (t, engine) => {
  const p = await tcpPair(engine);
  const d = toDuplex(engine, p.sock);
  const w = watch(d);
  const echo = pipeline(d, d);
  const data = randomBytes(3 * MiB + 17);
  // Written in pieces, then the net client half-closes: the Duplex sees EOF, flushes its
  // echo and closes the socket, which the client sees as 'end'.
  for (let off = 0; off < data.length; off += 100_000) {
    await p.write(data.subarray(off, off + 100_000));
  }
  p.client.end();
  await withDeadline(echo, 20_000, 'the echo pipeline to finish');
  await withDeadline(p.ended, 10_000, "the net client's 'end'");
  const got = p.received();
  t.is(got.length, data.length, 'every byte came back');
  t.is(sha256(got), sha256(data), 'the bytes came back intact and in order');
  await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
  t.deepEqual(w.errors, []);
  t.true(w.events.includes('end') && w.events.includes('finish'), w.events.join(','));
  t.true(p.sock.closed, 'the engine socket is closed once both sides are done');
});

forEachImpl(
  '64 MiB from a net peer into a slow consumer: bounded buffering, every byte intact',
  async (t, engine, impl) => {
    const p = await tcpPair(engine);
    const readChunkSize = 64 * 1024;
    const hwm = 16 * 1024;
    const d = toDuplex(engine, p.sock, { readChunkSize, readableHighWaterMark: hwm });
    const total = 64 * MiB;

    // The producer: as fast as the net client's backpressure allows.
    const sentHash = createHash('sha256');
    const produce = (async () => {
      let sent = 0;
      while (sent < total) {
        const b = randomBytes(Math.min(256 * 1024, total - sent));
        sentHash.update(b);
        sent += b.length;
        if (!p.client.write(b)) await eventOnce(p.client, 'drain');
      }
      p.client.end();
    })();

    // The consumer: a small buffer and a delay per chunk.
    const gotHash = createHash('sha256');
    let received = 0;
    let chunks = 0;
    const slow = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb) {
        gotHash.update(chunk);
        received += chunk.length;
        chunks++;
        setTimeout(cb, chunks % 4 === 0 ? 2 : 0);
      },
    });

    let maxReadable = 0;
    let maxBuffered = 0;
    let maxArrayBuffers = 0;
    let samples = 0;
    const base = process.memoryUsage();
    const sample = (): void => {
      samples++;
      maxReadable = Math.max(maxReadable, d.readableLength);
      maxBuffered = Math.max(maxBuffered, p.sock.bufferedBytes);
    };
    const timer = setInterval(() => {
      sample();
      maxArrayBuffers = Math.max(maxArrayBuffers, process.memoryUsage().arrayBuffers);
    }, 3);
    slow.on('drain', sample);
    const started = Date.now();
    try {
      await withDeadline(Promise.all([pipeline(d, slow), produce]), 100_000, 'the transfer');
    } finally {
      clearInterval(timer);
    }
    const ms = Date.now() - started;
    const mem = `max readableLength ${maxReadable} B, max socket.bufferedBytes ${maxBuffered} B, max arrayBuffers +${((maxArrayBuffers - base.arrayBuffers) / MiB).toFixed(1)} MiB over ${samples} samples, ${chunks} chunks, ${ms} ms`;
    t.log(mem);
    t.is(received, total, 'every byte arrived');
    t.is(gotHash.digest('hex'), sentHash.digest('hex'), 'the bytes arrived intact and in order');
    t.true(samples >= 20, `sampled during the transfer (${samples} samples)`);
    // One push past the high-water mark at most: reading stops when push() returns false.
    t.true(maxReadable <= hwm + readChunkSize, `readableLength stayed bounded: ${mem}`);
    // The engine receives only while a read waits; completion's multishot receive runs ahead
    // into the provided-buffer ring, which bounds it at 256 × 16 KiB (plus one gathered read).
    const bound = impl === 'completion' ? 4 * MiB + 64 * 1024 : 2 * MiB;
    t.true(maxBuffered <= bound, `socket.bufferedBytes stayed bounded: ${mem}`);
    t.true(
      maxArrayBuffers - base.arrayBuffers < 48 * MiB,
      `Buffer memory stayed well below the 64 MiB transferred: ${mem}`,
    );
    // The peer's FIN ends the writable side too (allowHalfOpen: false): its FIN goes out
    // (engine.end, asynchronous), then autoDestroy closes the socket.
    if (!d.closed) await withDeadline(eventOnce(d, 'close'), 10_000, 'the Duplex closing');
    t.true(p.sock.closed, 'EOF ended the Duplex and closed the socket');
  },
  { timeout: 120_000 },
);

forEachImpl(
  'gzip → engine socket → engine socket → gunzip: the round trip is lossless; both close',
  async (t, engine) => {
    const { client, server } = await enginePair(engine);
    // closeOnFinish: the sender's end() closes its socket, which the receiver sees as EOF.
    const tx = toDuplex(engine, client, { closeOnFinish: true });
    const rx = toDuplex(engine, server);
    const wtx = watch(tx);
    const wrx = watch(rx);
    const total = 8 * MiB + 333;
    const sentHash = createHash('sha256');
    const source = Readable.from(
      (function* () {
        for (const b of mixedChunks(total)) {
          sentHash.update(b);
          yield b;
        }
      })(),
    );
    const gotHash = createHash('sha256');
    let received = 0;
    let wire = 0;
    rx.on('data', (b: Buffer) => (wire += b.length));
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        gotHash.update(chunk);
        received += chunk.length;
        cb();
      },
    });
    await withDeadline(
      Promise.all([pipeline(source, createGzip(), tx), pipeline(rx, createGunzip(), sink)]),
      60_000,
      'both pipelines',
    );
    t.is(received, total, 'every byte came out of gunzip');
    t.is(gotHash.digest('hex'), sentHash.digest('hex'), 'the bytes are the ones gzipped');
    t.true(wire > 0 && wire < total, `compressed bytes crossed the socket (${wire} B)`);
    await withDeadline(Promise.all([wtx.closed, wrx.closed]), 5_000, "both Duplexes' 'close'");
    t.deepEqual([...wtx.errors, ...wrx.errors], []);
    t.true(client.closed && server.closed, 'both engine sockets are closed');
  },
);

forEachImpl(
  "destroy() closes the socket: a net peer sees 'end' and 'close'; no error from the ops in flight",
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause(); // a big write stays in flight
    const d = toDuplex(engine, p.sock);
    const w = watch(d);
    d.resume(); // a read in flight
    let writeCbErr: unknown = 'not called';
    d.write(Buffer.alloc(32 * MiB, 'x'), (err) => (writeCbErr = err));
    await sleep(50);
    const clientEvents: string[] = [];
    p.client.on('end', () => clientEvents.push('end'));
    p.client.on('close', () => clientEvents.push('close'));
    p.client.resume();
    d.destroy();
    t.true(p.sock.closed, 'destroy() closed the engine socket at once');
    await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
    await withDeadline(eventOnce(p.client, 'close'), 10_000, "the net peer's 'close'");
    t.true(clientEvents.includes('close'), clientEvents.join(','));
    // The pending write and read failed with ECANCELED inside the engine: nothing surfaces.
    await waitUntil(() => writeCbErr !== 'not called', 2_000);
    await sleep(30);
    t.deepEqual(w.errors, [], 'no error after destroy()');
    t.deepEqual(w.events, ['close']);
    t.true(
      writeCbErr == null,
      `the in-flight write's callback ran without an error: ${String(writeCbErr)}`,
    );
  },
);

forEachImpl(
  "destroy() on one engine Duplex: the other one sees 'end' and closes too",
  async (t, engine) => {
    const { client, server } = await enginePair(engine);
    const a = toDuplex(engine, client);
    const b = toDuplex(engine, server);
    const wa = watch(a);
    const wb = watch(b);
    const got: Buffer[] = [];
    b.on('data', (x: Buffer) => got.push(x));
    await new Promise<void>((r) => a.write('before the end', () => r()));
    a.destroy();
    await withDeadline(wb.closed, 5_000, "the other Duplex's 'close'");
    t.is(Buffer.concat(got).toString(), 'before the end');
    t.deepEqual(wb.events, ['end', 'finish', 'close'], 'ended cleanly');
    t.deepEqual([...wa.errors, ...wb.errors], []);
    t.true(server.closed, 'the other socket is closed');
  },
);

forEachImpl('the peer ending: data, then end, finish and close', async (t, engine) => {
  const p = await tcpPair(engine);
  const d = toDuplex(engine, p.sock);
  const w = watch(d);
  const got: Buffer[] = [];
  d.on('data', (b: Buffer) => got.push(b));
  p.client.end('last words');
  await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
  t.is(Buffer.concat(got).toString(), 'last words');
  t.deepEqual(w.events, ['end', 'finish', 'close']);
  t.deepEqual(w.errors, []);
  t.true(p.sock.closed);
  await withDeadline(p.ended, 5_000, 'the net peer to see the close');
});

forEachImpl('the peer resetting: the Duplex is destroyed with ECONNRESET', async (t, engine) => {
  const p = await tcpPair(engine);
  const d = toDuplex(engine, p.sock);
  const w = watch(d);
  d.resume();
  await sleep(20);
  (p.client as net.Socket & { resetAndDestroy(): void }).resetAndDestroy();
  await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
  t.is(w.errors.length, 1, w.events.join(','));
  t.is((w.errors[0] as Error & { code?: string }).code, 'ECONNRESET');
  t.true(p.sock.closed);
});

forEachImpl(
  'engine.close(socket) elsewhere: the Duplex closes without an error; pipeline() says it was cut short',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const d = toDuplex(engine, p.sock);
    const w = watch(d);
    const done = finished(d).then(
      () => 'resolved',
      (e: Error & { code?: string }) => e.code,
    );
    d.resume();
    await sleep(20);
    engine.close(p.sock);
    await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
    t.deepEqual(w.errors, []);
    t.deepEqual(w.events, ['close']);
    t.is(await done, 'ERR_STREAM_PREMATURE_CLOSE');
    // Idle when the socket was closed: noticed at the next write.
    const q = await tcpPair(engine);
    const e = toDuplex(engine, q.sock);
    const we = watch(e);
    engine.close(q.sock);
    let cbErr: unknown = 'not called';
    e.write('too late', (err) => (cbErr = err));
    await withDeadline(we.closed, 5_000, "the second Duplex's 'close'");
    t.deepEqual(we.errors, []);
    t.true(cbErr == null, `the write's callback ran without an error: ${String(cbErr)}`);
  },
);

forEachImpl(
  'engine.shutdown() with Duplexes mid-transfer: each closes without an error; no fd left',
  async (t, _engine, impl) => {
    // An engine of the test's own, so that its fds count too.
    const before = fdCount();
    const engine = createEngine({ impl });
    const pairs = await Promise.all([tcpPair(engine), tcpPair(engine), tcpPair(engine)]);
    // tcpPair's cleanup belongs to the harness's engine, not this one.
    onCleanup(_engine, () => pairs.forEach((p) => p.client.destroy()));
    const ds = pairs.map((p) => toDuplex(engine, p.sock));
    const ws = ds.map(watch);
    for (const [i, p] of pairs.entries()) {
      p.client.pause();
      ds[i]!.resume(); // reads in flight
      ds[i]!.write(Buffer.alloc(8 * MiB)); // writes in flight
      p.client.write('some bytes');
    }
    const { client, server } = await enginePair(engine);
    const a = toDuplex(engine, client);
    const b = toDuplex(engine, server);
    const wab = [watch(a), watch(b)];
    const piped = pipeline(a, b).then(
      () => 'resolved',
      (e: Error & { code?: string }) => e.code,
    ); // a pipeline in flight between two engine sockets
    a.write(randomBytes(1 * MiB));
    await sleep(50);
    t.true(fdCount() > before, 'the engine and its sockets hold fds');
    await engine.shutdown();
    await withDeadline(
      Promise.all([...ws, ...wab].map((w) => w.closed)),
      5_000,
      "every Duplex's 'close'",
    );
    const codes = (w: ReturnType<typeof watch>): unknown[] =>
      w.errors.map((e) => (e as Error & { code?: string }).code);
    t.deepEqual(ws.flatMap(codes), [], 'no errors');
    // pipeline() itself destroys the other stream with ERR_STREAM_PREMATURE_CLOSE when one
    // closes early; the engine's ECANCELED must not surface there either.
    t.deepEqual(
      wab.flatMap(codes).filter((c) => c !== 'ERR_STREAM_PREMATURE_CLOSE'),
      [],
      'no engine errors in the pipeline',
    );
    t.true(
      [...ds, a, b].every((d) => d.destroyed),
      'every Duplex is destroyed',
    );
    t.is(await piped, 'ERR_STREAM_PREMATURE_CLOSE');
    for (const p of pairs) {
      p.client.resume();
      await withDeadline(p.ended, 5_000, 'the net peer to see the close');
      p.client.destroy();
    }
    t.true(
      await waitUntil(() => fdCount() === before, 3_000),
      `fds back to ${before} (now ${fdCount()})`,
    );
  },
);

forEachImpl('cork()ed small writes go out together, in order (writev)', async (t, engine) => {
  const p = await tcpPair(engine);
  const d = toDuplex(engine, p.sock);
  const parts = Array.from({ length: 1000 }, (_, i) => `${i},`);
  d.cork();
  for (const s of parts) d.write(s);
  process.nextTick(() => d.uncork());
  const expected = parts.join('');
  const got = await p.waitForBytes(Buffer.byteLength(expected));
  t.is(got.toString(), expected);
  d.destroy();
});

forEachImpl('toDuplex checks its arguments', async (t, engine) => {
  const p = await tcpPair(engine);
  t.throws(() => toDuplex(engine, {} as Socket), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => toDuplex({} as Engine, p.sock), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => toDuplex(engine, p.sock, { readChunkSize: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => toDuplex(engine, p.sock, { readChunkSize: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => toDuplex(engine, p.sock, { readChunkSize: '5' as unknown as number }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => toDuplex(engine, p.sock, { highWaterMark: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => toDuplex(engine, p.sock, { allowHalfOpen: 'yes' as unknown as boolean }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  const d = toDuplex(engine, p.sock, { readChunkSize: 5 });
  t.true(d instanceof Duplex);
  // readChunkSize bounds each chunk.
  const got: Buffer[] = [];
  d.on('data', (b: Buffer) => got.push(b));
  await p.write('0123456789abc');
  await waitUntil(() => Buffer.concat(got).length === 13);
  t.is(Buffer.concat(got).toString(), '0123456789abc');
  t.true(
    got.every((b) => b.length <= 5),
    got.map((b) => b.length).join(','),
  );
  d.destroy();
});

/** An engine socket accepted from a net client that allows half-open connections, as net does with allowHalfOpen. */
async function halfOpenPeer(
  engine: Engine,
): Promise<{ sock: Socket; client: net.Socket; got: () => string }> {
  const l = engine.listen({ port: 0 });
  const acc = once<Socket>({}, 'halfOpenPeer accept');
  engine.accept(l, acc.cb);
  const client = net.connect({ host: '127.0.0.1', port: portOf(l), allowHalfOpen: true });
  onCleanup(engine, () => {
    client.destroy();
  });
  const chunks: Buffer[] = [];
  client.on('data', (b: Buffer) => chunks.push(b));
  const sock = await expectOkQuiet(acc);
  engine.close(l);
  return { sock, client, got: () => Buffer.concat(chunks).toString() };
}

forEachImpl(
  "end() sends a FIN: the net peer sees 'end' while it can still write to us",
  async (t, engine) => {
    const { sock, client, got } = await halfOpenPeer(engine);
    const d = toDuplex(engine, sock);
    const w = watch(d);
    const data: Buffer[] = [];
    d.on('data', (b: Buffer) => data.push(b));
    d.end('request');
    await withDeadline(eventOnce(client, 'end'), 5_000, "the net peer's 'end'");
    t.is(got(), 'request');
    t.false(sock.closed, 'half-closed, not closed: the Duplex still reads');
    client.end('response after your FIN');
    await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
    t.is(Buffer.concat(data).toString(), 'response after your FIN');
    t.deepEqual(w.events, ['finish', 'end', 'close']);
    t.deepEqual(w.errors, []);
    t.true(sock.closed, 'closed once both sides are done');
  },
);

forEachImpl(
  "allowHalfOpen: true: a net peer's end() leaves our writable side open for the reply",
  async (t, engine) => {
    const { sock, client, got } = await halfOpenPeer(engine);
    const d = toDuplex(engine, sock, { allowHalfOpen: true });
    const w = watch(d);
    const data: Buffer[] = [];
    d.on('data', (b: Buffer) => data.push(b));
    const clientEnded = eventOnce(client, 'end');
    client.end('question');
    await withDeadline(eventOnce(d, 'end'), 5_000, "the Duplex's 'end'");
    t.is(Buffer.concat(data).toString(), 'question');
    t.false(d.writableEnded, 'the writable side stays open');
    await new Promise<void>((r) => d.write('answer, ', () => r()));
    d.end('and done');
    await withDeadline(clientEnded, 5_000, "the net peer's 'end'");
    t.is(got(), 'answer, and done');
    await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
    t.deepEqual(w.errors, []);
    t.true(sock.closed);
  },
);

forEachImpl(
  "allowHalfOpen: false (the default): the peer's FIN ends our writable side with a FIN back",
  async (t, engine) => {
    const { sock, client } = await halfOpenPeer(engine);
    const d = toDuplex(engine, sock);
    const w = watch(d);
    d.resume();
    const clientEnded = eventOnce(client, 'end');
    client.end('bye');
    await withDeadline(clientEnded, 5_000, "the net peer's 'end'");
    await withDeadline(w.closed, 5_000, "the Duplex's 'close'");
    t.true(d.writableEnded);
    t.deepEqual(w.errors, []);
    t.true(sock.closed);
  },
);
