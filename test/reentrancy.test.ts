// User code that runs in the middle of a delivered batch: a nested runOnce() or shutdown(), an
// `expect` RegExp that throws, Callback slots changed after construction. None of it may strand
// the rest of the batch, settle an op twice or queue an op that nobody registered.
import { Callback } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  sleep,
  tcpPair,
  type Engine,
  type Pair,
  type Tracked,
} from './helpers/harness.js';

noFdLeaks();

const LINES = Array.from({ length: 10 }, (_, i) => `line-${i + 1}`);

// Ten lines already sent by the peer, read by ten expectLines submitted together, so that they
// settle in one batch. `at3` runs inside the third op's success.
async function tenLines(
  engine: Engine,
  at3: (p: Pair) => void,
): Promise<{ p: Pair; ops: Tracked<string>[] }> {
  const p = await tcpPair(engine);
  await p.write(LINES.map((l) => l + '\r\n').join(''));
  await sleep(50);
  const ops: Tracked<string>[] = [];
  for (let i = 0; i < LINES.length; i++) {
    ops.push(
      once<string>(
        i === 2
          ? {
              success: () => at3(p),
            }
          : {},
        `line ${i + 1}`,
      ),
    );
  }
  for (const op of ops) engine.expectLine(p.sock, null, op.cb);
  return { p, ops };
}

forEachImpl(
  'runOnce() inside a callback throws ERR_INVALID_STATE and the rest of the batch settles',
  async (t, engine) => {
    let thrown: unknown;
    const { ops } = await tenLines(engine, () => {
      try {
        engine.runOnce();
      } catch (e) {
        thrown = e;
      }
    });
    for (let i = 0; i < ops.length; i++) {
      t.is(await expectOk(t, ops[i]!, 5_000), LINES[i], `line ${i + 1} settles with its data`);
    }
    t.is((thrown as { code?: string } | undefined)?.code, 'ERR_INVALID_STATE');
    t.true(ops.every((o) => o.calls.length === 1));
  },
);

forEachImpl(
  'runOnce() inside a callback of a manually driven engine: the rest of the batch settles',
  async (t, engine) => {
    let thrown: unknown;
    // Set-up (accept) is driven from a timer; the lines are then driven by the loop below.
    const setup = setInterval(() => engine.runOnce(), 1);
    const { ops } = await tenLines(engine, () => {
      try {
        engine.runOnce();
      } catch (e) {
        thrown = e;
      }
    }).finally(() => clearInterval(setup));
    const deadline = Date.now() + 5_000;
    while (ops.some((o) => o.calls.length === 0) && Date.now() < deadline) {
      engine.runOnce({ timeout: 10 });
      await sleep(1);
    }
    for (let i = 0; i < ops.length; i++) {
      t.is(await expectOk(t, ops[i]!, 100), LINES[i], `line ${i + 1} settles with its data`);
    }
    t.is((thrown as { code?: string } | undefined)?.code, 'ERR_INVALID_STATE');
  },
  { config: { drive: 'manual' } },
);

forEachImpl(
  'shutdown() inside a callback: ops of the batch whose bytes were consumed get their data',
  async (t, engine) => {
    let shut: Promise<void> | undefined;
    const { p, ops } = await tenLines(engine, () => {
      t.false(engine.closed);
      shut = engine.shutdown();
      t.true(engine.closed, 'the rest of the batch can tell that the engine takes no new op');
    });
    // Ops still waiting for bytes when the engine shuts down: their cancellations make a batch
    // of their own, which must not overwrite the rest of the batch being delivered.
    const waiting: Tracked<string>[] = [];
    for (let i = 0; i < 12; i++) {
      const w = once<string>({}, `waiting ${i + 1}`);
      waiting.push(w);
      engine.expectLine(p.sock, null, w.cb);
    }
    for (let i = 0; i < ops.length; i++) {
      t.is(await expectOk(t, ops[i]!, 5_000), LINES[i], `line ${i + 1} keeps its data`);
    }
    for (const w of waiting) await expectErr(t, w, 'ECANCELED');
    await shut;
    t.true([...ops, ...waiting].every((o) => o.calls.length === 1));
  },
);

forEachImpl(
  'shutdown() inside a callback cancels the ops still waiting, once each',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('a\r\nb\r\n');
    await sleep(50);
    let shut: Promise<void> | undefined;
    const a = once<string>({ success: () => (shut = engine.shutdown()) });
    const b = once<string>();
    const c = once<string>();
    engine.expectLine(p.sock, null, a.cb);
    engine.expectLine(p.sock, null, b.cb);
    engine.expectLine(p.sock, null, c.cb);
    t.is(await expectOk(t, a), 'a');
    t.is(await expectOk(t, b), 'b');
    await expectErr(t, c, 'ECANCELED');
    await shut;
  },
);

class ThrowingRegExp extends RegExp {
  // Matching the empty string is what the engine checks at submit: only real input throws.
  override exec(s: string): RegExpExecArray | null {
    if (s.length > 0) throw new Error('exec exploded');
    return super.exec(s);
  }
}

forEachImpl(
  'an expect RegExp whose exec throws fails its own op (ERR_USER_CODE) and the batch goes on',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write(LINES.map((l) => l + '\r\n').join(''));
    await sleep(50);
    const ops: Tracked<string>[] = [];
    for (let i = 0; i < LINES.length; i++) {
      const op = once<string>({}, `line ${i + 1}`);
      ops.push(op);
      engine.expectLine(p.sock, i === 2 ? new ThrowingRegExp('x') : null, op.cb);
    }
    const err = await expectErr(t, ops[2]!, 'ERR_USER_CODE');
    t.is((err.cause as Error).message, 'exec exploded');
    t.is(err.line, 'line-3', 'the consumed line travels with the error');
    for (const i of [0, 1, 3, 4, 5, 6, 7, 8, 9]) {
      t.is(await expectOk(t, ops[i]!, 5_000), LINES[i]);
    }
  },
);

forEachImpl(
  'a readUntilRegex whose exec throws fails with ERR_USER_CODE and leaves its bytes buffered',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('hello\r\nworld\r\n');
    const bad = once<unknown>();
    engine.readUntilRegex(p.sock, new ThrowingRegExp('\\r\\n'), bad.cb);
    const after = once<string>();
    engine.expectLine(p.sock, null, after.cb);
    const err = await expectErr(t, bad, 'ERR_USER_CODE');
    t.is((err.cause as Error).message, 'exec exploded');
    t.is(await expectOk(t, after), 'hello', 'nothing was consumed by the failed op');
  },
);

forEachImpl(
  'a Callback whose timeout became a string after construction is refused and queues nothing',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('first\r\nsecond\r\n');
    const got: string[] = [];
    const bad = new Callback<string>({ success: (l) => got.push(l) });
    (bad as unknown as { timeout: unknown }).timeout = '10';
    const e = t.throws(() => engine.expectLine(p.sock, null, bad)) as TypeError & {
      code: string;
    };
    t.is(e.code, 'ERR_INVALID_ARG_TYPE');
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'first', 'no unseen op ate the first line');
    t.deepEqual(got, [], 'the refused op never ran');
    // The refused Callback was not left in flight: mended, it can be submitted.
    (bad as unknown as { timeout: unknown }).timeout = 0;
    engine.expectLine(p.sock, null, bad);
    for (let i = 0; i < 200 && got.length === 0; i++) await sleep(5);
    t.deepEqual(got, ['second']);
  },
);

forEachImpl(
  'a chain whose second Callback getter throws submits nothing and leaves the first reusable',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('one\r\n');
    const first = new Callback<number>({});
    const second = new Callback<string>({});
    Object.defineProperty(second, 'timeout', {
      get() {
        throw new Error('getter exploded');
      },
    });
    const e = t.throws(() =>
      engine.writeThenExpectLine(p.sock, 'x', null, [first, second]),
    ) as Error;
    t.is(e.message, 'getter exploded');
    const w = once<number>();
    engine.write(p.sock, 'ok', w.cb);
    t.is(await expectOk(t, w), 2);
    // The first Callback can be used again, and no stray read took the line.
    const line = once<string>();
    engine.expectLine(p.sock, null, line.cb);
    t.is(await expectOk(t, line), 'one');
    // The first Callback was not left marked in flight.
    engine.expectLine(p.sock, null, first as unknown as Callback<string>);
    t.true(first.cancel());
  },
);

forEachImpl(
  'slots are read once at submit: reassigning success afterwards does not change the outcome',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const seen: string[] = [];
    const cb = new Callback<string>({ success: (l) => seen.push(`original:${l}`) });
    engine.expectLine(p.sock, null, cb);
    (cb as unknown as { success: unknown }).success = () => {
      throw new Error('the replaced slot ran');
    };
    await p.write('x\r\n');
    for (let i = 0; i < 200 && seen.length === 0; i++) await sleep(5);
    t.deepEqual(seen, ['original:x']);
  },
);

forEachImpl('a host name with a NUL byte is refused (getaddrinfo and connect)', (t, engine) => {
  const r = once<unknown>();
  const e1 = t.throws(() =>
    engine.getaddrinfo('localhost\0.example.com', 80, r.cb as never),
  ) as TypeError & { code: string };
  t.is(e1.code, 'ERR_INVALID_ARG_VALUE');
  const c = once<unknown>();
  const e2 = t.throws(() =>
    engine.connect({ host: 'localhost\0.example.com', port: 80 }, c.cb as never),
  ) as TypeError & { code: string };
  t.is(e2.code, 'ERR_INVALID_ARG_VALUE');
  t.is(r.calls.length + c.calls.length, 0);
  t.is(engine.stats().opsInFlight, 0, 'nothing was queued');
});
