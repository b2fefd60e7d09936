// Load: 500 concurrent connections doing line round trips; 100 reads on 100 sockets with every
// other one cancelled; two engines side by side; 10k timers in deadline order.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Callback, createEngine, type EngineError, type Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  onCleanup,
  once,
  portOf,
  prng,
  engineUrl,
  tcpPair,
  waitUntil,
  withDeadline,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl(
  '500 concurrent connections x 3 expectLine round trips',
  async (t, engine) => {
    const l = engine.listen({ port: 0, backlog: 1024 });
    const serverErrors: string[] = [];
    let accepted = 0;

    const serve = (sock: Socket): void => {
      engine.expectLine(
        sock,
        null,
        new Callback<string>({
          success: (line) => {
            if (line === 'QUIT') return engine.close(sock);
            engine.write(
              sock,
              `echo ${line}\n`,
              new Callback<number>({
                success: () => serve(sock),
                failure: (e) => serverErrors.push(`write: ${e.code}`),
              }),
            );
          },
          failure: (e: EngineError) => {
            serverErrors.push(`expectLine: ${e.code}`);
            engine.close(sock);
          },
        }),
      );
    };
    const acceptNext = (): void => {
      engine.accept(
        l,
        new Callback<Socket>({
          success: (sock) => {
            accepted++;
            acceptNext();
            serve(sock);
          },
          failure: (e) => {
            if (e.code !== 'ECANCELED') serverErrors.push(`accept: ${e.code}`);
          },
        }),
      );
    };
    acceptNext();

    const n = 500;
    const rounds = 3;
    const port = portOf(l);
    const clientOne = (i: number): Promise<string[]> =>
      new Promise((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        onCleanup(engine, () => void c.destroy());
        const replies: string[] = [];
        let buf = '';
        let k = 0;
        c.setEncoding('utf8');
        c.on('error', reject);
        c.on('connect', () => c.write(`hello ${i} 0\n`));
        c.on('data', (d: string) => {
          buf += d;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            replies.push(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            k++;
            c.write(k < rounds ? `hello ${i} ${k}\n` : 'QUIT\n');
          }
        });
        c.on('end', () => {
          c.end();
          resolve(replies);
        });
      });
    const all = await withDeadline(
      Promise.all(Array.from({ length: n }, (_, i) => clientOne(i))),
      90_000,
      () => `all clients (accepted ${accepted})`,
    );
    let wrong = 0;
    all.forEach((replies, i) => {
      const want = Array.from({ length: rounds }, (_, k) => `echo hello ${i} ${k}`);
      if (JSON.stringify(replies) !== JSON.stringify(want)) wrong++;
    });
    t.is(wrong, 0, 'every client got its own echoes, in order');
    t.is(accepted, n);
    t.deepEqual(serverErrors, []);
    t.true(
      await waitUntil(() => engine.stats().opsInFlight === 1, 5_000),
      'only the next accept is pending',
    );
  },
  { timeout: 120_000 },
);

forEachImpl(
  '100 reads on 100 sockets: cancel every other one, the rest complete',
  async (t, engine) => {
    const pairs = [];
    for (let i = 0; i < 100; i++) pairs.push(await tcpPair(engine));
    const reads = pairs.map((p) => {
      const r = once<string>();
      engine.expectLine(p.sock, null, r.cb);
      return r;
    });
    const won = reads.map((r, i) => (i % 2 === 0 ? r.cancel() : null));
    t.true(
      won.every((w) => w === null || w === true),
      'each cancel of a pending read wins',
    );
    await Promise.all(pairs.map((p, i) => p.write(`line ${i}\n`)));
    for (let i = 0; i < 100; i++) {
      if (i % 2 === 0) await expectErr(t, reads[i]!, 'ECANCELED');
      else t.is(await expectOk(t, reads[i]!), `line ${i}`);
    }
    // The cancelled ones lost nothing: their line is still there for the next read.
    const again = pairs
      .filter((_, i) => i % 2 === 0)
      .map((p) => {
        const r = once<string>();
        engine.expectLine(p.sock, null, r.cb);
        return r;
      });
    for (let j = 0; j < again.length; j++) t.is(await expectOk(t, again[j]!), `line ${2 * j}`);
  },
);

forEachImpl('two engines do not interfere', async (t, engine, impl) => {
  const other = createEngine({ impl });
  let otherDown = false;
  try {
    const a = await tcpPair(engine);
    const b = await tcpPair(other);
    onCleanup(engine, () => void b.client.destroy());
    const ra = once<string>();
    const rb = once<string>();
    engine.expectLine(a.sock, null, ra.cb);
    other.expectLine(b.sock, null, rb.cb);
    t.true(ra.cancel());
    await expectErr(t, ra, 'ECANCELED');
    t.is(rb.calls.length, 0, 'a cancel on one engine leaves the other alone');
    await b.write('to other\n');
    t.is(await expectOk(t, rb), 'to other');

    const ra2 = once<string>();
    engine.expectLine(a.sock, null, ra2.cb);
    otherDown = true;
    await other.shutdown();
    await a.write('still fine\n');
    t.is(await expectOk(t, ra2), 'still fine', 'shutting one engine down leaves the other working');
  } finally {
    if (!otherDown) await other.shutdown();
  }
});

forEachImpl('10k timers fire in deadline order', async (t, engine) => {
  const rnd = prng(42);
  const n = 10_000;
  const delays: number[] = [];
  // The engine reads its clock somewhere inside callLater(): its deadline lies between these.
  const dueFrom: number[] = [];
  const dueTo: number[] = [];
  const fired: number[] = [];
  for (let i = 0; i < n; i++) {
    const ms = 1 + Math.floor(rnd() * 60);
    delays.push(ms);
    dueFrom.push(performance.now() + ms);
    engine.callLater(ms, () => fired.push(i));
    dueTo.push(performance.now() + ms);
  }
  t.true(await waitUntil(() => fired.length === n, 20_000), `${fired.length} of ${n} fired`);
  // Out of order: a timer fired right before one that was certainly due earlier (1 ms slack
  // for the clocks' granularity), or equal delays submitted in the same millisecond not FIFO.
  const wrong: string[] = [];
  for (let k = 1; k < n; k++) {
    const a = fired[k - 1]!;
    const b = fired[k]!;
    if (dueFrom[a]! > dueTo[b]! + 1) {
      wrong.push(`#${a} (${delays[a]} ms) before #${b} (${delays[b]} ms)`);
    }
  }
  t.deepEqual(wrong.slice(0, 10), [], `${wrong.length} out of order`);
  t.is(new Set(fired).size, n, 'each timer fired once');
});

// ---------------------------------------------------------------------------------------------
// Worker threads: an engine per worker, at the same time; a worker terminated with ops pending

const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { createEngine, Callback } = await import(workerData.url);
  const e = createEngine({ impl: workerData.impl });
  const l = e.listen({ port: 0 });
  if (workerData.mode === 'pending') {
    e.accept(l, new Callback({}));
    e.callLater(60_000, () => {});
    parentPort.postMessage('ready');
    return;
  }
  const line = await new Promise((resolve, reject) => {
    e.accept(l, new Callback({
      success: (s) => e.expectLine(s, null, new Callback({ success: resolve, failure: reject })),
      failure: reject,
    }));
    e.connect({ host: '127.0.0.1', port: l.address().port }, new Callback({
      success: (c) => e.write(c, 'from worker ' + workerData.n + '\\n', new Callback({ failure: reject })),
      failure: reject,
    }));
  });
  await e.shutdown();
  parentPort.postMessage(line);
})().catch((err) => parentPort.postMessage('error: ' + err.code + ' ' + err.message));
`;

function runWorker(data: Record<string, unknown>): {
  worker: Worker;
  first: Promise<unknown>;
  exit: Promise<number>;
} {
  const worker = new Worker(workerCode, { eval: true, workerData: { url: engineUrl, ...data } });
  const first = new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const exit = new Promise<number>((resolve) => worker.once('exit', resolve));
  return { worker, first, exit };
}

forEachImpl(
  'engines in two worker threads at once, and in the main thread',
  async (t, engine, impl) => {
    const a = runWorker({ impl, n: 1 });
    const b = runWorker({ impl, n: 2 });
    const p = await tcpPair(engine);
    const main = once<string>();
    engine.expectLine(p.sock, null, main.cb);
    await p.write('main thread\n');
    t.deepEqual(await withDeadline(Promise.all([a.first, b.first]), 20_000, 'both workers'), [
      'from worker 1',
      'from worker 2',
    ]);
    t.is(await expectOk(t, main), 'main thread');
    t.deepEqual(
      await withDeadline(Promise.all([a.exit, b.exit]), 20_000, 'both workers to exit'),
      [0, 0],
    );
  },
);

forEachImpl('a worker terminated with ops pending goes away cleanly', async (t, engine, impl) => {
  const w = runWorker({ impl, mode: 'pending' });
  t.is(await withDeadline(w.first, 20_000, 'the worker to start'), 'ready');
  await w.worker.terminate();
  t.is(await withDeadline(w.exit, 20_000, 'the worker to exit'), 1);
  // this thread's engine is unaffected
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, null, r.cb);
  await p.write('after terminate\n');
  t.is(await expectOk(t, r), 'after terminate');
});

// ---------------------------------------------------------------------------------------------
// Out of fds: accept fails EMFILE or waits, without a busy loop, and recovers

const emfileScript = `
import fs from 'node:fs';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
const l = e.listen({ port: 0 });
const socks = [];
const failures = [];
const acceptNext = () => e.accept(l, new Callback({
  success: (s) => { socks.push(s); acceptNext(); },
  failure: (err) => { failures.push(err.code); if (err.code !== 'ECANCELED') setTimeout(acceptNext, 20); },
}));
acceptNext();
const say = (s) => process.stdout.write(s + '\\n');
const filler = [];
process.stdin.on('data', async (d) => {
  for (const cmd of d.toString().trim().split('\\n')) {
    if (cmd === 'CPU') {
      const c0 = process.cpuUsage();
      setTimeout(() => {
        const c = process.cpuUsage(c0);
        say('CPU ' + Math.round((c.user + c.system) / 1000) + ' ' + socks.length + ' ' + JSON.stringify([...new Set(failures)]));
      }, 1000);
    } else if (cmd === 'FREE') {
      for (const fd of filler) fs.closeSync(fd);
      filler.length = 0;
      say('FREED');
    } else if (cmd === 'COUNT') {
      say('COUNT ' + socks.length);
    } else if (cmd === 'EXIT') {
      await e.shutdown();
      say('BYE');
      process.exit(0);
    }
  }
});
try { for (;;) filler.push(fs.openSync('/dev/null', 'r')); } catch {}
fs.closeSync(filler.pop());
fs.closeSync(filler.pop());
say('PORT ' + l.address().port);
`;

forEachImpl(
  'out of fds: accept fails EMFILE or waits, no busy loop, recovers when fds are freed',
  async (t, engine, impl) => {
    t.truthy(engine);
    const child = spawn(
      'prlimit',
      ['--nofile=128:128', '--', process.execPath, '--input-type=module', '-e', emfileScript],
      {
        env: { ...process.env, ENGINE_URL: engineUrl, IMPL: impl },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const lines: string[] = [];
    const waiters: Array<{ prefix: string; resolve: (l: string) => void }> = [];
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiters.findIndex((x) => line.startsWith(x.prefix));
        if (w >= 0) waiters.splice(w, 1)[0]!.resolve(line);
        else lines.push(line);
      }
    });
    const next = (prefix: string): Promise<string> => {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]!);
      return withDeadline(
        new Promise<string>((resolve) => waiters.push({ prefix, resolve })),
        15_000,
        () => `"${prefix}" from the child; stderr: ${stderr}`,
      );
    };
    const clients: net.Socket[] = [];
    const connect = (port: number) => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
      return c;
    };
    try {
      const port = Number((await next('PORT')).split(' ')[1]);
      for (let i = 0; i < 6; i++) connect(port);
      await new Promise((r) => setTimeout(r, 300));
      child.stdin.write('CPU\n');
      const [, cpuMs, accepted, failures] = (await next('CPU')).split(' ');
      t.log(`while out of fds: ${cpuMs} ms CPU in 1 s, ${accepted} accepted, failures ${failures}`);
      t.true(Number(cpuMs) < 500, `no busy loop: ${cpuMs} ms of CPU in one second`);
      t.true(Number(accepted) <= 2, 'at most the two free fds were used');
      const codes = JSON.parse(failures ?? '[]') as string[];
      t.true(
        codes.every((c) => c === 'EMFILE' || c === 'ENFILE'),
        `accept failures: ${codes.join(', ')}`,
      );
      child.stdin.write('FREE\n');
      await next('FREED');
      const before = Number(accepted);
      connect(port);
      let count = before;
      for (let i = 0; i < 100 && count <= before; i++) {
        await new Promise((r) => setTimeout(r, 50));
        child.stdin.write('COUNT\n');
        count = Number((await next('COUNT')).split(' ')[1]);
      }
      t.true(count > before, `accepting again after fds were freed (${before} → ${count})`);
      child.stdin.write('EXIT\n');
      await next('BYE');
    } finally {
      for (const c of clients) c.destroy();
      child.kill('SIGKILL');
    }
  },
  { timeout: 60_000 },
);
