// Uniform options: every op takes an options object just before its Callback, with `timeout`
// (its deadline, in place of the Callback's) and `signal` (an AbortSignal that cancels it), plus
// the op's own keys; a key an op does not use is refused by name, as is an unknown config key;
// a missing or misplaced Callback is reported as such.
import test from 'ava';
import { getEventListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Callback, createEngine, type AddrInfo, type FileStat, type Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  netClient,
  noFdLeaks,
  once,
  portOf,
  runNodeScript,
  tcpPair,
  tempDir,
  withDeadline,
} from './helpers/harness.js';

const tasks = new URL('../../test/fixtures/tasks.mjs', import.meta.url);

/** Asserts `fn` throws a TypeError ERR_INVALID_ARG_VALUE whose message names `key`. */
function refusesKey(t: Ctx, fn: () => unknown, key: string): void {
  const err = t.throws(fn, { instanceOf: TypeError }) as TypeError & { code?: string };
  t.is(err?.code, 'ERR_INVALID_ARG_VALUE');
  t.true(err?.message.includes(`'${key}'`), err?.message);
}

// An op given `opts` typed loosely: these calls are what a program without types might make.
const loose = (v: object): never => v as never;

// ---- the ops that took no options: accept, connect, getaddrinfo, stat, submitWork ----

forEachImpl(
  'accept takes { timeout }: ETIMEDOUT, and the listener still works',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const a = once<Socket>();
    engine.accept(l, { timeout: 40 }, a.cb);
    await expectErr(t, a, 'ETIMEDOUT');
    const b = once<Socket>();
    engine.accept(l, {}, b.cb);
    await netClient(engine, { port: portOf(l) });
    engine.close(await expectOk(t, b));
  },
);

forEachImpl('accept takes { signal }: abort cancels it, the listener goes', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const ctl = new AbortController();
  const a = once<Socket>();
  engine.accept(l, { signal: ctl.signal }, a.cb);
  t.is(getEventListeners(ctl.signal, 'abort').length, 1);
  ctl.abort();
  await expectErr(t, a, 'ECANCELED');
  t.is(getEventListeners(ctl.signal, 'abort').length, 0, 'no listener left on the signal');
  // Already aborted: cancelled as soon as submitted (never synchronously).
  const b = once<Socket>();
  engine.accept(l, { signal: AbortSignal.abort() }, b.cb);
  await expectErr(t, b, 'ECANCELED');
  t.is(engine.stats().opsInFlight, 0);
});

forEachImpl(
  'connect takes { timeout, signal }; the signal is let go on success',
  async (t, engine) => {
    const l = engine.listen({ port: 0 });
    const ctl = new AbortController();
    const c = once<Socket>();
    engine.connect(
      { host: '127.0.0.1', port: portOf(l) },
      { timeout: 5000, signal: ctl.signal },
      c.cb,
    );
    const a = once<Socket>();
    engine.accept(l, a.cb);
    const sock = await expectOk(t, c);
    t.is(getEventListeners(ctl.signal, 'abort').length, 0);
    ctl.abort(); // too late: nothing happens
    t.false(sock.closed);
    engine.close(sock);
    engine.close(await expectOk(t, a));
  },
);

forEachImpl('getaddrinfo, stat and submitWork take options', async (t, engine) => {
  const g = once<AddrInfo[]>();
  engine.getaddrinfo('127.0.0.1', 80, { timeout: 10_000 }, g.cb);
  t.is((await expectOk(t, g))[0]?.address, '127.0.0.1');
  const s = once<FileStat>();
  engine.stat(tempDir(engine), { timeout: 10_000, signal: new AbortController().signal }, s.cb);
  t.true((await expectOk(t, s)).isDirectory);
  const w = once<number>();
  engine.submitWork({ module: tasks, fn: 'add', args: [2, 3] }, { timeout: 10_000 }, w.cb);
  t.is(await expectOk(t, w), 5);
  // A task's deadline from the options stops it.
  const slow = once<unknown>();
  engine.submitWork(
    { module: tasks, fn: 'later', args: [5_000, 'late'] },
    { timeout: 30 },
    slow.cb,
  );
  await expectErr(t, slow, 'ETIMEDOUT');
});

// ---- options.timeout on the ops that took options already ----

forEachImpl(
  'a read takes { timeout } in place of its Callback’s; the bytes stay',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    await pair.write('ab');
    const r = once<Buffer>({ timeout: 60_000 });
    engine.readExactly(pair.sock, 4, { timeout: 40 }, r.cb);
    await expectErr(t, r, 'ETIMEDOUT');
    const again = once<Buffer>();
    engine.readExactly(pair.sock, 2, again.cb);
    t.is((await expectOk(t, again)).toString(), 'ab');
  },
);

// ---- the chains ----

forEachImpl('the chains take options before their Callbacks', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  // acceptThenWrite: its timeout bounds each stage.
  const a1 = once<Socket>();
  const a2 = once<number>();
  engine.acceptThenWrite(l, 'x', { timeout: 40 }, [a1.cb, a2.cb]);
  await expectErr(t, a1, 'ETIMEDOUT');
  await expectErr(t, a2, 'ERR_ABORTED');
  // connectThenWriteLine and getaddrinfoThenConnect, with a signal let go at the end.
  const ctl = new AbortController();
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const c1 = once<Socket>();
  const c2 = once<number>();
  engine.connectThenWriteLine(
    { host: '127.0.0.1', port: portOf(l) },
    'HELO',
    { signal: ctl.signal },
    [c1.cb, c2.cb],
  );
  t.is(await expectOk(t, c2), 6);
  t.is(getEventListeners(ctl.signal, 'abort').length, 0);
  engine.close((await c1.result()).value!);
  engine.close(await expectOk(t, acc));
  const acc2 = once<Socket>();
  engine.accept(l, acc2.cb);
  const g1 = once<AddrInfo[]>();
  const g2 = once<Socket>();
  engine.getaddrinfoThenConnect('127.0.0.1', portOf(l), { timeout: 10_000 }, [g1.cb, g2.cb]);
  engine.close(await expectOk(t, g2));
  engine.close(await expectOk(t, acc2));
});

forEachImpl('a chain’s signal cancels the stage running', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const ctl = new AbortController();
  const a1 = once<Socket>();
  const a2 = once<string>();
  engine.acceptThenExpectLine(l, null, { signal: ctl.signal }, [a1.cb, a2.cb]);
  ctl.abort();
  await expectErr(t, a1, 'ECANCELED');
  await expectErr(t, a2, ['ERR_ABORTED', 'ECANCELED']);
  t.is(getEventListeners(ctl.signal, 'abort').length, 0);
});

forEachImpl(
  'debug still warns of a failure dropped by an op with a signal and no failure slot',
  async (t, _e, impl) => {
    const script = `
const { createEngine } = await import(process.env.ENGINE_URL);
const warnings = [];
process.on('warning', (w) => warnings.push(w.code + ' ' + w.message));
const engine = createEngine({ impl: process.env.IMPL, debug: true });
const l = engine.listen({ port: 0 });
const ctl = new AbortController();
engine.accept(l, { signal: ctl.signal }, () => {});
ctl.abort();
await new Promise((r) => setTimeout(r, 100));
await engine.shutdown();
await new Promise((r) => setImmediate(r));
console.log(JSON.stringify(warnings));
`;
    const r = await runNodeScript(script, { IMPL: impl, ASYNC_ENGINE_DEBUG: '' });
    t.is(r.code, 0, r.stderr);
    const seen = JSON.parse(r.stdout.trim()) as string[];
    t.is(seen.length, 1, r.stdout);
    t.regex(seen[0]!, /^ASYNC_ENGINE_DROPPED_FAILURE .*ECANCELED/);
  },
);

// ---- keys an op does not use ----

forEachImpl('readChunk, readExactly and write refuse maxBytes and encoding', async (t, engine) => {
  const pair = await tcpPair(engine);
  const cb = new Callback<unknown>({});
  for (const key of ['maxBytes', 'encoding']) {
    const opts = loose({ [key]: key === 'maxBytes' ? 10 : 'utf8' });
    refusesKey(t, () => engine.readChunk(pair.sock, 10, opts, cb), key);
    refusesKey(t, () => engine.readExactly(pair.sock, 10, opts, cb), key);
    refusesKey(t, () => engine.write(pair.sock, 'x', opts, cb), key);
  }
  refusesKey(
    t,
    () => engine.readUntil(pair.sock, '\n', loose({ encoding: 'utf8' }), cb),
    'encoding',
  );
  refusesKey(t, () => engine.expectLine(pair.sock, null, loose({ maxByte: 5 }), cb), 'maxByte');
  refusesKey(t, () => engine.accept(engine.listen(), loose({ maxBytes: 5 }), cb), 'maxBytes');
  refusesKey(t, () => engine.getaddrinfo('localhost', 80, loose({ family: 4 }), cb), 'family');
  refusesKey(t, () => engine.stat('/', loose({ bigint: true }), cb), 'bigint');
  refusesKey(
    t,
    () =>
      engine.connectThenWriteLine(
        { host: '127.0.0.1', port: 1 },
        'x',
        loose({ encoding: 'utf8' }),
        [cb, new Callback({})],
      ),
    'encoding',
  );
  refusesKey(
    t,
    () => engine.readLengthPrefixed(pair.sock, loose({ length: () => 0, trailler: '\r\n' }), cb),
    'trailler',
  );
  // Nothing was submitted, and a key set to undefined counts as absent.
  t.is(engine.stats().opsInFlight, 0);
  const ok = once<Buffer>();
  engine.readChunk(pair.sock, 10, loose({ maxBytes: undefined, position: undefined }), ok.cb);
  await pair.write('fine');
  t.is((await expectOk(t, ok)).toString(), 'fine');
});

forEachImpl('file ops refuse keys they do not use', async (t, engine) => {
  const file = path.join(tempDir(engine), 'opts.txt');
  fs.writeFileSync(file, 'data');
  const cb = new Callback<unknown>({});
  refusesKey(t, () => engine.open(file, loose({ flag: 'r' }), cb), 'flag');
  const o = once<import('async-engine').File>();
  engine.open(file, { flags: 'r', timeout: 10_000 }, o.cb);
  const f = await expectOk(t, o);
  refusesKey(t, () => engine.fsync(f, loose({ dataonly: true }), cb), 'dataonly');
  refusesKey(t, () => engine.readInto(f, Buffer.alloc(4), loose({ maxBytes: 4 }), cb), 'maxBytes');
  engine.close(f);
});

forEachImpl('the promise ops refuse keys the op does not use', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const err = await t.throwsAsync(engine.promises.accept(l, loose({ maxBytes: 5 })));
  t.is((err as { code?: string }).code, 'ERR_INVALID_ARG_VALUE');
  t.true(err!.message.includes("'maxBytes'"));
  const err2 = await t.throwsAsync(
    engine.promises.getaddrinfo('localhost', 80, loose({ family: 4 })),
  );
  t.true(err2!.message.includes("'family'"));
  const err3 = await t.throwsAsync(engine.promises.open('/nonexistent', {}, loose({ flags: 'r' })));
  t.true(err3!.message.includes("'flags'"));
  t.is(engine.stats().opsInFlight, 0);
});

forEachImpl('listen and runOnce refuse unknown keys', (t, engine) => {
  refusesKey(t, () => engine.listen(loose({ prot: 80 })), 'prot');
  refusesKey(t, () => engine.runOnce(loose({ timout: 5 })), 'timout');
});

// ---- a missing or misplaced Callback ----

forEachImpl('a missing Callback after the options is reported as missing', async (t, engine) => {
  const pair = await tcpPair(engine);
  const l = engine.listen({ port: 0 });
  for (const call of [
    () => engine.readChunk(pair.sock, 10, loose({ position: undefined, signal: undefined })),
    () => engine.accept(l, loose({ signal: new AbortController().signal })),
    () => engine.getaddrinfo('localhost', 80, loose({ signal: new AbortController().signal })),
  ]) {
    const err = t.throws(call, { instanceOf: TypeError }) as TypeError & { code?: string };
    t.is(err?.code, 'ERR_INVALID_ARG_TYPE');
    t.true(err?.message.includes('the Callback is missing'), err?.message);
  }
  t.is(engine.stats().opsInFlight, 0);
});

forEachImpl('a Callback before the options is reported as misplaced', async (t, engine) => {
  const pair = await tcpPair(engine);
  const l = engine.listen({ port: 0 });
  const cb = new Callback<unknown>({ success: () => {} });
  for (const call of [
    () => engine.readChunk(pair.sock, 10, loose(cb), loose({ position: 0 })),
    () =>
      engine.accept(
        l,
        loose(() => {}),
        loose({ timeout: 5, signal: AbortSignal.abort() }),
      ),
    () => engine.write(pair.sock, 'x', loose(cb), loose({ signal: AbortSignal.abort() })),
  ]) {
    const err = t.throws(call, { instanceOf: TypeError }) as TypeError & { code?: string };
    t.is(err?.code, 'ERR_INVALID_ARG_TYPE');
    t.true(err?.message.includes('it came before them'), err?.message);
  }
  // A chain's Callbacks before its options.
  const chained = t.throws(
    () => engine.acceptThenWrite(l, 'x', loose([cb, new Callback({})]), loose({ timeout: 5 })),
    { instanceOf: TypeError },
  ) as TypeError & { code?: string };
  t.is(chained?.code, 'ERR_INVALID_ARG_TYPE');
  t.true(chained?.message.includes('they came before them'), chained?.message);
  t.is(engine.stats().opsInFlight, 0);
});

// ---- the engine's configuration ----

test.serial('createEngine refuses a config key it does not know', (t) => {
  refusesKey(t, () => createEngine(loose({ maxByte: 10 })), 'maxByte');
  refusesKey(t, () => createEngine(loose({ completion: { entires: 8 } })), 'entires');
  refusesKey(t, () => createEngine(loose({ work: { thread: 2 } })), 'thread');
});

noFdLeaks();
