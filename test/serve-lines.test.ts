// engine.serveLines: line protocol handlers on the serve loop. Lines in order and in batches
// (fewer crossings than lines), a handler that writes and closes, a handler that throws,
// connectionLost exactly once with the reason, expect/onMismatch, maxBytes, idleTimeout, a
// partial last line, shutdown with connections open, and bad arguments.
import test from 'ava';
import tls from 'node:tls';
import { type EngineError, type LineHandler, type Socket, createEngine } from 'async-engine';
import {
  type Engine,
  forEachImpl,
  netClient,
  noFdLeaks,
  portOf,
  prng,
  sleep,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

interface Recorder {
  handler: LineHandler;
  lines: string[];
  made: number;
  lost: Array<Error | undefined>;
}

/** A handler that records what it is given; `onLine` answers a line (it may write, close, throw). */
function recorder(onLine?: (line: string, sock: Socket) => void): Recorder {
  const r: Recorder = {
    lines: [],
    made: 0,
    lost: [],
    handler: {
      connectionMade: () => {
        r.made++;
      },
      lineReceived: (line, sock) => {
        r.lines.push(line);
        onLine?.(line, sock);
      },
      connectionLost: (_sock, err) => {
        r.lost.push(err);
      },
    },
  };
  return r;
}

async function lost(r: Recorder, n = 1): Promise<void> {
  await withDeadline(
    waitUntil(() => r.lost.length >= n, 15_000),
    16_000,
    'connectionLost',
  );
  // Exactly once: nothing more arrives later.
  await sleep(30);
}

function listen(engine: Engine) {
  return engine.listen({ host: '127.0.0.1', port: 0 });
}

forEachImpl(
  '100,000 pipelined lines arrive in order, with far fewer crossings than lines',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    const handle = engine.serveLines(listener, r.handler);
    const N = 100_000;
    const text = Array.from({ length: N }, (_, i) => `line ${i}\r\n`).join('');
    const before = engine.stats();
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write(text);
    peer.client.end();
    await lost(r);
    const after = engine.stats();
    t.is(r.lines.length, N);
    let inOrder = true;
    for (let i = 0; i < N; i++) if (r.lines[i] !== `line ${i}`) inOrder = false;
    t.true(inOrder, 'every line, in order, terminator stripped');
    t.deepEqual(r.lost, [undefined], 'the peer closed after a whole line: a clean end, once');
    t.is(r.made, 1);
    const completions = after.completions - before.completions;
    const batches = after.batches - before.batches;
    t.true(completions < N / 20, `completions: ${completions} for ${N} lines`);
    t.true(batches < N / 20, `batches: ${batches} for ${N} lines`);
    handle.stop();
    await withDeadline(handle.done, 5_000, 'done');
    engine.close(listener);
  },
  { timeout: 120_000 },
);

forEachImpl(
  'empty lines, more buffered than one batch takes: none lost, in order',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    engine.serveLines(listener, r.handler);
    const N = 50_000; // one receive holds more empty lines than one batch delivers (4096)
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write(`${'\n'.repeat(N)}\r\nend\n`);
    peer.client.end();
    await lost(r);
    t.is(r.lines.length, N + 2);
    t.true(r.lines.slice(0, N + 1).every((l) => l === ''));
    t.is(r.lines[N + 1], 'end');
    t.deepEqual(r.lost, [undefined]);
    engine.close(listener);
  },
);

forEachImpl('any chunking of the input gives the same lines', async (t, engine) => {
  const listener = listen(engine);
  const r = recorder();
  engine.serveLines(listener, r.handler);
  const lines = Array.from({ length: 300 }, (_, i) => `l${i}${'x'.repeat(i % 17)}`);
  const bytes = Buffer.from(lines.map((l, i) => (i % 3 === 0 ? `${l}\r\n` : `${l}\n`)).join(''));
  const peer = await netClient(engine, { port: portOf(listener) });
  peer.client.setNoDelay(true);
  const rand = prng(17);
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(rand() * 16);
    await peer.write(bytes.subarray(at, at + n));
    at += n;
    if (rand() < 0.2) await sleep(1);
  }
  peer.client.end();
  await lost(r);
  t.deepEqual(r.lines, lines);
  t.deepEqual(r.lost, [undefined]);
  engine.close(listener);
});

forEachImpl(
  'any chunking with a string expect and replies: every answer in the order of the lines',
  async (t, engine) => {
    for (const [seed, max] of [
      [3, Infinity],
      [4, 25],
      [5, 0],
    ] as const) {
      const listener = listen(engine);
      const r = recorder((_line, sock) => engine.write(sock, 'ok\n', () => {}));
      engine.serveLines(listener, { expect: 'PING', onMismatch: { reply: 'R\n', max } }, r.handler);
      const rand = prng(seed);
      const lines = Array.from({ length: 300 }, (_, i) => (rand() < 0.6 ? 'PING' : `bad${i}`));
      // The model: a match is answered by the handler, a mismatch by the reply while they last;
      // the next mismatch ends the connection.
      let want = '';
      let replies = 0;
      const delivered: string[] = [];
      let ending: string | undefined;
      let sent = 0;
      for (const l of lines) {
        sent++;
        if (l === 'PING') {
          delivered.push(l);
          want += 'ok\n';
        } else if (replies < max) {
          replies++;
          want += 'R\n';
        } else {
          ending = l;
          break;
        }
      }
      // The peer sends nothing after the line that ends the connection (closing a socket with
      // input unread would reset it, and the peer could lose the last answers).
      const text = lines.slice(0, sent).map((l) => (rand() < 0.5 ? `${l}\r\n` : `${l}\n`));
      const bytes = Buffer.from(text.join(''));
      const peer = await netClient(engine, { port: portOf(listener) });
      peer.client.setNoDelay(true);
      for (let at = 0; at < bytes.length;) {
        const n = 1 + Math.floor(rand() * 40);
        await peer.write(bytes.subarray(at, at + n));
        at += n;
        if (rand() < 0.2) await sleep(1);
      }
      if (ending === undefined) peer.client.end();
      await lost(r);
      await withDeadline(peer.ended, 10_000, 'the server to close');
      t.deepEqual(r.lines, delivered, `seed ${seed}: the lines delivered`);
      t.is(peer.received().toString(), want, `seed ${seed}: the answers, in order`);
      const err = r.lost[0] as EngineError | undefined;
      t.is(err?.line, ending, `seed ${seed}: how the connection ended`);
      engine.close(listener);
    }
  },
);

forEachImpl(
  'lineReceived may write and may close: no later line is delivered',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder((line, sock) => {
      if (line === 'quit') engine.close(sock);
      else engine.write(sock, `echo ${line}\n`, () => {});
    });
    const handle = engine.serveLines(listener, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('a\nb\n');
    t.is((await peer.waitForBytes(14)).toString(), 'echo a\necho b\n');
    await peer.write('quit\nc\nd\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['a', 'b', 'quit']);
    t.is(peer.received().toString(), 'echo a\necho b\n');
    t.deepEqual(r.lost, [undefined], 'closed by the handler: a clean end, once');
    t.true(await waitUntil(() => handle.connections === 0));
    engine.close(listener);
  },
);

forEachImpl(
  'a handler that throws closes its connection; connectionLost gets the error, once',
  async (t, engine) => {
    const listener = listen(engine);
    const boom = new Error('boom');
    const r = recorder((line) => {
      if (line === 'boom') throw boom;
    });
    const reported: unknown[] = [];
    const handle = engine.serveLines(
      listener,
      { onError: (err, sock) => reported.push([err, sock?.closed]) },
      r.handler,
    );
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('one\nboom\ntwo\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['one', 'boom']);
    t.deepEqual(r.lost, [boom]);
    t.deepEqual(reported, [[boom, true]]);
    t.true(await waitUntil(() => handle.connections === 0));
    t.is(engine.stats().sockets, 0, 'no socket left open');

    // connectionMade throwing: the same.
    const made: unknown[] = [];
    const listener2 = listen(engine);
    engine.serveLines(
      listener2,
      { onError: (err) => made.push(err) },
      {
        connectionMade: () => {
          throw boom;
        },
        lineReceived: () => t.fail('no line after connectionMade threw'),
        connectionLost: (_s, err) => made.push(['lost', err]),
      },
    );
    const peer2 = await netClient(engine, { port: portOf(listener2) });
    await peer2.write('x\n');
    await withDeadline(peer2.ended, 10_000, 'the server to close');
    await sleep(30);
    t.deepEqual(made, [boom, ['lost', boom]]);
    engine.close(listener);
    engine.close(listener2);
  },
);

forEachImpl(
  'expect with onMismatch: replies in order, max honoured, then ERR_MISMATCH with the line',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder((line, sock) => engine.write(sock, `ok ${line}\n`, () => {}));
    engine.serveLines(
      listener,
      { expect: /^(HELO|EHLO) /, onMismatch: { reply: '500 no\n', max: 2 } },
      r.handler,
    );
    const peer = await netClient(engine, { port: portOf(listener) });
    // Pipelined: the replies and the handler's writes keep the lines' order.
    await peer.write('HELO a\nbad1\nEHLO b\nbad2\nbad3\nHELO c\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['HELO a', 'EHLO b']);
    t.is(peer.received().toString(), 'ok HELO a\n500 no\nok EHLO b\n500 no\n');
    t.is(engine.stats().mismatchReplies, 2);
    t.is(r.lost.length, 1);
    const err = r.lost[0] as EngineError;
    t.is(err.code, 'ERR_MISMATCH');
    t.is(err.line, 'bad3');
    engine.close(listener);
  },
);

forEachImpl(
  'a string expect with onMismatch: replies in order, max honoured, then ERR_MISMATCH with the line',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder((line, sock) => engine.write(sock, `ok ${line}\n`, () => {}));
    engine.serveLines(
      listener,
      { expect: 'PING', onMismatch: { reply: '500 no\n', max: 2 } },
      r.handler,
    );
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('PING\nbad1\r\nPING\r\nbad2\nbad3\nPING\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['PING', 'PING']);
    t.is(peer.received().toString(), 'ok PING\n500 no\nok PING\n500 no\n');
    t.is(engine.stats().mismatchReplies, 2);
    t.is(r.lost.length, 1);
    const err = r.lost[0] as EngineError;
    t.is(err.code, 'ERR_MISMATCH');
    t.is(err.line, 'bad3');
    engine.close(listener);
  },
);

forEachImpl(
  'a string expect: mismatched lines and their replies never cross into JavaScript',
  async (t, engine) => {
    const listener = listen(engine);
    let sock: Socket | undefined;
    const r = recorder();
    const made = r.handler.connectionMade!;
    r.handler.connectionMade = (s) => {
      sock = s;
      made(s);
    };
    engine.serveLines(listener, { expect: 'PING', onMismatch: { reply: '500 no\n' } }, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    t.true(await waitUntil(() => sock !== undefined), 'connectionMade');
    const before = engine.stats().completions;
    for (let i = 0; i < 10; i++) await peer.write(`bad ${i}\r\n`.repeat(10));
    await peer.write('PING\n');
    t.true(await waitUntil(() => r.lines.length === 1), 'the matching line');
    const crossings = engine.stats().completions - before;
    t.log(`100 mismatched lines and the match: ${crossings} completion(s) delivered`);
    t.is(crossings, 1, 'one completion: the batch with the match');
    t.deepEqual(r.lines, ['PING']);
    const want = '500 no\n'.repeat(100);
    t.is((await peer.waitForBytes(want.length)).toString(), want);
    engine.close(sock!);
    await lost(r);
    t.deepEqual(r.lost, [undefined]);
    engine.close(listener);
  },
);

forEachImpl(
  'expect without onMismatch ends the connection at the first mismatch',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    engine.serveLines(listener, { expect: 'PING' }, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('PING\nPONG\nPING\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['PING']);
    t.is((r.lost[0] as EngineError).code, 'ERR_MISMATCH');
    t.is((r.lost[0] as EngineError).line, 'PONG');
    t.is(peer.received().length, 0, 'no reply without onMismatch');
    engine.close(listener);
  },
);

forEachImpl(
  'maxBytes: the lines before a too-long one are delivered, then ERR_LIMIT',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    engine.serveLines(listener, { maxBytes: 8 }, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('12345678\r\nshort\n123456789\nlater\n');
    await withDeadline(peer.ended, 10_000, 'the server to close');
    await lost(r);
    t.deepEqual(r.lines, ['12345678', 'short']);
    t.is((r.lost[0] as EngineError).code, 'ERR_LIMIT');
    t.is(r.lost.length, 1);
    engine.close(listener);
  },
);

forEachImpl(
  'an end the loop decides does not wait for a peer that reads nothing',
  async (t, engine) => {
    const listener = listen(engine);
    const big = Buffer.alloc(64 * 1024 * 1024, 0x61);
    const r = recorder((_line, sock) => engine.write(sock, big, { failure: () => {} }));
    engine.serveLines(listener, { expect: 'ok', idleTimeout: 200 }, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    peer.client.pause();
    peer.client.removeAllListeners('data');
    await peer.write('ok\nbad\n');
    await lost(r);
    t.deepEqual(r.lines, ['ok']);
    t.is((r.lost[0] as EngineError).code, 'ERR_MISMATCH');
    t.is(engine.stats().sockets, 0);
    peer.client.destroy();
    engine.close(listener);
  },
);

forEachImpl('idleTimeout: a silent connection ends with ETIMEDOUT', async (t, engine) => {
  const listener = listen(engine);
  const r = recorder();
  engine.serveLines(listener, { idleTimeout: 100 }, r.handler);
  const peer = await netClient(engine, { port: portOf(listener) });
  await peer.write('hi\n');
  await withDeadline(peer.ended, 10_000, 'the server to close');
  await lost(r);
  t.deepEqual(r.lines, ['hi']);
  t.is((r.lost[0] as EngineError).code, 'ETIMEDOUT');
  engine.close(listener);
});

forEachImpl(
  'a peer that closes mid-line: ERR_INCOMPLETE with the partial bytes',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    engine.serveLines(listener, r.handler);
    const peer = await netClient(engine, { port: portOf(listener) });
    await peer.write('whole\npart');
    peer.client.end();
    await lost(r);
    t.deepEqual(r.lines, ['whole']);
    const err = r.lost[0] as EngineError;
    t.is(err.code, 'ERR_INCOMPLETE');
    t.is(err.partial?.toString(), 'part');
    engine.close(listener);
  },
);

forEachImpl(
  'shutdown with connections open: connectionLost once each, no socket left',
  async (t, engine) => {
    const listener = listen(engine);
    const r = recorder();
    engine.serveLines(listener, r.handler);
    const a = await netClient(engine, { port: portOf(listener) });
    const b = await netClient(engine, { port: portOf(listener) });
    await a.write('x\n');
    await b.write('y\n');
    t.true(await waitUntil(() => r.lines.length === 2));
    await engine.shutdown();
    await sleep(30);
    t.deepEqual(r.lost, [undefined, undefined]);
    t.is(r.made, 2);
  },
);

forEachImpl('on a TLS listener: lines in order over TLS, and answers', async (t, engine) => {
  const { self } = testCerts();
  const listener = engine.listen({
    host: '127.0.0.1',
    port: 0,
    tls: { key: self.key, cert: self.cert },
  });
  const r = recorder((line, sock) => engine.write(sock, `${line.toUpperCase()}\n`, () => {}));
  engine.serveLines(listener, r.handler);
  const client = tls.connect({
    host: '127.0.0.1',
    port: portOf(listener),
    ca: self.cert,
    servername: 'localhost',
  });
  client.on('error', () => {});
  let received = '';
  client.on('data', (b: Buffer) => (received += b.toString()));
  const lines = Array.from({ length: 2000 }, (_, i) => `t${i}`);
  client.write(lines.map((l) => `${l}\n`).join(''));
  t.true(await waitUntil(() => received.length >= lines.join('\n').length + 1, 15_000));
  t.deepEqual(r.lines, lines);
  t.is(received, lines.map((l) => `${l.toUpperCase()}\n`).join(''));
  client.end();
  await lost(r);
  t.deepEqual(r.lost, [undefined]);
  client.destroy();
  engine.close(listener);
});

forEachImpl('engine.promises.serveLines resolves once serving stops', async (t, engine) => {
  const listener = listen(engine);
  const r = recorder();
  const ac = new AbortController();
  const done = engine.promises.serveLines(listener, { signal: ac.signal }, r.handler);
  const peer = await netClient(engine, { port: portOf(listener) });
  await peer.write('p\nq\n');
  t.true(await waitUntil(() => r.lines.length === 2));
  ac.abort();
  await withDeadline(done, 5_000, 'done');
  t.deepEqual(r.lines, ['p', 'q']);
  peer.client.end();
  await lost(r);
  t.deepEqual(r.lost, [undefined], 'the live connection is served until it ends');
  engine.close(listener);
});

test('serveLines: bad arguments throw synchronously', async (t) => {
  const engine = createEngine({ impl: 'poll' });
  try {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const h: LineHandler = { lineReceived: () => {} };
    const code = (fn: () => unknown) => t.throws(fn)?.['code' as keyof Error];
    t.is(
      code(() => engine.serveLines(listener, {} as LineHandler)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => engine.serveLines(listener, null as never)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => engine.serveLines(listener, { ...h, connectionLost: 1 } as never)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => engine.serveLines(listener, { expect: 3 } as never, h)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() => engine.serveLines(listener, { maxBytes: 0 }, h)),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => engine.serveLines(listener, { idleTimeout: -1 }, h)),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() =>
        engine.serveLines(listener, { expect: 'a', onMismatch: { reply: 1 } } as never, h),
      ),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(
      code(() =>
        engine.serveLines(
          listener,
          { expect: 'a', onMismatch: { reply: 'x', maxx: 1 } } as never,
          h,
        ),
      ),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() =>
        engine.serveLines(listener, { expect: 'a', onMismatch: { reply: 'x', max: -1 } }, h),
      ),
      'ERR_OUT_OF_RANGE',
    );
    t.is(
      code(() => engine.serveLines(listener, { onMismatch: { reply: 'x' } }, h)),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() => engine.serveLines(listener, { bogus: 1 } as never, h)),
      'ERR_INVALID_ARG_VALUE',
    );
    t.is(
      code(() => engine.serveLines({} as never, h)),
      'ERR_INVALID_ARG_TYPE',
    );
    t.is(engine.stats().opsInFlight, 0, 'nothing armed');
    engine.close(listener);
  } finally {
    await engine.shutdown();
  }
});
