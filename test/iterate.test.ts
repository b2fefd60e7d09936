// engine.promises.lines and .chunks: async iteration over a socket's lines and bytes, ending at
// EOF, throwing read errors, and leaving no byte behind when the loop ends early.
import { forEachImpl, noFdLeaks, sleep, tcpPair, withDeadline } from './helpers/harness.js';

noFdLeaks();

forEachImpl('lines: split across packets, CRLF and LF, end at a clean EOF', async (t, engine) => {
  const { sock, client, write } = await tcpPair(engine);
  const got: string[] = [];
  const loop = (async () => {
    for await (const line of engine.promises.lines(sock)) got.push(line);
  })();
  await write('fir');
  await sleep(20);
  await write('st\r\nsec');
  await sleep(20);
  await write('ond\nthird\r');
  await sleep(20);
  await write('\n\n');
  client.end();
  await withDeadline(loop, 5_000, 'the loop to end at EOF');
  t.deepEqual(got, ['first', 'second', 'third', '']);
  engine.close(sock);
});

forEachImpl('lines: bytes after the last terminator come as a last line', async (t, engine) => {
  const { sock, client, write } = await tcpPair(engine);
  await write('one\ntwo');
  client.end();
  const got: string[] = [];
  for await (const line of engine.promises.lines(sock)) got.push(line);
  t.deepEqual(got, ['one', 'two']);
  engine.close(sock);
});

forEachImpl('lines: a line over maxBytes throws ERR_LIMIT from the loop', async (t, engine) => {
  const { sock, write } = await tcpPair(engine);
  await write('short\n' + 'x'.repeat(100) + '\n');
  const got: string[] = [];
  const err = await t.throwsAsync(async () => {
    for await (const line of engine.promises.lines(sock, { maxBytes: 16 })) got.push(line);
  });
  t.is((err as { code?: string }).code, 'ERR_LIMIT');
  t.deepEqual(got, ['short']);
  engine.close(sock);
});

forEachImpl('lines: encoding decodes each line', async (t, engine) => {
  const { sock, client, write } = await tcpPair(engine);
  await write(Buffer.from('caf\xe9\n', 'latin1'));
  client.end();
  const got: string[] = [];
  for await (const line of engine.promises.lines(sock, { encoding: 'latin1' })) got.push(line);
  t.deepEqual(got, ['café']);
  engine.close(sock);
});

forEachImpl('breaking out of lines loses no byte: readAll gets the rest', async (t, engine) => {
  const { sock, client, write } = await tcpPair(engine);
  await write('a\nb\nc\nd\ntail');
  const got: string[] = [];
  for await (const line of engine.promises.lines(sock)) {
    got.push(line);
    if (line === 'b') break;
  }
  t.deepEqual(got, ['a', 'b']);
  client.end();
  const rest = await engine.promises.readAll(sock);
  t.is(rest.toString(), 'c\nd\ntail');
  engine.close(sock);
});

forEachImpl(
  'return() while a read waits cancels it: the next read gets the bytes',
  async (t, engine) => {
    const { sock, write } = await tcpPair(engine);
    const it = engine.promises.lines(sock);
    const pending = it.next();
    await sleep(20); // the read is in flight, nothing has arrived
    await it.return!();
    t.deepEqual(await pending, { done: true, value: undefined });
    t.deepEqual(await it.next(), { done: true, value: undefined });
    await write('after\n');
    t.is(await engine.promises.expectLine(sock, null), 'after');
    engine.close(sock);
  },
);

forEachImpl(
  'an abort signal ends the loop with an AbortError, keeping the bytes',
  async (t, engine) => {
    const { sock, write } = await tcpPair(engine);
    const ac = new AbortController();
    await write('one\n');
    const got: string[] = [];
    const loop = (async () => {
      for await (const line of engine.promises.lines(sock, { signal: ac.signal })) got.push(line);
    })();
    await sleep(50); // 'one' delivered, the next read waiting
    ac.abort();
    const err = await t.throwsAsync(loop);
    t.is((err as Error).name, 'AbortError');
    t.deepEqual(got, ['one']);
    await write('two\n');
    t.is(await engine.promises.expectLine(sock, null), 'two');
    // Already aborted: nothing is read.
    await t.throwsAsync(engine.promises.lines(sock, { signal: ac.signal }).next(), {
      name: 'AbortError',
    });
    engine.close(sock);
  },
);

forEachImpl('a read error (the socket closed under the loop) throws from it', async (t, engine) => {
  const { sock } = await tcpPair(engine);
  const loop = (async () => {
    for await (const _ of engine.promises.chunks(sock)) t.fail('no data');
  })();
  await sleep(20);
  engine.close(sock);
  const err = await t.throwsAsync(loop);
  t.is((err as { code?: string }).code, 'ECANCELED');
});

forEachImpl(
  'chunks: at most size bytes each, every byte once, ending at EOF',
  async (t, engine) => {
    const { sock, client, write } = await tcpPair(engine);
    const data = Buffer.alloc(10_000, 'abcdefghij');
    await write(data);
    client.end();
    const got: Buffer[] = [];
    for await (const chunk of engine.promises.chunks(sock, { size: 1000 })) got.push(chunk);
    t.true(
      got.every((c) => c.length >= 1 && c.length <= 1000),
      `sizes: ${got.map((c) => c.length).join(',')}`,
    );
    t.deepEqual(Buffer.concat(got), data);
    engine.close(sock);
  },
);

forEachImpl('chunks: break, then the rest is still there', async (t, engine) => {
  const { sock, client, write } = await tcpPair(engine);
  await write('0123456789');
  for await (const chunk of engine.promises.chunks(sock, { size: 4 })) {
    t.is(chunk.toString(), '0123');
    break;
  }
  client.end();
  t.is((await engine.promises.readAll(sock)).toString(), '456789');
  engine.close(sock);
});

forEachImpl('bad arguments and options are refused synchronously', async (t, engine) => {
  const { sock } = await tcpPair(engine);
  const p = engine.promises;
  t.throws(() => p.lines({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => p.lines(sock, null as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => p.lines(sock, { maxBytes: 0 }), { instanceOf: RangeError });
  t.throws(() => p.lines(sock, { encoding: 'nope' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => p.lines(sock, { size: 3 } as never), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => p.lines(sock, { signal: 1 } as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => p.chunks(sock, { size: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => p.chunks(sock, { size: '4' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => p.chunks(sock, { maxBytes: 4 } as never), { code: 'ERR_INVALID_ARG_VALUE' });
  t.is(engine.stats().opsInFlight, 0);
  engine.close(sock);
});
