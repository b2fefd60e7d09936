// Real Redis peers for the tests: redis-cli as the client, a redis-server (the reference for
// reply shapes) or the demo's CLI entry point (examples/redis-server/main.js) as the server,
// each a child process on a loopback port, and a runner for tables of redis-cli invocations.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const REDIS_CLI = '/usr/bin/redis-cli';
export const REDIS_SERVER = '/usr/bin/redis-server';
export const DEMO_MAIN_JS = fileURLToPath(
  new URL('../../../examples/redis-server/main.js', import.meta.url),
);

/**
 * One step of a table: redis-cli run once (a new connection) with `args`, optionally with
 * `-n db`, or with `stdin` holding several commands sent over one connection. `expect` is the
 * whole of redis-cli's `--no-raw` output without the final newline (exact), or a pattern for
 * replies that vary between runs (ids, versions, remaining milliseconds).
 */
export interface Row {
  args: string[];
  expect: string | RegExp;
  db?: number;
  stdin?: string;
  /** Waits this long before running the row (for expiry). */
  sleepMs?: number;
  /** Reruns the row until the output matches, for at most this long (active expiry). */
  untilMs?: number;
}

export interface Mismatch {
  row: number;
  command: string;
  expected: string;
  actual: string;
}

/** Runs redis-cli against 127.0.0.1:port; resolves with stdout and stderr joined, whatever the exit code. */
export function cli(
  port: number,
  args: string[],
  options: { db?: number; stdin?: string; timeoutMs?: number } = {},
): Promise<string> {
  const full = ['--no-raw', '-h', '127.0.0.1', '-p', String(port)];
  if (options.db !== undefined) full.push('-n', String(options.db));
  full.push(...args);
  return new Promise((resolve, reject) => {
    const child = execFile(
      REDIS_CLI,
      full,
      { timeout: options.timeoutMs ?? 10_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') reject(err);
        else if (err && err.killed) reject(new Error(`redis-cli ${full.join(' ')}: timed out`));
        else resolve(stdout + stderr);
      },
    );
    // redis-cli may exit before it reads all its input (a refused connection, say): the
    // resulting EPIPE is not this run's answer, its output is.
    child.stdin?.on('error', () => {});
    child.stdin?.end(options.stdin ?? '');
  });
}

function describeRow(r: Row): string {
  const db = r.db === undefined ? '' : `-n ${r.db} `;
  const stdin = r.stdin === undefined ? '' : ` <<< ${JSON.stringify(r.stdin)}`;
  return `${db}${r.args.join(' ')}${stdin}`;
}

function matches(expect: string | RegExp, actual: string): boolean {
  return typeof expect === 'string' ? actual === expect : expect.test(actual);
}

/**
 * Runs the rows in order against the server on `port` and returns every row whose output
 * differs from its expectation (empty when the whole table holds).
 */
export async function runTable(port: number, rows: readonly Row[]): Promise<Mismatch[]> {
  const out: Mismatch[] = [];
  for (const [i, r] of rows.entries()) {
    if (r.sleepMs) await new Promise((res) => setTimeout(res, r.sleepMs));
    const deadline = Date.now() + (r.untilMs ?? 0);
    let actual: string;
    for (;;) {
      actual = (await cli(port, r.args, { db: r.db, stdin: r.stdin })).replace(/\n$/, '');
      if (matches(r.expect, actual) || Date.now() >= deadline) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    if (!matches(r.expect, actual)) {
      out.push({ row: i, command: describeRow(r), expected: String(r.expect), actual });
    }
  }
  return out;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A server child process and the port it answers on. */
export interface RedisChild {
  port: number;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

function track(child: ChildProcess): { output: () => string; gone: Promise<void> } {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  const gone = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return { output: () => text, gone };
}

function stopper(child: ChildProcess, gone: Promise<void>): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return gone;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };
}

/**
 * Starts redis-server on a free loopback port with persistence off and waits (at most 10 s)
 * until it answers PING.
 */
export async function startRedisServer(): Promise<RedisChild> {
  const port = await freePort();
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const { output, gone } = track(child);
  const stop = stopper(child, gone);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output()}`);
    if ((await cli(port, ['PING'])).trim() === 'PONG') break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not answer on ${port}: ${output()}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return { port, child, output, stop };
}

/** Starts the demo (`main.js --port 0 --impl impl`) and reads its port from the banner (at most 10 s). */
export async function startDemo(impl: string, extra: string[] = []): Promise<RedisChild> {
  const child = spawn(process.execPath, [DEMO_MAIN_JS, '--impl', impl, '--port', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { output, gone } = track(child);
  const stop = stopper(child, gone);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner: ${output()}`)), 10_000);
      const look = () => {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(output());
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout?.on('data', look);
      child.on('exit', () => {
        clearTimeout(timer);
        reject(new Error(`demo exited early: ${output()}`));
      });
    });
    return { port, child, output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
