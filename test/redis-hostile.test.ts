// The Redis-protocol demo (examples/redis-server) under hostile peers, on every available impl.
// Each test runs the demo as a child process (main.js with its default limits) and, while a
// control client's PING every 25 ms keeps being answered and the child's RSS stays under a cap,
// lets one kind of hostile client loose: huge and negative counts and lengths, thousands of
// `*1048576` connections, multi-megabyte unterminated lines, binary garbage, 10,000 pipelined
// commands cut at random places, a pipeliner that never reads, slowloris clients, and one
// request of 320 MiB. The worst PING latency is logged for the record, never asserted.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ImplName } from 'async-engine';
import { implsUnderTest, prng, rssIsMeaningful, sleep, withDeadline } from './helpers/harness.js';
import { RespClient, inline, multibulk, parseReply, type Reply } from './helpers/resp.js';

const MAIN_JS = fileURLToPath(new URL('../../examples/redis-server/main.js', import.meta.url));
const MiB = 1024 * 1024;
/** How far the demo's RSS may grow over its size at rest while it is under attack. */
const RSS_GROWTH_CAP = 200 * MiB;
/**
 * The child's V8 heap limit. A server that believes a peer's announced sizes then dies after a
 * few hundred MiB, instead of first taking several GiB of a machine shared with other work.
 */
const CHILD_HEAP_MB = 1024;

// ---- The demo as a child process ----

interface Demo {
  child: ChildProcessByStdio<null, Readable, Readable>;
  port: number;
  /** Set once the child has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
  output: string;
}

async function startDemo(impl: ImplName): Promise<Demo> {
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${CHILD_HEAP_MB}`, MAIN_JS, '--impl', impl, '--port', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const demo: Demo = { child, port: 0, exit: undefined, exited: Promise.resolve(), output: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (demo.output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (demo.output += d));
  demo.exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      demo.exit = { code, signal };
      resolve();
    }),
  );
  demo.port = await withDeadline(
    new Promise<number>((resolve, reject) => {
      const look = () => {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(demo.output);
        if (m) resolve(Number(m[1]));
      };
      child.stdout.on('data', look);
      void demo.exited.then(() => reject(new Error(`the demo exited: ${demo.output}`)));
    }),
    10_000,
    () => `the demo's banner; output: ${demo.output}`,
  );
  return demo;
}

/** SIGTERM, and the demo must exit 0 (it was alive until then); SIGKILL if it does not. */
async function stopDemo(t: ExecutionContext, demo: Demo): Promise<void> {
  if (demo.exit !== undefined) return;
  demo.child.kill('SIGTERM');
  try {
    await withDeadline(demo.exited, 15_000, 'the demo to exit after SIGTERM');
    t.is((demo.exit as Demo['exit'])?.code, 0, `exit after SIGTERM; output: ${demo.output}`);
  } finally {
    if (demo.exit === undefined) demo.child.kill('SIGKILL');
  }
}

/** The child's resident set size in bytes, or NaN once it is gone. */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

// ---- The control client: PING every 25 ms, and the child's RSS sampled as often ----

class Watch {
  pings = 0;
  pongs = 0;
  worstMs = 0;
  readonly wrong: string[] = [];
  baseRss = 0;
  peakRss = 0;
  private running = true;
  private loop: Promise<void> = Promise.resolve();
  private sampler: NodeJS.Timeout | undefined;

  private constructor(
    private readonly demo: Demo,
    private readonly client: RespClient,
  ) {}

  static async start(demo: Demo): Promise<Watch> {
    const client = await RespClient.connect(demo.port);
    const watch = new Watch(demo, client);
    for (let i = 0; i < 3; i++) await client.call(inline('PING'));
    watch.baseRss = watch.peakRss = rssOf(demo.child.pid!);
    watch.sampler = setInterval(() => watch.sample(), 25);
    watch.loop = watch.run();
    return watch;
  }

  private sample(): void {
    const rss = rssOf(this.demo.child.pid!);
    if (rss > this.peakRss) this.peakRss = rss;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const sent = performance.now();
      this.pings++;
      let reply: Reply;
      try {
        reply = await this.client.call(inline('PING'));
      } catch (err) {
        this.wrong.push(`PING ${this.pings}: ${String(err)}`);
        return;
      }
      const ms = performance.now() - sent;
      if (ms > this.worstMs) this.worstMs = ms;
      if (reply === 'PONG') this.pongs++;
      else this.wrong.push(`PING ${this.pings}: ${JSON.stringify(reply)}`);
      await sleep(Math.max(0, 25 - ms));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    clearInterval(this.sampler);
    this.sample();
    this.client.destroy();
  }
}

/**
 * Registers `[impl] title` for every impl: a fresh demo child, the control client, then
 * `attack`. Afterwards the demo must still run, have answered every PING with +PONG, have
 * stayed under the RSS cap, serve a new client, and exit 0 on SIGTERM.
 */
function hostile(
  title: string,
  attack: (t: ExecutionContext, port: number) => Promise<void>,
): void {
  for (const impl of implsUnderTest()) {
    test.serial(`[${impl}] ${title}`, async (t) => {
      t.timeout(180_000);
      const demo = await startDemo(impl);
      try {
        const watch = await Watch.start(demo);
        try {
          await attack(t, demo.port);
        } catch (err) {
          if (demo.exit !== undefined) {
            throw new Error(`the demo died (${JSON.stringify(demo.exit)}): ${demo.output}`, {
              cause: err,
            });
          }
          throw err;
        } finally {
          await watch.stop();
        }
        t.log(
          `control PINGs: ${watch.pongs}/${watch.pings} answered, worst ${watch.worstMs.toFixed(1)} ms;` +
            ` RSS ${mib(watch.baseRss)} MiB at rest, peak ${mib(watch.peakRss)} MiB`,
        );
        t.is(demo.exit, undefined, `the demo is still running; output: ${demo.output}`);
        t.deepEqual(watch.wrong, [], 'every PING got +PONG');
        t.true(watch.pongs > 0, 'the control client was answered');
        if (rssIsMeaningful) {
          t.true(
            watch.peakRss - watch.baseRss < RSS_GROWTH_CAP,
            `RSS grew by ${mib(watch.peakRss - watch.baseRss)} MiB (cap ${mib(RSS_GROWTH_CAP)})`,
          );
        }
        const after = await RespClient.connect(demo.port);
        t.is(await after.call(inline('PING')), 'PONG', 'a new client is served');
        after.destroy();
      } finally {
        await stopDemo(t, demo);
      }
    });
  }
}

// ---- Raw hostile sockets ----

/** A net.Socket to the demo that keeps what it receives and whether the server closed it. */
interface Raw {
  socket: net.Socket;
  received: string;
  closed: boolean;
  error: string | undefined;
  gone: Promise<void>;
}

function connectRaw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const raw: Raw = {
      socket,
      received: '',
      closed: false,
      error: undefined,
      gone: Promise.resolve(),
    };
    raw.gone = new Promise((done) =>
      socket.on('close', () => {
        raw.closed = true;
        done();
      }),
    );
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (raw.received += d));
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      socket.on('error', (err: NodeJS.ErrnoException) => (raw.error = err.code ?? String(err)));
      resolve(raw);
    });
    socket.once('error', reject);
  });
}

/** Writes `data` and waits until the socket has taken it (or failed, or closed). */
function writeAll(raw: Raw, data: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    if (raw.closed || raw.socket.destroyed) return resolve();
    raw.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, () =>
      resolve(),
    );
  });
}

/** Polls until `done()` holds; fails with `what` after `ms`. */
async function until(done: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(10);
  }
}

/** How many hostile connections fit this process's and the child's fd limit, up to `wanted`. */
function connectionBudget(wanted: number): number {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  const limit = Number(out);
  if (!Number.isFinite(limit)) return wanted; // "unlimited"
  return Math.max(100, Math.min(wanted, limit - 500));
}

const ERR = (message: string) => ({ error: `ERR Protocol error: ${message}` });

// ---- The attacks ----

hostile(
  'huge and negative multibulk counts and bulk lengths get Redis replies',
  async (t, port) => {
    const cases: Array<[frame: string, replies: Reply[], closes: boolean]> = [
      ['*1048577\r\n', [ERR('invalid multibulk length')], true],
      ['*2147483648\r\n', [ERR('invalid multibulk length')], true],
      ['*-5\r\nPING\r\n', ['PONG'], false],
      ['*-1\r\n*0\r\nPING\r\n', ['PONG'], false],
      ['*1\r\n$9999999999\r\n', [ERR('invalid bulk length')], true],
      ['*1\r\n$-2\r\n', [ERR('invalid bulk length')], true],
      ['*1\r\n$-1\r\n', [ERR('invalid bulk length')], true],
      // One byte past the default bound on a bulk (32 MiB): refused from its header alone.
      [`*2\r\n$4\r\nECHO\r\n$${32 * MiB + 1}\r\n`, [ERR('invalid bulk length')], true],
    ];
    for (const [frame, replies, closes] of cases) {
      const c = await RespClient.connect(port);
      c.send(inline('PING') + frame);
      t.deepEqual(await c.read(1 + replies.length), ['PONG', ...replies], JSON.stringify(frame));
      if (closes) {
        await c.closedByPeer();
      } else {
        t.is(await c.call(inline('PING')), 'PONG', `${JSON.stringify(frame)}: still served`);
      }
      c.destroy();
    }

    // `*1048576` is a valid count: the request is built as its arguments actually arrive.
    const c = await RespClient.connect(port);
    const n = 1024 * 1024;
    c.socket.write(`*${n}\r\n$3\r\nDEL\r\n`);
    const args = Buffer.from('$1\r\nk\r\n'.repeat(n - 1));
    c.socket.write(args);
    t.deepEqual(await c.read(1, 60_000), [0], 'DEL with 1,048,575 arguments');
    c.destroy();
  },
);

hostile('3,000 connections that each announce *1048576 cost no 8 MiB apiece', async (t, port) => {
  const n = connectionBudget(3000);
  t.log(`${n} connections`);
  const conns: Raw[] = [];
  try {
    // In batches, so that the accept queue (backlog 511) never overflows into SYN retries.
    for (let i = 0; i < n; i += 250) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(250, n - i) }, () => connectRaw(port)),
      );
      for (const raw of batch) raw.socket.write('*1048576\r\n');
      conns.push(...batch);
    }
    // Every count is read and its request waits for arguments; give the control client a few
    // rounds while all of them are pending at once.
    await sleep(500);
    t.is(conns.filter((c) => c.closed).length, 0, 'no connection was closed');
    // Each one then gets the reply of a request that was waiting for `$`: proof that its
    // count had been read.
    for (const raw of conns) raw.socket.write('x\r\n');
    const expected = "-ERR Protocol error: expected '$', got 'x'\r\n";
    await until(
      () => conns.every((c) => c.closed),
      60_000,
      () => `every connection to be closed (${conns.filter((c) => !c.closed).length} open)`,
    );
    t.is(conns.filter((c) => c.received === expected).length, n, 'every one got the error reply');
  } finally {
    for (const raw of conns) raw.socket.destroy();
  }
});

hostile('multi-megabyte unterminated lines are refused after 64 KiB', async (t, port) => {
  const big = 4 * MiB;
  const cases: Array<[string, string]> = [
    [`PING ${'y'.repeat(big)}`, 'too big inline request'],
    [`*${'1'.repeat(big)}`, 'too big mbulk count string'],
    [`*2\r\n$4\r\nECHO\r\n$${'1'.repeat(big)}`, 'too big bulk count string'],
  ];
  for (const [data, message] of cases) {
    const raw = await connectRaw(port);
    // All of it at once: the server answers after 64 KiB and drops the rest before it closes.
    raw.socket.write(Buffer.from(data, 'latin1'));
    await withDeadline(raw.gone, 10_000, 'the server to close');
    t.is(raw.received, `-ERR Protocol error: ${message}\r\n`, message);
    t.is(raw.error, undefined, `${message}: no reset`);
    raw.socket.destroy();
  }
});

hostile('binary garbage gets error replies or a close, never a crash', async (t, port) => {
  for (let seed = 1; seed <= 4; seed++) {
    const rand = prng(seed);
    const garbage = Buffer.alloc(MiB);
    for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rand() * 256);
    const raw = await connectRaw(port);
    for (let off = 0; off < garbage.length && !raw.closed;) {
      const size = 1 + Math.floor(rand() * 65536);
      await writeAll(raw, garbage.subarray(off, off + size));
      off += size;
    }
    if (!raw.closed) raw.socket.end();
    await withDeadline(raw.gone, 20_000, 'the garbage connection to end');
    // Whatever was answered is well-formed RESP, and every reply is an error.
    const replies: Reply[] = [];
    let pos = 0;
    for (let r = parseReply(raw.received, pos); r; r = parseReply(raw.received, pos)) {
      replies.push(r.value);
      pos = r.next;
    }
    t.is(pos, raw.received.length, `seed ${seed}: nothing but whole replies`);
    t.true(
      replies.every((r) => typeof r === 'object' && r !== null && 'error' in r),
      `seed ${seed}: only error replies`,
    );
    t.log(`seed ${seed}: ${replies.length} error replies, then closed`);
    raw.socket.destroy();
  }
});

hostile(
  '10,000 pipelined commands cut at random places: all answered, in order',
  async (t, port) => {
    const rand = prng(10_000);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
    const model = new Map<string, string>();
    const bulk = (v: string | undefined) =>
      v === undefined ? '$-1\r\n' : `$${v.length}\r\n${v}\r\n`;
    const keys = Array.from({ length: 40 }, (_, i) => `key:${i}`);
    const counters = Array.from({ length: 5 }, (_, i) => `counter:${i}`);
    let request = '';
    let expected = '';
    for (let i = 0; i < 10_000; i++) {
      const op = pick(['SET', 'GET', 'INCR', 'ECHO', 'DEL', 'EXISTS'] as const);
      // Multibulk values carry any byte; inline ones only plain words.
      const binary = rand() < 0.5;
      let value = '';
      const length = Math.floor(rand() * 300);
      for (let k = 0; k < length; k++) {
        value += binary
          ? String.fromCharCode(Math.floor(rand() * 256))
          : String.fromCharCode(97 + Math.floor(rand() * 26));
      }
      if (!binary && value === '') value = 'v';
      let args: string[];
      if (op === 'SET') {
        const key = pick(keys);
        args = ['SET', key, value];
        model.set(key, value);
        expected += '+OK\r\n';
      } else if (op === 'GET') {
        const key = pick([...keys, ...counters]);
        args = ['GET', key];
        expected += bulk(model.get(key));
      } else if (op === 'INCR') {
        const key = pick(counters);
        const next = String(Number(model.get(key) ?? '0') + 1);
        model.set(key, next);
        args = ['INCR', key];
        expected += `:${next}\r\n`;
      } else if (op === 'ECHO') {
        args = ['ECHO', value];
        expected += bulk(value);
      } else if (op === 'DEL') {
        const key = pick([...keys, ...counters]);
        args = ['DEL', key];
        expected += `:${model.delete(key) ? 1 : 0}\r\n`;
      } else {
        const key = pick(keys);
        args = ['EXISTS', key, key];
        expected += `:${model.has(key) ? 2 : 0}\r\n`;
      }
      request += binary ? multibulk(...args) : inline(...args);
    }
    const bytes = Buffer.from(request, 'latin1');
    const c = await RespClient.connect(port);
    c.socket.setNoDelay(true);
    for (let off = 0, n = 0; off < bytes.length; n++) {
      const size = 1 + Math.floor(rand() * 4096);
      c.socket.write(bytes.subarray(off, off + size));
      off += size;
      if (n % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await c.read(10_000, 60_000);
    t.is(c.raw.length, expected.length);
    t.true(c.raw === expected, 'the replies, byte for byte');
    c.destroy();
  },
);

hostile('a pipeliner that never reads: the server stops reading from it', async (t, port) => {
  const value = 'v'.repeat(16 * 1024);
  const setter = await RespClient.connect(port);
  t.is(await setter.call(multibulk('SET', 'big', value)), 'OK');
  setter.destroy();
  // 20,000 GETs ask for 320 MiB of replies, and their sender does not read any of them.
  const count = 20_000;
  const reply = Buffer.from(`$${value.length}\r\n${value}\r\n`, 'latin1');
  const lazy = net.connect({ host: '127.0.0.1', port });
  lazy.on('error', () => {});
  await new Promise((resolve) => lazy.once('connect', resolve));
  lazy.pause();
  lazy.write('GET big\r\n'.repeat(count));
  // Time for a server that buffered replies without bound to do so.
  await sleep(2_000);
  t.false(lazy.destroyed, 'the server keeps the connection');
  // Once the client reads, every reply arrives, intact and in order.
  let received = 0;
  let intact = true;
  const done = new Promise<void>((resolve) => {
    lazy.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length;) {
        const at = received % reply.length;
        const n = Math.min(chunk.length - i, reply.length - at);
        if (!chunk.subarray(i, i + n).equals(reply.subarray(at, at + n))) intact = false;
        i += n;
        received += n;
      }
      if (received >= count * reply.length) resolve();
    });
  });
  lazy.resume();
  await withDeadline(done, 60_000, () => `the replies (${received} bytes so far)`);
  t.is(received, count * reply.length);
  t.true(intact, 'every reply is the stored value');
  lazy.destroy();
});

hostile('slowloris: 500 clients sending one byte per 100 ms', async (t, port) => {
  const clients = await Promise.all(
    Array.from({ length: 500 }, async (_, i) => {
      const raw = await connectRaw(port);
      raw.socket.setNoDelay(true);
      const args = ['SET', `slow:${i}`, `value-${i}`];
      return { raw, request: i % 2 === 0 ? multibulk(...args) : inline(...args), sent: 0 };
    }),
  );
  const longest = Math.max(...clients.map((c) => c.request.length));
  for (let step = 0; step < longest; step++) {
    for (const c of clients) {
      if (c.sent < c.request.length) c.raw.socket.write(c.request[c.sent++]!, 'latin1');
    }
    await sleep(100);
  }
  await until(
    () => clients.every((c) => c.raw.received.length >= 5),
    10_000,
    () => 'every slow client to be answered',
  );
  t.is(clients.filter((c) => c.raw.received === '+OK\r\n').length, clients.length);
  const check = await RespClient.connect(port);
  t.is(await check.call(inline('GET', 'slow:499')), 'value-499');
  check.destroy();
  for (const c of clients) c.raw.socket.destroy();
});

hostile('one request of 320 MiB is cut off at the 64 MiB request bound', async (t, port) => {
  // `*11` with ten 32 MiB arguments: each argument is within the bulk bound, the request is not
  // (and would still be unfinished after all of them).
  const payload = Buffer.alloc(32 * MiB, 'z');
  const header = Buffer.from(`$${payload.length}\r\n`);
  const raw = await connectRaw(port);
  await writeAll(raw, '*11\r\n');
  let bulksSent = 0;
  for (let k = 0; k < 10 && !raw.closed && raw.error === undefined; k++) {
    await writeAll(raw, Buffer.concat([header, payload, Buffer.from('\r\n')]));
    if (!raw.closed && raw.error === undefined) bulksSent++;
  }
  await withDeadline(raw.gone, 10_000, () => `the server to close (${bulksSent} bulks sent)`);
  t.true(bulksSent < 10, `closed before all ten arguments were sent (${bulksSent} were)`);
  t.is(raw.received, '', 'closed without a reply, as Redis does past its query buffer limit');
  raw.socket.destroy();
});
