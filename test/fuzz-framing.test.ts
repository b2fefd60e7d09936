// Model-based framing fuzz: random byte streams (NUL, lone CR, CRLF and LF, multi-byte and
// invalid UTF-8, delimiters split across chunks, 1-byte and 200 KiB writes, EOF anywhere) sent
// by a node:net peer in random chunks and pauses, read by random sequences of every read op,
// and compared op by op with test/helpers/framing-model.ts. Fixed seed in `npm test`;
// `FUZZ_SECONDS=N npm run fuzz` runs random seeds for N seconds; FUZZ_SEED=s replays one.
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { File, LengthPrefixedRecord, RegexResult, Socket } from 'async-engine';
import {
  describe,
  type Engine,
  forEachImpl,
  implsUnderTest,
  noFdLeaks,
  once,
  type Outcome,
  type Ctx,
  tempDir,
  sleep,
  tcpPair,
  type Tracked,
} from './helpers/harness.js';
import { expectedOutcome, type ModelOp } from './helpers/framing-model.js';

noFdLeaks();

const FIXED_SEED = 20261201;
/** Scenarios per implementation in `npm test`. */
const RUNS = 600;
const FILE_RUNS = 200;

// ---------------------------------------------------------------------------------------------
// Scenarios

type Pause = 'none' | 'immediate' | 'timer';
type Mode = 'all' | 'chain' | 'batches';

interface Scenario {
  stream: Buffer;
  /** Chunk sizes, used in turn; 0 sends everything left. At most MAX_WRITES writes. */
  chunks: number[];
  pauses: Pause[];
  ops: ModelOp[];
  mode: Mode;
  batches: number[];
  /** Cancels and timeouts, op i taking interrupts[i] (none past the end). */
  interrupts: Interrupt[];
}

/**
 * A cancel() right after submitting, in a microtask or in a timer, and/or a 1-3 ms timeout. A
 * cancelled or timed-out read consumes nothing; otherwise the op has its own outcome.
 */
interface Interrupt {
  cancel: 'none' | 'sync' | 'microtask' | 'timer';
  delay: number;
  timeout: number;
}

const MAX_WRITES = 48;

const b = (...x: number[]): Buffer => Buffer.from(x);

const pieceArb: fc.Arbitrary<Buffer> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc
      .constantFrom(
        'OK\r\n',
        'END\r\n',
        'END\n',
        'END',
        'END\0garbage\n',
        'OK',
        '\r\n',
        '\n',
        '\r',
        '\0',
        'é',
        '→',
        '😀',
        'a',
        'x',
        'ab',
        '12;',
        'é!',
        'AB\n',
        '\r\n\r\n',
        'E1D\n',
        ' ',
      )
      .map((s) => Buffer.from(s, 'utf8')),
  },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      b(0xff),
      b(0xc0, 0xaf),
      b(0xe2, 0x82),
      b(0xf0, 0x9f, 0x98),
      b(0xc3),
      b(0xa9),
      b(0xed, 0xa0, 0x80),
    ),
  },
  {
    weight: 4,
    arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((u) => Buffer.from(u)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(200 * 1024, 70_000, 300).map((n) => Buffer.alloc(n, 'x')),
  },
);

const maxBytesArb = fc.oneof(
  { weight: 5, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }) },
  { weight: 2, arbitrary: fc.integer({ min: 7, max: 64 }) },
);

const delimiterArb = fc.constantFrom<string | Buffer>(
  '\r\n',
  '\n',
  '\0',
  'OK',
  'é',
  '\r\n\r\n',
  'END\r\n',
  'x',
  b(0xff),
  b(0xc0, 0xaf),
  Buffer.from('OK\r\n'),
);

// Regexes whose first match in a prefix of the text is their first match in the whole text, and
// that never match a U+FFFD (a character cut at the end of what has arrived decodes to one), so
// that "taken as soon as it exists" gives one answer whatever the chunking.
const utf8RegexArb = fc.constantFrom(
  /OK\r\n/,
  /\r\n\r\n/,
  /\d+;/,
  /[A-Z]{3}\r?\n/,
  /\0\0/,
  /é/,
  /é+!/,
  /😀/u,
  /\uD83D/,
  /^OK/,
  /OK/y,
  /END\0/,
);
const latin1RegexArb = fc.constantFrom(/\xff\xc0/, /\xc3\xa9/, /OK\r\n/, /\n/, /x{3}/);

const framingOpArb: fc.Arbitrary<ModelOp> = fc.oneof(
  fc.record({
    kind: fc.constant('readUntil' as const),
    delimiter: delimiterArb,
    maxBytes: maxBytesArb,
  }),
  fc.record({
    kind: fc.constant('expectLine' as const),
    expect: fc.constantFrom<string | RegExp | null>(null, null, 'OK', 'END', '', /^E/, /OK$/, /\0/),
    maxBytes: maxBytesArb,
    encoding: fc.constantFrom<'utf8' | 'latin1'>('utf8', 'utf8', 'latin1'),
  }),
  fc.record({
    kind: fc.constant('readExactly' as const),
    n: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 8 }) },
      { weight: 2, arbitrary: fc.integer({ min: 9, max: 400 }) },
      { weight: 1, arbitrary: fc.constant(70_000) },
    ),
  }),
  fc.record({
    kind: fc.constant('readChunk' as const),
    size: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(1000, 300_000)),
  }),
  fc.oneof(
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('readUntilRegex' as const),
        regex: utf8RegexArb,
        maxBytes: maxBytesArb,
        encoding: fc.constant<'utf8' | 'latin1'>('utf8'),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('readUntilRegex' as const),
        regex: latin1RegexArb,
        maxBytes: maxBytesArb,
        encoding: fc.constant<'utf8' | 'latin1'>('latin1'),
      }),
    },
  ),
  fc.record({
    kind: fc.constant('readUntilLineglob' as const),
    glob: fc.constantFrom('END', 'END*', '*OK', 'OK', '?', '[A-Z]*', '[!a-z]', 'E?D', '*', '\\*'),
    maxBytes: maxBytesArb,
  }),
);

// readAll takes everything up to EOF (unless over its bound), which ends a scenario's reading:
// rarer than the others.
const opArb: fc.Arbitrary<ModelOp> = fc.oneof(
  { weight: 12, arbitrary: framingOpArb },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('readAll' as const),
      maxBytes: fc.constantFrom<number | undefined>(undefined, 5, Infinity),
    }),
  },
);

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  stream: fc.array(pieceArb, { minLength: 1, maxLength: 80 }).map((ps) => Buffer.concat(ps)),
  chunks: fc.array(
    fc.oneof(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 4, max: 64 }),
      fc.integer({ min: 65, max: 70_000 }),
      fc.constant(0),
    ),
    { minLength: 1, maxLength: 8 },
  ),
  pauses: fc.array(fc.constantFrom<Pause>('none', 'immediate', 'timer'), {
    minLength: 1,
    maxLength: 6,
  }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 24 }),
  mode: fc.constantFrom<Mode>('all', 'chain', 'batches'),
  batches: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
  interrupts: fc.oneof(
    { weight: 2, arbitrary: fc.constant<Interrupt[]>([]) },
    {
      weight: 1,
      arbitrary: fc.array(
        fc.record({
          cancel: fc.constantFrom<Interrupt['cancel']>(
            'none',
            'none',
            'none',
            'sync',
            'microtask',
            'timer',
          ),
          delay: fc.integer({ min: 0, max: 2 }),
          timeout: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 3 })),
        }),
        { maxLength: 24 },
      ),
    },
  ),
});

// ---------------------------------------------------------------------------------------------
// Running one scenario against the engine

type Actual =
  { ok: true; value: unknown } | { ok: false; code: string; partial?: Buffer; line?: string };

function submit(engine: Engine, sock: Socket | File, op: ModelOp, tr: Tracked<unknown>): void {
  const cb = tr.cb as never;
  const opts = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  switch (op.kind) {
    case 'readUntil':
      return engine.readUntil(sock, op.delimiter, opts({ maxBytes: op.maxBytes }), cb);
    case 'expectLine':
      return engine.expectLine(
        sock,
        op.expect,
        opts({ maxBytes: op.maxBytes, encoding: op.encoding }),
        cb,
      );
    case 'readExactly':
      return engine.readExactly(sock, op.n, cb);
    case 'readChunk':
      return engine.readChunk(sock, op.size, cb);
    case 'readAll':
      return engine.readAll(sock, opts({ maxBytes: op.maxBytes }), cb);
    case 'readUntilRegex':
      return engine.readUntilRegex(
        sock,
        op.regex,
        opts({ maxBytes: op.maxBytes, encoding: op.encoding }),
        cb,
      );
    case 'readUntilLineglob':
      return engine.readUntilLineglob(sock, op.glob, opts({ maxBytes: op.maxBytes }), cb);
  }
}

async function pause(p: Pause): Promise<void> {
  if (p === 'immediate') await new Promise((r) => setImmediate(r));
  else if (p === 'timer') await sleep(1);
}

/** Where the stream comes from: a node:net peer, or a file read sequentially. */
type Source = { kind: 'socket' } | { kind: 'file'; dir: string };

async function openSource(
  engine: Engine,
  s: Scenario,
  source: Source,
): Promise<{ sock: Socket | File; writer: Promise<void>; done(): void }> {
  if (source.kind === 'file') {
    const path = join(source.dir, 'stream');
    writeFileSync(path, s.stream);
    const tr = once<File>({}, 'open');
    engine.open(path, tr.cb);
    const o = await tr.result(10_000);
    if (!o.ok) throw new Error(`open: ${describe(o)}`);
    const file = o.value!;
    return { sock: file, writer: Promise.resolve(), done: () => engine.close(file) };
  }
  const pair = await tcpPair(engine);
  // The peer: random chunks and pauses, then EOF.
  const writer = (async () => {
    let off = 0;
    for (let w = 0; off < s.stream.length; w++) {
      const size = s.chunks[w % s.chunks.length]!;
      const end =
        size === 0 || w === MAX_WRITES - 1
          ? s.stream.length
          : Math.min(s.stream.length, off + size);
      const chunk = s.stream.subarray(off, end);
      off = end;
      await pair.write(chunk);
      await pause(s.pauses[w % s.pauses.length]!);
    }
    pair.client.end();
  })();
  return {
    sock: pair.sock,
    writer,
    done: () => {
      engine.close(pair.sock);
      pair.client.destroy();
    },
  };
}

/** Runs the scenario; returns a description of the first disagreement with the model, or null. */
async function runScenario(
  engine: Engine,
  s: Scenario,
  source: Source,
  tally: Record<string, number>,
): Promise<string | null> {
  const { sock, writer, done } = await openSource(engine, s, source);
  const none: Interrupt = { cancel: 'none', delay: 0, timeout: 0 };
  const interrupt = (i: number): Interrupt => s.interrupts[i] ?? none;
  const trs: Tracked<unknown>[] = s.ops.map((_, i) => {
    const timeout = interrupt(i).timeout;
    return once<unknown>(timeout > 0 ? { timeout } : {}, `op#${i}`);
  });
  /** What each op's cancel() returned, once called. */
  const cancelled: Array<boolean | undefined> = [];
  const settledOrder: number[] = [];
  for (const [i, tr] of trs.entries()) void tr.promise.then(() => settledOrder.push(i));

  // Submission: all at once, each settlement submits the next, or in batches.
  const submitFrom = (i: number, n: number): void => {
    const last = Math.min(s.ops.length, i + n);
    for (let k = i; k < last; k++) {
      submit(engine, sock, s.ops[k]!, trs[k]!);
      const c = interrupt(k);
      const cancel = (): void => {
        cancelled[k] = trs[k]!.cancel();
      };
      if (c.cancel === 'sync') cancel();
      else if (c.cancel === 'microtask') queueMicrotask(cancel);
      else if (c.cancel === 'timer') setTimeout(cancel, c.delay);
    }
    if (last < s.ops.length) {
      void trs[last - 1]!.promise.then(() => {
        const next = s.mode === 'chain' ? 1 : s.batches[last % s.batches.length]!;
        if (last % 2 === 0) submitFrom(last, next);
        else setImmediate(() => submitFrom(last, next));
      });
    }
  };
  if (s.mode === 'all') submitFrom(0, s.ops.length);
  else submitFrom(0, s.mode === 'chain' ? 1 : s.batches[0]!);

  const outcomes = await Promise.all(trs.map((tr) => tr.result(20_000)));
  for (const o of outcomes) {
    const k = o.ok ? 'ok' : (o.err?.code ?? '?');
    tally[k] = (tally[k] ?? 0) + 1;
  }
  await writer;
  // Whatever no op consumed: the rest of the stream.
  const rest = once<Buffer>({}, 'final readAll');
  engine.readAll(sock, { maxBytes: Infinity }, rest.cb);
  const restOutcome = await rest.result(20_000);
  done();

  // Reads settle in submission order; a cancelled or timed-out one leaves the queue at once.
  const interrupted = (i: number): boolean =>
    ['ECANCELED', 'ETIMEDOUT'].includes(outcomes[i]!.err?.code ?? '');
  const inOrder = settledOrder.filter((i) => !interrupted(i));
  for (let k = 1; k < inOrder.length; k++) {
    if (inOrder[k]! < inOrder[k - 1]!) return `ops settled out of order: ${settledOrder.join(',')}`;
  }
  let pos = 0;
  const consumed: Buffer[] = [];
  for (const [i, o] of outcomes.entries()) {
    const op = s.ops[i]!;
    if (o.sync) return `op#${i} settled synchronously`;
    const actual: Actual = o.ok
      ? { ok: true, value: o.value }
      : { ok: false, code: o.err?.code ?? '?', partial: o.err?.partial, line: o.err?.line };
    const rem = s.stream.subarray(pos);
    const code = actual.ok ? 'ok' : actual.code;
    if (cancelled[i] === true && code !== 'ECANCELED') {
      return `op#${i} ${showOp(op)}: cancel() returned true, then ${showActual(o)}`;
    }
    if (code === 'ECANCELED' || code === 'ETIMEDOUT') {
      if (code === 'ECANCELED' && cancelled[i] !== true) {
        return `op#${i} ${showOp(op)}: ECANCELED, but cancel() ${cancelled[i] === false ? 'returned false' : 'was not called'}`;
      }
      if (code === 'ETIMEDOUT' && interrupt(i).timeout === 0) {
        return `op#${i} ${showOp(op)}: ETIMEDOUT without a timeout`;
      }
      continue; // a cancelled or timed-out read consumes nothing
    }
    const exp = expectedOutcome(op, rem);
    const where = () =>
      `op#${i} ${showOp(op)} at stream offset ${pos} (next bytes ${hex(rem.subarray(0, 24))}${rem.length > 24 ? '…' : ''}, ${rem.length} left): model says ${showExpected(exp)}, engine gave ${showActual(o)}`;
    if (exp.ok !== actual.ok) return where();
    if ('chunkOf' in exp) {
      const v = actual.ok ? (actual.value as Buffer) : Buffer.alloc(0);
      if (
        !Buffer.isBuffer(v) ||
        v.length < 1 ||
        v.length > exp.chunkOf ||
        !v.equals(rem.subarray(0, v.length))
      )
        return where();
      consumed.push(v);
      pos += v.length;
      continue;
    }
    if (exp.ok && actual.ok) {
      if (op.kind === 'readUntilRegex') {
        const r = actual.value as RegexResult;
        if (
          !Buffer.isBuffer(r.data) ||
          !r.data.equals(exp.value as Buffer) ||
          r.match[0] !== exp.match
        )
          return where();
        consumed.push(r.data);
      } else if (Buffer.isBuffer(exp.value)) {
        if (!Buffer.isBuffer(actual.value) || !actual.value.equals(exp.value)) return where();
        consumed.push(actual.value);
      } else {
        if (JSON.stringify(actual.value) !== JSON.stringify(exp.value)) return where();
        consumed.push(rem.subarray(0, exp.consumed));
      }
    } else if (!exp.ok && !actual.ok) {
      if (actual.code !== exp.code) return where();
      if (exp.code === 'ERR_INCOMPLETE') {
        if (!Buffer.isBuffer(actual.partial) || !actual.partial.equals(exp.partial)) return where();
        consumed.push(actual.partial);
      } else if (exp.code === 'ERR_MISMATCH') {
        if (actual.line !== exp.line) return where();
        consumed.push(rem.subarray(0, exp.consumed));
      }
    }
    pos += exp.consumed;
  }
  if (!restOutcome.ok) return `final readAll: ${describe(restOutcome)}`;
  consumed.push(restOutcome.value as Buffer);
  const all = Buffer.concat(consumed);
  if (!all.equals(s.stream)) {
    return `the bytes consumed (${all.length}) are not the bytes sent (${s.stream.length}); first difference at ${firstDiff(all, s.stream)}`;
  }
  return null;
}

function showActual(o: Outcome<unknown>): string {
  const v = o.value as Partial<RegexResult> | undefined;
  if (o.ok && v !== null && typeof v === 'object' && Buffer.isBuffer(v.data)) {
    return `success(data ${hex(v.data.subarray(0, 60))} len=${v.data.length}, match ${JSON.stringify(v.match?.[0])})`;
  }
  const partial = o.err?.partial;
  if (!o.ok && Buffer.isBuffer(partial))
    return `${o.err?.code}(partial ${hex(partial.subarray(0, 60))} len=${partial.length})`;
  return describe(o);
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function hex(buf: Buffer): string {
  return JSON.stringify(buf.toString('latin1'));
}

function showOp(op: ModelOp): string {
  const { kind, ...rest } = op;
  const args = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) =>
        `${k}: ${Buffer.isBuffer(v) ? `Buffer${hex(v)}` : v instanceof RegExp ? String(v) : JSON.stringify(v)}`,
    );
  return `${kind}({ ${args.join(', ')} })`;
}

function showExpected(e: ReturnType<typeof expectedOutcome>): string {
  if ('chunkOf' in e) return `1..${e.chunkOf} bytes`;
  if (e.ok) {
    const v = Buffer.isBuffer(e.value)
      ? `Buffer${hex(e.value.subarray(0, 60))} len=${e.value.length}`
      : JSON.stringify(e.value);
    return `success(${v}${e.match !== undefined ? `, match ${JSON.stringify(e.match)}` : ''})`;
  }
  if (e.code === 'ERR_INCOMPLETE')
    return `ERR_INCOMPLETE(partial ${hex(e.partial.subarray(0, 60))} len=${e.partial.length})`;
  if (e.code === 'ERR_MISMATCH') return `ERR_MISMATCH(line ${JSON.stringify(e.line)})`;
  return e.code;
}

function showInterrupt(c: Interrupt | undefined): string {
  if (c === undefined || (c.cancel === 'none' && c.timeout === 0)) return '';
  const parts: string[] = [];
  if (c.cancel !== 'none')
    parts.push(`cancel ${c.cancel}${c.cancel === 'timer' ? ` ${c.delay} ms` : ''}`);
  if (c.timeout > 0) parts.push(`timeout ${c.timeout} ms`);
  return ` [${parts.join(', ')}]`;
}

/** A scenario as code that rebuilds it, for the failure report. */
function showScenario(s: Scenario): string {
  return [
    `stream (${s.stream.length} bytes): Buffer.from('${s.stream.toString('hex')}', 'hex')`,
    `chunks: [${s.chunks.join(', ')}], pauses: [${s.pauses.join(', ')}], mode: ${s.mode}, batches: [${s.batches.join(', ')}]`,
    `ops:\n${s.ops.map((op, i) => `  #${i} ${showOp(op)}${showInterrupt(s.interrupts[i])}`).join('\n')}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The property, with a fixed seed in npm test and random seeds under FUZZ_SECONDS

/** Seconds of random seeds per implementation: FUZZ_SECONDS shared among those under test. */
const fuzzSeconds =
  Number(process.env.FUZZ_SECONDS ?? 0) / Math.max(1, 2 * implsUnderTest().length);
const replaySeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

async function fuzz(
  t: Ctx,
  engine: Engine,
  impl: string,
  source: Source,
  runs: number,
): Promise<void> {
  const what = `framing fuzz (${source.kind})`;
  const deadline = Date.now() + fuzzSeconds * 1000;
  let iterations = 0;
  let round = 0;
  const tally: Record<string, number> = {};
  do {
    const seed = replaySeed ?? (fuzzSeconds > 0 ? (Math.random() * 2 ** 31) | 0 : FIXED_SEED);
    const details = await fc.check(
      fc.asyncProperty(scenarioArb, async (s) => {
        iterations++;
        const error = await runScenario(engine, s, source, tally);
        if (error !== null) throw new Error(`${error}\n${showScenario(s)}`);
      }),
      {
        seed,
        numRuns: fuzzSeconds > 0 && replaySeed === undefined ? 50 : runs,
        endOnFailure: false,
      },
    );
    if (details.failed) {
      const e = details.errorInstance;
      t.fail(
        `[${impl}] ${what} failed with seed ${seed} (replay: FUZZ_SEED=${seed} ASYNC_ENGINE_TEST_IMPLS=${impl} npm run fuzz)` +
          ` after ${details.numShrinks} shrinks; minimal reproduction:\n${e instanceof Error ? e.message : String(e)}`,
      );
      break;
    }
    round++;
  } while (Date.now() < deadline && replaySeed === undefined);
  t.log(
    `[${impl}] ${what}: ${iterations} iterations in ${round} round(s); op outcomes ${JSON.stringify(tally)}`,
  );
  t.pass();
}

forEachImpl(
  'framing fuzz: every read op agrees with the model, no byte lost or duplicated',
  (t, engine, impl) => fuzz(t, engine, impl, { kind: 'socket' }, RUNS),
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);

forEachImpl(
  'framing fuzz on files: sequential reads frame a file as they frame a stream',
  (t, engine, impl) => fuzz(t, engine, impl, { kind: 'file', dir: tempDir(engine) }, FILE_RUNS),
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);

// ---------------------------------------------------------------------------------------------
// Regressions the fuzz found, reduced to fixed cases

// Two length-prefixed reads queued natively on `OK\r\n`: the first one's rule rejects the header
// (ERR_INVALID_LENGTH, nothing consumed), which frames the second one's header; its callback
// cancels the second before that header's verdict is taken. cancel() wins, so ECANCELED must
// follow, not the length rule's verdict on a header the cancelled op no longer owns.
forEachImpl(
  'regression: a readLengthPrefixed cancelled while its header awaits the length rule fails ECANCELED',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    await pair.write('OK\r\n');
    const length = (): number => NaN;
    const second = once<LengthPrefixedRecord>({}, 'second');
    let cancelled: boolean | undefined;
    const first = once<LengthPrefixedRecord>(
      { failure: () => (cancelled = second.cancel()) },
      'first',
    );
    engine.readLengthPrefixed(pair.sock, { length }, first.cb);
    engine.readLengthPrefixed(pair.sock, { length }, second.cb);
    const o1 = await first.result();
    t.is(o1.err?.code, 'ERR_INVALID_LENGTH', describe(o1));
    const o2 = await second.result();
    t.is(cancelled, true);
    t.is(o2.err?.code, 'ECANCELED', describe(o2));
    // Nothing was consumed: the header is still there.
    const line = once<string>({}, 'line');
    engine.expectLine(pair.sock, null, line.cb);
    t.is((await line.result()).value, 'OK');
  },
);

// The same on a file, where the header is framed inside the submitting call: cancel() right
// after submitting wins, and the op must fail ECANCELED.
forEachImpl(
  'regression: a readLengthPrefixed on a file cancelled right after submitting fails ECANCELED',
  async (t, engine) => {
    const path = join(tempDir(engine), 'record');
    writeFileSync(path, 'OK\r\n');
    const open = once<File>({}, 'open');
    engine.open(path, open.cb);
    const file = (await open.result()).value!;
    const length = (): number => NaN;
    // The first read leaves the header buffered natively (ERR_INVALID_LENGTH consumes nothing).
    const first = once<LengthPrefixedRecord>({}, 'first');
    engine.readLengthPrefixed(file, { length }, first.cb);
    t.is((await first.result()).err?.code, 'ERR_INVALID_LENGTH');
    const second = once<LengthPrefixedRecord>({}, 'second');
    engine.readLengthPrefixed(file, { length }, second.cb);
    t.true(second.cancel());
    const o = await second.result();
    t.is(o.err?.code, 'ECANCELED', describe(o));
    engine.close(file);
  },
);

// The same race on a regex read whose RegExp throws when it runs: the throw must not replace
// the ECANCELED of a cancel that won.
forEachImpl(
  'regression: a readUntilRegex cancelled while its bytes await matching fails ECANCELED, not with what its RegExp throws',
  async (t, engine) => {
    const pair = await tcpPair(engine);
    await pair.write('OK\r\n');
    // Throws on the bytes, not on the empty string the engine tries it on when submitting.
    class Throwing extends RegExp {
      override exec(s: string): RegExpExecArray | null {
        if (s.length > 0) throw new Error('exec ran');
        return super.exec(s);
      }
    }
    const second = once<RegexResult>({}, 'second');
    let cancelled: boolean | undefined;
    const first = once<RegexResult>({ success: () => (cancelled = second.cancel()) }, 'first');
    engine.readUntilRegex(pair.sock, /OK/, first.cb);
    engine.readUntilRegex(pair.sock, new Throwing('\n'), second.cb);
    const o1 = await first.result();
    t.is(o1.value?.data.toString(), 'OK', describe(o1));
    const o2 = await second.result();
    t.is(cancelled, true);
    t.is(o2.err?.code, 'ECANCELED', describe(o2));
  },
);
