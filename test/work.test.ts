// submitWork (tasks on the engine's worker threads) and the thread-safe entry
// (callSoonThreadsafe), on every implementation.
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { callSoonThreadsafe, createEngine } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  implsUnderTest,
  once,
  runNodeScript,
} from './helpers/harness.js';

const tasks = new URL('../../test/fixtures/tasks.mjs', import.meta.url);
const task = (fn: string, ...args: unknown[]) => ({ module: tasks, fn, args });

forEachImpl(
  'submitWork: the value a task returns (or resolves to) reaches success',
  async (t, engine) => {
    const a = once<number>();
    engine.submitWork(task('add', 2, 40), a.cb);
    t.is(await expectOk(t, a), 42);
    const b = once<string>();
    engine.submitWork(task('later', 20, 'awaited'), b.cb);
    t.is(await expectOk(t, b), 'awaited');
    // A path works as well as a URL.
    const c = once<number>();
    engine.submitWork({ module: tasks.pathname, fn: 'add', args: [1, 1] }, c.cb);
    t.is(await expectOk(t, c), 2);
  },
);

forEachImpl('submitWork: what a task throws reaches failure, as thrown', async (t, engine) => {
  const a = once<unknown>();
  engine.submitWork(task('fail', 'no good'), a.cb);
  const o = await a.result();
  t.false(o.ok);
  const err = o.err as unknown as Error;
  t.is(err.name, 'RangeError');
  t.is(err.message, 'no good');
  const b = once<unknown>();
  engine.submitWork(task('missing'), b.cb);
  const ob = await b.result();
  t.false(ob.ok);
  t.regex((ob.err as unknown as Error).message, /no exported function "missing"/);
});

forEachImpl(
  'submitWork: a deadline fails a running task ETIMEDOUT and stops its thread',
  async (t, engine) => {
    const a = once<string>({ timeout: 50 });
    const started = Date.now();
    // The task would spin for 30 s: settling in well under that shows the deadline ended it, with
    // room for a loaded machine to be slow to start the thread.
    engine.submitWork(task('spin', 30_000), a.cb);
    await expectErr(t, a, 'ETIMEDOUT');
    t.true(Date.now() - started < 15_000, 'settled at the deadline, not when the task would end');
    t.is(a.calls.length, 1);
    // The pool goes on with a fresh thread.
    const b = once<number>();
    engine.submitWork(task('add', 1, 2), b.cb);
    t.is(await expectOk(t, b), 3);
  },
);

forEachImpl(
  'submitWork: cancel takes back a queued task (true), not a running one (false)',
  async (t, _e, impl) => {
    const engine = createEngine({ impl, work: { threads: 1 } });
    try {
      const running = once<string>();
      const queued = once<string>();
      engine.submitWork(task('later', 100, 'ran'), running.cb);
      engine.submitWork(task('later', 1, 'never'), queued.cb);
      t.false(running.cancel(), 'a running task cannot be taken back');
      t.true(queued.cancel(), 'a queued one can');
      t.false(queued.cancel(), 'only once');
      t.is(queued.calls.length, 0, 'never inside cancel()');
      await expectErr(t, queued, 'ECANCELED');
      t.is(await expectOk(t, running), 'ran');
      t.is(running.calls.length, 1);
    } finally {
      await engine.shutdown();
    }
  },
);

forEachImpl(
  'submitWork: 500 tasks on a bounded pool, each settled once with its own value',
  async (t, engine) => {
    t.is(engine.stats().workThreads, 0, 'no thread before the first task');
    const n = 500;
    const all = Array.from({ length: n }, (_, i) => {
      const o = once<number>();
      engine.submitWork(task('add', i, 1000), o.cb);
      return o;
    });
    t.is(engine.stats().opsInFlight >= n, true);
    const values = await Promise.all(all.map((o) => expectOk(t, o)));
    t.deepEqual(
      values,
      Array.from({ length: n }, (_, i) => i + 1000),
    );
    t.true(all.every((o) => o.calls.length === 1));
    t.true(engine.stats().workThreads >= 1);
    t.true(
      engine.stats().workThreads <= Math.max(2, (await import('node:os')).availableParallelism()),
    );
  },
);

forEachImpl('submitWork: transferred buffers move to the thread', async (t, engine) => {
  const buf = new Uint8Array([1, 2, 3, 4]).buffer;
  const a = once<number>();
  engine.submitWork({ module: tasks, fn: 'sumBytes', args: [buf], transfer: [buf] }, a.cb);
  t.is(buf.byteLength, 0, 'moved, not copied');
  t.is(await expectOk(t, a), 10);
});

forEachImpl('submitWork: bad tasks throw before anything is queued', (t, engine) => {
  const o = once<unknown>();
  t.throws(() => engine.submitWork(null as never, o.cb), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.submitWork({ module: '', fn: 'x' }, o.cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.submitWork({ module: tasks, fn: '' }, o.cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.submitWork({ module: tasks, fn: 'add', args: 3 as never }, o.cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => createEngine({ work: { threads: 0 } }), { code: 'ERR_OUT_OF_RANGE' });
  t.is(engine.stats().opsInFlight, 0);
});

const shutdownScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const e = createEngine({ impl: process.env.IMPL, work: { threads: 2 } });
const tasks = new URL(${JSON.stringify(tasks.href)});
const out = [];
for (let i = 0; i < 4; i++) {
  e.submitWork({ module: tasks, fn: 'spin', args: [60000] }, new Callback({
    success: () => out.push('ok'), failure: (err) => out.push(err.code) }));
}
await new Promise((r) => setTimeout(r, 300));
const threads = e.stats().workThreads;
await e.shutdown();
console.log(JSON.stringify({ threads, out }));
`;

forEachImpl(
  'shutdown() stops running and queued tasks (ECANCELED) and leaves no thread behind',
  async (t, engine, impl) => {
    t.truthy(engine);
    const r = await runNodeScript(shutdownScript, { IMPL: impl }, 20_000);
    t.false(r.timedOut, 'the process exited: no worker thread kept it alive');
    t.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { threads: number; out: string[] };
    t.is(out.threads, 2);
    t.deepEqual(out.out, ['ECANCELED', 'ECANCELED', 'ECANCELED', 'ECANCELED']);
  },
);

const workerCode = `
const { workerData } = require('node:worker_threads');
import(workerData.url).then(({ callSoonThreadsafe }) => {
  for (let i = 0; i < workerData.n; i++) callSoonThreadsafe(workerData.port, { i, bytes: new Uint8Array([i & 255]) });
});
`;

forEachImpl(
  'callSoonThreadsafe: a worker thread has the engine thread run 1,000 messages, in order',
  async (t, engine) => {
    const got: number[] = [];
    let inside = false;
    const done = new Promise<void>((resolve) => {
      const entry = engine.threadsafe((m) => {
        t.false(inside, 'never re-entrant');
        inside = true;
        const { i, bytes } = m as { i: number; bytes: Uint8Array };
        t.is(bytes[0], i & 255);
        got.push(i);
        inside = false;
        if (got.length === 1000) {
          entry.close();
          resolve();
        }
      });
      const url = new URL('../../dist/index.js', import.meta.url).href;
      const w = new Worker(workerCode, {
        eval: true,
        workerData: { port: entry.port, n: 1000, url },
        transferList: [entry.port],
      });
      w.on('error', (e) => t.fail(String(e)));
    });
    await done;
    t.deepEqual(
      got,
      Array.from({ length: 1000 }, (_, i) => i),
    );
  },
);

test('callSoonThreadsafe is exported for code on other threads', (t) => {
  t.is(typeof callSoonThreadsafe, 'function');
  t.true(implsUnderTest().length > 0);
  const e = createEngine();
  t.throws(() => e.threadsafe(3 as never), { code: 'ERR_INVALID_ARG_TYPE' });
  return e.shutdown();
});
