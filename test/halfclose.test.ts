// Half-close (engine.end): the FIN goes out after every write before it, reads go on, writes
// after it are refused with EPIPE, a pending end can be cancelled or time out without a FIN,
// on TCP and Unix sockets, with no fd left behind.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import type { Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  engineUrl,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  sleep,
  tcpPair,
  tempDir,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

// A connected pair of engine sockets: [client, server], over TCP or a Unix socket at `path`.
async function enginePair(engine: Engine, path?: string): Promise<[Socket, Socket]> {
  const listener = path !== undefined ? engine.listen({ path }) : engine.listen({ port: 0 });
  const acc = once<Socket>();
  engine.accept(listener, acc.cb);
  const addr = listener.address();
  const con = once<Socket>();
  engine.connect(
    typeof addr === 'string' ? { path: addr } : { host: '127.0.0.1', port: addr.port },
    con.cb,
  );
  const c = await con.result();
  const a = await acc.result();
  if (!c.ok || !a.ok) throw new Error('enginePair: connect or accept failed');
  const client = c.value!;
  const server = a.value!;
  engine.close(listener);
  return [client, server];
}

async function halfOpenExchange(t: Ctx, engine: Engine, path?: string): Promise<void> {
  const [client, server] = await enginePair(engine, path);
  const w = once<number>();
  engine.write(client, 'hello', w.cb);
  const e = once<void>();
  engine.end(client, e.cb);
  const all = once<Buffer>();
  engine.readAll(server, all.cb);
  t.is((await expectOk(t, all)).toString(), 'hello', 'the server reads the bytes, then EOF');
  t.is(await expectOk(t, w), 5);
  const o = await e.result();
  t.true(o.ok);
  t.is(o.value, undefined);
  t.is(o.sock, client);
  // Half-open: the server still writes, and the client, which ended, still reads.
  const bye = once<number>();
  engine.write(server, 'bye', bye.cb);
  await expectOk(t, bye);
  engine.close(server);
  const back = once<Buffer>();
  engine.readAll(client, back.cb);
  t.is((await expectOk(t, back)).toString(), 'bye');
}

forEachImpl(
  'end: the peer reads the bytes then EOF, and can still answer (TCP)',
  async (t, engine) => {
    await halfOpenExchange(t, engine);
  },
);

forEachImpl('end: the same over a Unix stream socket', async (t, engine) => {
  await halfOpenExchange(t, engine, join(tempDir(engine), 'h.sock'));
});

forEachImpl(
  'end: several large writes before it all arrive before the FIN, in order',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = 0; i < 6; i++) {
      const b = Buffer.alloc(3 * 1024 * 1024 + i * 777, 65 + i);
      parts.push(b);
      total += b.length;
    }
    p.client.pause(); // the writes queue up behind a full socket (18 MiB: more than it holds)
    const writes = parts.map(() => once<number>());
    parts.forEach((b, i) => engine.write(p.sock, b, writes[i]!.cb));
    const e = once<void>();
    engine.end(p.sock, e.cb);
    await sleep(50);
    t.is(e.calls.length, 0, 'end waits for the writes before it');
    p.client.resume();
    await withDeadline(p.ended, 15_000, "the peer's 'end'");
    t.true(p.received().equals(Buffer.concat(parts)), 'every byte, in order, before EOF');
    t.is(p.received().length, total);
    for (const w of writes) await expectOk(t, w);
    await expectOk(t, e);
  },
);

forEachImpl(
  'end: a write after it fails with EPIPE, later, saying the socket was ended',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const e = once<void>();
    engine.end(p.sock, e.cb);
    let returned = false;
    const w = once<number>();
    engine.write(p.sock, 'late', w.cb);
    returned = true;
    const err = await expectErr(t, w, 'EPIPE');
    t.true(returned);
    t.regex(err.message, /ended/);
    t.is(err.syscall, 'send');
    t.is(err.bytesWritten, 0);
    t.is((await w.result()).err?.code, 'EPIPE');
    await expectOk(t, e);
    await withDeadline(p.ended, 5_000, "the peer's 'end'");
    t.is(p.received().length, 0, 'nothing of the late write went out');
    // The promise form refuses it the same way.
    await t.throwsAsync(engine.promises.write(p.sock, 'x'), { code: 'EPIPE' });
  },
);

forEachImpl('end: a second end succeeds at once; the promise form resolves', async (t, engine) => {
  const p = await tcpPair(engine);
  await engine.promises.end(p.sock);
  await withDeadline(p.ended, 5_000, "the peer's 'end'");
  const again = once<void>();
  engine.end(p.sock, again.cb);
  await expectOk(t, again);
  t.is(await engine.promises.end(p.sock), undefined);
});

forEachImpl('end: on a closed socket fails with the usual EBADF', async (t, engine) => {
  const p = await tcpPair(engine);
  engine.close(p.sock);
  const e = once<void>();
  engine.end(p.sock, e.cb);
  await expectErr(t, e, 'EBADF');
});

forEachImpl('end: a File, a Listener or a bad argument is a TypeError', async (t, engine) => {
  const l = engine.listen({ port: 0 });
  const cb = once<void>().cb;
  t.throws(() => engine.end(l as never, cb), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.end({} as never, cb), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  });
  const f = await engine.promises.open(join(tempDir(engine), 'f'), { flags: 'w' });
  t.throws(() => engine.end(f as never, cb), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  });
  const p = await tcpPair(engine);
  t.throws(() => engine.end(p.sock, null as never, cb), { code: 'ERR_INVALID_ARG_TYPE' });
  engine.close(l);
  engine.close(f);
});

// A write the peer does not read stays pending; an end behind it waits. Leaving (cancel or
// timeout) settles it once, and no FIN follows: the peer reads the whole write, then no EOF,
// until a later end.
async function leaveBehindStuckWrite(
  t: Ctx,
  engine: Engine,
  how: 'cancel' | 'timeout',
): Promise<void> {
  const p = await tcpPair(engine);
  p.client.pause();
  const big = Buffer.alloc(8 * 1024 * 1024, 7);
  const w = once<number>();
  engine.write(p.sock, big, w.cb);
  const e = once<void>(how === 'timeout' ? { timeout: 50 } : {});
  engine.end(p.sock, e.cb);
  await sleep(30);
  if (how === 'cancel') {
    t.true(e.cancel(), 'the cancel wins: the end is still queued');
    await expectErr(t, e, 'ECANCELED');
  } else {
    await expectErr(t, e, 'ETIMEDOUT');
  }
  t.is(w.calls.length, 0, 'the write is still pending');
  p.client.resume();
  t.is(await expectOk(t, w), big.length);
  await p.waitForBytes(big.length);
  await sleep(100);
  let ended = false;
  void p.ended.then(() => (ended = true));
  await sleep(0);
  t.false(ended, 'no FIN after a cancelled end');
  t.is(e.calls.length, 1, 'settled exactly once');
  // Writes stay refused; a new end sends the FIN.
  const late = once<number>();
  engine.write(p.sock, 'x', late.cb);
  await expectErr(t, late, 'EPIPE');
  const again = once<void>();
  engine.end(p.sock, again.cb);
  await expectOk(t, again);
  await withDeadline(p.ended, 5_000, "the peer's 'end'");
  t.is(p.received().length, big.length);
}

forEachImpl(
  'end: cancelled behind a write the peer does not read: once, and no FIN',
  async (t, engine) => {
    await leaveBehindStuckWrite(t, engine, 'cancel');
  },
);

forEachImpl(
  'end: timed out behind a write the peer does not read: once, and no FIN',
  async (t, engine) => {
    await leaveBehindStuckWrite(t, engine, 'timeout');
  },
);

forEachImpl('end: an AbortSignal cancels a pending promise end', async (t, engine) => {
  const p = await tcpPair(engine);
  p.client.pause();
  const w = engine.promises.write(p.sock, Buffer.alloc(8 * 1024 * 1024));
  const ac = new AbortController();
  const e = engine.promises.end(p.sock, { signal: ac.signal });
  await sleep(20);
  ac.abort();
  await t.throwsAsync(e, { name: 'AbortError' });
  p.client.resume();
  await w;
});

forEachImpl('end: a net peer sees the end while it keeps writing to us', async (t, engine) => {
  const conns: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (c) => conns.push(c));
  onCleanup(engine, async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const s = await engine.promises.connect({ host: '127.0.0.1', port });
  await waitUntil(() => conns.length === 1);
  const peer = conns[0]!;
  const got: Buffer[] = [];
  peer.on('data', (b: Buffer) => got.push(b));
  const ended = new Promise<void>((r) => peer.once('end', r));
  await engine.promises.write(s, 'req');
  await engine.promises.end(s);
  await withDeadline(ended, 5_000, "the net peer's 'end'");
  t.is(Buffer.concat(got).toString(), 'req');
  peer.write('still talking');
  peer.end();
  t.is((await engine.promises.readAll(s)).toString(), 'still talking');
  engine.close(s);
});

// The shutdown itself: on completion an io_uring request (no shutdown(2) from the process), on
// the others one shutdown(2) once the writes are out; a second end makes no call at all.
const SHUTDOWN_SCRIPT = `
const { createEngine } = await import(process.env.ENGINE_URL);
const engine = createEngine({ impl: process.env.IMPL });
const l = engine.listen({ port: 0 });
const acc = engine.promises.accept(l);
const c = await engine.promises.connect({ host: '127.0.0.1', port: l.address().port });
const s = await acc;
await engine.promises.write(c, 'data');
await engine.promises.end(c);
await engine.promises.end(c);
const got = await engine.promises.readAll(s);
console.log(JSON.stringify({ got: got.toString() }));
await engine.shutdown();
`;

forEachImpl(
  'end: an io_uring SHUTDOWN on completion, one shutdown(2) elsewhere, none for a second end',
  async (t, _engine, impl) => {
    const dir = tempDir(_engine);
    const log = join(dir, 'strace.log');
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-e',
        'trace=shutdown',
        '-o',
        log,
        process.execPath,
        '--input-type=module',
        '-e',
        SHUTDOWN_SCRIPT,
      ],
      {
        env: { ...process.env, IMPL: impl, ENGINE_URL: engineUrl },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    t.is(r.status, 0, `strace or the child failed: ${r.stderr?.slice(0, 1000)}`);
    t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { got: 'data' });
    const calls = readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => /\bshutdown\(/.test(line) && !line.includes('resumed>'));
    t.is(calls.length, impl === 'completion' ? 0 : 1, calls.join('\n'));
    if (calls.length === 1) t.regex(calls[0]!, /SHUT_WR/);
  },
);
