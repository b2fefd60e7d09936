// Errors: bad arguments throw synchronously with the right class and code and queue nothing;
// a peer reset during a pending read is ECONNRESET; ops on a closed socket fail EBADF.
import test from 'ava';
import { availableImpls, Callback, createEngine, EngineError, type Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  once,
  type Pair,
  sleep,
  tcpPair,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

type Expect = { instanceOf?: new (...a: never[]) => Error; code: string };
const typeErr: Expect = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
const rangeErr: Expect = { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' };
const valueErr: Expect = { code: 'ERR_INVALID_ARG_VALUE' };

/**
 * Asserts that submitting throws as expected, synchronously, and that nothing was queued:
 * opsInFlight is unchanged, the callback never runs, and it can be submitted again at once.
 */
async function rejects(
  t: Ctx,
  engine: Engine,
  p: Pair,
  what: string,
  submit: (cb: Callback<never>) => void,
  expect: Expect,
): Promise<void> {
  const before = engine.stats().opsInFlight;
  const tr = once<never>({}, what);
  const err = t.throws(
    () => submit(tr.cb),
    expect.instanceOf ? { instanceOf: expect.instanceOf } : undefined,
    what,
  );
  t.is((err as (Error & { code?: string }) | undefined)?.code, expect.code, `${what}: code`);
  t.is(engine.stats().opsInFlight, before, `${what}: nothing queued`);
  // The callback is not in flight: it can be used for a real op right away.
  t.notThrows(
    () => engine.readChunk(p.sock, 1, tr.cb as unknown as Callback<Buffer>),
    `${what}: callback reusable`,
  );
  t.true(tr.cancel(), `${what}: the reused callback's op was pending`);
  await tr.result();
  t.is(tr.calls.length, 1);
  t.is(tr.calls[0]?.err?.code, 'ECANCELED', `${what}: the callback never saw the rejected op`);
}

forEachImpl('bad delimiters: wrong type, empty string, empty Buffer', async (t, engine) => {
  const p = await tcpPair(engine);
  await rejects(
    t,
    engine,
    p,
    'number delimiter',
    (cb) => engine.readUntil(p.sock, 42 as unknown as string, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'null delimiter',
    (cb) => engine.readUntil(p.sock, null as unknown as string, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'empty string',
    (cb) => engine.readUntil(p.sock, '', cb as never),
    valueErr,
  );
  await rejects(
    t,
    engine,
    p,
    'empty Buffer',
    (cb) => engine.readUntil(p.sock, Buffer.alloc(0), cb as never),
    valueErr,
  );
});

forEachImpl(
  'bad regexes: not a RegExp, or one that matches the empty string',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await rejects(
      t,
      engine,
      p,
      'string regex',
      (cb) => engine.readUntilRegex(p.sock, 'a+' as unknown as RegExp, cb as never),
      typeErr,
    );
    await rejects(
      t,
      engine,
      p,
      '/x*/',
      (cb) => engine.readUntilRegex(p.sock, /x*/, cb as never),
      valueErr,
    );
    await rejects(
      t,
      engine,
      p,
      '/(?:)/',
      (cb) => engine.readUntilRegex(p.sock, /(?:)/, cb as never),
      valueErr,
    );
    await rejects(
      t,
      engine,
      p,
      '/^/m',
      (cb) => engine.readUntilRegex(p.sock, /^/m, cb as never),
      valueErr,
    );
  },
);

forEachImpl('bad sizes and limits: size <= 0, maxBytes <= 0', async (t, engine) => {
  const p = await tcpPair(engine);
  await rejects(
    t,
    engine,
    p,
    'readChunk 0',
    (cb) => engine.readChunk(p.sock, 0, cb as never),
    rangeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'readChunk -1',
    (cb) => engine.readChunk(p.sock, -1, cb as never),
    rangeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'readExactly -3',
    (cb) => engine.readExactly(p.sock, -3, cb as never),
    rangeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'maxBytes 0',
    (cb) => engine.readUntil(p.sock, '\n', { maxBytes: 0 }, cb as never),
    rangeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'maxBytes -1',
    (cb) => engine.expectLine(p.sock, null, { maxBytes: -1 }, cb as never),
    rangeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'readAll maxBytes 0',
    (cb) => engine.readAll(p.sock, { maxBytes: 0 }, cb as never),
    rangeErr,
  );
});

forEachImpl('bad argument types: socket, callback, data, expect, glob', async (t, engine) => {
  const p = await tcpPair(engine);
  const notASocket = {} as unknown as Socket;
  await rejects(
    t,
    engine,
    p,
    'plain object socket',
    (cb) => engine.readUntil(notASocket, '\n', cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'numeric socket',
    (cb) => engine.expectLine(3 as unknown as Socket, null, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'write number',
    (cb) => engine.write(p.sock, 123 as unknown as string, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'write array of strings',
    (cb) => engine.write(p.sock, ['a', 'b'] as unknown as Buffer[], cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'expect number',
    (cb) => engine.expectLine(p.sock, 5 as unknown as string, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'glob number',
    (cb) => engine.readUntilLineglob(p.sock, 7 as unknown as string, cb as never),
    typeErr,
  );
  await rejects(
    t,
    engine,
    p,
    'size string',
    (cb) => engine.readChunk(p.sock, '4' as unknown as number, cb as never),
    typeErr,
  );

  // A callback that is not a Callback, nor its slots (a misspelled slot), nor a function
  const before = engine.stats().opsInFlight;
  t.throws(
    () => engine.readUntil(p.sock, '\n', { succes() {} } as unknown as Callback<Buffer>),
    typeErr,
  );
  t.throws(() => engine.readUntil(p.sock, '\n', undefined as unknown as Callback<Buffer>), typeErr);
  t.is(engine.stats().opsInFlight, before);
  // The socket's read queue was not disturbed.
  await p.write('intact\n');
  const r = once<Buffer>();
  engine.readUntil(p.sock, '\n', r.cb);
  t.is((await expectOk(t, r)).toString(), 'intact\n');
});

forEachImpl('chains with the wrong number of callbacks throw TypeError', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const before = engine.stats().opsInFlight;
  const one = new Callback<never>({});
  t.throws(
    () =>
      engine.acceptThenExpectLine(l, null, [one] as unknown as [
        Callback<Socket>,
        Callback<string>,
      ]),
    {
      instanceOf: TypeError,
    },
  );
  t.throws(
    () => engine.acceptThenWrite(l, 'x', one as unknown as [Callback<Socket>, Callback<number>]),
    {
      instanceOf: TypeError,
    },
  );
  t.is(engine.stats().opsInFlight, before);
  t.false(one.cancel(), 'never submitted');
});

test('createEngine: unknown impl and bad config throw synchronously', (t) => {
  t.throws(() => createEngine({ impl: 'bogus' as 'readiness' }));
  t.throws(() => createEngine({ maxBytes: 0 }), { instanceOf: RangeError });
  t.throws(() => createEngine({ maxBytes: -10 }), { instanceOf: RangeError });
  t.throws(() => createEngine({ drive: 'sometimes' as 'auto' }));
});

test('createEngine for an unavailable impl throws an error that says why', (t) => {
  const unavailable = availableImpls().filter((a) => !a.available);
  for (const a of availableImpls()) {
    t.is(typeof a.available, 'boolean');
    if (!a.available)
      t.true(typeof a.reason === 'string' && a.reason.length > 0, `${a.impl} has a reason`);
  }
  for (const a of unavailable) {
    const err = t.throws(() => createEngine({ impl: a.impl }));
    t.true((err?.message ?? '').length > 0);
  }
  t.true(
    availableImpls().some((a) => a.impl === 'readiness' && a.available),
    'readiness is available',
  );
});

forEachImpl(
  'peer reset (SO_LINGER {1,0}) during a pending read gives ECONNRESET',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    await sleep(20);
    p.client.resetAndDestroy();
    const err = await expectErr(t, r, 'ECONNRESET');
    t.true(err instanceof EngineError);
    t.is(typeof err.errno, 'number');
  },
);

forEachImpl('peer reset with partial data buffered: ECONNRESET, not EOF', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, null, r.cb);
  await p.write('partial');
  await sleep(30);
  p.client.resetAndDestroy();
  await expectErr(t, r, 'ECONNRESET');
});

forEachImpl(
  'ops on a closed socket fail EBADF asynchronously; close twice is a no-op',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.close(p.sock);
    t.true(p.sock.closed);
    t.notThrows(() => engine.close(p.sock));
    const ops = {
      readUntil: once<Buffer>(),
      expectLine: once<string>(),
      readChunk: once<Buffer>(),
      readExactly: once<Buffer>(),
      readAll: once<Buffer>(),
      write: once<number>(),
    };
    engine.readUntil(p.sock, '\n', ops.readUntil.cb);
    engine.expectLine(p.sock, null, ops.expectLine.cb);
    engine.readChunk(p.sock, 10, ops.readChunk.cb);
    engine.readExactly(p.sock, 10, ops.readExactly.cb);
    engine.readAll(p.sock, ops.readAll.cb);
    engine.write(p.sock, 'x', ops.write.cb);
    for (const [name, tr] of Object.entries(ops)) {
      const err = await expectErr(t, tr as typeof ops.readUntil, 'EBADF');
      t.true(err instanceof EngineError, name);
    }
  },
);

forEachImpl('accept on a closed listener fails EBADF', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  engine.close(l);
  t.notThrows(() => engine.close(l));
  const a = once<Socket>();
  engine.accept(l, a.cb);
  await expectErr(t, a, 'EBADF');
});

forEachImpl('EngineError shape: name, message, code', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>({ timeout: 10 });
  engine.readUntil(p.sock, '\n', r.cb);
  const err = await expectErr(t, r, 'ETIMEDOUT');
  t.true(err instanceof Error);
  t.is(typeof err.message, 'string');
  t.true(err.message.length > 0);
  t.is(typeof err.stack, 'string');
});
