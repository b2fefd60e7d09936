// The Redis-protocol demo with `--workers 2` (examples/redis-server/main.js and worker.js): two
// worker threads, one engine each, sharing the port with SO_REUSEPORT. On every available impl:
// 200 concurrent node:net clients doing PING, SET and GET, every answer checked; both workers
// must have served connections (each prints its count at exit); SIGTERM ends the process with
// code 0. Also: the demo refuses a port another SO_REUSEPORT listener holds, and a bad count.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { createEngine } from 'async-engine';
import type { ListenerAddress } from 'async-engine';
import { implsUnderTest } from './helpers/harness.js';

const MAIN_JS = fileURLToPath(new URL('../../examples/redis-server/main.js', import.meta.url));
const CLIENTS = 200;
const BANNER = /impl=(\w+) listening on 127\.0\.0\.1:(\d+) with 2 workers\n/;

interface Demo {
  port: number;
  impl: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts main.js with `args` and waits for its banner. */
async function startDemo(args: string[]): Promise<Demo> {
  const child = spawn(process.execPath, [MAIN_JS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // 'close', not 'exit': the child's last output may still be in the pipe when it exits.
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const demo = {
    port: 0,
    impl: '',
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: (signal: NodeJS.Signals) => void child.kill(signal),
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner: ${stdout} ${stderr}`)), 15_000);
      child.stdout.on('data', () => {
        const m = BANNER.exec(stdout);
        if (m) {
          clearTimeout(timer);
          demo.impl = m[1];
          demo.port = Number(m[2]);
          resolve();
        }
      });
      void exited.then((code) => reject(new Error(`exited early (${code}): ${stdout} ${stderr}`)));
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return demo;
}

/** Resolves with the exit code, or with 'timeout' after `ms`. */
function exitWithin(demo: Demo, ms: number): Promise<number | null | 'timeout'> {
  return Promise.race([
    demo.exited,
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref()),
  ]);
}

/** A connection that collects everything received, as latin1. */
class Conn {
  received = '';
  closed = false;
  private wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.received += chunk;
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new Conn(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `request` and returns the next `replyLength` bytes received. */
  async exchange(request: string, replyLength: number, timeoutMs = 20_000): Promise<string> {
    const start = this.received.length;
    this.socket.write(Buffer.from(request, 'latin1'));
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < start + replyLength) {
      if (this.closed) break;
      const left = deadline - Date.now();
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.received.slice(start);
  }
}

function multibulk(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`;
}

/** One client's PING, SET and GET; the wrong answers it got, if any. */
async function session(conn: Conn, i: number): Promise<string[]> {
  const key = `key:${i}`;
  const value = `value-${i}-${'x'.repeat(i % 50)}`;
  const steps: Array<[string, string]> = [
    [multibulk('PING'), '+PONG\r\n'],
    [multibulk('SET', key, value), '+OK\r\n'],
    [multibulk('GET', key), `$${value.length}\r\n${value}\r\n`],
    [`PING hello-${i}\r\n`, `$${`hello-${i}`.length}\r\nhello-${i}\r\n`], // inline form
  ];
  const wrong: string[] = [];
  for (const [request, expected] of steps) {
    const got = await conn.exchange(request, expected.length);
    if (got !== expected) {
      wrong.push(`client ${i}: ${JSON.stringify(request)} → ${JSON.stringify(got)}`);
      break;
    }
  }
  return wrong;
}

async function twoWorkers(t: ExecutionContext, impl: string): Promise<void> {
  const demo = await startDemo(['--workers', '2', '--impl', impl, '--port', '0']);
  try {
    t.is(demo.impl, impl);
    // All 200 connected at once, then every session runs concurrently.
    const conns = await Promise.all(Array.from({ length: CLIENTS }, () => Conn.open(demo.port)));
    const wrong = (await Promise.all(conns.map((c, i) => session(c, i)))).flat();
    t.deepEqual(wrong.slice(0, 5), [], `${wrong.length} clients got a wrong answer`);
    for (const c of conns) c.socket.end();
    await Promise.all(
      conns.map((c) => (c.closed ? undefined : new Promise((r) => c.socket.once('close', r)))),
    );

    demo.kill('SIGTERM');
    t.is(await exitWithin(demo, 10_000), 0, demo.stderr());
    const out = demo.stdout();
    t.regex(out, /SIGTERM: shutting down\n/);
    t.regex(out, /\nbye\n$/);
    const counts = [...out.matchAll(/^worker (\d+)\/2: accepted (\d+) connections$/gm)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    t.deepEqual(
      counts.map(([w]) => w),
      [1, 2],
      out,
    );
    // The kernel spread the connections: both workers served some, and no one else did.
    for (const [w, n] of counts) t.true(n > 0, `worker ${w} accepted no connection: ${out}`);
    t.is(
      counts.reduce((sum, [, n]) => sum + n, 0),
      CLIENTS,
      out,
    );
    t.is(demo.stderr(), '');
  } finally {
    demo.kill('SIGKILL');
  }
}

for (const impl of implsUnderTest()) {
  test(`[${impl}] --workers 2: 200 concurrent clients spread over both workers, clean SIGTERM`, (t) =>
    twoWorkers(t, impl));
}

test('--workers 2 refuses a port another SO_REUSEPORT listener holds', async (t) => {
  // Without the demo's check both would bind, and the kernel would split connections
  // between this listener and the demo.
  const engine = createEngine();
  try {
    const listener = engine.listen({ host: '127.0.0.1', port: 0, reusePort: true });
    const { port } = listener.address() as ListenerAddress;
    const child = spawn(process.execPath, [MAIN_JS, '--workers', '2', '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 15_000);
      // 'close', not 'exit': the child's last output may still be in the pipe when it exits.
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    t.is(code, 1, stdout);
    t.regex(stderr, /EADDRINUSE/);
    t.notRegex(stdout, /listening/);
  } finally {
    await engine.shutdown();
  }
});

test('--workers rejects a count that is not 1 to 256', async (t) => {
  for (const bad of ['0', '-1', 'two', '257']) {
    const child = spawn(process.execPath, [MAIN_JS, '--workers', bad, '--port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    t.is(code, 2, bad);
    t.regex(stderr, /--workers/);
  }
});
