// Hazards of a native addon's life cycle, each in a child process (a crash must not take the
// test runner down): engines dropped mid-op and collected, process.exit() with ops in flight,
// many engines made and shut down (no fds or threads left), and engines in worker threads that
// end, exit, or are terminated in the middle of a callback.
import fs from 'node:fs';
import { type ChildResult, type Ctx, forEachImpl, runNodeScript } from './helpers/harness.js';

/** Asserts the child exited by itself with `code`, without a crash signal. */
function exitedCleanly(t: Ctx, r: ChildResult, code = 0): void {
  t.false(r.timedOut, `the child exited by itself (stderr: ${r.stderr.slice(0, 2000)})`);
  t.is(r.signal, null, `no crash signal (stderr: ${r.stderr.slice(0, 2000)})`);
  t.is(r.code, code, `exit code (stderr: ${r.stderr.slice(0, 2000)})`);
  t.false(/FATAL ERROR|Segmentation fault|Aborted/.test(r.stderr), r.stderr.slice(0, 2000));
}

// A file for the children's file reads.
const dataFile = `/tmp/ae-hazards-${process.pid}.bin`;
fs.writeFileSync(dataFile, Buffer.alloc(256 * 1024, 7));
process.on('exit', () => fs.rmSync(dataFile, { force: true }));

// ---------------------------------------------------------------------------------------------
// Engines dropped while ops are in flight, then collected

const droppedScript = `
import net from 'node:net';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
let settled = 0;
const want = 4 * 5;
const done = new Promise((resolve) => {
  globalThis.settle = () => { if (++settled === want) resolve(); };
});
const cb = () => new Callback({ success: () => settle(), failure: (e) => { console.log('failure ' + e.code); settle(); } });
const ports = [];
for (let i = 0; i < 5; i++) {
  // Every reference to the engine is dropped once its ops are submitted.
  (() => {
    const e = createEngine({ impl: process.env.IMPL });
    e.callLater(30, () => settle());
    e.open(process.env.DATA_FILE, new Callback({ success: (f) => {
      e.readChunk(f, 4096, new Callback({ success: (b) => { e.close(f); settle(); } }));
    } }));
    e.callSoon(() => settle());
    const l = e.listen({ port: 0 });
    ports.push(l.address().port);
    e.accept(l, new Callback({ success: (s) => {
      e.readUntil(s, '\\n', new Callback({ success: () => { e.close(s); e.close(l); settle(); } }));
    } }));
  })();
}
for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
for (const port of ports) {
  const c = net.connect(port, '127.0.0.1', () => c.end('hi\\n'));
  c.on('error', () => {});
}
for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
await done;
globalThis.gc();
console.log('settled ' + settled);
`;

forEachImpl(
  'engines dropped mid-op and collected: every op still settles, no crash',
  async (t, _engine, impl) => {
    const r = await runNodeScript(droppedScript, { IMPL: impl, DATA_FILE: dataFile }, 30_000, [
      '--expose-gc',
    ]);
    exitedCleanly(t, r);
    t.is(r.stdout.trim(), 'settled 20');
  },
  { serial: true },
);

// ---------------------------------------------------------------------------------------------
// process.exit() with ops in flight

const exitScript = `
import net from 'node:net';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL });
const l = e.listen({ port: 0 });
e.accept(l, new Callback({}));
const l2 = e.listen({ port: 0 });
e.accept(l2, new Callback({ success: (s) => {
  e.readChunk(s, 100, new Callback({}));
  e.readUntil(s, '\\n', new Callback({}));
  e.open(process.env.DATA_FILE, new Callback({ success: (f) => {
    for (let i = 0; i < 8; i++) e.readChunk(f, 32768, { position: i * 32768 }, new Callback({}));
    e.readAll(f, { maxBytes: Infinity }, new Callback({}));
    e.callLater(1e9, () => {});
    e.callSoon(() => process.exit(7));
  } }));
} }));
const c = net.connect(l2.address().port, '127.0.0.1');
c.on('error', () => {});
`;

forEachImpl(
  'process.exit() with accepts, reads, file reads and timers in flight: clean exit',
  async (t, _engine, impl) => {
    const r = await runNodeScript(exitScript, { IMPL: impl, DATA_FILE: dataFile }, 20_000);
    exitedCleanly(t, r, 7);
  },
  { serial: true },
);

// ---------------------------------------------------------------------------------------------
// Many engines: nothing left behind

const manyScript = `
import fs from 'node:fs';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const fds = () => fs.readdirSync('/proc/self/fd').length;
const threads = () => fs.readdirSync('/proc/self/task').length;
async function one(drive) {
  const e = createEngine({ impl: process.env.IMPL, drive });
  const l = e.listen({ port: 0 });
  e.accept(l, new Callback({}));
  let read = false;
  const opened = new Promise((resolve) => e.open(process.env.DATA_FILE, new Callback({ success: (f) => {
    e.readChunk(f, 4096, new Callback({ success: () => resolve(), failure: () => resolve() }));
  }, failure: () => resolve() }))).then(() => { read = true; });
  // A manual-drive engine runs only when asked to.
  for (let i = 0; drive === 'manual' && !read && i < 1000; i++) {
    e.runOnce({ timeout: 5 });
    await new Promise((r) => setImmediate(r));
  }
  await opened;
  e.callLater(1e6, () => {});
  await e.shutdown();
}
// Node's own lazily made threads and fds, and the engine's first use, before the baseline.
await one('auto');
await new Promise((r) => setTimeout(r, 100));
const before = { fds: fds(), threads: threads() };
for (let i = 0; i < 200; i++) await one(i % 2 ? 'auto' : 'manual');
await new Promise((r) => setTimeout(r, 200));
const after = { fds: fds(), threads: threads() };
console.log(JSON.stringify({ before, after }));
`;

forEachImpl(
  '200 engines created and shut down: no fd or thread growth',
  async (t, _engine, impl) => {
    const r = await runNodeScript(manyScript, { IMPL: impl, DATA_FILE: dataFile }, 60_000);
    exitedCleanly(t, r);
    const { before, after } = JSON.parse(r.stdout.trim()) as {
      before: { fds: number; threads: number };
      after: { fds: number; threads: number };
    };
    t.is(after.fds, before.fds, 'open fds');
    t.true(after.threads <= before.threads, `threads ${before.threads} -> ${after.threads}`);
  },
  { timeout: 90_000, serial: true },
);

// ---------------------------------------------------------------------------------------------
// Engines in worker threads

// The worker's body for each scenario; `e` is its engine, `Callback` the class.
const workerBodies: Record<string, string> = {
  // Created, used, and the worker ends by itself, without shutdown().
  ends: `e.callSoon(() => parentPort.postMessage('used'));`,
  // The same with a manual-drive engine.
  endsManual: `e.callSoon(() => parentPort.postMessage('used')); e.runOnce();`,
  // A listener with an accept, a socket with a read, a timer: the parent terminates it.
  pending: `
    const net = await import('node:net');
    const l = e.listen({ port: 0 });
    e.accept(l, new Callback({}));
    const l2 = e.listen({ port: 0 });
    e.accept(l2, new Callback({ success: (s) => {
      e.readChunk(s, 10, new Callback({}));
      e.open(process.env.DATA_FILE, new Callback({ success: (f) => {
        e.readChunk(f, 4096, { position: 0 }, new Callback({}));
        parentPort.postMessage('terminate me');
      } }));
    } }));
    e.callLater(1e6, () => {});
    const c = net.connect(l2.address().port, '127.0.0.1');
    c.on('error', () => {});
  `,
  // A callback that busy-loops until the parent terminates the worker.
  busy: `
    const l = e.listen({ port: 0 });
    e.accept(l, new Callback({}));
    e.callSoon(() => { parentPort.postMessage('terminate me'); for (;;) {} });
  `,
  // process.exit() inside the worker, with ops in flight.
  exits: `
    const l = e.listen({ port: 0 });
    e.accept(l, new Callback({}));
    e.callLater(1e6, () => {});
    e.callLater(5, () => process.exit(0));
  `,
};

function workerScript(scenario: string, workers: number, rounds: number): string {
  const drive = scenario === 'endsManual' ? 'manual' : 'auto';
  const source = `
import { parentPort } from 'node:worker_threads';
const { createEngine, Callback } = await import(${JSON.stringify('ENGINE_URL_HERE')});
const e = createEngine({ impl: process.env.IMPL, drive: '${drive}' });
${workerBodies[scenario]}
`;
  return `
import { Worker } from 'node:worker_threads';
const source = ${JSON.stringify(source)}.replace('ENGINE_URL_HERE', process.env.ENGINE_URL);
const url = new URL('data:text/javascript,' + encodeURIComponent(source));
for (let round = 0; round < ${rounds}; round++) {
  const exits = [];
  for (let i = 0; i < ${workers}; i++) {
    const w = new Worker(url);
    w.on('error', (err) => { console.error('worker error: ' + (err && err.stack || err)); process.exitCode = 1; });
    w.on('message', (m) => { if (m === 'terminate me') setTimeout(() => void w.terminate(), 20); });
    exits.push(new Promise((resolve) => w.on('exit', resolve)));
  }
  await Promise.all(exits);
}
console.log('done');
`;
}

for (const [scenario, title, workers] of [
  ['ends', 'a worker that creates an engine, uses it and ends without shutdown()', 1],
  ['endsManual', 'a worker with a manual-drive engine that ends without shutdown()', 1],
  ['pending', 'a worker terminated with accepts, reads, file reads and timers pending', 1],
  ['busy', 'a worker terminated while an engine callback runs', 1],
  ['exits', 'process.exit() inside a worker with ops in flight', 1],
  ['ends', 'two workers loading the addon and ending at once', 2],
] as const) {
  forEachImpl(
    `${title}: the process survives`,
    async (t, _engine, impl) => {
      const r = await runNodeScript(
        workerScript(scenario, workers, 3),
        { IMPL: impl, DATA_FILE: dataFile },
        30_000,
      );
      exitedCleanly(t, r);
      t.is(r.stdout.trim(), 'done');
    },
    { serial: true },
  );
}
