// The Redis demo's keyspace (examples/redis-server/db.js) on every impl: lazy expiry (a key past
// its deadline goes when touched), active expiry (the cycle on the engine's timers deletes keys
// nobody touches), SELECT with 16 databases per connection, and the expiry timer that must not
// keep a process alive once the server is closed, SCAN cursors, and INFO under --workers.
import { spawn } from 'node:child_process';
import { forEachImpl, runNodeScript, sleep } from './helpers/harness.js';
import { RespClient, multibulk } from './helpers/resp.js';
import type { Engine } from './helpers/harness.js';

interface DemoServer {
  address: { port: number };
  keyspace: { size: number; expiredKeys: number };
  close(): void;
}
interface ServerModule {
  startRedisServer(options: { engine: Engine; port: number; activeExpiry?: boolean }): DemoServer;
}

const SERVER_URL = new URL('../../examples/redis-server/server.js', import.meta.url).href;
const { startRedisServer } = (await import(SERVER_URL)) as ServerModule;

/** A demo server on `engine` and one client; both are closed when `body` ends. */
async function withServer(
  engine: Engine,
  options: { activeExpiry?: boolean },
  body: (c: RespClient, server: DemoServer) => Promise<void>,
): Promise<void> {
  const server = startRedisServer({ engine, port: 0, ...options });
  const c = await RespClient.connect(server.address.port);
  try {
    await body(c, server);
  } finally {
    c.destroy();
    server.close();
  }
}

/**
 * TTL of `key`, set to `seconds` at `setAt` (Date.now() before the command that set it). TTL
 * rounds the time left to the nearest second, so a slow step (the sanitizers' slowdown) may read
 * one less: the lowest right answer follows from the time the client measured since then.
 */
async function ttlSince(
  c: RespClient,
  key: string,
  seconds: number,
  setAt: number,
): Promise<{ ttl: number; ok: boolean }> {
  const ttl = (await c.call(multibulk('TTL', key))) as number;
  const lowest = Math.round(seconds - (Date.now() - setAt) / 1000);
  return { ttl, ok: ttl <= seconds && ttl >= lowest };
}

forEachImpl(
  'lazy expiry: a key past its deadline is gone once touched, and not before',
  async (t, engine) => {
    await withServer(engine, { activeExpiry: false }, async (c) => {
      // Deadlines of 4 s: the steps before the first PTTL must fit in them even under the
      // sanitizers' slowdown.
      t.is(await c.call(multibulk('SET', 'px', 'v', 'PX', '4000')), 'OK');
      const exSetAt = Date.now();
      t.is(await c.call(multibulk('SET', 'ex', 'v', 'EX', '100')), 'OK');
      t.is(await c.call(multibulk('RPUSH', 'list', 'a', 'b')), 2);
      t.is(await c.call(multibulk('PEXPIRE', 'list', '4000')), 1);
      t.is(await c.call(multibulk('SET', 'keep', 'v')), 'OK');
      const ex = await ttlSince(c, 'ex', 100, exSetAt);
      t.true(ex.ok, `TTL ${ex.ttl}`);
      t.is(await c.call(multibulk('TTL', 'keep')), -1);
      t.is(await c.call(multibulk('TTL', 'missing')), -2);
      const pttl = (await c.call(multibulk('PTTL', 'px'))) as number;
      t.true(pttl > 0 && pttl <= 4000, `PTTL ${pttl}`);
      await sleep(4100);
      // Nothing touched them: without the active cycle they are still held (DBSIZE counts them,
      // as Redis's does), but any access finds them gone.
      t.is(await c.call(multibulk('DBSIZE')), 4);
      t.is(await c.call(multibulk('GET', 'px')), null);
      t.is(await c.call(multibulk('DBSIZE')), 3);
      t.is(await c.call(multibulk('LLEN', 'list')), 0);
      t.is(await c.call(multibulk('DBSIZE')), 2);
      t.is(await c.call(multibulk('TTL', 'px')), -2);
      t.is(await c.call(multibulk('GET', 'ex')), 'v');
      // PERSIST drops a deadline, SET drops it, KEEPTTL keeps it.
      t.is(await c.call(multibulk('PERSIST', 'ex')), 1);
      t.is(await c.call(multibulk('TTL', 'ex')), -1);
      const expireAt = Date.now();
      t.is(await c.call(multibulk('EXPIRE', 'ex', '50')), 1);
      t.is(await c.call(multibulk('SET', 'ex', 'w', 'KEEPTTL')), 'OK');
      const kept = await ttlSince(c, 'ex', 50, expireAt);
      t.true(kept.ok, `TTL ${kept.ttl}`);
      t.is(await c.call(multibulk('SET', 'ex', 'w')), 'OK');
      t.is(await c.call(multibulk('TTL', 'ex')), -1);
      // A deadline in the past deletes at once.
      t.is(await c.call(multibulk('EXPIRE', 'ex', '-1')), 1);
      t.is(await c.call(multibulk('EXISTS', 'ex')), 0);
      t.deepEqual(await c.call(multibulk('SET', 'k', 'v', 'EX', '0')), {
        error: "ERR invalid expire time in 'set' command",
      });
    });
  },
);

forEachImpl(
  'active expiry: keys nobody touches are deleted by the timer cycle',
  async (t, engine) => {
    await withServer(engine, {}, async (c, server) => {
      let batch = '';
      for (let i = 0; i < 300; i++) batch += multibulk('SET', `short:${i}`, 'v', 'PX', '1500');
      for (let i = 0; i < 10; i++) batch += multibulk('SET', `long:${i}`, 'v', 'EX', '1000');
      for (let i = 0; i < 5; i++) batch += multibulk('SET', `plain:${i}`, 'v');
      batch += multibulk('SELECT', '3');
      for (let i = 0; i < 50; i++) batch += multibulk('SET', `db3:${i}`, 'v', 'PX', '1500');
      batch += multibulk('SELECT', '0');
      c.send(batch);
      await c.read(300 + 10 + 5 + 1 + 50 + 1);
      t.is(await c.call(multibulk('DBSIZE')), 315);
      // DBSIZE and INFO touch no key: only the active cycle can bring the counts down. 350 keys
      // at 20 per sample, with more than a quarter expired, take a few cycles of 100 ms.
      const expected = '# Keyspace\r\ndb0:keys=15,expires=10,avg_ttl=0\r\n';
      const deadline = Date.now() + 10_000;
      let info = '';
      while (Date.now() < deadline) {
        info = (await c.call(multibulk('INFO', 'keyspace'))) as string;
        if (info === expected) break;
        await sleep(50);
      }
      t.is(info, expected, 'db0 holds its 15 unexpired keys, db3 none');
      t.is(await c.call(multibulk('DBSIZE')), 15);
      t.is(server.keyspace.expiredKeys, 350);
      t.is(await c.call(multibulk('GET', 'plain:0')), 'v');
    });
  },
);

forEachImpl('SELECT: 16 databases, selected per connection', async (t, engine) => {
  await withServer(engine, {}, async (c, server) => {
    const other = await RespClient.connect(server.address.port);
    try {
      t.is(await c.call(multibulk('SELECT', '1')), 'OK');
      t.is(await c.call(multibulk('SET', 'k', 'one')), 'OK');
      t.is(await other.call(multibulk('GET', 'k')), null, 'the other connection is on db 0');
      t.is(await other.call(multibulk('SET', 'k', 'zero')), 'OK');
      t.is(await c.call(multibulk('GET', 'k')), 'one');
      t.is(await c.call(multibulk('SELECT', '15')), 'OK');
      t.is(await c.call(multibulk('HSET', 'k', 'f', 'fifteen')), 1);
      t.is(await c.call(multibulk('TYPE', 'k')), 'hash');
      t.is(await other.call(multibulk('TYPE', 'k')), 'string');
      t.deepEqual(await c.call(multibulk('SELECT', '16')), {
        error: 'ERR DB index is out of range',
      });
      t.deepEqual(await c.call(multibulk('SELECT', 'one')), {
        error: 'ERR value is not an integer or out of range',
      });
      t.is(await c.call(multibulk('DBSIZE')), 1, 'a refused SELECT keeps the selection');
      const info = (await c.call(multibulk('INFO', 'keyspace'))) as string;
      t.is(
        info,
        '# Keyspace\r\n' +
          'db0:keys=1,expires=0,avg_ttl=0\r\n' +
          'db1:keys=1,expires=0,avg_ttl=0\r\n' +
          'db15:keys=1,expires=0,avg_ttl=0\r\n',
      );
      t.is(await c.call(multibulk('FLUSHDB')), 'OK');
      t.is(await other.call(multibulk('DBSIZE')), 1, 'FLUSHDB empties the selected one only');
      t.is(await c.call(multibulk('SELECT', '1')), 'OK');
      t.is(await c.call(multibulk('DBSIZE')), 1);
      t.is(await other.call(multibulk('FLUSHALL')), 'OK');
      t.is(await c.call(multibulk('DBSIZE')), 0, 'FLUSHALL empties every one');
      t.is(server.keyspace.size, 0);
    } finally {
      other.destroy();
    }
  });
});

forEachImpl(
  'close() cancels the expiry timer: the process exits without shutdown()',
  async (t, _engine, impl) => {
    // The pending callLater of the active cycle would keep the process alive for good.
    const script = `
    const { createEngine } = await import(process.env.ENGINE_URL);
    const { startRedisServer } = await import(${JSON.stringify(SERVER_URL)});
    const engine = createEngine({ impl: process.env.IMPL });
    const server = startRedisServer({ engine, port: 0 });
    setTimeout(() => { server.close(); console.log('closed'); }, 250);
  `;
    const result = await runNodeScript(script, { IMPL: impl }, 10_000);
    t.false(result.timedOut, `still running after 10 s: ${result.stderr}`);
    t.is(result.code, 0, result.stderr);
    t.is(result.stdout, 'closed\n');
  },
);

forEachImpl(
  'SCAN returns every key present for the whole walk while keys come and go',
  async (t, engine) => {
    await withServer(engine, {}, async (c) => {
      let batch = '';
      // The keys to delete come first in the walk: deleting them shifts every later key, which
      // a cursor counting positions would then skip.
      for (let i = 0; i < 100; i++) batch += multibulk('RPUSH', `gone:${i}`, 'v');
      for (let i = 0; i < 500; i++) batch += multibulk('SET', `stay:${i}`, 'v');
      c.send(batch);
      await c.read(600);
      const seen = new Set<string>();
      let cursor = '0';
      let calls = 0;
      do {
        const [next, keys] = (await c.call(multibulk('SCAN', cursor, 'COUNT', '25'))) as [
          string,
          string[],
        ];
        for (const key of keys) seen.add(key);
        // Between calls: delete five of the keys walked first, and add one.
        if (calls < 20) {
          const del = Array.from({ length: 5 }, (_, i) => `gone:${calls * 5 + i}`);
          t.is(await c.call(multibulk('DEL', ...del)), 5);
          t.is(await c.call(multibulk('SET', `new:${calls}`, 'v')), 'OK');
        }
        cursor = next;
        calls++;
      } while (cursor !== '0' && calls < 1000);
      t.is(cursor, '0', 'the walk ended');
      for (let i = 0; i < 500; i++) t.true(seen.has(`stay:${i}`), `stay:${i} returned`);
      // MATCH and TYPE filter what a walk returns.
      const [, lists] = (await c.call(
        multibulk('SCAN', '0', 'COUNT', '10000', 'TYPE', 'list', 'MATCH', 'gone:9?'),
      )) as [string, string[]];
      t.deepEqual(lists, []);
      const [, strings] = (await c.call(
        multibulk('SCAN', '0', 'COUNT', '10000', 'TYPE', 'string', 'MATCH', 'stay:1[0-2]'),
      )) as [string, string[]];
      t.deepEqual(strings.sort(), ['stay:10', 'stay:11', 'stay:12']);
      t.deepEqual(await c.call(multibulk('SCAN', 'x')), { error: 'ERR invalid cursor' });
    });
  },
);

forEachImpl('--workers 2: INFO says the keyspace is per worker', async (t, _engine, impl) => {
  const main = new URL('../../examples/redis-server/main.js', import.meta.url);
  const child = spawn(
    process.execPath,
    [main.pathname, '--impl', impl, '--port', '0', '--workers', '2'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const deadline = Date.now() + 15_000;
    let m: RegExpExecArray | null = null;
    while (!(m = /listening on 127\.0\.0\.1:(\d+) with 2 workers/.exec(stdout))) {
      if (Date.now() > deadline || child.exitCode !== null) break;
      await sleep(20);
    }
    t.truthy(m, stdout);
    const c = await RespClient.connect(Number(m![1]));
    const info = (await c.call(multibulk('INFO', 'server'))) as string;
    t.regex(info, /\r\nasync_engine_workers:2\r\n/);
    t.regex(info, /\r\nasync_engine_worker:[12]\r\n/);
    t.regex(info, /\r\nasync_engine_keyspace:per-worker\r\n/);
    c.destroy();
    child.kill('SIGTERM');
    t.is(await exited, 0);
  } finally {
    child.kill('SIGKILL');
  }
});
