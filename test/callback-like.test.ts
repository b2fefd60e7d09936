// Where a Callback goes, its slots as a plain object or a bare `success` function do too; they
// are wrapped in a new Callback. Anything else is refused, not taken as a Callback that drops
// its outcome.
import { Callback, EngineError, type Socket } from 'async-engine';
import { forEachImpl, noFdLeaks, tcpPair } from './helpers/harness.js';

noFdLeaks();

forEachImpl(
  'plain slot objects and bare functions are accepted where a Callback goes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('hello\nworld\n');
    const first = await new Promise<[string, Socket]>((resolve) =>
      engine.expectLine(p.sock, null, (line: string, sock: Socket) => resolve([line, sock])),
    );
    t.deepEqual(first, ['hello', p.sock]);
    const second = await new Promise<string>((resolve, reject) =>
      engine.expectLine(p.sock, 'nope', { maxBytes: 100 }, { success: resolve, failure: reject }),
    ).catch((e: EngineError) => e.code);
    t.is(second, 'ERR_MISMATCH');
    // A timeout slot works as a Callback's does.
    const timedOut = await new Promise<string>((resolve) =>
      engine.readExactly(p.sock, 10, { timeout: 20, failure: (e) => resolve(e.code) }),
    );
    t.is(timedOut, 'ETIMEDOUT');
    // Chains take them too.
    const l = engine.listen({ port: 0 });
    const port = (l.address() as { port: number }).port;
    const accepted = new Promise<Socket>((resolve) => engine.accept(l, resolve));
    const greeting = new Promise<string>((resolve, reject) =>
      engine.connectThenExpectLine({ host: '127.0.0.1', port }, null, [
        () => undefined,
        { success: resolve, failure: reject },
      ]),
    );
    const server = await accepted;
    engine.write(server, '220 hi\r\n', new Callback({}));
    t.is(await greeting, '220 hi');
    engine.close(l);
  },
);

forEachImpl('what is neither a Callback, slots nor a function is refused', async (t, engine) => {
  const p = await tcpPair(engine);
  const typeErr = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
  for (const bad of [{ maxBytes: 10 }, {}, { success: () => {}, maxBytes: 1 }, null, 42, []]) {
    t.throws(() => engine.readExactly(p.sock, 1, bad as never), typeErr, JSON.stringify(bad));
  }
  t.throws(() => engine.readExactly(p.sock, 1, { success: 42 } as never), typeErr);
  t.throws(() => engine.readExactly(p.sock, 1, { timeout: -1 }), {
    instanceOf: RangeError,
    code: 'ERR_OUT_OF_RANGE',
  });
  t.is(engine.stats().opsInFlight, 0, 'nothing was submitted');
});
