// stats().syscalls is exact: a child process runs a fixed socket workload under strace, and the
// engine's count over the workload equals strace's count of the same system calls made by the
// process in that span (every thread: the engine thread, threadpool workers).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { engineUrl, forEachImpl, noFdLeaks } from './helpers/harness.js';

noFdLeaks();

/**
 * The system calls stats().syscalls counts (docs/api.md, "EngineStats"), by their names in
 * strace on x86-64 and arm64 (`recv` is `recvfrom` there).
 */
const COUNTED = [
  'recvfrom',
  'recvmsg',
  'sendmsg',
  'sendto',
  'accept',
  'accept4',
  'connect',
  'getsockopt',
  'epoll_wait',
  'epoll_pwait',
  'epoll_pwait2',
  'epoll_ctl',
  'poll',
  'ppoll',
  'io_uring_enter',
  'io_uring_register',
  'io_uring_setup',
  'preadv2',
  'pwritev2',
];

// Failed opens of these paths mark the span the engine's count covers.
const BEGIN = '/nonexistent/async-engine-syscalls-begin';
const END = '/nonexistent/async-engine-syscalls-end';

// The workload, driven by runOnce() in one synchronous stretch of JavaScript, so that Node's own
// event loop makes no system call inside the span. Between the marks: listen, connect, accept,
// 40 line round trips, 10 lines that arrive before their read is asked for (completion: a
// multishot receive already holds them, so the read makes no system call), a 1 MiB write read
// back whole, a refused connect, a file read whole and written at a position (readiness and
// threadpool: inline from the page cache, counted by the core), close.
const WORKLOAD = `
import fs from 'node:fs';
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const engine = createEngine({ impl: process.env.IMPL, drive: 'manual' });
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const idle = () => nap(150);
fs.writeFileSync(process.env.DATA_FILE, Buffer.alloc(64 * 1024, 5));
let settled = 0;
const cb = (onOk) => new Callback({ success: (v, s) => { settled++; onOk?.(v, s); }, failure: (e) => { throw e; } });
const drive = (want) => { for (let i = 0; i < 20000 && settled < want; i++) engine.runOnce({ timeout: 5 }); if (settled < want) throw new Error('workload stalled at ' + settled); };
const mark = (p) => { try { fs.openSync(p, 'r'); } catch {} };
idle();
const before = engine.stats().syscalls;
mark('${BEGIN}');
const l = engine.listen({ host: '127.0.0.1', port: 0 });
let server, client;
engine.accept(l, cb((s) => (server = s)));
engine.connect({ host: '127.0.0.1', port: l.address().port }, cb((s) => (client = s)));
drive(2);
for (let i = 0; i < 40; i++) {
  engine.write(client, 'line ' + i + '\\n', cb());
  engine.expectLine(server, null, cb());
  engine.write(server, 'ack\\n', cb());
  engine.expectLine(client, 'ack', cb());
  drive(settled + 4);
}
for (let i = 0; i < 10; i++) {
  engine.write(client, 'early ' + i + '\\n', cb());
  drive(settled + 1);
  for (let k = 0; k < 3; k++) {
    nap(2);
    engine.runOnce({ timeout: 0 });
  }
  engine.expectLine(server, 'early ' + i, cb());
  drive(settled + 1);
}
const big = Buffer.alloc(1 << 20, 7);
engine.write(client, big, cb());
engine.readExactly(server, big.length, cb());
drive(settled + 2);
const refused = engine.listen({ host: '127.0.0.1', port: 0 });
const refusedPort = refused.address().port;
engine.close(refused);
let refusals = 0;
engine.connect({ host: '127.0.0.1', port: refusedPort }, new Callback({ success: () => {}, failure: () => { settled++; refusals++; } }));
drive(settled + 1);
let file;
engine.open(process.env.DATA_FILE, { flags: 'r+' }, cb((f) => (file = f)));
drive(settled + 1);
engine.readAll(file, cb());
engine.write(file, 'rewritten', { position: 0 }, cb());
drive(settled + 2);
engine.close(file);
engine.close(client);
engine.close(server);
engine.close(l);
for (let i = 0; i < 10; i++) engine.runOnce({ timeout: 0 });
idle();
const after = engine.stats().syscalls;
mark('${END}');
console.log(JSON.stringify({ syscalls: after - before, refusals }));
await engine.shutdown();
`;

/** Runs the workload in `node` under `strace -f`, writing the trace to logFile. */
function runTraced(
  impl: string,
  logFile: string,
  dataFile: string,
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  const args = ['-f', '-qq', '-o', logFile, '-e', `trace=openat,${COUNTED.join(',')}`];
  args.push(process.execPath, '--input-type=module', '-e', WORKLOAD);
  return new Promise((resolve) => {
    const child = spawn('strace', args, {
      env: { ...process.env, IMPL: impl, ENGINE_URL: engineUrl, DATA_FILE: dataFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 60_000);
    child.on('error', (e) => (stderr += String(e)));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

function hasStrace(): boolean {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** File calls counted only on the engine's own thread (the file worker pool's are not). */
const ENGINE_THREAD_ONLY = ['preadv2', 'pwritev2'];

/**
 * Counts the calls in COUNTED that strace saw start between the two marks. The marks are made
 * on the engine's thread (the process's JavaScript thread), which names that thread.
 */
function countBetweenMarks(log: string): { n: number; byName: Record<string, number> } {
  const byName: Record<string, number> = {};
  let engineThread: string | undefined;
  let n = 0;
  const callRe = /^(\d+)\s+([a-z0-9_]+)\(/;
  for (const line of log.split('\n')) {
    if (line.includes(BEGIN)) {
      engineThread = /^(\d+)/.exec(line)?.[1];
      continue;
    }
    if (line.includes(END)) break;
    if (engineThread === undefined || line.includes('resumed>')) continue;
    const m = callRe.exec(line);
    if (!m || !COUNTED.includes(m[2]!)) continue;
    if (ENGINE_THREAD_ONLY.includes(m[2]!) && m[1] !== engineThread) continue;
    n++;
    byName[m[2]!] = (byName[m[2]!] ?? 0) + 1;
  }
  return { n, byName };
}

forEachImpl(
  "stats().syscalls equals strace's count of the same calls over a fixed workload",
  async (t, _engine, impl) => {
    t.true(
      hasStrace(),
      'strace is not installed (apt-get install strace; .ci/run installs it): this test needs it',
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-syscalls-'));
    const logFile = path.join(dir, 'strace.log');
    try {
      const r = await runTraced(impl, logFile, path.join(dir, 'data'));
      t.false(r.timedOut, 'the traced child finished');
      t.is(
        r.code,
        0,
        `strace or the child failed (can strace attach here? ptrace may be forbidden): ${r.stderr.slice(0, 1500)}`,
      );
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
        syscalls: number;
        refusals: number;
      };
      t.is(out.refusals, 1, 'the refused connect failed');
      const log = fs.readFileSync(logFile, 'utf8');
      t.true(log.includes(BEGIN) && log.includes(END), 'strace saw both marks');
      const seen = countBetweenMarks(log);
      t.true(seen.n > 0, 'strace saw the workload');
      t.log(`engine ${out.syscalls}; strace ${JSON.stringify(seen.byName)}`);
      t.is(out.syscalls, seen.n, `strace saw ${JSON.stringify(seen.byName)}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
