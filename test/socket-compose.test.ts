// Where the socket-level features meet: a half-close queued behind a write that times out, a
// served connection closed by its own idle timeout, the new ops under the uniform option
// rules, and the counters across a half-close.
import { Callback, type Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  portOf,
  sleep,
  tcpPair,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';
import net from 'node:net';

noFdLeaks();

forEachImpl(
  'a write timeout fails the end queued behind the stuck write, once, and no FIN reaches the peer',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause();
    let peerEnded = false;
    p.client.on('end', () => (peerEnded = true));
    engine.setTimeouts(p.sock, { write: 200 });
    const big = once<number>();
    const end = once<void>();
    engine.write(p.sock, Buffer.alloc(32 * 1024 * 1024, 1), big.cb);
    engine.end(p.sock, end.cb);
    t.is((await expectErr(t, big, 'ETIMEDOUT', 30_000)).syscall, 'write');
    const err = await expectErr(t, end, 'ETIMEDOUT');
    t.is(err.code, 'ETIMEDOUT');
    t.is(p.sock.pendingWriteBytes, 0);
    // Let the peer drain what did go out: it must not see a FIN after those bytes.
    p.client.resume();
    await sleep(200);
    t.false(peerEnded, 'the end that failed sent no FIN');
    t.is(end.calls.length, 1, 'the end settled exactly once');
  },
);

forEachImpl(
  'a served connection whose idle timeout fires on a read without a failure slot is closed by the serve loop',
  async (t, engine) => {
    const listener = engine.listen({ host: '127.0.0.1', port: 0 });
    const served: Socket[] = [];
    const handle = engine.serve(listener, (sock) => {
      served.push(sock);
      engine.setTimeouts(sock, { idle: 100 });
      // No failure slot: the idle timeout's ETIMEDOUT would be dropped, so the loop closes it.
      engine.expectLine(sock, null, (line) => engine.write(sock, `${line}\n`, () => {}));
    });
    const client = net.connect({ host: '127.0.0.1', port: portOf(listener) });
    client.on('error', () => {});
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    await withDeadline(closed, 10_000, 'the idle connection to be closed by the server');
    t.is(served.length, 1);
    t.true(served[0]!.closed, 'the served socket was closed');
    t.true(await waitUntil(() => handle.connections === 0), 'no live connection is counted');
    handle.stop();
    await handle.done;
    engine.close(listener);
  },
);

forEachImpl('end and peek refuse options they do not use, as every op does', async (t, engine) => {
  const p = await tcpPair(engine);
  const cb = new Callback({ success: () => {} });
  const bad = (fn: () => void, key: string): void => {
    const err = t.throws(fn, { instanceOf: TypeError }) as NodeJS.ErrnoException;
    t.is(err.code, 'ERR_INVALID_ARG_VALUE');
    t.true(err.message.includes(key), err.message);
  };
  bad(() => engine.end(p.sock, { maxBytes: 10 } as never, cb), 'maxBytes');
  bad(() => engine.peek(p.sock, 4, { encoding: 'utf8' } as never, cb), 'encoding');
  bad(() => engine.readUntil(p.sock, ['\n'], { encodin: 'utf8' } as never, cb), 'encodin');
  bad(() => engine.listen({ port: 0, noDelai: true } as never), 'noDelai');
  // The keys they do use are taken.
  const e = once<void>();
  engine.end(p.sock, { timeout: 5_000 }, e.cb);
  await expectOk(t, e);
});

forEachImpl(
  'counters across a half-close: every byte before the FIN counted both ways, none pending after',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('reply before our FIN');
    const w = once<number>();
    const e = once<void>();
    engine.write(p.sock, 'x'.repeat(1000), w.cb);
    engine.end(p.sock, e.cb);
    await expectOk(t, w);
    await expectOk(t, e);
    t.is(p.sock.bytesWritten, 1000);
    t.is(p.sock.pendingWriteBytes, 0);
    await withDeadline(p.ended, 10_000, 'the peer to see the FIN');
    t.is(p.received().length, 1000);
    // Reads go on after our FIN: the peer's bytes, then its own FIN.
    const r = once<Buffer>();
    engine.readAll(p.sock, r.cb);
    t.is((await expectOk(t, r)).toString(), 'reply before our FIN');
    t.is(p.sock.bytesRead, 20);
  },
);
