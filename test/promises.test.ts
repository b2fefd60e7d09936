// The Promise layer (engine.promises): a round trip in async/await style, every chain's
// { value, socket }, timeouts, AbortSignal before / during / after an op, no abort listeners
// left behind, files, bad arguments as rejections, sleep, and shutdown with promises pending.
import { getEventListeners, setMaxListeners } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createEngine, EngineError, EnginePromises, File, Socket } from 'async-engine';
import {
  type Ctx,
  forEachImpl,
  netClient,
  netServer,
  noFdLeaks,
  portOf,
  shutdownEngine,
  sleep,
  tcpPair,
  tempDir,
  tick,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

/** Asserts `p` rejects with an EngineError of `code`; returns it. */
async function rejectsCode(t: Ctx, p: Promise<unknown>, code: string): Promise<EngineError> {
  const err = await t.throwsAsync(withDeadline(p, 15_000, `a rejection with ${code}`), {
    instanceOf: EngineError,
  });
  t.is<string | undefined, string>((err as EngineError | undefined)?.code, code);
  return err as EngineError;
}

/** Asserts `p` rejects with an AbortError whose cause is `reason`. */
async function rejectsAbort(
  t: Ctx,
  p: Promise<unknown>,
  reason: unknown,
): Promise<(Error & { code?: string; socket?: Socket | File }) | undefined> {
  const err = (await t.throwsAsync(withDeadline(p, 15_000, 'an AbortError'))) as
    (Error & { code?: string; socket?: Socket | File }) | undefined;
  t.is(err?.name, 'AbortError');
  t.is(err?.code, 'ABORT_ERR');
  t.is(err?.cause, reason, 'cause is the signal reason');
  t.false(err instanceof EngineError);
  return err;
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

forEachImpl('engine.promises is one EnginePromises per engine', (t, engine) => {
  t.true(engine.promises instanceof EnginePromises);
  t.is(engine.promises, engine.promises);
});

forEachImpl('a server and a client in async/await style', async (t, engine) => {
  const p = engine.promises;
  const listener = engine.listen({ port: 0 });
  const [server, client] = await Promise.all([
    p.accept(listener),
    p.connect({ host: '127.0.0.1', port: portOf(listener) }),
  ]);
  engine.close(listener);
  t.true(server instanceof Socket);
  t.true(client instanceof Socket);
  t.is(server.remotePort, client.localPort);

  t.is(await p.write(client, 'PING\r\n'), 6);
  t.is(await p.expectLine(server, 'PING'), 'PING');
  t.is(await p.write(server, '+PONG\r\nEXTRA'), 12);
  t.is((await p.readUntil(client, '\r\n')).toString(), '+PONG\r\n');
  t.is((await p.readExactly(client, 5)).toString(), 'EXTRA');

  await p.write(
    client,
    ['250-a\r\n', '250 b\r\n', 'len=4;'].map((s) => Buffer.from(s)),
  );
  t.deepEqual(await p.readUntilLineglob(server, '250 *'), ['250-a', '250 b']);
  const { data, match } = await p.readUntilRegex(server, /len=(\d+);/);
  t.is(data.toString(), 'len=4;');
  t.is(match[1], '4');

  await p.write(client, 'abcd');
  const chunk = await p.readChunk(server, 2);
  t.true(chunk.length >= 1 && chunk.length <= 2);
  await p.write(client, 'efgh');
  engine.close(client);
  const rest = await p.readAll(server);
  t.is(Buffer.concat([chunk, rest]).toString(), 'abcdefgh');
  t.is((await p.readChunk(server, 10)).length, 0, 'EOF: an empty chunk');
  engine.close(server);
});

forEachImpl('options reach the op: maxBytes, encoding', async (t, engine) => {
  const pair = await tcpPair(engine);
  await pair.write('0123456789\r\n');
  await rejectsCode(t, engine.promises.expectLine(pair.sock, null, { maxBytes: 4 }), 'ERR_LIMIT');
  t.is(
    await engine.promises.expectLine(pair.sock, null, { encoding: 'hex' }),
    '30313233343536373839',
  );
});

forEachImpl('failures reject with the EngineError the callback API gives', async (t, engine) => {
  const port = await closedPort();
  const err = await rejectsCode(
    t,
    engine.promises.connect({ host: '127.0.0.1', port }),
    'ECONNREFUSED',
  );
  t.is(err.syscall, 'connect');
  const pair = await tcpPair(engine);
  await pair.write('nope\n');
  const mismatch = await rejectsCode(
    t,
    engine.promises.expectLine(pair.sock, 'yes'),
    'ERR_MISMATCH',
  );
  t.is(mismatch.line, 'nope');
  pair.client.end();
  const incomplete = await rejectsCode(
    t,
    engine.promises.readExactly(pair.sock, 10),
    'ERR_INCOMPLETE',
  );
  t.is(incomplete.partial?.length, 0);
});

// ---- chains ----

forEachImpl('acceptThenWrite resolves to { value: bytes, socket }', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const p = engine.promises.acceptThenWrite(l, '220 ready\r\n');
  const peer = await netClient(engine, { port: portOf(l) });
  const { value, socket } = await p;
  t.is(value, 11);
  t.true(socket instanceof Socket);
  t.is(socket.remotePort, peer.client.localPort);
  t.is((await peer.waitForBytes(11)).toString(), '220 ready\r\n');
});

forEachImpl('acceptThenExpectLine resolves to { value: line, socket }', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const p = engine.promises.acceptThenExpectLine(l, /^HELLO /);
  const peer = await netClient(engine, { port: portOf(l) });
  await peer.write('HELLO there\r\n');
  const { value, socket } = await p;
  t.is(value, 'HELLO there');
  t.is(socket.remotePort, peer.client.localPort);
});

forEachImpl(
  'acceptThenExpectMultilineRegex resolves to { value: { data, match }, socket }',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const p = engine.promises.acceptThenExpectMultilineRegex(l, /\r\n\r\n/, { maxBytes: 1024 });
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('GET / HTTP/1.1\r\nHost: x\r\n\r\nnext');
    const { value, socket } = await p;
    t.is(value.data.toString(), 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    t.is(value.match[0], '\r\n\r\n');
    t.is(socket.remotePort, peer.client.localPort);
    t.is((await engine.promises.readExactly(socket, 4)).toString(), 'next');
  },
);

forEachImpl('writeThenExpectLine resolves to { value: line, socket }', async (t, engine) => {
  const pair = await tcpPair(engine);
  const p = engine.promises.writeThenExpectLine(pair.sock, 'PING\r\n', '+PONG');
  await pair.waitForBytes(6);
  await pair.write('+PONG\r\n');
  const { value, socket } = await p;
  t.is(value, '+PONG');
  t.is(socket, pair.sock);
});

forEachImpl('connectThenExpectLine resolves to { value: line, socket }', async (t, engine) => {
  const srv = await netServer(engine);
  srv.server.on('connection', (s) => s.write('220 hi\r\n'));
  const { value, socket } = await engine.promises.connectThenExpectLine(
    { host: '127.0.0.1', port: srv.port },
    /^220 /,
  );
  t.is(value, '220 hi');
  t.is(socket.remotePort, srv.port);
  engine.close(socket);
});

forEachImpl('connectThenWriteLine resolves to { value: bytes, socket }', async (t, engine) => {
  const srv = await netServer(engine);
  const { value, socket } = await engine.promises.connectThenWriteLine(
    { host: '127.0.0.1', port: srv.port },
    'PING',
  );
  t.is(value, 6);
  t.is(socket.remotePort, srv.port);
  const peer = await srv.nextConnection();
  t.is((await peer.waitForBytes(6)).toString(), 'PING\r\n');
  engine.close(socket);
});

forEachImpl('getaddrinfoThenConnect resolves to { value: socket, socket }', async (t, engine) => {
  const srv = await netServer(engine, { host: '127.0.0.1' });
  const { value, socket } = await engine.promises.getaddrinfoThenConnect('127.0.0.1', srv.port);
  t.true(socket instanceof Socket);
  t.is(value, socket);
  t.is(socket.remotePort, srv.port);
  engine.close(socket);
  const addrs = await engine.promises.getaddrinfo('127.0.0.1', 80);
  t.deepEqual(addrs, [{ address: '127.0.0.1', family: 4 }]);
});

forEachImpl(
  'a failed chain rejects with the first failure, and hands over the socket it made, open',
  async (t, engine) => {
    const port = await closedPort();
    // Stage 1 fails: the rejection is its error, not the later stage's ERR_ABORTED.
    const refused = await rejectsCode(
      t,
      engine.promises.connectThenExpectLine({ host: '127.0.0.1', port }, null),
      'ECONNREFUSED',
    );
    t.is(refused.socket, undefined, 'no socket was made');
    // Stage 2 fails: the rejection carries the accepted socket, still open.
    const l = engine.listen({ port: 0 });
    const p = engine.promises.acceptThenExpectLine(l, 'HELLO');
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('GOODBYE\r\n');
    const err = await rejectsCode(t, p, 'ERR_MISMATCH');
    t.is(err.line, 'GOODBYE');
    t.true(err.socket instanceof Socket);
    t.false(err.socket!.closed);
    t.is(engine.stats().sockets, 1, 'the accepted socket is left open');
    engine.close(err.socket!);
    t.is(engine.stats().sockets, 0);
    await withDeadline(peer.ended, 5_000, 'the peer to see the close');
  },
);

// ---- timeouts ----

forEachImpl('timeout rejects with ETIMEDOUT, and the bytes stay', async (t, engine) => {
  const pair = await tcpPair(engine);
  await pair.write('par');
  const started = Date.now();
  const err = await rejectsCode(
    t,
    engine.promises.expectLine(pair.sock, null, { timeout: 60 }),
    'ETIMEDOUT',
  );
  t.true(Date.now() - started >= 50, 'not before its deadline');
  t.is(err.syscall, undefined, "the engine's deadline, not the kernel's");
  await pair.write('tial\n');
  t.is(await engine.promises.expectLine(pair.sock, null), 'partial');
  t.is(engine.stats().opsInFlight, 0);
});

forEachImpl('timeout on a chain stage rejects with ETIMEDOUT', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  await rejectsCode(t, engine.promises.acceptThenWrite(l, 'x', { timeout: 40 }), 'ETIMEDOUT');
  const p = engine.promises.acceptThenExpectLine(l, null, { timeout: 60 });
  await netClient(engine, { port: portOf(l) }); // connects, says nothing
  const err = await rejectsCode(t, p, 'ETIMEDOUT');
  t.is(engine.stats().sockets, 1, 'the accepted socket is handed over, open');
  engine.close(err.socket!);
  t.is(engine.stats().sockets, 0);
});

// ---- AbortSignal ----

forEachImpl(
  'a signal aborted before the call: AbortError, nothing submitted',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    const reason = new Error('changed my mind');
    const signal = AbortSignal.abort(reason);
    const before = engine.stats();
    const p = engine.promises.expectLine(pair.sock, null, { signal });
    const c = engine.promises.writeThenExpectLine(pair.sock, 'x', null, { signal });
    const s = engine.promises.sleep(10, { signal });
    t.is(engine.stats().opsInFlight, before.opsInFlight, 'no op submitted');
    await rejectsAbort(t, p, reason);
    await rejectsAbort(t, c, reason);
    await rejectsAbort(t, s, reason);
    const after = engine.stats();
    t.is(after.opsInFlight, before.opsInFlight);
    t.is(after.completions, before.completions, 'nothing settled either');
    t.is(pair.received().length, 0, 'the chain wrote nothing');
    t.is(getEventListeners(signal, 'abort').length, 0);
  },
);

forEachImpl(
  'a signal aborted while pending: AbortError with the cause, op cancelled, data kept',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    const ctl = new AbortController();
    const p = engine.promises.expectLine(pair.sock, null, { signal: ctl.signal });
    await pair.write('half ');
    t.true(
      await waitUntil(() => pair.sock.bufferedBytes === 5),
      'the pending read took in the partial line',
    );
    t.is(getEventListeners(ctl.signal, 'abort').length, 1, 'listening while pending');
    const reason = { why: 'user left' };
    ctl.abort(reason);
    await rejectsAbort(t, p, reason);
    t.is(engine.stats().opsInFlight, 0, 'the op is gone');
    t.is(getEventListeners(ctl.signal, 'abort').length, 0);
    await pair.write('a line\n');
    t.is(await engine.promises.expectLine(pair.sock, null), 'half a line', 'no byte lost');
  },
);

forEachImpl('aborting a pending chain: AbortError with the socket it made', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const ctl = new AbortController();
  const p = engine.promises.acceptThenExpectLine(l, null, { signal: ctl.signal });
  const peer = await netClient(engine, { port: portOf(l) });
  t.true(await waitUntil(() => engine.stats().sockets === 1), 'the accept stage finished');
  ctl.abort('stop');
  const err = await rejectsAbort(t, p, 'stop');
  t.is(engine.stats().opsInFlight, 0);
  t.true(err?.socket instanceof Socket, 'the accepted socket is handed over');
  t.is(engine.stats().sockets, 1, 'and left open');
  engine.close(err!.socket!);
  t.is(engine.stats().sockets, 0);
  await withDeadline(peer.ended, 5_000, 'the peer to see the close');
  // The listener still works: the cancelled chain took nothing from it.
  const p2 = engine.promises.acceptThenWrite(l, 'ok\n');
  const peer2 = await netClient(engine, { port: portOf(l) });
  t.is((await p2).value, 3);
  t.is((await peer2.waitForBytes(3)).toString(), 'ok\n');
});

forEachImpl(
  'an abort that loses to the completion: the real outcome (readInto once running)',
  async (t, engine) => {
    const dir = tempDir(engine);
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'sixteen bytes!!\n');
    const f = await engine.promises.open(file);
    const ctl = new AbortController();
    const buf = Buffer.alloc(64);
    const p = engine.promises.readInto(f, buf, { position: 0, signal: ctl.signal });
    ctl.abort('too late?');
    // A file read the engine has started settles with its own result (cancel() returns false);
    // one it had not started is cancelled. Either way the promise tells which happened.
    const outcome = await p.then(
      (n) => ({ n }),
      (e: Error) => ({ e }),
    );
    if ('n' in outcome) {
      t.is(outcome.n, 16);
      t.is(buf.subarray(0, 16).toString(), 'sixteen bytes!!\n');
      t.log('the read was running: the abort lost');
    } else {
      t.is(outcome.e.name, 'AbortError');
      t.log('the cancel won here');
    }
    t.is(getEventListeners(ctl.signal, 'abort').length, 0);
    engine.close(f);
  },
);

forEachImpl(
  'an abort that loses: a line already buffered resolves or is kept',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    await pair.write('first\nsecond\n');
    t.is(await engine.promises.expectLine(pair.sock, null), 'first'); // 'second' now buffered
    const ctl = new AbortController();
    const p = engine.promises.expectLine(pair.sock, null, { signal: ctl.signal });
    ctl.abort('now');
    const outcome = await p.then(
      (line) => ({ line }),
      (e: Error) => ({ e }),
    );
    if ('line' in outcome) {
      t.is(outcome.line, 'second');
      t.log('the op had finished: the abort lost');
    } else {
      t.log('the cancel won');
      t.is(outcome.e.name, 'AbortError');
      t.is(await engine.promises.expectLine(pair.sock, null), 'second', 'the line was kept');
    }
  },
);

forEachImpl('a signal aborted after the op settled changes nothing', async (t, engine) => {
  const pair = await tcpPair(engine);
  const ctl = new AbortController();
  await pair.write('done\n');
  const line = await engine.promises.expectLine(pair.sock, null, { signal: ctl.signal });
  t.is(getEventListeners(ctl.signal, 'abort').length, 0, 'listener removed at settle');
  const before = engine.stats();
  ctl.abort('late');
  await tick();
  t.is(line, 'done');
  t.is(engine.stats().completions, before.completions);
  await pair.write('next\n');
  t.is(await engine.promises.expectLine(pair.sock, null), 'next', 'the socket is untouched');
});

forEachImpl(
  'one long-lived signal over 10,000 ops leaves no listeners',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    const ctl = new AbortController();
    const { signal } = ctl;
    const opts = { signal };
    const count = () => getEventListeners(signal, 'abort').length;
    setMaxListeners(5_000, signal); // thousands of ops in flight on it at once, on purpose
    // Sequential successes.
    for (let i = 0; i < 5_000; i++) await engine.promises.write(pair.sock, 'x', opts);
    t.is(count(), 0);
    // Concurrent ones: one listener per op in flight, none after.
    const writes = Array.from({ length: 4_000 }, () => engine.promises.write(pair.sock, 'y', opts));
    t.is(count(), 4_000);
    await Promise.all(writes);
    t.is(count(), 0);
    await pair.waitForBytes(9_000);
    // Failures, and chains.
    const timeouts = Array.from({ length: 500 }, () =>
      engine.promises
        .readExactly(pair.sock, 1, { signal, timeout: 1 })
        .catch((e: EngineError) => e),
    );
    for (const e of await Promise.all(timeouts)) t.is((e as EngineError).code, 'ETIMEDOUT');
    for (let i = 0; i < 500; i++) {
      const p = engine.promises.writeThenExpectLine(pair.sock, 'q\n', null, opts);
      await pair.write('a\n');
      t.is((await p).value, 'a');
    }
    const sleeps = Array.from({ length: 100 }, () => engine.promises.sleep(1, opts));
    t.is(count(), 100);
    await Promise.all(sleeps);
    t.is(count(), 0, 'no listener accumulated');
  },
  { timeout: 120_000 },
);

// ---- files ----

forEachImpl('files: open, write, fsync, stat, readInto, expectLine', async (t, engine) => {
  const p = engine.promises;
  const dir = tempDir(engine);
  const file = path.join(dir, 'notes.txt');
  const f = await p.open(file, { flags: 'w+', mode: 0o600 });
  t.true(f instanceof File);
  t.is(f.path, file);
  t.is(await p.write(f, 'hello\nworld\n'), 12);
  t.is(await p.write(f, 'HELLO', { position: 0 }), 5);
  await p.fsync(f);
  await p.fsync(f, { dataOnly: true });
  const st = await p.stat(f);
  t.is(st.size, 12);
  t.true(st.isFile);
  t.is(st.mode & 0o777, 0o600);
  t.is((await p.stat(file)).ino, st.ino);
  const buf = Buffer.alloc(32);
  t.is(await p.readInto(f, buf, { position: 6 }), 6);
  t.is(buf.subarray(0, 6).toString(), 'world\n');
  t.is(await p.expectLine(f, null), 'HELLO');
  t.is(await p.readInto(f, buf), 6, 'sequential, after the line');
  t.is(await p.readInto(f, buf), 0, 'end of file');
  engine.close(f);
  t.is(fs.readFileSync(file, 'utf8'), 'HELLO\nworld\n');
  await rejectsCode(t, p.stat(path.join(dir, 'missing')), 'ENOENT');
  await rejectsCode(t, p.open(path.join(dir, 'missing')), 'ENOENT');
});

// ---- programmer errors, sleep, shutdown ----

forEachImpl('bad arguments reject, they do not throw', async (t, engine) => {
  const pair = await tcpPair(engine);
  const before = engine.stats().opsInFlight;
  let p: Promise<unknown> | undefined;
  t.notThrows(() => {
    p = engine.promises.readChunk(pair.sock, 0);
  });
  await t.throwsAsync(p!, { instanceOf: RangeError, message: /size/ });
  await t.throwsAsync(
    engine.promises.readChunk(pair.sock, 1, { signal: 'no' as unknown as AbortSignal }),
    { instanceOf: TypeError, message: /signal/ },
  );
  await t.throwsAsync(engine.promises.expectLine(pair.sock, null, { timeout: -1 }), {
    instanceOf: RangeError,
  });
  const dir = tempDir(engine);
  await t.throwsAsync(
    engine.promises.open(path.join(dir, 'x'), { signal: AbortSignal.abort() } as never),
    { instanceOf: TypeError, message: /third argument|next argument/ },
  );
  t.is(engine.stats().opsInFlight, before);
  t.false(fs.existsSync(path.join(dir, 'x')));
});

forEachImpl('sleep resolves after ms; an abort cancels it', async (t, engine) => {
  const started = Date.now();
  await engine.promises.sleep(30);
  t.true(Date.now() - started >= 25);
  const ctl = new AbortController();
  const s = engine.promises.sleep(10_000, { signal: ctl.signal });
  await sleep(5);
  ctl.abort('wake up');
  await rejectsAbort(t, s, 'wake up');
  t.true(await waitUntil(() => engine.stats().opsInFlight === 0), 'the timer is gone');
  t.is(getEventListeners(ctl.signal, 'abort').length, 0);
});

forEachImpl('a sleep pending at shutdown rejects ECANCELED', async (t, _engine, impl) => {
  const engine = createEngine({ impl });
  const s = engine.promises.sleep(10_000);
  await engine.shutdown();
  const err = await t.throwsAsync(s);
  t.is((err as { code?: string }).code, 'ECANCELED');
});

forEachImpl(
  'a sleep of any EnginePromises, not only engine.promises, rejects ECANCELED at shutdown',
  async (t, _engine, impl) => {
    const engine = createEngine({ impl });
    const own = new EnginePromises(engine);
    const mine = own.sleep(10_000);
    const shared = engine.promises.sleep(10_000);
    t.is(engine.stats().opsInFlight, 2, 'both timers pending');
    await engine.shutdown();
    await rejectsCode(t, mine, 'ECANCELED');
    await rejectsCode(t, shared, 'ECANCELED');
  },
);

forEachImpl('shutdown rejects pending promises with ECANCELED', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const ctl = new AbortController();
  const p = engine.promises.accept(l, { signal: ctl.signal });
  const c = engine.promises.acceptThenWrite(l, 'x');
  await tick();
  await shutdownEngine(engine);
  await rejectsCode(t, p, 'ECANCELED');
  await rejectsCode(t, c, 'ECANCELED');
  t.is(getEventListeners(ctl.signal, 'abort').length, 0);
  await rejectsCode(t, engine.promises.accept(l), 'ERR_ENGINE_CLOSED');
});
