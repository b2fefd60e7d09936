// Socket options: TCP_NODELAY on by default for accepted and connected sockets, setSocketOptions
// read back with socketOptions (getsockopt), listen and connect options, Unix sockets, and bad
// input refused with the right codes.
import * as net from 'node:net';
import { join } from 'node:path';
import { EngineError, type Socket } from 'async-engine';
import {
  type Engine,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  portOf,
  tcpPair,
  tempDir,
} from './helpers/harness.js';

noFdLeaks();

// A net server whose connections are kept until the test ends.
async function netListener(engine: Engine): Promise<number> {
  const conns: net.Socket[] = [];
  const server = net.createServer((c) => conns.push(c));
  onCleanup(engine, async () => {
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

forEachImpl(
  'accepted and connected TCP sockets have TCP_NODELAY on by default',
  async (t, engine) => {
    const p = await tcpPair(engine);
    t.true(engine.socketOptions(p.sock).noDelay, 'accepted');
    const port = await netListener(engine);
    const s = await engine.promises.connect({ host: '127.0.0.1', port });
    t.true(engine.socketOptions(s).noDelay, 'connected');
    t.false(engine.socketOptions(s).keepAlive, 'keep-alive is off unless asked for');
    engine.close(s);
  },
);

forEachImpl('setSocketOptions round-trips through socketOptions', async (t, engine) => {
  const p = await tcpPair(engine);
  engine.setSocketOptions(p.sock, {
    noDelay: false,
    keepAlive: true,
    keepAliveInitialDelay: 5_999, // whole seconds, truncated as Node does: 5 s
    receiveBufferSize: 65_536,
    sendBufferSize: 32_768,
  });
  const o = engine.socketOptions(p.sock);
  t.false(o.noDelay);
  t.true(o.keepAlive);
  t.is(o.keepAliveInitialDelay, 5_000);
  // Linux doubles the sizes asked for (within net.core.rmem_max / wmem_max).
  t.is(o.receiveBufferSize, 2 * 65_536);
  t.is(o.sendBufferSize, 2 * 32_768);
  engine.setSocketOptions(p.sock, { noDelay: true, keepAlive: false });
  const o2 = engine.socketOptions(p.sock);
  t.true(o2.noDelay);
  t.false(o2.keepAlive);
  t.is(o2.receiveBufferSize, 2 * 65_536, 'an option left out is left alone');
  // Under a second leaves the idle time as it was.
  engine.setSocketOptions(p.sock, { keepAliveInitialDelay: 999 });
  t.is(engine.socketOptions(p.sock).keepAliveInitialDelay, 5_000);
});

forEachImpl('listen options apply to every accepted socket', async (t, engine) => {
  const l = engine.listen({
    port: 0,
    noDelay: false,
    keepAlive: true,
    keepAliveInitialDelay: 7_000,
    receiveBufferSize: 40_000,
  });
  const port = portOf(l);
  const clients = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
  onCleanup(engine, () => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = await engine.promises.accept(l);
    const o = engine.socketOptions(s);
    t.false(o.noDelay, 'noDelay: false turns the default off');
    t.true(o.keepAlive);
    t.is(o.keepAliveInitialDelay, 7_000);
    t.is(o.receiveBufferSize, 80_000);
    engine.close(s);
  }
  engine.close(l);
  // A listener without options keeps the default.
  const l2 = engine.listen({ port: 0, keepAlive: true });
  const c = net.connect(portOf(l2), '127.0.0.1');
  onCleanup(engine, () => {
    c.destroy();
  });
  const s2 = await engine.promises.accept(l2);
  t.true(engine.socketOptions(s2).noDelay);
  t.true(engine.socketOptions(s2).keepAlive);
  engine.close(s2);
  engine.close(l2);
});

forEachImpl('connect options are set once connected', async (t, engine) => {
  const port = await netListener(engine);
  const s = await engine.promises.connect({
    host: '127.0.0.1',
    port,
    noDelay: false,
    keepAlive: true,
    keepAliveInitialDelay: 3_000,
    sendBufferSize: 50_000,
  });
  const o = engine.socketOptions(s);
  t.false(o.noDelay);
  t.true(o.keepAlive);
  t.is(o.keepAliveInitialDelay, 3_000);
  t.is(o.sendBufferSize, 100_000);
  engine.close(s);
});

forEachImpl('Unix sockets skip the TCP options silently', async (t, engine) => {
  const path = join(tempDir(engine), 'o.sock');
  const l = engine.listen({ path, noDelay: true, keepAlive: true, receiveBufferSize: 30_000 });
  const acc = engine.promises.accept(l);
  const c = await engine.promises.connect({ path, noDelay: true, keepAlive: true });
  const s = await acc;
  t.notThrows(() =>
    engine.setSocketOptions(c, { noDelay: true, keepAlive: true, keepAliveInitialDelay: 2_000 }),
  );
  const o = engine.socketOptions(s);
  t.false(o.noDelay);
  t.false(o.keepAlive);
  t.is(o.keepAliveInitialDelay, 0);
  t.is(o.receiveBufferSize, 60_000, 'the buffer sizes still apply');
  engine.close(c);
  engine.close(s);
  engine.close(l);
});

forEachImpl(
  'bad socket options throw with the right codes; nothing is changed',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const set = (o: unknown): void => engine.setSocketOptions(p.sock, o as never);
    t.throws(() => set({ noDelay: 'yes' }), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(() => set({ keepAlive: 1 }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => set({ receiveBufferSize: 0 }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.throws(() => set({ sendBufferSize: 2 ** 31 }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.throws(() => set({ sendBufferSize: 1.5 }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.throws(() => set({ keepAliveInitialDelay: -1 }), {
      instanceOf: RangeError,
      code: 'ERR_OUT_OF_RANGE',
    });
    t.throws(() => set({ keepAliveInitialDelay: 40_000_000 }), { code: 'ERR_OUT_OF_RANGE' });
    t.throws(() => set({ keepAliveInitialDelay: '5' }), { code: 'ERR_INVALID_ARG_TYPE' });
    const unknown = t.throws(() => set({ noDelay: true, nodelay: true }), {
      instanceOf: TypeError,
      code: 'ERR_INVALID_ARG_VALUE',
    });
    t.regex(unknown!.message, /options\.nodelay/);
    t.throws(() => set(null), { code: 'ERR_INVALID_ARG_TYPE' });
    t.true(engine.socketOptions(p.sock).noDelay, 'the refused call changed nothing');
    // Not a Socket.
    const l = engine.listen({ port: 0 });
    t.throws(() => engine.setSocketOptions(l as never, {}), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => engine.socketOptions(l as never), { code: 'ERR_INVALID_ARG_TYPE' });
    engine.close(l);
    // listen and connect check the same keys.
    t.throws(() => engine.listen({ port: 0, noDelay: 1 as never }), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(() => engine.listen({ port: 0, receiveBufferSize: -5 }), { code: 'ERR_OUT_OF_RANGE' });
    t.throws(
      () => engine.connect({ host: '127.0.0.1', port: 1, keepAlive: 'on' as never }, () => {}),
      {
        code: 'ERR_INVALID_ARG_TYPE',
      },
    );
    t.is(engine.stats().listeners, 0, 'a refused listen leaves no listener');
    // A closed socket: the kernel's EBADF, from setsockopt / getsockopt.
    const s: Socket = p.sock;
    engine.close(s);
    const e1 = t.throws(() => engine.setSocketOptions(s, { noDelay: true }));
    t.true(e1 instanceof EngineError);
    t.is((e1 as EngineError).code, 'EBADF');
    t.is((e1 as EngineError).syscall, 'setsockopt');
    const e2 = t.throws(() => engine.socketOptions(s));
    t.is((e2 as EngineError).code, 'EBADF');
  },
);
