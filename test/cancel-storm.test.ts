// Cancel storms: thousands of reads, accepts, writes, chains and connects with cancel() at
// random moments (right after submit, in a microtask, in a timer, from another op's callback)
// and 1-3 ms timeouts. Checked: exactly once; cancel()'s answer matches the outcome (true:
// ECANCELED follows; false: the op's own outcome); no byte lost or duplicated on reads; writes
// reach the peer in order, a cancelled one as a prefix; no connection lost or leaked. Fixed
// seed in `npm test`; `FUZZ_SECONDS=N npm run fuzz` runs random seeds; FUZZ_SEED=s replays one.
import net from 'node:net';
import type { ReadUntilResult, RegexResult, Socket } from 'async-engine';
import {
  describe,
  type Engine,
  forEachImpl,
  implsUnderTest,
  netServer,
  noFdLeaks,
  type Pair,
  portOf,
  prng,
  type SettleCounter,
  settleCounter,
  sleep,
  tcpPair,
  type Tracked,
  waitUntil,
} from './helpers/harness.js';

noFdLeaks();

const FIXED_SEED = 424242;
/** Rounds per storm in `npm test` (seeds FIXED_SEED, FIXED_SEED + 1, ...). */
const FIXED_ROUNDS = 6;
/** Seconds of random seeds per implementation and test: FUZZ_SECONDS shared out. */
const fuzzSeconds =
  Number(process.env.FUZZ_SECONDS ?? 0) / Math.max(1, implsUnderTest().length * 4);
const replaySeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

type Rnd = () => number;
const int = (rnd: Rnd, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

/**
 * Runs `round(seed)` with the fixed seed, or with random seeds until FUZZ_SECONDS run out;
 * a failing round's message is prefixed with its seed.
 */
async function seeds(
  t: import('ava').ExecutionContext,
  impl: string,
  what: string,
  round: (seed: number, tally: Record<string, number>) => Promise<number>,
): Promise<void> {
  const deadline = Date.now() + fuzzSeconds * 1000;
  const tally: Record<string, number> = {};
  let ops = 0;
  let rounds = 0;
  do {
    const seed =
      replaySeed ?? (fuzzSeconds > 0 ? (Math.random() * 2 ** 31) | 0 : FIXED_SEED + rounds);
    try {
      ops += await round(seed, tally);
    } catch (e) {
      throw new Error(
        `[${impl}] ${what}: seed ${seed} (replay: FUZZ_SEED=${seed} ASYNC_ENGINE_TEST_IMPLS=${impl} npm run fuzz): ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    rounds++;
  } while (
    replaySeed === undefined &&
    (fuzzSeconds > 0 ? Date.now() < deadline : rounds < FIXED_ROUNDS)
  );
  t.log(`[${impl}] ${what}: ${ops} ops in ${rounds} round(s); outcomes ${JSON.stringify(tally)}`);
  // Both sides of every race were exercised.
  t.true((tally.ok ?? 0) > 0 && (tally.ECANCELED ?? 0) > 0, `outcomes ${JSON.stringify(tally)}`);
}

/** Adds a round's outcomes to the running tally. */
function addTally(into: Record<string, number>, sc: SettleCounter): void {
  for (const [k, v] of Object.entries(sc.tally())) into[k] = (into[k] ?? 0) + v;
}

// ---------------------------------------------------------------------------------------------
// Cancel plans

type When = 'none' | 'sync' | 'microtask' | 'timer' | 'callback';

interface Plan {
  when: When;
  /** Timer delay for 'timer', ms. */
  delay: number;
  /** A 1-3 ms timeout, or 0 for none. */
  timeout: number;
  /** Call cancel() a second time right after the first. */
  twice: boolean;
}

interface Armed {
  plan: Plan;
  /** What cancel() returned, once it was called. */
  first?: boolean;
  second?: boolean;
}

function randomPlan(rnd: Rnd): Plan {
  return {
    when: pick(rnd, ['none', 'none', 'sync', 'microtask', 'timer', 'timer', 'callback'] as const),
    delay: int(rnd, 0, 3),
    timeout: rnd() < 0.25 ? int(rnd, 1, 3) : 0,
    twice: rnd() < 0.1,
  };
}

/** Cancels waiting to be made from inside some later callback. */
class CallbackCancels {
  readonly #queue: Array<() => void> = [];
  push(fn: () => void): void {
    this.#queue.push(fn);
  }
  /** Called from every op's callback: makes one queued cancel, if any. */
  runOne(): void {
    this.#queue.shift()?.();
  }
}

/** Arms `tr` (already submitted) with its plan's cancel. */
function arm(tr: Tracked<unknown>, plan: Plan, fromCallbacks: CallbackCancels): Armed {
  const a: Armed = { plan };
  const doCancel = (): void => {
    a.first = tr.cancel();
    if (plan.twice) a.second = tr.cancel();
  };
  switch (plan.when) {
    case 'sync':
      doCancel();
      break;
    case 'microtask':
      queueMicrotask(doCancel);
      break;
    case 'timer':
      setTimeout(doCancel, plan.delay);
      break;
    case 'callback':
      fromCallbacks.push(doCancel);
      break;
  }
  return a;
}

/** cancel()'s answers against the outcome; null when they agree. */
function cancelDisagreement(tr: Tracked<unknown>, a: Armed): string | null {
  const o = tr.calls[0];
  if (o === undefined) return `${tr.label}: never settled`;
  const code = o.ok ? 'ok' : (o.err?.code ?? '?');
  const plan = `(cancel ${a.plan.when}, timeout ${a.plan.timeout})`;
  if (a.first === true && code !== 'ECANCELED')
    return `${tr.label} ${plan}: cancel() returned true but the outcome is ${describe(o)}`;
  if (a.first === false && code === 'ECANCELED')
    return `${tr.label} ${plan}: cancel() returned false but the op failed ECANCELED`;
  if (a.first === undefined && code === 'ECANCELED')
    return `${tr.label} ${plan}: ECANCELED without a cancel()`;
  if (a.second === true) return `${tr.label} ${plan}: a second cancel() returned true`;
  if (code === 'ETIMEDOUT' && a.plan.timeout === 0)
    return `${tr.label} ${plan}: ETIMEDOUT without a timeout`;
  return null;
}

function checkAll(sc: SettleCounter, armed: Map<Tracked<unknown>, Armed>): void {
  const wrong = sc.all.filter((x) => x.calls.length !== 1 || x.calls.some((c) => c.sync));
  if (wrong.length > 0) {
    throw new Error(
      `not settled exactly once, or synchronously: ${wrong
        .slice(0, 5)
        .map((x) => `${x.label}: [${x.calls.map(describe).join(', ')}]`)
        .join('; ')}`,
    );
  }
  for (const [tr, a] of armed) {
    const d = cancelDisagreement(tr, a);
    if (d !== null) throw new Error(d);
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

type ReadKind =
  | 'readUntil'
  | 'readUntilMany'
  | 'readExactly'
  | 'readChunk'
  | 'peek'
  | 'readUntilRegex'
  | 'expectLine';

async function readRound(
  engine: Engine,
  seed: number,
  tally: Record<string, number>,
): Promise<number> {
  const rnd = prng(seed);
  const SOCKETS = 6;
  const OPS = 300;
  const pairs: Pair[] = [];
  for (let i = 0; i < SOCKETS; i++) pairs.push(await tcpPair(engine));
  const alphabet = 'abcxyz0123456789;;\n';
  const streams = pairs.map(() => {
    const n = int(rnd, 200, 2500);
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    return Buffer.from(s, 'latin1');
  });
  // Peers write in random chunks and pauses, then end.
  const writers = pairs.map(async (p, i) => {
    const r = prng(seed + i + 1);
    const s = streams[i]!;
    for (let off = 0; off < s.length;) {
      const end = Math.min(s.length, off + int(r, 1, 200));
      await p.write(s.subarray(off, end));
      off = end;
      if (r() < 0.5) await new Promise((res) => setImmediate(res));
      else await sleep(int(r, 0, 2));
    }
    p.client.end();
  });

  const sc = settleCounter();
  const fromCallbacks = new CallbackCancels();
  const armed = new Map<Tracked<unknown>, Armed>();
  const perSocket: Array<Array<{ kind: ReadKind; tr: Tracked<unknown> }>> = pairs.map(() => []);

  const submitOne = (si: number): Tracked<unknown> => {
    const sock = pairs[si]!.sock;
    const kind = pick(rnd, [
      'readUntil',
      'readUntilMany',
      'readExactly',
      'readChunk',
      'peek',
      'readUntilRegex',
      'expectLine',
    ] as const);
    const plan = randomPlan(rnd);
    const n = int(rnd, 1, 12);
    const tr = sc.wrap<unknown>(
      {
        timeout: plan.timeout,
        success: () => fromCallbacks.runOne(),
        failure: () => fromCallbacks.runOne(),
      },
      `${kind}#${si}.${perSocket[si]!.length}`,
    );
    const cb = tr.cb as never;
    if (kind === 'readUntil') engine.readUntil(sock, ';', cb);
    else if (kind === 'readUntilMany') engine.readUntil(sock, ['9\n', '\n', ';'], cb);
    else if (kind === 'peek') engine.peek(sock, n, cb);
    else if (kind === 'readExactly') engine.readExactly(sock, n, cb);
    else if (kind === 'readChunk') engine.readChunk(sock, n, cb);
    else if (kind === 'readUntilRegex')
      engine.readUntilRegex(sock, /\d;/, { encoding: 'latin1' }, cb);
    else engine.expectLine(sock, null, { encoding: 'latin1' }, cb);
    perSocket[si]!.push({ kind, tr });
    armed.set(tr, arm(tr, plan, fromCallbacks));
    return tr;
  };

  // Batches of 1-20 ops per socket; the next batch goes in when the previous one's last op
  // settles (from its callback's promise, so also after cancels and timeouts).
  const done: Array<Promise<void>> = pairs.map(async (_, si) => {
    let left = Math.floor(OPS / SOCKETS);
    while (left > 0) {
      const n = Math.min(left, int(rnd, 1, 20));
      left -= n;
      let last: Tracked<unknown> | undefined;
      for (let k = 0; k < n; k++) last = submitOne(si);
      await last!.result(20_000);
    }
  });
  await Promise.all(done);
  await sc.allSettled(20_000);
  await Promise.all(writers);
  checkAll(sc, armed);

  // No data lost: per socket, what the ops consumed, in order, then the rest, is the stream.
  for (let si = 0; si < SOCKETS; si++) {
    const parts: Buffer[] = [];
    let pos = 0;
    for (const { kind, tr } of perSocket[si]!) {
      const o = tr.calls[0]!;
      if (o.ok && kind === 'peek') {
        // A copy of the next bytes, none consumed (empty only at the end of the stream).
        const v = o.value as Buffer;
        const next = streams[si]!.subarray(pos, pos + v.length);
        if (!v.equals(next) || (v.length === 0 && pos < streams[si]!.length)) {
          throw new Error(`${tr.label}: peeked ${describe(o)} at ${pos}, not the next bytes`);
        }
        continue;
      }
      const before = parts.length;
      if (o.ok) {
        if (kind === 'readUntilRegex') parts.push((o.value as RegexResult).data);
        else if (kind === 'readUntilMany') parts.push((o.value as ReadUntilResult).data);
        else if (kind === 'expectLine') parts.push(Buffer.from(`${o.value as string}\n`, 'latin1'));
        else parts.push(o.value as Buffer);
      } else if (o.err?.code === 'ERR_INCOMPLETE') {
        parts.push(o.err.partial ?? Buffer.alloc(0));
      } else if (o.err?.code !== 'ECANCELED' && o.err?.code !== 'ETIMEDOUT') {
        throw new Error(`${tr.label}: unexpected ${describe(o)}`);
      }
      if (parts.length > before) pos += parts[parts.length - 1]!.length;
    }
    const rest = sc.wrap<Buffer>({}, `final readAll #${si}`);
    engine.readAll(pairs[si]!.sock, { maxBytes: Infinity }, rest.cb);
    const r = await rest.result(20_000);
    if (!r.ok) throw new Error(`final readAll #${si}: ${describe(r)}`);
    parts.push(r.value!);
    const got = Buffer.concat(parts);
    if (!got.equals(streams[si]!)) {
      throw new Error(
        `socket ${si}: the bytes consumed differ from the bytes sent\n got ${JSON.stringify(got.toString('latin1'))}\nwant ${JSON.stringify(streams[si]!.toString('latin1'))}`,
      );
    }
    engine.close(pairs[si]!.sock);
    pairs[si]!.client.destroy();
  }
  addTally(tally, sc);
  return OPS;
}

forEachImpl(
  'cancel storm: reads with random cancels and 1-3 ms timeouts settle once, answer truly, lose no byte',
  async (t, engine, impl) => {
    await seeds(t, impl, 'read storm', (seed, tally) => readRound(engine, seed, tally));
    t.pass();
  },
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);

// ---------------------------------------------------------------------------------------------
// Accepts

async function acceptRound(
  engine: Engine,
  seed: number,
  tally: Record<string, number>,
): Promise<number> {
  const rnd = prng(seed);
  // As many clients as accepts: every accept that no cancel or timeout stops gets one.
  const ACCEPTS = 150;
  const CLIENTS = ACCEPTS;
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const port = portOf(listener);
  const sc = settleCounter();
  const fromCallbacks = new CallbackCancels();
  const armed = new Map<Tracked<unknown>, Armed>();
  const accepted: Socket[] = [];
  const clients: net.Socket[] = [];
  /** Clients whose connection the engine closed before any accept took it. */
  const closedByEngine = new Set<number>();

  const submitAccept = (plan: Plan, label: string): Tracked<unknown> => {
    const tr = sc.wrap<unknown>(
      {
        timeout: plan.timeout,
        success: (s) => {
          accepted.push(s as Socket);
          fromCallbacks.runOne();
        },
        failure: () => fromCallbacks.runOne(),
      },
      label,
    );
    engine.accept(listener, tr.cb as never);
    armed.set(tr, arm(tr, plan, fromCallbacks));
    return tr;
  };

  // Clients connect at random moments, each sending its 4-byte id.
  const connecting = (async () => {
    for (let i = 0; i < CLIENTS; i++) {
      const c = net.connect({ host: '127.0.0.1', port });
      clients.push(c);
      const id = Buffer.alloc(4);
      id.writeUInt32BE(i);
      c.on('error', () => closedByEngine.add(i));
      c.on('end', () => closedByEngine.add(i));
      c.write(id);
      if (rnd() < 0.3) await sleep(int(rnd, 0, 2));
    }
  })();
  for (let k = 0; k < ACCEPTS; k++) {
    submitAccept(randomPlan(rnd), `accept#${k}`);
    if (rnd() < 0.1) await sleep(int(rnd, 0, 2));
  }
  await connecting;
  await sc.allSettled(20_000);
  checkAll(sc, armed);

  // Every connection a cancelled accept raced is kept for a later accept: take them all.
  let spare = 0;
  const want = (): number => CLIENTS - closedByEngine.size;
  while (accepted.length < want() && spare < CLIENTS * 2) {
    const tr = submitAccept(
      { when: 'none', delay: 0, timeout: 0, twice: false },
      `drain#${spare++}`,
    );
    const o = await Promise.race([tr.promise, sleep(1_000).then(() => undefined)]);
    if (o === undefined) {
      tr.cancel();
      await tr.result();
      break;
    }
  }
  // Which client each accepted socket is.
  const ids: number[] = [];
  for (const s of accepted) {
    const tr = sc.wrap<Buffer>({}, 'id');
    engine.readExactly(s, 4, tr.cb);
    const o = await tr.result(10_000);
    if (!o.ok) throw new Error(`reading a client's id: ${describe(o)}`);
    ids.push(o.value!.readUInt32BE(0));
    engine.close(s);
  }
  engine.close(listener);
  for (const c of clients) c.destroy();
  const seen = new Set(ids);
  if (seen.size !== ids.length)
    throw new Error(`a connection was accepted twice: ${ids.join(',')}`);
  const lost: number[] = [];
  for (let i = 0; i < CLIENTS; i++) if (!seen.has(i) && !closedByEngine.has(i)) lost.push(i);
  if (lost.length > 0) {
    throw new Error(
      `connections neither accepted nor closed: ${lost.join(',')} (${JSON.stringify(sc.tally())})`,
    );
  }
  addTally(tally, sc);
  return ACCEPTS;
}

forEachImpl(
  'cancel storm: accepts with random cancels and timeouts never lose or leak a connection',
  async (t, engine, impl) => {
    await seeds(t, impl, 'accept storm', (seed, tally) => acceptRound(engine, seed, tally));
    t.pass();
  },
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);

// ---------------------------------------------------------------------------------------------
// Writes

const HEADER = 3;
function header(i: number): Buffer {
  return Buffer.from([0x01, 0x10 + (i >> 6), 0x10 + (i & 63)]);
}

async function writeRound(
  engine: Engine,
  impl: string,
  seed: number,
  tally: Record<string, number>,
): Promise<number> {
  const rnd = prng(seed);
  const WRITES = 400;
  const p = await tcpPair(engine);
  const sc = settleCounter();
  const fromCallbacks = new CallbackCancels();
  const armed = new Map<Tracked<unknown>, Armed>();
  const writes: Array<{ data: Buffer; tr: Tracked<unknown> }> = [];
  for (let i = 0; i < WRITES; i++) {
    // A 3-byte header (0x01, then the index in two bytes 0x10-0x4f) and letters: 0x01 only
    // starts a write, so where a cut write ends is unambiguous.
    const size = rnd() < 0.05 ? int(rnd, 100_000, 400_000) : int(rnd, 0, 200);
    const data = Buffer.concat([header(i), Buffer.alloc(size, 97 + (i % 26))]);
    const plan = randomPlan(rnd);
    const tr = sc.wrap<unknown>(
      {
        timeout: plan.timeout,
        success: () => fromCallbacks.runOne(),
        failure: () => fromCallbacks.runOne(),
      },
      `write#${i}`,
    );
    engine.write(p.sock, data, tr.cb as never);
    armed.set(tr, arm(tr, plan, fromCallbacks));
    writes.push({ data, tr });
    if (rnd() < 0.05) await sleep(int(rnd, 0, 2));
  }
  await sc.allSettled(30_000);
  checkAll(sc, armed);
  // Every write has settled: closing sends FIN after what the kernel holds.
  engine.close(p.sock);
  await p.ended;
  const got = p.received();
  let at = 0;
  for (const [i, { data, tr }] of writes.entries()) {
    const o = tr.calls[0]!;
    let n = 0;
    while (n < data.length && at + n < got.length && got[at + n] === data[n]) n++;
    // A prefix of the header alone may be the start of a later write's header instead.
    if (n > 0 && n < HEADER && got.length >= at + HEADER && got.indexOf(1, at + 1) !== at + 1) {
      if (got.indexOf(1, at + 1) === -1 || got.indexOf(1, at + 1) >= at + HEADER) {
        if (!got.subarray(at, at + HEADER).equals(header(i))) n = 0;
      }
    }
    if (o.ok) {
      if (n !== data.length)
        throw new Error(
          `write#${i} succeeded but the peer got ${n} of its ${data.length} bytes at ${at}`,
        );
    } else {
      const code = o.err?.code;
      if (code !== 'ECANCELED' && code !== 'ETIMEDOUT')
        throw new Error(`write#${i}: ${describe(o)}`);
      const confirmed = o.err?.bytesWritten ?? 0;
      // What the kernel confirmed arrived; a send under way at cancel time may add more
      // (completion, threadpool), never past the write's own end.
      if (n < confirmed || (impl === 'readiness' && n !== confirmed)) {
        throw new Error(
          `write#${i} ${code} with bytesWritten ${confirmed}, but the peer got ${n} of its bytes`,
        );
      }
    }
    at += n;
  }
  if (at !== got.length)
    throw new Error(`the peer got ${got.length - at} bytes that no write accounts for, at ${at}`);
  engine.close(p.sock);
  p.client.destroy();
  addTally(tally, sc);
  return WRITES;
}

forEachImpl(
  'cancel storm: writes with random cancels reach the peer in order, a cancelled one as a prefix',
  async (t, engine, impl) => {
    await seeds(t, impl, 'write storm', (seed, tally) => writeRound(engine, impl, seed, tally));
    t.pass();
  },
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);

// ---------------------------------------------------------------------------------------------
// Chains and connects

/** A chain's cancel answer: true means some stage failed ECANCELED; false means none did. */
function chainDisagreement(stages: Tracked<unknown>[], a: Armed): string | null {
  const codes = stages.map((s) => (s.calls[0]?.ok ? 'ok' : (s.calls[0]?.err?.code ?? '?')));
  const label = `${stages[0]!.label} (cancel ${a.plan.when}) [${codes.join(', ')}]`;
  if (a.first === true && !codes.includes('ECANCELED')) return `${label}: cancel() returned true`;
  if (a.first !== true && codes.includes('ECANCELED'))
    return `${label}: ECANCELED without a winning cancel()`;
  if (a.second === true) return `${label}: a second cancel() returned true`;
  const i = codes.findIndex((c) => c !== 'ok');
  if (i >= 0) {
    for (const c of codes.slice(i + 1)) {
      if (c !== 'ERR_ABORTED' && c !== 'ECANCELED')
        return `${label}: a stage after a failure did not fail ERR_ABORTED or ECANCELED`;
    }
  }
  return null;
}

async function chainRound(
  engine: Engine,
  seed: number,
  tally: Record<string, number>,
): Promise<number> {
  const rnd = prng(seed);
  const CHAINS = 80;
  const sc = settleCounter();
  const fromCallbacks = new CallbackCancels();
  let ops = 0;

  // connectThenWriteLine to a node:net server.
  const server = await netServer(engine);
  const writeChains: Array<{ stages: Tracked<unknown>[]; a: Armed; line: string }> = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < CHAINS; i++) {
    const plan = randomPlan(rnd);
    const slots = {
      timeout: plan.timeout,
      success: (v: unknown) => {
        if (typeof v === 'object' && v !== null && 'fileno' in v) sockets.push(v as Socket);
        fromCallbacks.runOne();
      },
      failure: () => fromCallbacks.runOne(),
    };
    const stages = [
      sc.wrap<unknown>(slots, `connectThenWriteLine#${i}`),
      sc.wrap<unknown>(slots, `.write#${i}`),
    ];
    const line = `L${i}`;
    engine.connectThenWriteLine({ host: '127.0.0.1', port: server.port }, line, [
      stages[0]!.cb,
      stages[1]!.cb,
    ] as never);
    writeChains.push({ stages, a: arm(stages[int(rnd, 0, 1)]!, plan, fromCallbacks), line });
    ops += 2;
  }

  // acceptThenExpectLine against node:net clients that each send one line.
  const listener = engine.listen({ host: '127.0.0.1', port: 0 });
  const lineChains: Array<{ stages: Tracked<unknown>[]; a: Armed }> = [];
  const clients: net.Socket[] = [];
  for (let i = 0; i < CHAINS; i++) {
    const plan = randomPlan(rnd);
    const slots = {
      timeout: plan.timeout,
      success: () => fromCallbacks.runOne(),
      failure: () => fromCallbacks.runOne(),
    };
    const stages = [
      sc.wrap<unknown>(slots, `acceptThenExpectLine#${i}`),
      sc.wrap<unknown>(slots, `.line#${i}`),
    ];
    engine.acceptThenExpectLine(listener, null, [stages[0]!.cb, stages[1]!.cb] as never);
    lineChains.push({ stages, a: arm(stages[int(rnd, 0, 1)]!, plan, fromCallbacks) });
    ops += 2;
    const c = net.connect({ host: '127.0.0.1', port: portOf(listener) });
    c.on('error', () => {});
    c.write(`C${i}\n`);
    clients.push(c);
    if (rnd() < 0.1) await sleep(int(rnd, 0, 2));
  }

  // Plain connects.
  const connects: Array<{ tr: Tracked<unknown>; a: Armed }> = [];
  for (let i = 0; i < CHAINS; i++) {
    const plan = randomPlan(rnd);
    const tr = sc.wrap<unknown>(
      {
        timeout: plan.timeout,
        success: (v) => {
          sockets.push(v as Socket);
          fromCallbacks.runOne();
        },
        failure: () => fromCallbacks.runOne(),
      },
      `connect#${i}`,
    );
    engine.connect({ host: '127.0.0.1', port: server.port }, tr.cb as never);
    connects.push({ tr, a: arm(tr, plan, fromCallbacks) });
    ops++;
  }

  await sc.allSettled(20_000);
  const wrong = sc.all.filter((x) => x.calls.length !== 1 || x.calls.some((c) => c.sync));
  if (wrong.length > 0)
    throw new Error(
      `not settled exactly once: ${wrong
        .slice(0, 5)
        .map((x) => `${x.label}: [${x.calls.map(describe).join(', ')}]`)
        .join('; ')}`,
    );
  for (const c of [...writeChains, ...lineChains]) {
    const d = chainDisagreement(c.stages, c.a);
    if (d !== null) throw new Error(d);
  }
  for (const c of connects) {
    const d = cancelDisagreement(c.tr, c.a);
    if (d !== null) throw new Error(d);
  }

  // Every line a write stage reported written reaches the server.
  const written = writeChains.filter((c) => c.stages[1]!.calls[0]!.ok).map((c) => `${c.line}\r\n`);
  // Every connection the server got (a cancelled connect may have reached it too).
  const peers: Array<{ received(): Buffer }> = [];
  while (peers.length < sockets.length) peers.push(await server.nextConnection(10_000));
  for (;;) {
    const more = await server.nextConnection(200).catch(() => undefined);
    if (more === undefined) break;
    peers.push(more);
  }
  const peersText = (): string => peers.map((x) => x.received().toString('latin1')).join('|');
  for (const s of sockets) engine.close(s);
  if (written.length > 0) {
    await waitUntil(() => written.every((l) => peersText().includes(l)), 5_000);
  }

  // Every client connection is identified once: by its chain's line, by reading the line the
  // cancelled line stage left buffered, or by a later accept.
  const ids: string[] = [];
  const readLine = async (s: Socket): Promise<void> => {
    const tr = sc.wrap<string>({}, 'line');
    engine.expectLine(s, null, tr.cb);
    const o = await tr.result(10_000);
    if (!o.ok) throw new Error(`reading a client's line: ${describe(o)}`);
    ids.push(o.value!);
    engine.close(s);
  };
  for (const c of lineChains) {
    const [acc, line] = c.stages.map((s) => s.calls[0]!);
    if (!acc!.ok) continue;
    if (line!.ok) {
      ids.push(line!.value as string);
      engine.close(acc!.value as Socket);
    } else {
      await readLine(acc!.value as Socket);
    }
  }
  for (let k = 0; ids.length < CHAINS && k < CHAINS; k++) {
    const tr = sc.wrap<Socket>({}, `drain#${k}`);
    engine.accept(listener, tr.cb);
    const o = await Promise.race([tr.promise, sleep(1_000).then(() => undefined)]);
    if (o === undefined) {
      tr.cancel();
      break;
    }
    if (!o.ok) throw new Error(`drain accept: ${describe(o)}`);
    await readLine(o.value!);
  }
  engine.close(listener);
  for (const c of clients) c.destroy();
  const unique = new Set(ids);
  if (unique.size !== ids.length || ids.length !== CHAINS) {
    throw new Error(`client lines seen ${ids.length} (${unique.size} distinct) of ${CHAINS}`);
  }
  // Check the written lines after the drain, so that a slow peer had time.
  const text = peersText();
  const missing = written.filter((l) => !text.includes(l));
  if (missing.length > 0)
    throw new Error(`lines reported written but not received: ${missing.slice(0, 5).join(' ')}`);
  addTally(tally, sc);
  return ops;
}

forEachImpl(
  'cancel storm: chains and connects with random cancels settle every stage once and lose no connection',
  async (t, engine, impl) => {
    await seeds(t, impl, 'chain and connect storm', (seed, tally) =>
      chainRound(engine, seed, tally),
    );
    t.pass();
  },
  { timeout: Math.max(120_000, fuzzSeconds * 1000 + 120_000) },
);
