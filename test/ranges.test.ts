// Integers that cross into native code: every numeric argument and option is range-checked in
// JavaScript before any conversion (no ToInt32 wrap-around adopting another owner's fd, no huge
// allocation aborting the process), throws synchronously, queues nothing, and leaves the engine
// working. Timeouts and delays accept any finite number of ms without overflowing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Callback, createEngine, File } from 'async-engine';
import test from 'ava';
import {
  type Ctx,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  implsUnderTest,
  noFdLeaks,
  onCleanup,
  once,
  sleep,
  tcpPair,
} from './helpers/harness.js';

noFdLeaks();

/** The hostile integers of the table, by name. */
const HOSTILE: Array<[string, number]> = [
  ['2**32 + 3', 2 ** 32 + 3],
  ['2**31', 2 ** 31],
  ['-1', -1],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['1.5', 1.5],
  ['2**53', 2 ** 53],
];

/** Asserts `fn` throws a RangeError or TypeError with a Node-style code, synchronously. */
function throwsArgError(t: Ctx, what: string, fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  t.true(
    thrown instanceof RangeError || thrown instanceof TypeError,
    `${what}: expected a RangeError or TypeError, got ${String(thrown)}`,
  );
  const code = (thrown as { code?: string } | undefined)?.code;
  t.true(
    code === 'ERR_OUT_OF_RANGE' ||
      code === 'ERR_INVALID_ARG_TYPE' ||
      code === 'ERR_INVALID_ARG_VALUE',
    `${what}: code ${String(code)}`,
  );
}

/** Asserts the engine still runs a callSoon and a timer, with nothing left over from the table. */
async function stillWorks(t: Ctx, engine: Engine, inFlightBefore: number): Promise<void> {
  t.is(engine.stats().opsInFlight, inFlightBefore, 'nothing was queued by a refused call');
  await new Promise<void>((resolve) => engine.callSoon(resolve));
  await new Promise<void>((resolve) => engine.callLater(1, resolve));
}

/** A file with a few bytes, removed when the test's engine is cleaned up. */
function smallFile(engine: Engine): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-ranges-'));
  onCleanup(engine, () => fs.rmSync(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'f');
  fs.writeFileSync(p, 'hello\n');
  return p;
}

function openFile(t: Ctx, engine: Engine, p: string): Promise<File> {
  const tr = once<File>({}, 'open');
  engine.open(p, tr.cb);
  return expectOk(t, tr);
}

// Every argument that would reach native code as an integer, with the values of the table that
// are legitimately in its range (if any).
type Case = {
  name: string;
  /** Values of HOSTILE that this argument accepts (e.g. 1.5 ms for a delay). */
  accepts?: string[];
  call: (engine: Engine, v: number, ctx: { file: File }) => unknown;
};

const CASES: Case[] = [
  { name: 'adopt(fd)', call: (e, v) => e.adopt(v) },
  { name: 'listen({ backlog })', call: (e, v) => e.listen({ port: 0, backlog: v }) },
  { name: 'listen({ port })', call: (e, v) => e.listen({ port: v }) },
  {
    name: 'connect({ port })',
    call: (e, v) => e.connect({ host: '127.0.0.1', port: v }, new Callback({})),
  },
  { name: 'getaddrinfo(port)', call: (e, v) => e.getaddrinfo('127.0.0.1', v, new Callback({})) },
  { name: 'runOnce({ timeout })', accepts: ['1.5'], call: (e, v) => e.runOnce({ timeout: v }) },
  {
    name: 'callLater(ms)',
    accepts: ['2**32 + 3', '2**31', '1.5', '2**53'],
    call: (e, v) => e.callLater(v, () => {}).cancel(),
  },
  {
    name: 'Callback timeout',
    accepts: ['2**32 + 3', '2**31', '1.5', '2**53'],
    call: (_e, v) => new Callback({ timeout: v }),
  },
  { name: 'readChunk(size)', call: (e, v, c) => e.readChunk(c.file, v, new Callback({})) },
  { name: 'readExactly(n)', call: (e, v, c) => e.readExactly(c.file, v, new Callback({})) },
  {
    name: 'readChunk({ position })',
    accepts: ['2**32 + 3', '2**31'],
    call: (e, v, c) => e.readChunk(c.file, 1, { position: v }, new Callback({})),
  },
  {
    name: 'readAll({ maxBytes })',
    accepts: ['2**32 + 3', '2**31', 'Infinity'],
    call: (e, v, c) => e.readAll(c.file, { maxBytes: v }, new Callback({})),
  },
  {
    name: 'open({ mode })',
    call: (e, v) => e.open('/nonexistent-dir/x', { flags: 'w', mode: v }, new Callback({})),
  },
  {
    name: 'open({ flags })',
    call: (e, v) => e.open('/nonexistent-dir/x', { flags: v }, new Callback({})),
  },
];

for (const c of CASES) {
  forEachImpl(
    `hostile integers: ${c.name} throws synchronously, queues nothing`,
    async (t, engine) => {
      const file = await openFile(t, engine, smallFile(engine));
      const before = engine.stats().opsInFlight;
      for (const [label, v] of HOSTILE) {
        if (c.accepts?.includes(label)) continue;
        throwsArgError(t, `${c.name} = ${label}`, () => c.call(engine, v, { file }));
      }
      await stillWorks(t, engine, before);
      engine.close(file);
    },
  );
}

forEachImpl('adopt(2**32 + fd) does not take over fd', async (t, engine) => {
  const pair = await tcpPair(engine);
  const fd = pair.sock.fileno();
  t.throws(() => engine.adopt(2 ** 32 + fd), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' });
  // The descriptor still belongs to its socket: a write on it reaches the peer.
  const w = once<number>({}, 'write');
  engine.write(pair.sock, 'still mine', w.cb);
  t.is(await expectOk(t, w), 10);
  t.is((await pair.waitForBytes(10)).toString(), 'still mine');
});

forEachImpl(
  'huge delays and timeouts (2**53 ms, Number.MAX_VALUE) do not overflow',
  async (t, engine) => {
    // A deadline that overflowed would be in the past and fire at once.
    const fired: string[] = [];
    const handles = [2 ** 31, 2 ** 32 + 3, 2 ** 53, Number.MAX_VALUE].map((ms) =>
      engine.callLater(ms, () => fired.push(String(ms))),
    );
    const pair = await tcpPair(engine);
    const read = once<Buffer>({ timeout: Number.MAX_VALUE }, 'read with a huge timeout');
    engine.readChunk(pair.sock, 16, read.cb);
    await sleep(50);
    engine.runOnce({ timeout: 0 });
    t.deepEqual(fired, []);
    t.is(read.calls.length, 0, 'the read did not time out');
    for (const h of handles) t.true(h.cancel(), 'the timer had not run');
    t.true(read.cancel());
    await expectErr(t, read, 'ECANCELED');
  },
);

// Options of the engine and of each implementation: checked whichever implementation runs.
const CONFIG_CASES: Array<[string, (v: number) => Parameters<typeof createEngine>[0]]> = [
  ['readiness.maxEvents', (v) => ({ readiness: { maxEvents: v } })],
  ['threadpool.threads', (v) => ({ threadpool: { threads: v } })],
  ['completion.entries', (v) => ({ completion: { entries: v } })],
  ['work.threads', (v) => ({ work: { threads: v } })],
  ['maxBytes', (v) => ({ maxBytes: v })],
];

for (const impl of implsUnderTest()) {
  test(`[${impl}] numeric engine options outside their range throw RangeError before native code`, (t) => {
    for (const [name, make] of CONFIG_CASES) {
      for (const [label, v] of [...HOSTILE, ['2**31 - 1', 2 ** 31 - 1] as [string, number]]) {
        const accepted =
          name === 'maxBytes' && ['2**32 + 3', '2**31', 'Infinity', '2**31 - 1'].includes(label);
        if (accepted) continue;
        throwsArgError(t, `${name} = ${label}`, () => {
          const e = createEngine({ impl, ...make(v) });
          void e.shutdown();
        });
      }
    }
    t.throws(() => createEngine({ impl, readiness: 'big' as never }), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_TYPE',
    });
  });

  test(`[${impl}] numeric engine options at the ends of their ranges make a working engine`, async (t) => {
    const configs = [
      { readiness: { maxEvents: 1 } },
      { readiness: { maxEvents: 65536 } },
      { threadpool: { threads: 1 } },
      { threadpool: { threads: 1024 } },
      { completion: { entries: 1 } },
      { completion: { entries: 4096 } },
    ];
    for (const config of configs) {
      const e = createEngine({ impl, ...config });
      await new Promise<void>((resolve) => e.callSoon(resolve));
      await e.shutdown();
    }
    t.pass();
  });
}
