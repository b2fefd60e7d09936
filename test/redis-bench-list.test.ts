// The Redis demo under the real tools, on every impl: redis-benchmark's default test list (no
// `-t`) runs to the end with no error reply, and `redis-cli --pipe` mass insertion counts every
// reply. Performance is not asserted: the benchmark runs with a small request count.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { forEachImpl } from './helpers/harness.js';
import { RespClient, multibulk } from './helpers/resp.js';
import type { Engine } from './helpers/harness.js';

interface DemoServer {
  address: { port: number };
  close(): void;
}
interface ServerModule {
  startRedisServer(options: { engine: Engine; port: number }): DemoServer;
}

const { startRedisServer } = (await import(
  new URL('../../examples/redis-server/server.js', import.meta.url).href
)) as ServerModule;

const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';
const REDIS_CLI = '/usr/bin/redis-cli';

/** redis-benchmark 7.0's default tests, in its order. */
const DEFAULT_TESTS = [
  'PING_INLINE',
  'PING_MBULK',
  'SET',
  'GET',
  'INCR',
  'LPUSH',
  'RPUSH',
  'LPOP',
  'RPOP',
  'SADD',
  'HSET',
  'SPOP',
  'ZADD',
  'ZPOPMIN',
  'LPUSH (needed to benchmark LRANGE)',
  'LRANGE_100 (first 100 elements)',
  'LRANGE_300 (first 300 elements)',
  'LRANGE_500 (first 500 elements)',
  'LRANGE_600 (first 600 elements)',
  'MSET (10 keys)',
];

/** Runs `file` with `args`, writing `input` to its stdin; its exit code and output. */
function run(
  file: string,
  args: string[],
  input = '',
  deadlineMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

const haveTools = existsSync(REDIS_BENCHMARK) && existsSync(REDIS_CLI);
if (haveTools || process.env.CI) {
  forEachImpl(
    'redis-benchmark runs its default test list to the end with no error',
    async (t, engine) => {
      if (!haveTools) return void t.fail('redis-benchmark not found: apt-get install redis-tools');
      const server = startRedisServer({ engine, port: 0 });
      try {
        const port = String(server.address.port);
        const result = await run(REDIS_BENCHMARK, ['-p', port, '-n', '2000', '--csv']);
        t.is(result.code, 0, result.stderr);
        const all = result.stdout + result.stderr;
        t.notRegex(all, /ERR|WRONGTYPE|Error/, 'no error reply was seen');
        // --csv: a header, then one `"TEST","rps",...` line per test.
        const names = result.stdout
          .split('\n')
          .slice(1)
          .filter((line) => line.startsWith('"'))
          .map((line) => JSON.parse(`[${line}]`)[0] as string);
        t.deepEqual(names, DEFAULT_TESTS);
        // What the list tests left behind has Redis's shapes.
        const c = await RespClient.connect(server.address.port);
        t.is(await c.call(multibulk('TYPE', 'mylist')), 'list');
        t.is(await c.call(multibulk('TYPE', 'myhash')), 'hash');
        t.is(((await c.call(multibulk('LRANGE', 'mylist', '0', '599'))) as string[]).length, 600);
        c.destroy();
      } finally {
        server.close();
      }
    },
    { timeout: 180_000 },
  );

  forEachImpl('redis-cli --pipe: mass insertion, every reply counted', async (t, engine) => {
    if (!haveTools) return void t.fail('redis-cli not found: apt-get install redis-tools');
    const server = startRedisServer({ engine, port: 0 });
    try {
      let input = '';
      for (let i = 0; i < 20_000; i++) input += multibulk('SET', `key:${i}`, `value:${i}`);
      for (let i = 0; i < 1000; i++) input += multibulk('RPUSH', 'list', String(i));
      input += multibulk('HSET', 'hash', 'a', '1', 'b', '2');
      input += multibulk('INCR', 'hash'); // one error reply: WRONGTYPE
      const result = await run(REDIS_CLI, ['-p', String(server.address.port), '--pipe'], input);
      t.is(result.code, 1, 'redis-cli --pipe exits 1 when an error was replied');
      t.regex(result.stdout, /errors: 1, replies: 21002/);
      const c = await RespClient.connect(server.address.port);
      t.is(await c.call(multibulk('DBSIZE')), 20_002);
      t.is(await c.call(multibulk('GET', 'key:19999')), 'value:19999');
      t.is(await c.call(multibulk('LLEN', 'list')), 1000);
      c.destroy();
    } finally {
      server.close();
    }
  });
}
