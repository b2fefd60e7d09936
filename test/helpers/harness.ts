// Shared conformance-suite harness: registers every test once per available implementation
// with a fresh engine (always shut down at the end), and offers helpers for loopback pairs,
// exactly-once accounting, the never-synchronous rule and fd-leak checks.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  availableImpls,
  Callback,
  createEngine,
  EngineError,
  type EngineConfig,
  type ImplName,
  type Listener,
  type Socket,
} from 'async-engine';

export type Engine = ReturnType<typeof createEngine>;
export type IO = Socket | Listener;
export type Ctx = ExecutionContext<unknown>;

// ---------------------------------------------------------------------------------------------
// Implementations

/** Implementations this run exercises: the available ones, narrowed by ASYNC_ENGINE_TEST_IMPLS. */
export function implsUnderTest(): ImplName[] {
  return availableImpls()
    .filter((a) => a.available && selectedByEnv(a.impl))
    .map((a) => a.impl);
}

function selectedByEnv(impl: ImplName): boolean {
  const env = process.env.ASYNC_ENGINE_TEST_IMPLS;
  if (env === undefined || env.trim() === '') return true;
  return env
    .split(',')
    .map((s) => s.trim())
    .includes(impl);
}

// ---------------------------------------------------------------------------------------------
// The never-synchronous rule and exactly-once accounting.
//
// `guardDepth` is above zero while the test is inside an engine call (submit, close, shutdown,
// listen, ...) or inside `cb.cancel()` made through a Tracked. A tracked callback that runs then
// is a synchronous (re-entrant) callback: a contract violation. runOnce()/run() are exempt: they
// exist to dispatch.

let guardDepth = 0;
const violations: string[] = [];

/** Runs fn with the "no callback may run now" guard raised. */
export function guarded<R>(fn: () => R): R {
  guardDepth++;
  try {
    return fn();
  } finally {
    guardDepth--;
  }
}

/** One settlement of a Callback. */
export interface Outcome<V> {
  ok: boolean;
  value?: V;
  sock?: IO;
  err?: EngineError;
  /** The callback ran inside an engine call or a cancel() (never allowed). */
  sync: boolean;
}

/** Slots of a tracked Callback: the test's own success/failure run after the accounting. */
export interface Slots<V> {
  timeout?: number;
  success?(value: V, io: IO | undefined): void;
  failure?(err: EngineError): void;
}

/** A Callback whose settlements are recorded and exposed as a Promise. */
export interface Tracked<V> {
  readonly cb: Callback<V>;
  /** Resolves with the first settlement. */
  readonly promise: Promise<Outcome<V>>;
  /** Every settlement so far (exactly one is the only correct final state). */
  readonly calls: Outcome<V>[];
  readonly label: string;
  /** The first settlement, or a rejection naming the callback if none came within ms. */
  result(ms?: number): Promise<Outcome<V>>;
  /** cb.cancel() with the synchronous-callback guard raised. */
  cancel(): boolean;
}

let trackedSeq = 0;

/** Wraps a new Callback: its outcome becomes a Promise `{ ok, value, sock, err }`. */
export function once<V>(slots: Slots<V> = {}, label?: string): Tracked<V> {
  const name = label ?? `callback#${++trackedSeq}`;
  const calls: Outcome<V>[] = [];
  const d = deferred<Outcome<V>>();
  const record = (o: Outcome<V>): void => {
    calls.push(o);
    if (o.sync)
      violations.push(`${name}: called synchronously (inside an engine call or cancel())`);
    if (calls.length === 2) violations.push(`${name}: settled more than once`);
    if (calls.length === 1) d.resolve(o);
  };
  const init: ConstructorParameters<typeof Callback<V>>[0] = {
    success: (value: V, io: IO | undefined) => {
      record({ ok: true, value, sock: io, sync: guardDepth > 0 });
      slots.success?.(value, io);
    },
    failure: (err: EngineError) => {
      record({ ok: false, err, sync: guardDepth > 0 });
      slots.failure?.(err);
    },
  };
  if (slots.timeout !== undefined) init.timeout = slots.timeout;
  const cb = new Callback<V>(init);
  return {
    cb,
    promise: d.promise,
    calls,
    label: name,
    result: (ms = 15_000) => withDeadline(d.promise, ms, `${name} to settle`),
    cancel: () => guarded(() => cb.cancel()),
  };
}

/** Describes an outcome for assertion messages. */
export function describe(o: Outcome<unknown> | undefined): string {
  if (o === undefined) return 'not settled';
  if (o.ok) return `success(${preview(o.value)})`;
  const e = o.err as (EngineError & { cause?: unknown }) | undefined;
  const cause = e?.cause instanceof Error ? ` cause=${(e.cause as EngineError).code}` : '';
  return `failure(${e?.code ?? '?'}: ${e?.message ?? String(e)}${cause})`;
}

function preview(v: unknown): string {
  if (Buffer.isBuffer(v))
    return `Buffer<${JSON.stringify(v.subarray(0, 60).toString('latin1'))}${v.length > 60 ? '…' : ''} len=${v.length}>`;
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? v.slice(0, 80) + '…' : v);
  if (v !== null && typeof v === 'object' && !Array.isArray(v))
    return Object.prototype.toString.call(v);
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 120 ? s.slice(0, 120) + '…' : s;
  } catch {
    return String(v);
  }
}

/** Awaits a tracked callback, asserts it succeeded exactly once, returns its value. */
export async function expectOk<V>(t: Ctx, tr: Tracked<V>, ms?: number): Promise<V> {
  const o = await tr.result(ms);
  t.true(o.ok, `${tr.label}: expected success, got ${describe(o)}`);
  t.false(o.sync, `${tr.label}: callback ran synchronously`);
  if (!o.ok) throw new Error(`${tr.label}: ${describe(o)}`);
  return o.value as V;
}

/**
 * Awaits a tracked callback, asserts it failed with an EngineError whose code is `code` (or one
 * of `code`), returns the error.
 */
export async function expectErr<V>(
  t: Ctx,
  tr: Tracked<V>,
  code: string | string[],
  ms?: number,
): Promise<EngineError> {
  const o = await tr.result(ms);
  const codes = Array.isArray(code) ? code : [code];
  t.false(o.ok, `${tr.label}: expected failure ${codes.join('|')}, got ${describe(o)}`);
  t.false(o.sync, `${tr.label}: callback ran synchronously`);
  if (o.ok || o.err === undefined) throw new Error(`${tr.label}: ${describe(o)}`);
  t.true(o.err instanceof EngineError, `${tr.label}: error is not an EngineError`);
  t.true(
    codes.includes(o.err.code),
    `${tr.label}: expected ${codes.join('|')}, got ${describe(o)}`,
  );
  return o.err;
}

/** A group of tracked callbacks, checked together: each one settled exactly once. */
export interface SettleCounter {
  wrap<V>(slots?: Slots<V>, label?: string): Tracked<V>;
  readonly all: Tracked<unknown>[];
  /** Waits until every wrapped callback has settled at least once, then a little longer. */
  allSettled(ms?: number): Promise<void>;
  /** Asserts each wrapped callback settled exactly once and never synchronously. */
  assertExactlyOnce(t: Ctx): void;
  /** Number of final outcomes per kind: 'ok' or the error code. */
  tally(): Record<string, number>;
}

export function settleCounter(): SettleCounter {
  const all: Tracked<unknown>[] = [];
  return {
    all,
    wrap<V>(slots?: Slots<V>, label?: string): Tracked<V> {
      const tr = once<V>(slots, label);
      all.push(tr as Tracked<unknown>);
      return tr;
    },
    async allSettled(ms = 30_000) {
      const pending = () => all.filter((x) => x.calls.length === 0).map((x) => x.label);
      await withDeadline(
        Promise.all(all.map((x) => x.promise)),
        ms,
        () => `all callbacks to settle (still pending: ${pending().slice(0, 10).join(', ')})`,
      );
      // Give a duplicate settlement the chance to show up.
      await sleep(30);
    },
    assertExactlyOnce(t: Ctx) {
      const wrong = all
        .filter((x) => x.calls.length !== 1)
        .map(
          (x) => `${x.label}: ${x.calls.length} settlements [${x.calls.map(describe).join(', ')}]`,
        );
      t.deepEqual(wrong.slice(0, 10), [], `${wrong.length} callbacks not settled exactly once`);
      const sync = all.filter((x) => x.calls.some((c) => c.sync)).map((x) => x.label);
      t.deepEqual(sync.slice(0, 10), [], 'callbacks that ran synchronously');
    },
    tally() {
      const out: Record<string, number> = {};
      for (const x of all) {
        const o = x.calls[0];
        const k = o === undefined ? 'pending' : o.ok ? 'ok' : (o.err?.code ?? '?');
        out[k] = (out[k] ?? 0) + 1;
      }
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Per-test engine

export interface ForEachOptions {
  /** Engine configuration (impl is filled in by the harness). */
  config?: Omit<EngineConfig, 'impl'>;
  /** Register with test.serial (default: serial if noFdLeaks() was called in this file). */
  serial?: boolean;
  /** ava timeout for the test, ms (default 60 s). */
  timeout?: number;
}

export type ImplTest = (t: Ctx, engine: Engine, impl: ImplName) => Promise<void> | void;

let serialByDefault = false;
const skippedImpls = new Set<ImplName>();
const cleanups = new WeakMap<object, Array<() => void | Promise<void>>>();
const shutdowns = new WeakMap<object, Promise<void>>();

/** Registers fn to run after the engine's test has shut it down (destroy net peers, rm dirs). */
export function onCleanup(engine: Engine, fn: () => void | Promise<void>): void {
  let list = cleanups.get(engine);
  if (list === undefined) cleanups.set(engine, (list = []));
  list.push(fn);
}

/**
 * Shuts the engine down once: later calls return the first call's promise. Tests that shut
 * down themselves use this, so the harness's own final shutdown does not call it twice.
 */
export function shutdownEngine(engine: Engine): Promise<void> {
  let p = shutdowns.get(engine);
  if (p === undefined) {
    p = guarded(() => engine.shutdown());
    shutdowns.set(engine, p);
  }
  return p;
}

/**
 * The engine handed to a test: every method call (submit, close, shutdown, ...) raises the
 * synchronous-callback guard, except runOnce() and run(), which exist to dispatch.
 */
function guardedEngine(engine: Engine): Engine {
  const exempt = new Set<PropertyKey>(['runOnce', 'run']);
  return new Proxy(engine, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function' || exempt.has(prop)) {
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      }
      return (...args: unknown[]) =>
        guarded(() => (v as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

/**
 * Registers one ava test per implementation, titled `[impl] title`, each with a fresh engine,
 * which is always shut down at the end (also when the test fails). After shutdown the test
 * also fails if any tracked callback was called twice or synchronously while it ran.
 * Implementations that cannot run here are registered as skipped, with the reason.
 */
export function forEachImpl(title: string, fn: ImplTest, options: ForEachOptions = {}): void {
  const serial = options.serial ?? serialByDefault;
  for (const { impl, available, reason } of availableImpls()) {
    if (!selectedByEnv(impl)) continue;
    const full = `[${impl}] ${title}`;
    if (!available) {
      // One reported skip per implementation and file, with the reason.
      if (!skippedImpls.has(impl)) {
        skippedImpls.add(impl);
        test.skip(`[${impl}] every test in this file (unavailable: ${reason ?? 'no reason given'})`, (t) =>
          t.pass());
      }
      continue;
    }
    const register = serial ? test.serial : test;
    register(full, async (t) => {
      t.timeout(options.timeout ?? 60_000);
      const violationsBefore = violations.length;
      const raw = createEngine({ ...options.config, impl });
      const engine = guardedEngine(raw);
      t.is(raw.impl, impl, 'engine.impl is the implementation asked for');
      let failure: unknown;
      try {
        await fn(t, engine, impl);
      } catch (e) {
        failure = e;
      }
      try {
        await withDeadline(shutdownEngine(engine), 15_000, 'engine.shutdown()');
      } catch (e) {
        if (failure === undefined) failure = e;
        else t.log(`shutdown also failed: ${String(e)}`);
      }
      for (const c of (cleanups.get(engine) ?? []).reverse()) {
        try {
          await c();
        } catch (e) {
          t.log(`cleanup failed: ${String(e)}`);
        }
      }
      await sleep(10);
      const fresh = violations.slice(violationsBefore);
      if (fresh.length > 0) t.fail(`contract violations: ${fresh.slice(0, 10).join('; ')}`);
      if (failure !== undefined) throw failure;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// File descriptors

/** Number of open fds of this process (from /proc/self/fd). */
export function fdCount(): number {
  return fdSnapshot().size;
}

function fdSnapshot(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target = '?';
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory fd readdir itself used, gone already
    }
    out.set(fd, target);
  }
  return out;
}

/**
 * Records the fd count before the file's tests (after warming up Node's own lazily-opened fds)
 * and asserts it is the same after them. Call it at the top of the file, before forEachImpl:
 * it also makes that file's tests serial.
 */
export function noFdLeaks(testFn: typeof test = test): void {
  serialByDefault = true;
  let baseline = new Map<string, string>();
  testFn.before(async () => {
    await warmUp();
    baseline = fdSnapshot();
  });
  testFn.after.always('no fds leaked', async (t) => {
    let now = fdSnapshot();
    const deadline = Date.now() + 5_000;
    while (now.size > baseline.size && Date.now() < deadline) {
      await sleep(50);
      now = fdSnapshot();
    }
    const extra = [...now].filter(([fd, target]) => baseline.get(fd) !== target).slice(0, 20);
    const missing = [...baseline].filter(([fd, target]) => now.get(fd) !== target).slice(0, 20);
    t.is(
      now.size,
      baseline.size,
      `fd count ${baseline.size} → ${now.size}; new: ${extra.map(([fd, x]) => `${fd}→${x}`).join(', ')}; gone: ${missing
        .map(([fd, x]) => `${fd}→${x}`)
        .join(', ')}`,
    );
  });
}

/** Makes Node open the fds it opens lazily and keeps (child-process signal pipes, ...). */
async function warmUp(): Promise<void> {
  spawnSync(process.execPath, ['-e', '0']);
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => resolve());
    c.on('close', () => resolve());
    c.resume();
  });
  await new Promise<void>((r) => server.close(() => r()));
  await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// Loopback helpers

/** The TCP port a listener is bound to. */
export function portOf(listener: Listener): number {
  const a = listener.address();
  if (typeof a === 'string') throw new Error(`listener is a Unix socket (${a})`);
  return a.port;
}

/** A node:net client whose received bytes are collected. */
export interface NetPeer {
  client: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves once at least n bytes have arrived (rejects after ms). */
  waitForBytes(n: number, ms?: number): Promise<Buffer>;
  /** Resolves when the client saw the engine side's FIN or an error ('end' / 'close'). */
  ended: Promise<void>;
  /** Resolves when the client's socket is closed ('close'), both sides done. */
  closed: Promise<void>;
  /** The code of every error the client saw (a reset shows as ECONNRESET or EPIPE). */
  errors: string[];
  /** Writes and resolves when the data was handed to the kernel. */
  write(data: string | Buffer): Promise<void>;
}

function collectPeer(client: net.Socket): NetPeer {
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters: Array<{ n: number; d: Deferred<Buffer> }> = [];
  const ended = deferred<void>();
  const closed = deferred<void>();
  const errors: string[] = [];
  client.on('error', (e: NodeJS.ErrnoException) => {
    errors.push(e.code ?? e.message);
    ended.resolve();
  });
  client.on('end', () => ended.resolve());
  client.on('close', () => {
    ended.resolve();
    closed.resolve();
  });
  client.on('data', (b: Buffer) => {
    chunks.push(b);
    total += b.length;
    for (const w of [...waiters]) {
      if (total >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.d.resolve(Buffer.concat(chunks));
      }
    }
  });
  return {
    client,
    received: () => Buffer.concat(chunks),
    waitForBytes(n, ms = 15_000) {
      if (total >= n) return Promise.resolve(Buffer.concat(chunks));
      const d = deferred<Buffer>();
      waiters.push({ n, d });
      return withDeadline(d.promise, ms, () => `${n} bytes at the net client (have ${total})`);
    },
    ended: ended.promise,
    closed: closed.promise,
    errors,
    write(data) {
      return new Promise((resolve, reject) =>
        client.write(data, (err) => (err ? reject(err) : resolve())),
      );
    },
  };
}

export interface Pair extends NetPeer {
  /** The engine-side (accepted) socket. */
  sock: Socket;
}

/**
 * Listens on 127.0.0.1:0 (or `host`), connects a node:net client and accepts it on the engine;
 * returns the engine-side Socket and the client. The listener is closed afterwards; the client
 * is destroyed when the test ends.
 */
export async function tcpPair(engine: Engine, opts: { host?: string } = {}): Promise<Pair> {
  const host = opts.host ?? '127.0.0.1';
  const listener = engine.listen({ host, port: 0 });
  const acc = once<Socket>({}, 'tcpPair accept');
  engine.accept(listener, acc.cb);
  const client = net.connect({ host, port: portOf(listener) });
  client.setNoDelay(true);
  const peer = collectPeer(client);
  onCleanup(engine, () => {
    client.destroy();
  });
  await withDeadline(
    new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    }),
    10_000,
    'net client to connect',
  );
  const o = await acc.result();
  engine.close(listener);
  if (!o.ok) throw new Error(`tcpPair: accept failed: ${describe(o)}`);
  return { ...peer, sock: o.value as Socket };
}

/** A node:net server on 127.0.0.1:0 (or a Unix path); accepted sockets are collected. */
export interface NetServer {
  server: net.Server;
  port: number;
  /** Resolves with the next accepted connection (already collecting). */
  nextConnection(ms?: number): Promise<NetPeer>;
}

export async function netServer(
  engine: Engine,
  opts: { host?: string; path?: string } = {},
): Promise<NetServer> {
  const queue: NetPeer[] = [];
  const waiting: Deferred<NetPeer>[] = [];
  const all: net.Socket[] = [];
  const server = net.createServer((s) => {
    all.push(s);
    s.setNoDelay?.(true);
    const p = collectPeer(s);
    const w = waiting.shift();
    if (w) w.resolve(p);
    else queue.push(p);
  });
  onCleanup(engine, async () => {
    for (const s of all) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (opts.path !== undefined) server.listen(opts.path, resolve);
    else server.listen(0, opts.host ?? '127.0.0.1', resolve);
  });
  const addr = server.address();
  return {
    server,
    port: typeof addr === 'object' && addr !== null ? addr.port : 0,
    nextConnection(ms = 15_000) {
      const q = queue.shift();
      if (q) return Promise.resolve(q);
      const d = deferred<NetPeer>();
      waiting.push(d);
      return withDeadline(d.promise, ms, 'a connection at the net server');
    },
  };
}

/**
 * Connects a node:net client to a port (or path) and collects what it receives. With
 * `allowHalfOpen` the engine side's FIN does not end the client's own side.
 */
export async function netClient(
  engine: Engine,
  to: { host?: string; port?: number; path?: string; allowHalfOpen?: boolean },
): Promise<NetPeer> {
  const allowHalfOpen = to.allowHalfOpen ?? false;
  const client =
    to.path !== undefined
      ? net.connect({ path: to.path, allowHalfOpen })
      : net.connect({ host: to.host ?? '127.0.0.1', port: to.port ?? 0, allowHalfOpen });
  const peer = collectPeer(client);
  onCleanup(engine, () => {
    client.destroy();
  });
  await withDeadline(
    new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    }),
    10_000,
    'net client to connect',
  );
  return peer;
}

/** A fresh temporary directory, removed when the test's engine is cleaned up. */
export function tempDir(engine: Engine): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-test-'));
  onCleanup(engine, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Small async utilities

export interface Deferred<V> {
  promise: Promise<V>;
  resolve(v: V): void;
  reject(e: unknown): void;
}

export function deferred<V = void>(): Deferred<V> {
  let resolve!: (v: V) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with "timed out waiting for <what>" if p has not settled within ms. */
export function withDeadline<V>(
  p: Promise<V>,
  ms: number,
  what: string | (() => string),
): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`,
          ),
        ),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls pred every few ms until true; returns false if it is still false after ms. */
export async function waitUntil(pred: () => boolean, ms = 5_000, every = 5): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) {
      // The thread may have been busy past the deadline: let pending I/O callbacks run first.
      await sleep(every);
      return pred();
    }
    await sleep(every);
  }
  return true;
}

/** A macrotask turn: lets already-queued completions be delivered. */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Deterministic PRNG (mulberry32) for seeded random tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes (for process-level behaviour: uncaught exceptions, keeping the loop alive)

/** file: URL of the package entry, for child scripts to import. */
export const engineUrl: string = import.meta.resolve('async-engine');

/**
 * False in the sanitizer lane (`npm run test:asan` sets ASYNC_ENGINE_SANITIZED=1): there the
 * allocator holds freed memory in quarantine and never hands it back, and shadow memory grows
 * with every allocation, so a process's RSS says nothing about the engine's own bounds. Tests
 * assert their memory caps only where this is true (the normal `npm test` lane, run by CI too).
 */
export const rssIsMeaningful: boolean = process.env.ASYNC_ENGINE_SANITIZED !== '1';

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The child was still running after the deadline and was killed. */
  timedOut: boolean;
  ms: number;
}

/**
 * Runs an ESM script in a fresh `node` process. The script finds the package at
 * `process.env.ENGINE_URL` and the implementation under test at `process.env.IMPL`.
 */
export function runNodeScript(
  source: string,
  env: Record<string, string>,
  deadlineMs = 20_000,
  nodeArgs: string[] = [],
): Promise<ChildResult> {
  return runNode([...nodeArgs, '--input-type=module', '-e', source], { env }, deadlineMs);
}

/**
 * Runs `node` with `args` (a script file, or `-e` code) and collects its output; the child
 * finds the package at `process.env.ENGINE_URL`. It is killed at `deadlineMs`.
 */
export function runNode(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string },
  deadlineMs: number,
): Promise<ChildResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, args, {
      cwd: opts.cwd,
      env: { ...process.env, ENGINE_URL: engineUrl, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, deadlineMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

/**
 * Runs the ES module `script` (with `ENGINE_URL` and `IMPL` in its environment) in a node child
 * limited to 128 fds (`ulimit -n 128`), reading its stdout as `key value` lines into `lines`
 * and calling `onKey` after each; killed if it runs past 20 s. Resolves with its exit code and
 * stderr once it has exited.
 */
export async function runLowFdChild(
  script: string,
  impl: ImplName,
  lines: Record<string, string>,
  onKey: (key: string) => void,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    '/bin/sh',
    ['-c', `ulimit -n 128 && exec "${process.execPath}" --input-type=module -e "$SCRIPT"`],
    {
      env: { ...process.env, ENGINE_URL: engineUrl, IMPL: impl, SCRIPT: script },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  let buf = '';
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const [key = '', value = ''] = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      lines[key] = value;
      onKey(key);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  clearTimeout(timer);
  return { code, stderr };
}
