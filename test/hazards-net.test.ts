// Network hazards on every implementation: a socket closed in the callback of the peer's reply
// to a write (the write still succeeds), 10,000 connections ending in FIN, RST or mid-line
// against a server that keeps serving, and 64 MiB written to a peer that never reads, then
// close().
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Callback, type EngineError, type Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  expectOk,
  fdCount,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  prng,
  rssIsMeaningful,
  runNodeScript,
  shutdownEngine,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

/**
 * A pong server in a child process (so that it answers while this thread is busy): every `ping`
 * line gets a `pong` line. Resolves with its port; it is killed when the test ends.
 */
async function pongServer(engine: Engine): Promise<number> {
  const source = `
    const net = require('node:net');
    const server = net.createServer((c) => {
      c.setNoDelay(true);
      c.on('error', () => {});
      c.on('data', (b) => {
        for (let at = b.indexOf(10); at >= 0; at = b.indexOf(10, at + 1)) c.write('pong\\n');
      });
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  `;
  const child = spawn(process.execPath, ['-e', source], { stdio: ['pipe', 'pipe', 'inherit'] });
  onCleanup(engine, () => {
    child.stdin.end();
    child.kill();
  });
  const line = await withDeadline(
    new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(String(b)))),
    10_000,
    'the pong server to listen',
  );
  return Number(line.trim());
}

/**
 * `rounds` round trips, one connection each: write `request`, read the `pong` and close the
 * socket in the reply's callback. Every write must succeed with its full count.
 */
async function closeInReply(
  t: Ctx,
  engine: Engine,
  rounds: number,
  request: Buffer,
): Promise<void> {
  const port = await pongServer(engine);
  const lanes = 1;
  const failures: string[] = [];
  let okWrites = 0;
  // One round trip: connect, write, read the reply and close the socket in its callback.
  const roundTrip = (): Promise<void> =>
    new Promise<void>((resolve) => {
      engine.connect(
        { host: '127.0.0.1', port },
        new Callback<Socket>({
          success: (sock: Socket) => {
            let pending = 2;
            const done = (): void => {
              if (--pending === 0) resolve();
            };
            engine.write(
              sock,
              request,
              new Callback<number>({
                success: (n: number) => {
                  if (n === request.length) okWrites++;
                  else failures.push(`write reported ${n} bytes`);
                  done();
                },
                failure: (err: EngineError) => {
                  const sent = (err as EngineError & { bytesWritten?: number }).bytesWritten;
                  failures.push(`write failed: ${err.code} (bytesWritten ${sent})`);
                  done();
                },
              }),
            );
            engine.expectLine(
              sock,
              'pong',
              new Callback<string>({
                success: () => {
                  engine.close(sock);
                  done();
                },
                failure: (err: EngineError) => {
                  failures.push(`reply failed: ${err.code}`);
                  engine.close(sock);
                  done();
                },
              }),
            );
          },
          failure: (err: EngineError) => {
            failures.push(`connect failed: ${err.code}`);
            resolve();
          },
        }),
      );
    });
  let started = 0;
  await withDeadline(
    Promise.all(
      Array.from({ length: lanes }, async () => {
        while (started < rounds) {
          started++;
          await roundTrip();
        }
      }),
    ),
    90_000,
    () => `${okWrites} of ${rounds} round trips`,
  );
  t.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${rounds} round trips failed`);
  t.is(okWrites, rounds);
  t.true(await waitUntil(() => engine.stats().sockets === 0, 5_000), 'every socket closed');
}

forEachImpl(
  "3,000 round trips closed in the reply's callback: every write succeeds with its full count",
  (t, engine) => closeInReply(t, engine, 3_000, Buffer.from('ping\n')),
  { timeout: 120_000 },
);

// Writes larger than the socket's buffers: the last part goes out from a worker (threadpool) or
// a ring request (completion) while the reply is on its way.
forEachImpl(
  "600 round trips of 1 MiB closed in the reply's callback: every write succeeds",
  (t, engine) => {
    const request = Buffer.alloc(1024 * 1024, 'x');
    request[request.length - 1] = 10;
    return closeInReply(t, engine, 600, request);
  },
  { timeout: 120_000 },
);

/** How a client of the churn test ends its connection. */
type Ending = 'fin' | 'rst' | 'midline-fin' | 'midline-rst' | 'silent-fin';
const ENDINGS: Ending[] = ['fin', 'rst', 'midline-fin', 'midline-rst', 'silent-fin'];

/**
 * A line echo server on the engine: every accepted socket answers each line with the same line
 * until a read or write fails, then is closed. Returns the failure codes it met.
 */
function echoServer(engine: Engine, port0 = 0): { port: number; codes: Map<string, number> } {
  const l = engine.listen({ host: '127.0.0.1', port: port0, backlog: 1024 });
  const codes = new Map<string, number>();
  const note = (err: EngineError): void => {
    codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
  };
  const serve = (s: Socket): void => {
    engine.expectLine(
      s,
      null,
      new Callback<string>({
        success: (line: string, sock: Socket) => {
          engine.write(
            sock,
            `${line}\n`,
            new Callback<number>({
              success: () => serve(sock),
              failure: (err: EngineError) => {
                note(err);
                engine.close(sock);
              },
            }),
          );
        },
        failure: (err: EngineError) => {
          note(err);
          engine.close(s);
        },
      }),
    );
  };
  const acceptLoop = (): void => {
    engine.accept(
      l,
      new Callback<Socket>({
        success: (s: Socket) => {
          serve(s);
          acceptLoop();
        },
        failure: (err: EngineError) => {
          if (err.code !== 'ECANCELED') {
            note(err);
            acceptLoop();
          }
        },
      }),
    );
  };
  acceptLoop();
  return { port: portOf(l), codes };
}

/** One client: connects, sends a line (and reads its echo) or half a line, then ends as told. */
function churnClient(port: number, i: number, ending: Ending): Promise<string | null> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.setNoDelay(true);
    let problem: string | null = null;
    let echoed = '';
    c.on('error', (err: NodeJS.ErrnoException) => {
      // A reset of our own making can surface as an error on our side too.
      if (ending !== 'rst' && ending !== 'midline-rst') problem = `client ${i}: ${err.code}`;
    });
    c.on('close', () => resolve(problem));
    c.once('connect', () => {
      switch (ending) {
        case 'fin':
          c.write(`hello ${i}\n`);
          c.on('data', (b: Buffer) => {
            echoed += b.toString();
            if (echoed === `hello ${i}\n`) c.end();
            else if (echoed.length > 32) problem = `client ${i}: echo ${JSON.stringify(echoed)}`;
          });
          break;
        case 'rst':
          c.write(`hello ${i}\n`, () => c.resetAndDestroy());
          break;
        case 'midline-fin':
          c.end(`half a li`);
          c.resume();
          break;
        case 'midline-rst':
          c.write(`half a li`, () => c.resetAndDestroy());
          break;
        case 'silent-fin':
          c.end();
          c.resume();
          break;
      }
    });
  });
}

forEachImpl(
  '10,000 connections ending in FIN, RST or mid-line: the server keeps serving, nothing leaks',
  async (t, engine) => {
    const fdsBefore = fdCount();
    const { port, codes } = echoServer(engine);
    const rand = prng(0x5eed);
    const total = 10_000;
    const wave = 200;
    const problems: string[] = [];
    for (let start = 0; start < total; start += wave) {
      const clients: Array<Promise<string | null>> = [];
      for (let i = start; i < start + wave; i++) {
        const ending = ENDINGS[Math.floor(rand() * ENDINGS.length)]!;
        clients.push(churnClient(port, i, ending));
      }
      for (const p of await withDeadline(Promise.all(clients), 30_000, `wave at ${start}`)) {
        if (p) problems.push(p);
      }
    }
    t.deepEqual(problems.slice(0, 5), [], `${problems.length} clients saw a problem`);
    // Every failure the server met is the peer's doing: EOF (mid-line or not), a reset, a
    // write to a reset peer.
    const expected = new Set(['ERR_INCOMPLETE', 'ECONNRESET', 'EPIPE']);
    for (const code of codes.keys()) t.true(expected.has(code), `server failure ${code}`);
    t.true(
      await waitUntil(() => engine.stats().sockets === 0, 10_000),
      `open sockets: ${engine.stats().sockets}`,
    );
    // A fresh client is still served.
    t.is(await churnClient(port, total, 'fin'), null, 'a fresh client gets its echo');
    t.true(
      await waitUntil(() => engine.stats().sockets === 0, 10_000),
      `open sockets: ${engine.stats().sockets}`,
    );
    t.is(engine.stats().listeners, 1);
    // Every fd is gone with the engine (a thread pool's workers keep two each while it runs).
    await shutdownEngine(engine);
    t.true(
      await waitUntil(() => fdCount() <= fdsBefore, 10_000),
      `fds: ${fdsBefore} before, ${fdCount()} after shutdown`,
    );
  },
  { timeout: 180_000 },
);

// A child with --expose-gc: 64 MiB written to a peer that never reads; once the kernel's
// buffers are full, close(). Prints one JSON line: the write's settlements, the bytes the engine
// sent, resident memory before, while pending and after, and a later round trip's result.
const NEVER_READS = `
import net from 'node:net';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const engine = createEngine({ impl: process.env.IMPL });
const l = engine.listen({ host: '127.0.0.1', port: 0 });
const port = l.address().port;
const acceptOne = () => new Promise((resolve, reject) => engine.accept(l, new Callback({ success: resolve, failure: reject })));
const peer = net.connect(port, '127.0.0.1');
peer.pause();
const sock = await acceptOne();
for (let i = 0; i < 5; i++) { gc(); await sleep(10); }
const rss0 = process.memoryUsage().rss;
const calls = [];
engine.write(sock, Buffer.alloc(64 * 1024 * 1024, 0x61), new Callback({
  success: (n) => calls.push({ ok: true, n }),
  failure: (e) => calls.push({ ok: false, code: e.code, bytesWritten: e.bytesWritten }),
}));
let last = -1;
for (let i = 0; i < 250; i++) {
  await sleep(20);
  const b = engine.stats().bytesWritten;
  if (b > 0 && b === last) break;
  last = b;
}
const sent = engine.stats().bytesWritten;
const rssPending = process.memoryUsage().rss;
const settledBeforeClose = calls.length;
engine.close(sock);
for (let i = 0; i < 250 && calls.length === 0; i++) await sleep(20);
await sleep(100);
let rssAfter = process.memoryUsage().rss;
for (let i = 0; i < 100 && rssAfter > rss0 + 16 * 1024 * 1024; i++) {
  gc();
  await sleep(20);
  rssAfter = process.memoryUsage().rss;
}
peer.destroy();
// The engine keeps working.
const peer2 = net.connect(port, '127.0.0.1');
const sock2 = await acceptOne();
const echo = await new Promise((resolve) => {
  peer2.once('data', (b) => resolve(String(b)));
  engine.write(sock2, 'still here\\n', new Callback({ success: () => {}, failure: (e) => resolve(e.code) }));
});
peer2.destroy();
console.log(JSON.stringify({ calls, settledBeforeClose, sent, rss0, rssPending, rssAfter, echo, sockets: engine.stats().sockets }));
await engine.shutdown();
`;

forEachImpl(
  '64 MiB to a peer that never reads, then close(): one ECANCELED, memory released, engine works',
  async (t, _engine, impl) => {
    const r = await runNodeScript(NEVER_READS, { IMPL: impl }, 30_000, ['--expose-gc']);
    t.false(r.timedOut, 'the child finished (no hang)');
    t.is(r.code, 0, r.stderr.slice(0, 2000));
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      calls: Array<{ ok: boolean; code?: string; n?: number; bytesWritten?: number }>;
      settledBeforeClose: number;
      sent: number;
      rss0: number;
      rssPending: number;
      rssAfter: number;
      echo: string;
      sockets: number;
    };
    const MiB = 1024 * 1024;
    t.is(out.settledBeforeClose, 0, 'the write was still pending at close()');
    t.true(out.sent > 0 && out.sent < 64 * MiB, `bytes sent before close: ${out.sent}`);
    t.is(out.calls.length, 1, `settlements: ${JSON.stringify(out.calls)}`);
    t.false(out.calls[0]!.ok);
    t.is(out.calls[0]!.code, 'ECANCELED');
    t.is(out.calls[0]!.bytesWritten, out.sent, 'bytesWritten: what went out');
    t.true(
      out.rssPending - out.rss0 >= 48 * MiB,
      `64 MiB held while pending: ${(out.rssPending - out.rss0) / MiB} MiB`,
    );
    if (rssIsMeaningful) {
      t.true(
        out.rssAfter - out.rss0 <= 16 * MiB,
        `released after close(): ${(out.rssAfter - out.rss0) / MiB} MiB above the start`,
      );
    }
    t.is(out.echo, 'still here\n', 'the engine still writes');
    t.is(out.sockets, 1, 'only the new socket is open');
  },
  { timeout: 60_000 },
);
