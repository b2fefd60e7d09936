// engine.serve and engine.promises.serve: the accept loop, its connection count and limit, the
// ways it stops, and the rule that a served socket is never leaked (a throwing handler, a
// failure dropped for want of a `failure` slot, a rejected async handler).
import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Callback, EngineError, type EngineErrorCode, type Socket } from 'async-engine';
import {
  type Engine,
  deferred,
  engineUrl,
  runLowFdChild,
  forEachImpl,
  implsUnderTest,
  netClient,
  noFdLeaks,
  portOf,
  shutdownEngine,
  sleep,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

/** A served connection's greeting, then an echo of each line until the client leaves. */
function echoServer(engine: Engine) {
  return (sock: Socket): void => {
    const loop = (): void =>
      engine.expectLine(
        sock,
        null,
        new Callback<string>({
          success: (line) => engine.write(sock, `${line}\n`, new Callback({ success: loop })),
          failure: () => engine.close(sock),
        }),
      );
    engine.write(
      sock,
      'hello\n',
      new Callback({ success: loop, failure: () => engine.close(sock) }),
    );
  };
}

forEachImpl('serves N clients at once and counts them until they close', async (t, engine) => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const handle = engine.serve(listener, echoServer(engine));
  const N = 8;
  const peers = await Promise.all(
    Array.from({ length: N }, () => netClient(engine, { port: portOf(listener) })),
  );
  t.true(await waitUntil(() => handle.connections === N), `connections: ${handle.connections}`);
  // Every client is being served at the same time: each gets its own echo.
  await Promise.all(peers.map((p, i) => p.write(`line ${i}\n`)));
  for (const [i, p] of peers.entries()) {
    t.is((await p.waitForBytes(6 + `line ${i}\n`.length)).toString(), `hello\nline ${i}\n`);
  }
  for (const p of peers) p.client.end();
  t.true(await waitUntil(() => handle.connections === 0), `connections: ${handle.connections}`);
  t.is(engine.stats().sockets, 0);
  handle.stop();
  await withDeadline(handle.done, 5_000, 'done');
  engine.close(listener);
});

forEachImpl(
  'maxConnections: the next client waits in the backlog and is served when one closes',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const served: Socket[] = [];
    const handle = engine.serve(
      listener,
      (sock) => {
        served.push(sock);
        engine.write(sock, 'hello\n', () => {});
      },
      { maxConnections: 2 },
    );
    const a = await netClient(engine, { port: portOf(listener) });
    const b = await netClient(engine, { port: portOf(listener) });
    await a.waitForBytes(6);
    await b.waitForBytes(6);
    // The kernel completes the third handshake, but the loop arms no accept at the limit.
    const c = await netClient(engine, { port: portOf(listener) });
    await sleep(300);
    t.is(served.length, 2, 'the third connection is not accepted at the limit');
    t.is(handle.connections, 2);
    t.is(c.received().length, 0);
    // One closes: the loop accepts the one waiting.
    engine.close(served[0]!);
    t.is(handle.connections, 1);
    t.is((await c.waitForBytes(6)).toString(), 'hello\n');
    t.is(served.length, 3);
    t.is(handle.connections, 2);
    handle.stop();
    await withDeadline(handle.done, 5_000, 'done');
    t.is(handle.connections, 2, 'stopping leaves the live connections open, and counted');
    t.false(served[1]!.closed);
    engine.close(listener);
  },
);

forEachImpl(
  'an AbortSignal stops the loop: done resolves, no accept is left armed',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    let served = 0;
    const handle = engine.serve(
      listener,
      (sock) => {
        served++;
        engine.write(sock, 'hello\n', () => {});
      },
      { signal: ac.signal },
    );
    const a = await netClient(engine, { port: portOf(listener) });
    await a.waitForBytes(6);
    t.is(engine.stats().opsInFlight, 1, 'the armed accept');
    ac.abort();
    await withDeadline(handle.done, 5_000, 'done');
    t.is(engine.stats().opsInFlight, 0, 'no accept left armed');
    const b = await netClient(engine, { port: portOf(listener) });
    await sleep(100);
    t.is(served, 1);
    t.is(b.received().length, 0);
    t.is(handle.connections, 1);
    t.false(listener.closed, "the listener is the caller's to close");
    engine.close(listener);
  },
);

forEachImpl('a signal already aborted serves nothing', async (t, engine) => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const handle = engine.serve(listener, () => t.fail('served'), { signal: AbortSignal.abort() });
  await withDeadline(handle.done, 5_000, 'done');
  t.is(engine.stats().opsInFlight, 0);
  engine.close(listener);
});

forEachImpl('close(listener) stops the loop, also while it is paused', async (t, engine) => {
  const l1 = engine.listen({ host: '127.0.0.1', port: 0 });
  const h1 = engine.serve(l1, (sock) => engine.close(sock));
  engine.close(l1);
  await withDeadline(h1.done, 5_000, 'done after close(listener)');
  // Paused at the limit: no accept is armed for close() to cancel.
  const l2 = engine.listen({ host: '127.0.0.1', port: 0 });
  const h2 = engine.serve(l2, () => {}, { maxConnections: 1 });
  await netClient(engine, { port: portOf(l2) });
  t.true(await waitUntil(() => h2.connections === 1));
  engine.close(l2);
  await withDeadline(h2.done, 5_000, 'done after close(listener) while paused');
  t.is(engine.stats().opsInFlight, 0);
  t.is(h2.connections, 1, 'the live connection stays open');
});

forEachImpl('stop() while paused at the limit resolves done', async (t, engine) => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const handle = engine.serve(listener, () => {}, { maxConnections: 1 });
  await netClient(engine, { port: portOf(listener) });
  t.true(await waitUntil(() => handle.connections === 1));
  handle.stop();
  handle.stop();
  await withDeadline(handle.done, 5_000, 'done');
  t.is(engine.stats().opsInFlight, 0);
  engine.close(listener);
});

forEachImpl('shutdown stops the loop and the count drops to 0', async (t, engine) => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const handle = engine.serve(listener, () => {}, { maxConnections: 1 });
  await netClient(engine, { port: portOf(listener) });
  t.true(await waitUntil(() => handle.connections === 1));
  await shutdownEngine(engine);
  await withDeadline(handle.done, 5_000, 'done after shutdown');
  t.is(handle.connections, 0);
});

forEachImpl(
  'a handler that throws: its socket is closed, the error reported, the loop goes on',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const errors: Array<[unknown, Socket | undefined]> = [];
    let n = 0;
    const handle = engine.serve(
      listener,
      (sock) => {
        if (++n === 1) throw new Error('handler bug');
        engine.write(sock, 'hello\n', () => {});
      },
      { onError: (err, sock) => errors.push([err, sock]) },
    );
    const a = await netClient(engine, { port: portOf(listener) });
    await withDeadline(a.ended, 5_000, 'the first client to see its connection closed');
    t.is(errors.length, 1);
    t.is((errors[0]![0] as Error).message, 'handler bug');
    t.true(errors[0]![1]!.closed);
    const b = await netClient(engine, { port: portOf(listener) });
    t.is((await b.waitForBytes(6)).toString(), 'hello\n');
    t.is(handle.connections, 1);
    engine.close(listener);
    await withDeadline(handle.done, 5_000, 'done');
  },
);

forEachImpl(
  'a failure dropped for want of a failure slot closes the served socket',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const handle = engine.serve(listener, (sock) => {
      // ERR_LIMIT on a line over 8 bytes: this Callback has no failure slot to see it.
      engine.expectLine(sock, null, { maxBytes: 8 }, () => t.fail('no line fits'));
    });
    const a = await netClient(engine, { port: portOf(listener) });
    await a.write('a line much longer than eight bytes\n');
    await withDeadline(a.ended, 5_000, 'the client to see its connection closed');
    t.true(await waitUntil(() => handle.connections === 0));
    t.is(engine.stats().sockets, 0);
    engine.close(listener);
  },
);

forEachImpl('bad arguments and options are refused synchronously', (t, engine) => {
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const ok = () => {};
  t.throws(() => engine.serve({} as never, ok), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.serve(listener, 'x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.serve(listener, ok, null as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.serve(listener, ok, { maxConnections: '2' as never }), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  });
  for (const bad of [0, -1, 1.5, NaN]) {
    t.throws(() => engine.serve(listener, ok, { maxConnections: bad }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
  }
  t.throws(() => engine.serve(listener, ok, { signal: {} as never }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.serve(listener, ok, { onError: 1 as never }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.serve(listener, ok, { maxConnection: 2 } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => engine.promises.serve(listener, ok, { backlog: 2 } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.is(engine.stats().opsInFlight, 0, 'nothing was armed');
  engine.close(listener);
});

forEachImpl(
  'promises.serve: an async handler per connection, its socket closed when it settles',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    const errors: unknown[] = [];
    const sockets: Socket[] = [];
    const done = engine.promises.serve(
      listener,
      async (sock) => {
        sockets.push(sock);
        const line = await engine.promises.expectLine(sock, null);
        if (line === 'fail') throw new Error('handler rejected');
        await engine.promises.write(sock, `echo ${line}\n`);
      },
      { signal: ac.signal, onError: (err) => errors.push(err) },
    );
    const a = await netClient(engine, { port: portOf(listener) });
    await a.write('hi\n');
    t.is((await a.waitForBytes(8)).toString(), 'echo hi\n');
    await withDeadline(a.ended, 5_000, 'the socket to be closed once the handler resolved');
    const b = await netClient(engine, { port: portOf(listener) });
    await b.write('fail\n');
    await withDeadline(b.ended, 5_000, 'the socket to be closed once the handler rejected');
    t.is(errors.length, 1);
    t.is((errors[0] as Error).message, 'handler rejected');
    t.true(sockets.every((s) => s.closed));
    t.is(engine.stats().sockets, 0);
    ac.abort();
    await withDeadline(done, 5_000, 'the promise to resolve after abort');
    engine.close(listener);
  },
);

// ---- the README's first server: leaks before, leak-free on serve ----

const readme = fs.readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** The README's first ```js block under "## A first server". */
function readmeFirstServer(): string {
  const at = readme.indexOf('## A first server');
  const open = readme.indexOf('```js\n', at);
  const close = readme.indexOf('\n```', open + 6);
  if (at < 0 || open < 0 || close < 0) throw new Error('README has no first server block');
  return readme.slice(open + 6, close);
}

// The first server the README showed before the serve loop: its writes have no failure slot,
// so a client that resets during a write leaves its socket open for good.
const OLD_README_SERVER = `
import { createEngine, Callback } from 'async-engine';

const engine = createEngine();
const listener = engine.listen({ host: '127.0.0.1', port: 2525 });
console.log(\`serving with \${engine.impl} on port \${listener.address().port}\`);

function acceptNext() {
  engine.acceptThenWrite(listener, '220 ready\\r\\n', [
    new Callback({
      success: () => acceptNext(), // re-arm for the next client at once
      failure: (err) => err.code !== 'ECANCELED' && console.error('accept failed', err.code),
    }),
    new Callback({ success: (_n, sock) => serve(sock), failure: () => {} }),
  ]);
}

function serve(sock) {
  engine.expectLine(sock, null, new Callback({
    timeout: 30_000, // a silent client gets ETIMEDOUT, not a hung slot
    success: (line, sock) => {
      if (line === 'QUIT') {
        return engine.write(sock, '221 bye\\r\\n', new Callback({ success: () => engine.close(sock) }));
      }
      engine.write(sock, \`250 \${line}\\r\\n\`, new Callback({ success: () => serve(sock) }));
    },
    failure: () => engine.close(sock), // ETIMEDOUT, ERR_LIMIT, ERR_INCOMPLETE, ECONNRESET...
  }));
}

acceptNext();
`;

// Appended to a server snippet: reports the engine's counters, so the test can see its sockets.
const REPORTER = `
setInterval(() => {
  const s = engine.stats();
  console.log('stats ' + s.sockets + ' ' + s.opsInFlight);
}, 50).unref();
`;

/**
 * Runs a README-style server in a child process (port 0, the package from this build), sends
 * it `clients` clients that each take the greeting, pipeline some lines and reset the
 * connection while the server writes its answers, and returns the server's open sockets once
 * it has nothing but its accept in flight.
 */
async function resettingClients(
  source: string,
  impl: string,
  clients: number,
): Promise<{ sockets: number; stderr: string }> {
  const script =
    source
      .replace(/(['"])async-engine\1/g, JSON.stringify(engineUrl))
      .replace('port: 2525', 'port: 0') + REPORTER;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ASYNC_ENGINE_IMPL: impl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const port = deferred<number>();
  let last: [number, number] = [-1, -1];
  let buf = '';
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const m = /on port (\d+)/.exec(line);
      if (m) port.resolve(Number(m[1]));
      const s = /^stats (\d+) (\d+)/.exec(line);
      if (s) last = [Number(s[1]), Number(s[2])];
    }
  });
  child.on('close', () => port.reject(new Error(`the server exited: ${stderr}`)));
  try {
    const p = await withDeadline(port.promise, 10_000, 'the server to listen');
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i}\r\n`).join('');
    await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<void>((resolve) => {
            const c = net.connect(p, '127.0.0.1');
            c.on('error', () => resolve());
            c.on('close', () => resolve());
            let greeted = false;
            c.on('data', () => {
              if (greeted) return;
              greeted = true;
              c.write(lines, () => c.resetAndDestroy());
            });
          }),
      ),
    );
    // Settled: every connection handled, only the accept left in flight (two ops for the old
    // server's accept-then-write chain), the counts unchanged for a while.
    let stable = 0;
    let prev = '';
    const deadline = Date.now() + 10_000;
    while (stable < 5 && Date.now() < deadline) {
      await sleep(60);
      const now = last.join(' ');
      stable = now === prev && last[1] <= 2 ? stable + 1 : 0;
      prev = now;
    }
    return { sockets: last[0], stderr };
  } finally {
    child.kill('SIGKILL');
  }
}

for (const impl of implsUnderTest()) {
  test(`[${impl}] README's old first server: 20 clients resetting during a write leak sockets`, async (t) => {
    const { sockets, stderr } = await resettingClients(OLD_README_SERVER, impl, 20);
    t.log(`open sockets after 20 resets: ${sockets}`);
    t.true(sockets > 0, `open sockets after 20 resets: ${sockets}\n${stderr}`);
  });

  test(`[${impl}] README's first server: 20 clients resetting during a write leave 0 sockets`, async (t) => {
    const source = readmeFirstServer();
    t.regex(source, /engine\.serve\(/, 'the README server is written on serve');
    const { sockets, stderr } = await resettingClients(source, impl, 20);
    t.is(sockets, 0, stderr);
  });
}

// ---- out of fds ----

forEachImpl(
  'accept failures: out of fds backs off with growing waits, others are reported',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    // The native side already waits when accept4 says EMFILE, so such failures reach the loop
    // rarely: these accepts fail as they would if one did.
    const raw = engine as unknown as {
      accept: Engine['accept'];
      _sleep: (ms: number, cb: unknown) => void;
    };
    const realAccept = raw.accept.bind(engine);
    const realSleep = raw._sleep.bind(engine);
    const failWith: EngineErrorCode[] = ['EMFILE', 'ENFILE', 'EMFILE', 'ECONNABORTED'];
    const waits: number[] = [];
    raw.accept = (l, cb) => {
      const code = failWith.shift();
      if (code === undefined) return realAccept(l, cb);
      const c = cb as Callback<Socket>;
      setImmediate(() => c.failure!(new EngineError(code, `accept ${code}`)));
    };
    raw._sleep = (ms, cb) => {
      waits.push(ms);
      realSleep(ms, cb);
    };
    const errors: string[] = [];
    const handle = engine.serve(listener, (sock) => engine.write(sock, 'hello\n', () => {}), {
      onError: (err) => errors.push((err as EngineError).code),
    });
    const a = await netClient(engine, { port: portOf(listener) });
    t.is((await a.waitForBytes(6)).toString(), 'hello\n');
    t.deepEqual(errors, ['ECONNABORTED'], 'only the failure that is not about fds is reported');
    t.deepEqual(waits, [10, 20, 40, 80], 'each failure in a row waits twice as long');
    engine.close(listener);
    await withDeadline(handle.done, 5_000, 'done');
  },
);

const childServer = `
import fs from 'node:fs';
const { createEngine } = await import(process.env.ENGINE_URL);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const engine = createEngine({ impl: process.env.IMPL });
const l = engine.listen({ host: '127.0.0.1', port: 0 });
let errors = 0;
let served = 0;
const handle = engine.serve(l, (sock) => {
  served++;
  engine.write(sock, 'hello\\n', () => engine.close(sock));
}, { onError: () => errors++ });
const held = [];
try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch {}
console.log('port ' + l.address().port);
await sleep(500);
console.log('starved ' + served);
for (const fd of held) fs.closeSync(fd);
console.log('freed');
for (let i = 0; i < 200 && served === 0; i++) await sleep(25);
await sleep(100);
console.log('served ' + served);
console.log('errors ' + errors);
engine.close(l);
await handle.done;
console.log('stopped');
await engine.shutdown();
`;

for (const impl of implsUnderTest()) {
  test(`[${impl}] serve out of fds: keeps serving once fds come back`, async (t) => {
    const lines: Record<string, string> = {};
    const clients: net.Socket[] = [];
    const greeted: Array<Promise<string>> = [];
    const connect = (port: number): void => {
      const c = net.connect(port, '127.0.0.1');
      clients.push(c);
      greeted.push(
        new Promise((resolve) => {
          let got = '';
          c.on('data', (b: Buffer) => (got += b.toString()));
          c.on('error', () => resolve(got));
          c.on('close', () => resolve(got));
        }),
      );
    };
    const { code, stderr } = await runLowFdChild(childServer, impl, lines, (key) => {
      if (key === 'port' || key === 'freed') connect(Number(lines.port));
    });
    const answers = await Promise.all(greeted);
    for (const c of clients) c.destroy();
    t.is(code, 0, stderr);
    t.is(lines.starved, '0', 'nothing is served while out of fds');
    t.true(Number(lines.served) >= 1, `served once fds came back: ${lines.served}`);
    t.is(answers[answers.length - 1], 'hello\n', 'the client after the fds came back is served');
    t.is(lines.errors, '0', 'running out of fds is not reported as an error');
    t.is(lines.stopped, '', 'the loop stops on close(listener)');
  });
}

forEachImpl(
  'without onError, a handler that throws is a process warning, and its socket is closed',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const warned = deferred<Error & { code?: string }>();
    const onWarning = (w: Error & { code?: string }): void => {
      if (w.code === 'ASYNC_ENGINE_SERVE_ERROR') warned.resolve(w);
    };
    process.on('warning', onWarning);
    try {
      const handle = engine.serve(listener, () => {
        throw new Error('handler bug');
      });
      const a = await netClient(engine, { port: portOf(listener) });
      const w = await withDeadline(warned.promise, 5_000, 'the warning');
      t.regex(w.message, /handler bug/);
      await withDeadline(a.ended, 5_000, 'the client to see its connection closed');
      t.is(handle.connections, 0);
      engine.close(listener);
      await withDeadline(handle.done, 5_000, 'done');
    } finally {
      process.off('warning', onWarning);
    }
  },
);

forEachImpl(
  'an accept failure that means the listener is unusable ends the loop',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const raw = engine as unknown as { accept: Engine['accept'] };
    raw.accept = (_l, cb) => {
      const c = cb as Callback<Socket>;
      setImmediate(() => c.failure!(new EngineError('EINVAL', 'accept EINVAL')));
    };
    const errors: string[] = [];
    const handle = engine.serve(listener, () => t.fail('served'), {
      onError: (err) => errors.push((err as EngineError).code),
    });
    await withDeadline(handle.done, 5_000, 'done');
    t.deepEqual(errors, ['EINVAL']);
    t.is(engine.stats().opsInFlight, 0);
    engine.close(listener);
  },
);

forEachImpl(
  'promises.serve: a handler that throws synchronously closes its socket and is reported',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const errors: unknown[] = [];
    const done = engine.promises.serve(
      listener,
      () => {
        throw new Error('not async');
      },
      { onError: (err, sock) => errors.push([err, sock?.closed]) },
    );
    const a = await netClient(engine, { port: portOf(listener) });
    await withDeadline(a.ended, 5_000, 'the client to see its connection closed');
    t.is(errors.length, 1);
    t.is((errors[0] as [Error, boolean])[0].message, 'not async');
    t.true((errors[0] as [Error, boolean])[1]);
    engine.close(listener);
    await withDeadline(done, 5_000, 'the promise to resolve after close(listener)');
  },
);
