// Loads the native addon and describes the surface it gives the TypeScript engine.
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineStats } from '../types.js';

/**
 * Op kinds, as numbered by the native op table (native/core/ops.def, one row per kind, in
 * order). test/op-kinds.test.ts checks this mirror against the table.
 */
export const enum Kind {
  Accept = 0,
  Connect = 1,
  ReadUntil = 2,
  ReadLine = 3,
  ReadGlob = 4,
  ReadRegex = 5,
  ReadChunk = 6,
  ReadExactly = 7,
  ReadAll = 8,
  Write = 9,
  Sleep = 10,
  Soon = 11,
  Resolve = 12,
  ReadInto = 13,
  Open = 14,
  Fsync = 15,
  Stat = 16,
  ReadPrefixed = 17,
  Shutdown = 18,
  Peek = 19,
  TlsHandshake = 20,
  AcceptWhen = 21,
  ReadLines = 22,
  /** submitWork: a JavaScript-side op, never seen by the native side. */
  Work = 100,
}

/** Engine-level result codes of the native core (EngineCode in engine_core.h). */
export const enum Code {
  Incomplete = -100001,
  Limit = -100002,
  Aborted = -100003,
  TimedOut = -100004,
  Canceled = -100005,
  BadHandle = -100006,
  Resolve = -100007,
  BufferGone = -100008,
  InvalidLength = -100009,
  Tls = -100010,
  Progress = -200001,
  /** A regex read's verdict: an empty match at the start, success with no bytes. */
  EmptyMatch = -200002,
}

/** One op for the native side: [kind, id, handle, timeoutMs, a, b]. */
export type NativeOp = [Kind, number, number, number, unknown, unknown];

/** The counters the native side keeps: all of EngineStats but the impl's name. */
export type NativeStats = Omit<EngineStats, 'impl' | 'workThreads' | 'framedInJs'>;

export interface NativeEngine {
  listen(
    host: string,
    port: number,
    backlog: number,
    reusePort: boolean,
    ipv6Only: boolean,
    deferAccept: number,
  ): [number, number];
  /** TCP_DEFER_ACCEPT of a listener, in seconds as the kernel reports it (0: off). */
  deferAccept(handle: number): number;
  adopt(fd: number): number;
  close(handle: number): void;
  submit(kind: Kind, id: number, handle: number, timeoutMs: number, a: unknown, b: unknown): void;
  chain(stages: NativeOp[]): void;
  cancel(id: number): boolean;
  regexVerdict(id: number, verdict: number): boolean;
  /** Moves a socket's buffered bytes into `dest` (while no read is queued); returns how many. */
  take(handle: number, dest: Buffer): number;
  /** Puts bytes taken and not consumed back in front of a socket's buffer. */
  unread(handle: number, bytes: Uint8Array): boolean;
  runOnce(timeoutMs: number): number;
  shutdown(): NativeBatch;
  drain(): number;
  extras(): [Float64Array, unknown[] | undefined, Buffer];
  stats(): NativeStats;
  bufferedBytes(handle: number): number;
  /**
   * A socket's counter: 0 bytes received from the kernel, 1 bytes the kernel took from its
   * writes, 2 bytes of its writes not taken yet; -1 when the socket is gone.
   */
  counter(handle: number, which: 0 | 1 | 2): number;
  /** Sets a socket's idle and write timeouts in ms (0: off). */
  setTimeouts(handle: number, idleMs: number, writeMs: number): void;
  address(handle: number, peer: boolean): [string, number, 'IPv4' | 'IPv6'] | string | undefined;
  pending(): boolean;
  /** setsockopt on a socket, or a listener's options for what it accepts; -1 leaves one alone. */
  setSocketOptions(
    handle: number,
    noDelay: number,
    keepAlive: number,
    keepIdleSeconds: number,
    receiveBuffer: number,
    sendBuffer: number,
  ): void;
  /** getsockopt: [noDelay, keepAlive, keepIdleSeconds, receiveBuffer, sendBuffer]. */
  socketOptions(handle: number): [number, number, number, number, number];
  /** A TLS socket's [version, cipher name, standard name, cipher version, peer DER?, ALPN]. */
  tlsInfo(
    handle: number,
  ): [string, string, string, string, Buffer | undefined, string | false] | undefined;
  /** A TLS socket's [SNI name?, session reused, latest resumable session DER? (withSession)]. */
  tlsSessionInfo(
    handle: number,
    withSession: boolean,
  ): [string | undefined, boolean, Buffer | undefined] | undefined;
}

/**
 * One batch: count, [id, result, arena offset, length, bytes left buffered] per op, payloads,
 * arena.
 */
export type NativeBatch = [number, Float64Array, unknown[] | undefined, Buffer];

/** What the native side calls with each batch of finished ops. */
export type Dispatcher = (
  count: number,
  idsResults: Float64Array,
  payloads: unknown[] | undefined,
  arena: Buffer,
) => void;

/** Backend options: the keys of the implementation's row in the native backend table. */
export type NativeOptions = Readonly<Record<string, number>>;

/** One row of the native backend table (native/backends/factory.cc). */
export interface NativeBackendRow {
  name: string;
  options: string[];
}

interface Addon {
  NativeEngine: new (
    impl: string,
    manualDrive: boolean,
    dispatch: Dispatcher,
    options: NativeOptions,
  ) => NativeEngine;
  probe(impl: string): string;
  /** The native backend table, in its order. */
  backends(): NativeBackendRow[];
  /** The native op table, one entry per kind in number order (native/core/ops.def). */
  opKinds(): OpKindInfo[];
}

/** One row of the native op table: what an op's positional arguments and result are. */
export interface OpKindInfo {
  /** The `Kind` member's name. */
  name: string;
  /** Its number. */
  kind: number;
  /** The engine method that submits it. */
  js: string;
  /** read, write, accept, connect, file, timer or resolve. */
  family: string;
  /** What the positional arguments `a` and `b` of a submit hold. */
  a: string;
  b: string;
  /** What it settles with. */
  result: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const require = createRequire(import.meta.url);
const gypBuild = require('node-gyp-build') as { path(dir: string): string };

/** What to run where the addon is missing or does not load, and what that needs. */
const rebuildHint =
  'Run `npm rebuild async-engine` in the project that depends on it (it compiles the addon with ' +
  'node-gyp, which needs python3, make and a C++20 compiler such as g++ 12), or install a ' +
  'package tarball that carries a prebuilt addon for this platform (`npm pack` makes one).';

/**
 * Loads the addon node-gyp-build picks (build/Release, build/Debug, or the prebuild in
 * prebuilds/<platform>-<arch>/ whose tags match this Node), and where that fails says why (no
 * build for this platform, architecture and C library, or the dynamic loader's own error) and
 * what to run.
 */
function loadBuilt(): unknown {
  let file: string;
  try {
    file = gypBuild.path(root);
  } catch (e) {
    const libc = (e as Error).message.match(/libc=(\w+)/)?.[1] ?? 'unknown';
    const dir = (e as Error).message.match(/loaded from: (.*)/)?.[1]?.trim() ?? root;
    throw new Error(
      `async-engine: no native addon was built for ${process.platform}-${process.arch} ` +
        `(libc ${libc}, Node ${process.versions.node}) in ${dir}: neither build/Release nor a ` +
        `matching prebuilds/ entry exists (an install with --ignore-scripts, or a package ` +
        `without prebuilds for this platform). ${rebuildHint}`,
      { cause: e },
    );
  }
  try {
    return require(file);
  } catch (e) {
    throw new Error(
      `async-engine: the native addon ${file} did not load: ${(e as Error).message.trim()}. ` +
        `${rebuildHint}`,
      { cause: e },
    );
  }
}

/**
 * Test-only: `ASYNC_ENGINE_ADDON=/abs/path/async_engine.node` loads that addon file instead of
 * the one node-gyp-build finds. `npm run test:asan` and `npm run coverage:native` use it to run
 * the suite against an instrumented build; it is not meant for production use.
 */
function loadAddon(): unknown {
  const file = process.env.ASYNC_ENGINE_ADDON;
  if (file === undefined || file === '') return loadBuilt();
  if (!isAbsolute(file)) {
    throw new Error(
      `ASYNC_ENGINE_ADDON must be an absolute path to a .node file, got ${JSON.stringify(file)}`,
    );
  }
  return require(file);
}

/** The addon, loaded once per process (and once per worker thread). */
export const addon = loadAddon() as Addon;
