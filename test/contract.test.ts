// The callback contract: exactly once under cancel / timeout / completion races (property
// test), cancel() return values, never re-entrant, timeout values, FIFO timers, and a throwing
// callback reaching uncaughtException without disturbing other ops.
import net from 'node:net';
import fc from 'fast-check';
import { Callback, type RegexResult, type Socket } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  once,
  onCleanup,
  type Pair,
  prng,
  runNodeScript,
  settleCounter,
  sleep,
  tcpPair,
  type Tracked,
  waitUntil,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

// ---------------------------------------------------------------------------------------------
// Exactly once, and no data lost, under random cancels and timeouts

type Kind = 'readUntil' | 'readExactly' | 'readChunk';
interface OpPlan {
  pair: number;
  kind: Kind;
  n: number;
  timeout: number;
  cancel: 'none' | 'sync' | 'micro' | 'later';
  cancelDelay: number;
  cancelInside: boolean;
}
interface RunPlan {
  seed: number;
  ops: OpPlan[];
}

const PAIRS = 4;
const opArb: fc.Arbitrary<OpPlan> = fc.record({
  pair: fc.integer({ min: 0, max: PAIRS - 1 }),
  kind: fc.constantFrom<Kind>('readUntil', 'readExactly', 'readChunk'),
  n: fc.integer({ min: 1, max: 12 }),
  timeout: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 30 })),
  cancel: fc.constantFrom<OpPlan['cancel']>('none', 'none', 'sync', 'micro', 'later'),
  cancelDelay: fc.integer({ min: 0, max: 30 }),
  cancelInside: fc.boolean(),
});
const runArb: fc.Arbitrary<RunPlan> = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  ops: fc.array(opArb, { minLength: 40, maxLength: 120 }),
});

interface Submitted {
  plan: OpPlan;
  tr: Tracked<Buffer>;
  cancelResults: boolean[];
  insideCancel?: boolean;
}

async function oneRun(
  engine: Engine,
  plan: RunPlan,
): Promise<{ ops: number; tally: Record<string, number> }> {
  const rnd = prng(plan.seed);
  const pairs: Pair[] = [];
  for (let i = 0; i < PAIRS; i++) pairs.push(await tcpPair(engine));
  const streams = pairs.map(() => {
    const len = 40 + Math.floor(rnd() * 300);
    let s = '';
    for (let i = 0; i < len; i++) s += 'abcdefg;'[Math.floor(rnd() * 8)];
    return Buffer.from(s);
  });

  const sc = settleCounter();
  const submitted: Submitted[] = [];
  for (const op of plan.ops) {
    const entry: Submitted = {
      plan: op,
      tr: undefined as unknown as Tracked<Buffer>,
      cancelResults: [],
    };
    const slots = {
      ...(op.timeout > 0 ? { timeout: op.timeout } : {}),
      success: () => {
        if (op.cancelInside) entry.insideCancel = entry.tr.cb.cancel();
      },
      failure: () => {
        if (op.cancelInside) entry.insideCancel = entry.tr.cb.cancel();
      },
    };
    entry.tr = sc.wrap<Buffer>(
      slots,
      `op#${submitted.length}(${op.kind} ${op.n} t=${op.timeout} ${op.cancel})`,
    );
    const sock = pairs[op.pair]!.sock;
    if (op.kind === 'readUntil') engine.readUntil(sock, ';', entry.tr.cb);
    else if (op.kind === 'readExactly') engine.readExactly(sock, op.n, entry.tr.cb);
    else engine.readChunk(sock, op.n, entry.tr.cb);
    const doCancel = () => {
      entry.cancelResults.push(entry.tr.cancel());
      entry.cancelResults.push(entry.tr.cancel());
    };
    if (op.cancel === 'sync') doCancel();
    else if (op.cancel === 'micro') queueMicrotask(doCancel);
    else if (op.cancel === 'later') setTimeout(doCancel, op.cancelDelay);
    submitted.push(entry);
  }

  // The peers write their streams in random cuts with random small pauses, then close.
  await Promise.all(
    pairs.map(async (p, i) => {
      const data = streams[i]!;
      let at = 0;
      while (at < data.length) {
        const cut = 1 + Math.floor(rnd() * 40);
        await p.write(data.subarray(at, at + cut));
        at += cut;
        if (rnd() < 0.5) await sleep(Math.floor(rnd() * 4));
      }
      p.client.end();
    }),
  );
  await sc.allSettled(30_000);

  // Every op settled exactly once, never synchronously.
  const wrong = sc.all.filter((x) => x.calls.length !== 1 || x.calls[0]!.sync);
  if (wrong.length > 0)
    throw new Error(`not settled exactly once: ${wrong.map((x) => x.label).join(', ')}`);

  for (const e of submitted) {
    const o = e.tr.calls[0]!;
    const code = o.ok ? 'ok' : o.err?.code;
    const wonCancel = e.cancelResults.includes(true);
    if (!['ok', 'ECANCELED', 'ETIMEDOUT', 'ERR_INCOMPLETE'].includes(code ?? '?'))
      throw new Error(`${e.tr.label}: unexpected outcome ${code}`);
    if (wonCancel && code !== 'ECANCELED')
      throw new Error(`${e.tr.label}: cancel() returned true but the outcome was ${code}`);
    if (code === 'ECANCELED' && !wonCancel)
      throw new Error(
        `${e.tr.label}: ECANCELED without a winning cancel() (results ${e.cancelResults})`,
      );
    if (e.cancelResults.length === 2 && e.cancelResults[1] === true)
      throw new Error(`${e.tr.label}: the second cancel() returned true`);
    if (code === 'ETIMEDOUT' && e.plan.timeout === 0)
      throw new Error(`${e.tr.label}: ETIMEDOUT without a timeout`);
    if (e.insideCancel === true)
      throw new Error(`${e.tr.label}: cancel() inside its own callback returned true`);
    if (o.ok && e.plan.kind === 'readExactly' && o.value!.length !== e.plan.n)
      throw new Error(`${e.tr.label}: readExactly gave ${o.value!.length} bytes`);
    if (o.ok && e.plan.kind === 'readChunk' && o.value!.length > e.plan.n)
      throw new Error(`${e.tr.label}: readChunk gave ${o.value!.length} bytes`);
    if (o.ok && e.plan.kind === 'readUntil' && !o.value!.toString().endsWith(';'))
      throw new Error(`${e.tr.label}: readUntil value does not end with the delimiter`);
  }

  // No data lost: per socket, what the ops consumed, in submission order, then the rest,
  // is exactly what the peer sent.
  for (let i = 0; i < PAIRS; i++) {
    const parts: Buffer[] = [];
    for (const e of submitted) {
      if (e.plan.pair !== i) continue;
      const o = e.tr.calls[0]!;
      if (o.ok) parts.push(o.value!);
      else if (o.err?.code === 'ERR_INCOMPLETE') parts.push(o.err.partial ?? Buffer.alloc(0));
    }
    const rest = once<Buffer>();
    engine.readAll(pairs[i]!.sock, rest.cb);
    const r = await rest.result();
    if (!r.ok) throw new Error(`final readAll failed: ${r.err?.code}`);
    parts.push(r.value!);
    const got = Buffer.concat(parts).toString();
    const want = streams[i]!.toString();
    if (got !== want) throw new Error(`socket ${i}: stream differs\n got ${got}\nwant ${want}`);
  }
  for (const p of pairs) engine.close(p.sock);
  return { ops: submitted.length, tally: sc.tally() };
}

forEachImpl(
  'property: hundreds of racing ops with random cancels and timeouts settle exactly once and lose no byte',
  async (t, engine) => {
    let ops = 0;
    const total: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(runArb, async (plan) => {
        const r = await oneRun(engine, plan);
        ops += r.ops;
        for (const [k, v] of Object.entries(r.tally)) total[k] = (total[k] ?? 0) + v;
      }),
      { numRuns: 12, endOnFailure: true },
    );
    t.log(`ops: ${ops}, outcomes: ${JSON.stringify(total)}`);
    t.true(ops >= 12 * 40);
    t.is(total['pending'] ?? 0, 0);
    t.true(
      (total.ok ?? 0) > 0 && (total.ECANCELED ?? 0) > 0,
      'both completions and cancels happened',
    );
  },
  { timeout: 120_000 },
);

forEachImpl(
  'stress: cancel racing a completion, 2000 times, exactly once each',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const sc = settleCounter();
    const rnd = prng(7);
    const won: boolean[] = [];
    let sent = '';
    for (let i = 0; i < 2000; i++) {
      const tr = sc.wrap<Buffer>({}, `race#${i}`);
      const chunk = `${i % 10}`;
      sent += chunk;
      p.client.write(chunk);
      engine.readExactly(p.sock, 1, tr.cb);
      if (rnd() < 0.5) await new Promise((r) => setImmediate(r));
      won.push(tr.cancel());
    }
    await sc.allSettled();
    sc.assertExactlyOnce(t);
    const mismatch = sc.all.filter((x, i) => won[i] !== (x.calls[0]?.err?.code === 'ECANCELED'));
    t.is(mismatch.length, 0, 'cancel() returned true exactly for the ECANCELED ones');
    // the bytes of the cancelled reads are still there, in order
    const consumed = sc.all
      .filter((x) => x.calls[0]?.ok)
      .map((x) => (x.calls[0]!.value as Buffer).toString());
    const rest = once<Buffer>();
    engine.readExactly(p.sock, sent.length - consumed.join('').length, rest.cb);
    t.is(consumed.join('') + (await expectOk(t, rest)).toString(), sent);
  },
);

// ---------------------------------------------------------------------------------------------
// cancel() return values

forEachImpl(
  'cancel(): true before completion, ECANCELED follows on a later tick',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    t.true(r.cancel());
    t.is(r.calls.length, 0, 'not called inside cancel()');
    const err = await expectErr(t, r, 'ECANCELED');
    t.is(typeof err.message, 'string');
  },
);

forEachImpl('cancel(): false after completion; no second callback', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('done\n');
  const r = once<Buffer>();
  engine.readUntil(p.sock, '\n', r.cb);
  await expectOk(t, r);
  t.false(r.cancel());
  await sleep(30);
  t.is(r.calls.length, 1);
});

forEachImpl(
  'cancel(): a second cancel returns false and nothing more happens',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    t.true(r.cancel());
    t.false(r.cancel());
    await expectErr(t, r, 'ECANCELED');
    t.false(r.cancel());
    await sleep(30);
    t.is(r.calls.length, 1);
  },
);

forEachImpl('cancel(): false when called inside its own success or failure', async (t, engine) => {
  const p = await tcpPair(engine);
  const inside: boolean[] = [];
  const ok: Tracked<Buffer> = once<Buffer>({ success: () => inside.push(ok.cb.cancel()) });
  const bad: Tracked<Buffer> = once<Buffer>({
    timeout: 20,
    failure: () => inside.push(bad.cb.cancel()),
  });
  await p.write('x\n');
  engine.readUntil(p.sock, '\n', ok.cb);
  await expectOk(t, ok);
  engine.readUntil(p.sock, '\n', bad.cb);
  await expectErr(t, bad, 'ETIMEDOUT');
  await sleep(30);
  t.deepEqual(inside, [false, false]);
  t.is(ok.calls.length, 1);
  t.is(bad.calls.length, 1);
});

forEachImpl(
  'cancel(): false on a Callback never submitted; false after a timeout',
  async (t, engine) => {
    t.false(new Callback<Buffer>({}).cancel());
    const p = await tcpPair(engine);
    const r = once<Buffer>({ timeout: 20 });
    engine.readUntil(p.sock, '\n', r.cb);
    await expectErr(t, r, 'ETIMEDOUT');
    t.false(r.cancel());
  },
);

forEachImpl(
  'cancel(): cancelling one op leaves the next queued op on the socket alone',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const a = once<Buffer>();
    const b = once<Buffer>();
    engine.readUntil(p.sock, '\n', a.cb);
    engine.readUntil(p.sock, '\n', b.cb);
    t.true(a.cancel());
    await p.write('for b\n');
    await expectErr(t, a, 'ECANCELED');
    t.is((await expectOk(t, b)).toString(), 'for b\n');
  },
);

forEachImpl(
  'submitting a Callback that is still in flight throws ERR_INVALID_STATE',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    t.throws(() => engine.readUntil(p.sock, '\n', r.cb), { code: 'ERR_INVALID_STATE' });
    t.throws(() => engine.write(p.sock, 'x', r.cb as unknown as Callback<number>), {
      code: 'ERR_INVALID_STATE',
    });
    await p.write('one\n');
    t.is((await expectOk(t, r)).toString(), 'one\n');
    await sleep(30);
    t.is(r.calls.length, 1);
  },
);

// ---------------------------------------------------------------------------------------------
// Never re-entrant

forEachImpl(
  'never re-entrant: with data already buffered, every op calls back later',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('first\nline two\nregex 123 x\nabcdefgh');
    // Pull everything into the engine's buffer first.
    const warm = once<Buffer>();
    engine.readUntil(p.sock, '\n', warm.cb);
    await expectOk(t, warm);
    await waitUntil(() => p.sock.bufferedBytes >= 20, 1_000);

    const flags: Array<[string, boolean]> = [];
    const submit = (name: string, fn: (cb: Callback<never>) => void) => {
      let after = false;
      const tr = once<never>({
        success: () => flags.push([name, after]),
        failure: () => flags.push([name, after]),
      });
      fn(tr.cb);
      after = true;
      return tr;
    };
    const trs = [
      submit('expectLine', (cb) => engine.expectLine(p.sock, null, cb as Callback<string>)),
      submit('readUntilRegex', (cb) =>
        engine.readUntilRegex(p.sock, /\d+ x\n/, cb as Callback<RegexResult>),
      ),
      submit('readExactly', (cb) => engine.readExactly(p.sock, 2, cb as Callback<Buffer>)),
      submit('readChunk', (cb) => engine.readChunk(p.sock, 2, cb as Callback<Buffer>)),
      submit('write', (cb) => engine.write(p.sock, 'w', cb as Callback<number>)),
    ];
    for (const tr of trs) await tr.result();
    t.deepEqual(flags.map(([n]) => n).sort(), [
      'expectLine',
      'readChunk',
      'readExactly',
      'readUntilRegex',
      'write',
    ]);
    t.deepEqual(
      flags.filter(([, after]) => !after).map(([n]) => n),
      [],
      'each callback saw the flag set right after its submit call',
    );
  },
);

forEachImpl(
  'never re-entrant: immediate failures (closed socket, refused connect) come later',
  async (t, engine) => {
    const p = await tcpPair(engine);
    engine.close(p.sock);
    let after = false;
    let seen: boolean | undefined;
    const r = once<Buffer>({ failure: () => (seen = after) });
    engine.readUntil(p.sock, '\n', r.cb);
    after = true;
    await expectErr(t, r, 'EBADF');
    t.true(seen);

    let after2 = false;
    let seen2: boolean | undefined;
    const c = once<Socket>({ failure: () => (seen2 = after2) });
    engine.connect({ path: '/nonexistent/async-engine-test.sock' }, c.cb);
    after2 = true;
    await c.result();
    t.true(seen2);
  },
);

forEachImpl('never re-entrant: accept with a connection already queued', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const con = once<Socket>();
  const addr = l.address();
  engine.connect({ host: '127.0.0.1', port: typeof addr === 'string' ? 0 : addr.port }, con.cb);
  await expectOk(t, con);
  await sleep(20);
  let after = false;
  let seen: boolean | undefined;
  const acc = once<Socket>({ success: () => (seen = after) });
  engine.accept(l, acc.cb);
  after = true;
  await expectOk(t, acc);
  t.true(seen);
});

// ---------------------------------------------------------------------------------------------
// Timeout values

forEachImpl('timeout 0 means no timeout', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<Buffer>({ timeout: 0 });
  engine.readUntil(p.sock, '\n', r.cb);
  await sleep(300);
  t.is(r.calls.length, 0, 'still pending after 300 ms');
  await p.write('late\n');
  t.is((await expectOk(t, r)).toString(), 'late\n');
});

forEachImpl(
  'negative, NaN and Infinity timeouts throw RangeError synchronously; nothing queued',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const before = engine.stats().opsInFlight;
    for (const bad of [-1, -0.5, NaN, Infinity, -Infinity]) {
      const err = t.throws(
        () => {
          const cb = new Callback<Buffer>({
            timeout: bad,
            success: () => t.fail('ran'),
            failure: () => t.fail('ran'),
          });
          engine.readUntil(p.sock, '\n', cb);
        },
        { instanceOf: RangeError },
        `timeout ${bad}`,
      );
      if (bad === -1) t.is((err as Error & { code?: string }).code, 'ERR_OUT_OF_RANGE');
    }
    t.is(engine.stats().opsInFlight, before);
    // the socket's read queue is untouched: a valid read gets the first line
    await p.write('first\n');
    const r = once<Buffer>();
    engine.readUntil(p.sock, '\n', r.cb);
    t.is((await expectOk(t, r)).toString(), 'first\n');
  },
);

forEachImpl(
  'a huge timeout (2**53 ms) does not overflow into an immediate timeout',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<Buffer>({ timeout: 2 ** 53 });
    engine.readUntil(p.sock, '\n', r.cb);
    await sleep(200);
    t.is(r.calls.length, 0);
    await p.write('fine\n');
    t.is((await expectOk(t, r)).toString(), 'fine\n');
  },
);

forEachImpl('callLater with equal deadlines fires in FIFO order', async (t, engine) => {
  const order: number[] = [];
  const n = 100;
  for (let i = 0; i < n; i++) engine.callLater(15, () => order.push(i));
  t.true(await waitUntil(() => order.length === n, 5_000));
  t.deepEqual(
    order,
    Array.from({ length: n }, (_, i) => i),
  );
});

forEachImpl('callLater fires in deadline order, callSoon in FIFO order', async (t, engine) => {
  const order: string[] = [];
  engine.callLater(60, () => order.push('later60'));
  engine.callLater(20, () => order.push('later20'));
  engine.callLater(40, () => order.push('later40'));
  for (let i = 0; i < 5; i++) engine.callSoon(() => order.push(`soon${i}`));
  t.true(await waitUntil(() => order.length === 8, 5_000));
  t.deepEqual(order, [
    'soon0',
    'soon1',
    'soon2',
    'soon3',
    'soon4',
    'later20',
    'later40',
    'later60',
  ]);
});

// ---------------------------------------------------------------------------------------------
// A callback that throws

const throwingScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const engine = createEngine({ impl: process.env.IMPL });
const caught = [];
process.on('uncaughtException', (e) => caught.push(String(e && e.message)));
const out = { second: null, soon: false, afterwards: null, failureThrew: false };
const l = engine.listen({ port: 0 });
let server;
const ready = new Promise((resolve) => {
  engine.accept(l, new Callback({ success: (s) => { server = s; resolve(); } }));
});
engine.connect({ host: '127.0.0.1', port: l.address().port }, new Callback({
  success: async (client) => {
    await ready;
    // Two reads that complete in one batch: the first callback throws.
    engine.readExactly(server, 3, new Callback({ success: () => { throw new Error('boom-success'); } }));
    engine.readExactly(server, 3, new Callback({ success: (b) => { out.second = b.toString(); } }));
    engine.callSoon(() => { out.soon = true; });
    engine.write(client, 'abcdef', new Callback({}));
    // A failure slot that throws.
    engine.readUntil(client, '\\n', new Callback({ timeout: 20, failure: () => { out.failureThrew = true; throw new Error('boom-failure'); } }));
    setTimeout(() => {
      // The engine still works afterwards.
      engine.write(client, 'later\\n', new Callback({}));
      engine.readUntil(server, '\\n', new Callback({
        success: async (b) => {
          out.afterwards = b.toString();
          await engine.shutdown();
          console.log(JSON.stringify({ caught, out }));
        },
      }));
    }, 200);
  },
}));
`;

forEachImpl(
  'a throwing callback reaches uncaughtException; the rest of the batch still runs',
  async (t, engine, impl) => {
    t.truthy(engine);
    const r = await runNodeScript(throwingScript, { IMPL: impl }, 30_000);
    t.false(r.timedOut, `child hung; stderr: ${r.stderr}`);
    t.is(r.code, 0, `exit code; stderr: ${r.stderr}`);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let parsed: { caught: string[]; out: Record<string, unknown> } | undefined;
    try {
      parsed = JSON.parse(line);
    } catch {
      t.fail(`no result from the child; stdout: ${r.stdout} stderr: ${r.stderr}`);
      return;
    }
    t.deepEqual(parsed!.caught.sort(), ['boom-failure', 'boom-success']);
    t.is(parsed!.out.second, 'def', 'the other completion in the batch was delivered');
    t.is(parsed!.out.soon, true);
    t.is(parsed!.out.failureThrew, true);
    t.is(parsed!.out.afterwards, 'later\n', 'the engine keeps working');
  },
);

forEachImpl('a Callback with no failure slot drops failures silently', async (t, engine) => {
  const p = await tcpPair(engine);
  let called = 0;
  const cb = new Callback<Buffer>({ timeout: 10, success: () => called++ });
  engine.readUntil(p.sock, '\n', cb);
  await sleep(100);
  t.is(called, 0);
  t.false(cb.cancel(), 'the op is over (timed out)');
  // and the socket still works
  const r = once<Buffer>();
  engine.readUntil(p.sock, '\n', r.cb);
  await p.write('ok\n');
  t.is((await expectOk(t, r)).toString(), 'ok\n');
});

forEachImpl(
  'timeout racing data: either outcome, exactly once; timed-out bytes reach the next read',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const outcomes: Record<string, number> = {};
    let lost = 0;
    for (let i = 0; i < 60; i++) {
      const delta = (i % 7) - 3;
      const r = once<Buffer>({ timeout: 20 });
      engine.readUntil(p.sock, '\n', r.cb);
      setTimeout(() => p.client.write(`msg ${i}\n`), 20 + delta);
      const o = await r.result();
      const code = o.ok ? 'ok' : (o.err?.code ?? '?');
      outcomes[code] = (outcomes[code] ?? 0) + 1;
      if (o.ok) {
        if (o.value?.toString() !== `msg ${i}\n`) lost++;
      } else {
        t.is(code, 'ETIMEDOUT');
        const next = once<Buffer>();
        engine.readUntil(p.sock, '\n', next.cb);
        if ((await expectOk(t, next)).toString() !== `msg ${i}\n`) lost++;
      }
    }
    await sleep(30);
    t.log(JSON.stringify(outcomes));
    t.is(lost, 0, 'every message reached a read, in order');
  },
  { timeout: 60_000 },
);

forEachImpl(
  'random chain cancels and timeouts: every stage settles once, consistently',
  async (t, engine) => {
    const rnd = prng(2012);
    const l = engine.listen({ port: 0 });
    const port = typeof l.address() === 'string' ? 0 : (l.address() as { port: number }).port;
    const sc = settleCounter();
    const chains: Array<{ s: Tracked<Socket>; line: Tracked<string>; won: boolean[] }> = [];
    const clients: net.Socket[] = [];
    for (let i = 0; i < 150; i++) {
      const s = sc.wrap<Socket>(
        rnd() < 0.2 ? { timeout: 1 + Math.floor(rnd() * 40) } : {},
        `chain${i}.accept`,
      );
      const line = sc.wrap<string>(
        rnd() < 0.3 ? { timeout: 1 + Math.floor(rnd() * 40) } : {},
        `chain${i}.line`,
      );
      const entry = { s, line, won: [] as boolean[] };
      engine.acceptThenExpectLine(l, null, [s.cb, line.cb]);
      chains.push(entry);
      const which = rnd() < 0.5 ? s : line;
      const mode = rnd();
      if (mode < 0.15) entry.won.push(which.cancel());
      else if (mode < 0.4) setTimeout(() => entry.won.push(which.cancel()), Math.floor(rnd() * 40));
    }
    // Clients arrive over ~50 ms; each sends a line at once or a little later.
    for (let i = 0; i < 150; i++) {
      const delay = Math.floor(rnd() * 50);
      const lineDelay = Math.floor(rnd() * 30);
      setTimeout(() => {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        clients.push(c);
        c.on('connect', () => setTimeout(() => c.write(`client ${i}\n`), lineDelay));
      }, delay);
    }
    onCleanup(engine, () => clients.forEach((c) => c.destroy()));
    await sc.allSettled(30_000);
    sc.assertExactlyOnce(t);
    const problems: string[] = [];
    for (const [i, c] of chains.entries()) {
      const a = c.s.calls[0]!;
      const b = c.line.calls[0]!;
      const ca = a.ok ? 'ok' : a.err?.code;
      const cb = b.ok ? 'ok' : b.err?.code;
      if (b.ok && !a.ok) problems.push(`chain${i}: line ok after accept ${ca}`);
      if (ca === 'ECANCELED' && cb !== 'ECANCELED')
        problems.push(`chain${i}: accept ECANCELED, line ${cb}`);
      if (!a.ok && ca !== 'ECANCELED') {
        const cause = (b.err?.cause as { code?: string } | undefined)?.code;
        if (cb !== 'ERR_ABORTED' || cause !== ca)
          problems.push(`chain${i}: accept ${ca}, line ${cb} (cause ${cause})`);
      }
      if (c.won.includes(true) && ca !== 'ECANCELED' && cb !== 'ECANCELED')
        problems.push(`chain${i}: cancel() returned true, outcomes ${ca} / ${cb}`);
      if (!c.won.includes(true) && (ca === 'ECANCELED' || cb === 'ECANCELED'))
        problems.push(`chain${i}: ECANCELED without a winning cancel (${ca} / ${cb})`);
      if (c.won.length > 0 && c.won.filter((w) => w).length > 1)
        problems.push(`chain${i}: two winning cancels`);
    }
    t.deepEqual(problems.slice(0, 10), [], `${problems.length} inconsistent chains`);
    t.log(JSON.stringify(sc.tally()));
  },
  { timeout: 60_000 },
);
