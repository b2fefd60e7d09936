// The Redis-protocol demo (examples/redis-server) on every available impl: node:net clients
// speaking RESP2 (inline and multibulk, pipelined, malformed, over-limit), 1,000 concurrent
// connections, the CLI entry point's clean shutdown, and the real redis-cli when installed.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createEngine } from 'async-engine';
import { implsUnderTest } from './helpers/harness.js';
import { RespClient, inline, multibulk } from './helpers/resp.js';
import type { ImplName } from 'async-engine';

type Engine = ReturnType<typeof createEngine>;

interface RedisDemoServer {
  engine: Engine;
  address: { address: string; family: string; port: number };
  store: Map<string, string>;
  connections: Set<unknown>;
  protocolErrors: number;
  requestLimitCloses: number;
  close(): void;
}
interface ServerModule {
  startRedisServer(options: {
    engine: Engine;
    host?: string;
    port?: number;
    maxLine?: number;
    maxBulk?: number;
    maxRequest?: number;
  }): RedisDemoServer;
}

// The example is plain JavaScript outside test/; compiled tests live in dist-test/test/.
const { startRedisServer } = (await import(
  new URL('../../examples/redis-server/server.js', import.meta.url).href
)) as ServerModule;
const MAIN_JS = fileURLToPath(new URL('../../examples/redis-server/main.js', import.meta.url));
const REDIS_CLI = '/usr/bin/redis-cli';
const execFileAsync = promisify(execFile);

// ---- Tests, once per available impl ----

const impls = implsUnderTest();

/**
 * Runs `body` against a demo server on a fresh engine of `impl`; always ends with
 * `server.close()` and `await engine.shutdown()`, also when an assertion failed.
 */
async function withDemo(
  t: ExecutionContext,
  impl: ImplName,
  options: { maxLine?: number; maxBulk?: number; maxRequest?: number },
  body: (port: number, server: RedisDemoServer) => Promise<void>,
): Promise<void> {
  const engine = createEngine({ impl });
  try {
    const server = startRedisServer({ engine, port: 0, ...options });
    try {
      t.is(server.address.address, '127.0.0.1');
      t.true(server.address.port > 0);
      await body(server.address.port, server);
    } finally {
      server.close();
    }
  } finally {
    await engine.shutdown();
  }
}

for (const impl of impls) {
  for (const [form, encode] of [
    ['inline', inline],
    ['multibulk', multibulk],
  ] as const) {
    test(`[${impl}] PING ECHO SET GET DEL EXISTS INCR (${form})`, async (t) => {
      await withDemo(t, impl, {}, async (port) => {
        const c = await RespClient.connect(port);
        t.is(await c.call(encode('PING')), 'PONG');
        t.is(await c.call(encode('ping', 'hello')), 'hello');
        t.is(await c.call(encode('ECHO', 'hey')), 'hey');
        t.is(await c.call(encode('SET', 'k', 'v1')), 'OK');
        t.is(await c.call(encode('GET', 'k')), 'v1');
        t.is(await c.call(encode('set', 'k', 'v2')), 'OK');
        t.is(await c.call(encode('get', 'k')), 'v2');
        t.is(await c.call(encode('GET', 'missing')), null);
        t.is(await c.call(encode('EXISTS', 'k', 'missing', 'k')), 2);
        t.is(await c.call(encode('INCR', 'n')), 1);
        t.is(await c.call(encode('INCR', 'n')), 2);
        t.is(await c.call(encode('GET', 'n')), '2');
        t.is(await c.call(encode('SET', 'big', '9223372036854775806')), 'OK');
        await c.call(encode('INCR', 'big'));
        t.true(c.raw.endsWith(':9223372036854775807\r\n'));
        t.deepEqual(await c.call(encode('INCR', 'big')), {
          error: 'ERR increment or decrement would overflow',
        });
        t.is(await c.call(encode('SET', 's', 'abc')), 'OK');
        t.deepEqual(await c.call(encode('INCR', 's')), {
          error: 'ERR value is not an integer or out of range',
        });
        t.is(await c.call(encode('DEL', 'k', 'n', 'missing')), 2);
        t.is(await c.call(encode('GET', 'k')), null);
        t.is(await c.call(encode('EXISTS', 'k')), 0);
        t.deepEqual(await c.call(encode('GET')), {
          error: "ERR wrong number of arguments for 'get' command",
        });
        t.deepEqual(await c.call(encode('COMMAND', 'DOCS')), []);
        t.deepEqual(await c.call(encode('CONFIG', 'GET', 'save')), ['save', '']);
        t.deepEqual(await c.call(encode('CONFIG', 'GET', 'appendonly')), ['appendonly', 'no']);
        t.deepEqual(await c.call(encode('CONFIG', 'GET', 'maxmemory')), ['maxmemory', '0']);
        t.deepEqual(await c.call(encode('CONFIG', 'GET', 'no-such-option')), []);
        // Exact bytes on the wire for a few replies.
        const before = c.raw.length;
        await c.call(encode('PING'));
        await c.call(encode('GET', 'missing'));
        await c.call(encode('EXISTS', 's'));
        t.is(c.raw.slice(before), '+PONG\r\n$-1\r\n:1\r\n');
        c.destroy();
      });
    });
  }

  test(`[${impl}] multibulk arguments are binary-safe`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      let value = 'line1\r\nline2\n\0\xff$3\r\n*1\r\n';
      for (let i = 0; i < 256; i++) value += String.fromCharCode(i);
      t.is(await c.call(multibulk('SET', 'bin\r\nkey', value)), 'OK');
      t.is(await c.call(multibulk('GET', 'bin\r\nkey')), value);
      t.is(await c.call(multibulk('ECHO', '')), '');
      t.is(await c.call(inline('ECHO', '"quoted \\x41\\r\\n"')), 'quoted A\r\n');
      c.destroy();
    });
  });

  test(`[${impl}] pipelined requests in one write are answered in order`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      let request = '';
      let expected = '';
      for (let i = 0; i < 500; i++) {
        const value = `value-${i}-${'x'.repeat(i % 37)}`;
        if (i % 2 === 0) request += multibulk('SET', `key:${i}`, value);
        else request += inline('SET', `key:${i}`, value);
        request += i % 3 === 0 ? inline('GET', `key:${i}`) : multibulk('GET', `key:${i}`);
        request += inline('INCR', 'counter');
        expected += `+OK\r\n$${value.length}\r\n${value}\r\n:${i + 1}\r\n`;
      }
      request += inline('PING');
      expected += '+PONG\r\n';
      c.send(request);
      await c.read(1501);
      t.is(c.raw, expected);
      c.destroy();
    });
  });

  test(`[${impl}] a request split into one-byte writes`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      c.socket.setNoDelay(true);
      const request = multibulk('SET', 'split', 'a\r\nb') + inline('GET', 'split');
      for (const ch of request) {
        c.send(ch);
        await new Promise((resolve) => setImmediate(resolve));
      }
      t.deepEqual(await c.read(2), ['OK', 'a\r\nb']);
      c.destroy();
    });
  });

  test(`[${impl}] malformed frames get -ERR Protocol error and the connection closes`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const cases: Array<[string, string]> = [
        ['*1\r\nx\r\n', "ERR Protocol error: expected '$', got 'x'"],
        ['*abc\r\n', 'ERR Protocol error: invalid multibulk length'],
        ['*2\r\n$3\r\nGET\r\n$-5\r\n', 'ERR Protocol error: invalid bulk length'],
        ['*1\r\n$04\r\nPING\r\n', 'ERR Protocol error: invalid bulk length'],
        ['ECHO "unbalanced\r\n', 'ERR Protocol error: unbalanced quotes in request'],
        ['*1048577\r\n', 'ERR Protocol error: invalid multibulk length'],
        ['*1\r\n$-1\r\n', 'ERR Protocol error: invalid bulk length'],
        ['*1\r\n\r\n', "ERR Protocol error: expected '$', got ' '"],
      ];
      for (const [frame, message] of cases) {
        const c = await RespClient.connect(port);
        // A good request first: its reply must still arrive before the error.
        c.send(inline('PING') + frame + inline('PING'));
        t.deepEqual(await c.read(2), ['PONG', { error: message }], JSON.stringify(frame));
        await c.closedByPeer();
        t.is(c.raw, `+PONG\r\n-${message}\r\n`, 'nothing is answered after the error');
        c.destroy();
      }
    });
  });

  test(`[${impl}] an over-limit bulk or line gets -ERR and the connection closes`, async (t) => {
    await withDemo(t, impl, { maxBulk: 1024, maxLine: 4096 }, async (port) => {
      // Exactly at the limit is fine.
      const atLimit = 'b'.repeat(1024);
      const ok = await RespClient.connect(port);
      t.is(await ok.call(multibulk('SET', 'k', atLimit)), 'OK');
      t.is(await ok.call(multibulk('GET', 'k')), atLimit);
      ok.destroy();

      // One byte over: refused from its header, before the payload is read.
      const bulk = await RespClient.connect(port);
      bulk.send(multibulk('SET', 'k', 'b'.repeat(1025)));
      t.deepEqual(await bulk.read(1), [{ error: 'ERR Protocol error: invalid bulk length' }]);
      await bulk.closedByPeer();
      bulk.destroy();

      // A line longer than maxLine (no terminator in the first 4 KiB), named as Redis names
      // it: an inline request, a multibulk count, a bulk length.
      for (const [text, message] of [
        [`PING ${'y'.repeat(10_000)}\r\n`, 'too big inline request'],
        [`*${'1'.repeat(10_000)}\r\n`, 'too big mbulk count string'],
        [`*2\r\n$3\r\nGET\r\n$${'1'.repeat(10_000)}\r\n`, 'too big bulk count string'],
      ]) {
        const line = await RespClient.connect(port);
        line.send(text!);
        t.deepEqual(await line.read(1), [{ error: `ERR Protocol error: ${message}` }]);
        await line.closedByPeer();
        line.destroy();
      }
      // A line of exactly maxLine bytes is fine.
      const longest = await RespClient.connect(port);
      const word = 'e'.repeat(4096 - 'ECHO '.length);
      t.is(await longest.call(`ECHO ${word}\r\n`), word);
      longest.destroy();

      // The server is still serving others.
      const after = await RespClient.connect(port);
      t.is(await after.call(inline('GET', 'k')), atLimit);
      after.destroy();
    });
  });

  test(`[${impl}] a request past maxRequest closes the connection without a reply`, async (t) => {
    await withDemo(t, impl, { maxRequest: 64 }, async (port, server) => {
      // 64 bytes as sent: `*3` (4) + `$3` SET (4 + 5) + `$1` k (4 + 3) + `$37` (5) + 37 + 2.
      const exact = multibulk('SET', 'k', 'x'.repeat(37));
      t.is(exact.length, 64);
      const ok = await RespClient.connect(port);
      t.is(await ok.call(exact), 'OK');
      // Inline requests are bounded by maxLine alone.
      t.is(await ok.call(inline('ECHO', 'i'.repeat(100))), 'i'.repeat(100));
      ok.destroy();

      // One byte more: refused from the last argument's header, its payload never read.
      const over = await RespClient.connect(port);
      over.send(multibulk('SET', 'k', 'y'.repeat(38)));
      await over.closedByPeer();
      t.is(over.raw, '', 'no reply, as Redis past client-query-buffer-limit');
      over.destroy();
      // Many arguments add up to the same bound.
      const many = await RespClient.connect(port);
      many.send(multibulk('DEL', ...Array.from({ length: 20 }, () => 'k')));
      await many.closedByPeer();
      t.is(many.raw, '');
      many.destroy();
      t.is(server.requestLimitCloses, 2);
      t.is(server.protocolErrors, 0);

      const after = await RespClient.connect(port);
      t.is(await after.call(inline('GET', 'k')), 'x'.repeat(37));
      after.destroy();
    });
  });

  test(`[${impl}] limits that are not whole positive numbers throw`, async (t) => {
    const engine = createEngine({ impl });
    try {
      for (const maxRequest of [0, -1, 1.5, Infinity, NaN]) {
        t.throws(() => startRedisServer({ engine, port: 0, maxRequest }), {
          instanceOf: RangeError,
          code: 'ERR_OUT_OF_RANGE',
        });
      }
      t.throws(() => startRedisServer({ engine, port: 0, maxLine: '64k' as unknown as number }), {
        instanceOf: TypeError,
        code: 'ERR_INVALID_ARG_TYPE',
      });
      t.is(engine.stats().listeners, 0, 'nothing was listening');
    } finally {
      await engine.shutdown();
    }
  });

  test(`[${impl}] the two bytes after a bulk are skipped unread, as Redis does`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      t.is(await c.call('*2\r\n$4\r\nECHO\r\n$2\r\nhi??'), 'hi');
      t.is(await c.call('*1\r\n$4\r\nPINGxx'), 'PONG');
      c.destroy();
    });
  });

  test(`[${impl}] each bulk argument is one readLengthPrefixed op`, async (t) => {
    await withDemo(t, impl, {}, async (port, server) => {
      // Every read the reader submits, by name (it calls them on the engine object).
      const engine = server.engine as unknown as Record<string, unknown>;
      const calls: Record<string, number> = {};
      for (const name of ['expectLine', 'readExactly', 'readLengthPrefixed', 'readChunk']) {
        const original = engine[name] as (...a: unknown[]) => unknown;
        calls[name] = 0;
        engine[name] = (...a: unknown[]) => {
          calls[name]!++;
          return original.apply(server.engine, a);
        };
      }
      const c = await RespClient.connect(port);
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      // Split mid-header and mid-payload as well as whole: the count of ops does not change.
      const request = multibulk('DEL', ...keys) + multibulk('ECHO', 'a\r\nb');
      c.socket.setNoDelay(true);
      c.send(request.slice(0, 13));
      await new Promise((resolve) => setTimeout(resolve, 20));
      c.send(request.slice(13, request.length - 3));
      await new Promise((resolve) => setTimeout(resolve, 20));
      c.send(request.slice(request.length - 3));
      t.deepEqual(await c.read(2), [0, 'a\r\nb']);
      // The reader asks for the next request before the reply can reach the client.
      t.deepEqual(calls, {
        expectLine: 2, // `*2`, and the next request's; `*21` came from the accept chain
        readExactly: 0,
        readLengthPrefixed: 21 + 2,
        readChunk: 0,
      });
      c.destroy();
    });
  });

  test(`[${impl}] unknown commands and wrong arity are errors, not disconnects`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      t.deepEqual(await c.call(inline('FOO', 'a', 'b')), {
        error: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ",
      });
      t.deepEqual(await c.call(multibulk('foo')), {
        error: "ERR unknown command 'foo', with args beginning with: ",
      });
      t.deepEqual(await c.call(inline('ECHO')), {
        error: "ERR wrong number of arguments for 'echo' command",
      });
      t.deepEqual(await c.call(inline('SET', 'k', 'v', 'NX', 'XX')), { error: 'ERR syntax error' });
      t.is(await c.call(inline('PING')), 'PONG');
      t.false(c.closed);
      c.destroy();
    });
  });

  test(`[${impl}] QUIT replies +OK and closes; requests after it are not answered`, async (t) => {
    await withDemo(t, impl, {}, async (port) => {
      const c = await RespClient.connect(port);
      c.send(inline('PING') + multibulk('QUIT') + inline('PING'));
      await c.closedByPeer();
      t.is(c.raw, '+PONG\r\n+OK\r\n');
      c.destroy();
    });
  });

  test(`[${impl}] 1,000 concurrent connections each SET and GET their own key`, async (t) => {
    await withDemo(t, impl, {}, async (port, server) => {
      const clients = await Promise.all(
        Array.from({ length: 1000 }, () => RespClient.connect(port)),
      );
      const results = await Promise.all(
        clients.map(async (c, i) => {
          const set = await c.call(multibulk('SET', `key:${i}`, `value:${i}`));
          const get = await c.call(inline('GET', `key:${i}`));
          return set === 'OK' && get === `value:${i}`;
        }),
      );
      t.is(results.filter(Boolean).length, 1000);
      t.is(server.store.size, 1000);
      t.is(server.connections.size, 1000);
      for (const c of clients) c.destroy();
    });
  });

  test(`[${impl}] connections are released however clients leave`, async (t) => {
    await withDemo(t, impl, {}, async (port, server) => {
      const leave: Record<string, (s: net.Socket) => void> = {
        quit: (s) => s.write('PING\r\nQUIT\r\n'),
        'end after a reply': (s) => {
          s.write('PING\r\n');
          s.once('data', () => s.end());
        },
        'end mid-frame': (s) => s.end('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc'),
        reset: (s) => {
          s.write('PING\r\n');
          s.once('data', () => s.resetAndDestroy());
        },
        'protocol error': (s) => s.write('*1\r\nx\r\n'),
      };
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const how = Object.values(leave)[i % 5]!;
          return new Promise<void>((resolve) => {
            const s = net.connect({ host: '127.0.0.1', port }, () => how(s));
            s.on('error', () => {});
            s.on('close', () => resolve());
            s.resume();
          });
        }),
      );
      const deadline = Date.now() + 10_000;
      while (server.connections.size > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      t.is(server.connections.size, 0);
      t.is(server.engine.stats().sockets, 0);
      // Still serving.
      const c = await RespClient.connect(port);
      t.is(await c.call(inline('PING')), 'PONG');
      c.destroy();
    });
  });

  test(`[${impl}] server.close() disconnects clients and stops accepting`, async (t) => {
    const engine = createEngine({ impl });
    try {
      const server = startRedisServer({ engine, port: 0 });
      const { port } = server.address;
      const c = await RespClient.connect(port);
      t.is(await c.call(inline('PING')), 'PONG');
      server.close();
      await c.closedByPeer();
      c.destroy();
      await t.throwsAsync(RespClient.connect(port), { code: 'ECONNREFUSED' });
    } finally {
      await engine.shutdown();
    }
  });

  for (const drive of ['auto', 'manual']) {
    test(`[${impl}] main.js --drive ${drive} serves and stops cleanly on SIGTERM`, async (t) => {
      const child = spawn(
        process.execPath,
        [MAIN_JS, '--impl', impl, '--port', '0', '--drive', drive],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      // 'close', not 'exit': the child's last output may still be in the pipe when it exits.
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      try {
        const port = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no banner: ${stdout} ${stderr}`)),
            10_000,
          );
          child.stdout.on('data', () => {
            const m = /impl=(\w+) listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
            if (m) {
              clearTimeout(timer);
              t.is(m[1], impl);
              resolve(Number(m[2]));
            }
          });
          child.on('exit', () => reject(new Error(`exited early: ${stdout} ${stderr}`)));
        });
        const c = await RespClient.connect(port);
        t.is(await c.call(multibulk('SET', 'a', 'b')), 'OK');
        t.is(await c.call(inline('GET', 'a')), 'b');
        child.kill('SIGTERM');
        await c.closedByPeer();
        c.destroy();
        t.is(await exited, 0, stderr);
        t.regex(stdout, /SIGTERM: shutting down/);
      } finally {
        child.kill('SIGKILL');
      }
    });
  }

  const haveCli = existsSync(REDIS_CLI);
  if (haveCli || process.env.CI) {
    test(`[${impl}] redis-cli PING, SET, GET`, async (t) => {
      if (!haveCli) {
        t.fail(`${REDIS_CLI} not found: install redis-tools (apt-get install redis-tools)`);
        return;
      }
      await withDemo(t, impl, {}, async (port) => {
        const cli = async (...args: string[]) =>
          (await execFileAsync(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout;
        t.is(await cli('ping'), 'PONG\n');
        t.is(await cli('set', 'greeting', 'hello world'), 'OK\n');
        t.is(await cli('get', 'greeting'), 'hello world\n');
        t.is(await cli('incr', 'visits'), '1\n');
        t.is(await cli('get', 'nothing'), '\n');
      });
    });
  }
}
