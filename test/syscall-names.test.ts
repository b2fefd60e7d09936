// Synchronous failures name the system call that failed: listen (socket, setsockopt, bind,
// listen) and the construction of an engine (its backend's set-up calls, then the core's).
import test from 'ava';
import { spawn } from 'node:child_process';
import { EngineError } from 'async-engine';
import { engineUrl, forEachImpl, implsUnderTest, noFdLeaks, portOf } from './helpers/harness.js';

noFdLeaks();

forEachImpl('listen on an address in use fails EADDRINUSE from bind', async (t, engine) => {
  const first = engine.listen({ port: 0 });
  const err = t.throws(() => engine.listen({ port: portOf(first) }), {
    instanceOf: EngineError,
  }) as EngineError | undefined;
  t.is(err?.code, 'EADDRINUSE');
  t.is(err?.syscall, 'bind');
});

forEachImpl(
  'listen on a Unix path in a missing directory fails ENOENT from bind',
  async (t, engine) => {
    const err = t.throws(() => engine.listen({ path: '/nonexistent-dir-of-async-engine/s.sock' }), {
      instanceOf: EngineError,
    }) as EngineError | undefined;
    t.is(err?.code, 'ENOENT');
    t.is(err?.syscall, 'bind');
  },
);

// Runs with a low RLIMIT_NOFILE and every fd taken: listen fails in socket(); then engines are
// created with one more fd free each time, until one can be, and each failure is recorded.
const childScript = `
import fs from 'node:fs';
const { createEngine } = await import(process.env.ENGINE_URL);
const impl = process.env.IMPL;
const engine = createEngine({ impl });
const held = [];
try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch {}
const out = { listen: null, create: [] };
try { engine.listen({ port: 0 }); out.listen = 'ok'; } catch (e) { out.listen = [e.code, e.syscall]; }
for (let free = 0; free < 16 && held.length > 0; free++) {
  try {
    const e2 = createEngine({ impl });
    out.create.push('ok');
    await e2.shutdown();
    break;
  } catch (e) {
    out.create.push([e.errno, e.syscall]);
  }
  fs.closeSync(held.pop());
}
for (const fd of held) fs.closeSync(fd);
await engine.shutdown();
console.log(JSON.stringify(out));
`;

// The call each backend makes first when it is built (an implementation not listed here is
// only held to naming a call other than its own name).
const firstCall: Record<string, string> = {
  readiness: 'epoll_create1',
  threadpool: 'epoll_create1',
  completion: 'io_uring_setup',
  poll: 'eventfd', // its watcher's notification fd (auto drive)
};

for (const impl of implsUnderTest()) {
  test(`[${impl}] out of fds: listen fails EMFILE from socket, engine creation names the failed call`, async (t) => {
    const child = spawn(
      '/bin/sh',
      ['-c', `ulimit -n 128 && exec "${process.execPath}" --input-type=module -e "$SCRIPT"`],
      {
        env: { ...process.env, ENGINE_URL: engineUrl, IMPL: impl, SCRIPT: childScript },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((r) => child.on('close', r));
    clearTimeout(timer);
    t.is(code, 0, stderr);
    const out = JSON.parse(stdout) as { listen: unknown; create: ('ok' | [number, string])[] };
    t.deepEqual(out.listen, ['EMFILE', 'socket']);
    const failures = out.create.filter((c): c is [number, string] => c !== 'ok');
    t.is(out.create.at(-1), 'ok', `an engine is made once enough fds are free: ${stdout}`);
    t.true(failures.length > 0, 'creation failed while no fd was free');
    t.deepEqual(failures[0], [-24, firstCall[impl] ?? failures[0]![1]], 'the first failure');
    for (const [errno, syscall] of failures) {
      t.is(errno, -24, stdout);
      t.not(syscall, impl, `a failure names a system call, not the implementation: ${stdout}`);
      t.regex(syscall, /^[a-z_0-9]+$/, stdout);
    }
    // The core's own wake-up eventfd is made once the backend stands.
    t.is(failures.at(-1)![1], 'eventfd', `the last failure: ${stdout}`);
  });
}
