// What is specific to the `completion` implementation (io_uring): the feature probe and its
// fallbacks, the uid/gid guard, a ring far smaller than the work, thousands of ops in flight.
import test from 'ava';
import net from 'node:net';
import { availableImpls, createEngine, Callback, type Socket } from 'async-engine';
import { runNodeScript } from './helpers/harness.js';

const completion = availableImpls().find((i) => i.impl === 'completion')!;
// Where io_uring cannot run, these tests cannot either: say why, once, and fail nothing.
const ring = completion.available ? test : test.skip;
if (!completion.available) {
  test('completion is unavailable here', (t) => {
    t.log(`completion tests not run: ${completion.reason}`);
    t.is(typeof completion.reason, 'string');
  });
}

const SETUP_SINGLE_ISSUER = 1 << 12;
const SETUP_COOP_TASKRUN = 1 << 8;
const SETUP_TASKRUN_FLAG = 1 << 9;

const echoScript = `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const net = await import('node:net');
const e = createEngine({ impl: 'completion' });
const l = e.listen({ port: 0 });
e.acceptThenExpectLine(l, null, [new Callback({}), new Callback({ success: (line, s) => {
  e.write(s, line.toUpperCase() + '\\n', new Callback({ success: () => e.close(s) }));
} })]);
const c = net.connect(l.address().port, '127.0.0.1', () => c.write('ping\\n'));
let got = '';
c.on('data', (d) => (got += d));
c.on('end', async () => {
  const st = e.stats();
  console.log(JSON.stringify({ got, flags: st.ringSetupFlags, multi: [st.multishotAccept, st.multishotRecv] }));
  await e.shutdown();
});
`;

ring('setup features refused or switched off fall back, and the engine still works', async (t) => {
  const full = await runNodeScript(echoScript, {});
  t.is(full.code, 0, full.stderr);
  const fullOut = JSON.parse(full.stdout) as { got: string; flags: number; multi: number[] };
  t.is(fullOut.got, 'PING\n');
  t.deepEqual(fullOut.multi, [1, 1], 'this kernel has multishot accept and recv');
  t.is(
    fullOut.flags & (SETUP_SINGLE_ISSUER | SETUP_COOP_TASKRUN | SETUP_TASKRUN_FLAG),
    SETUP_SINGLE_ISSUER | SETUP_COOP_TASKRUN | SETUP_TASKRUN_FLAG,
  );

  const off = await runNodeScript(echoScript, {
    ASYNC_ENGINE_URING_DISABLE: 'single_issuer,coop_taskrun,cqsize',
  });
  t.is(off.code, 0, off.stderr);
  const offOut = JSON.parse(off.stdout) as { got: string; flags: number };
  t.is(offOut.got, 'PING\n');
  t.is(offOut.flags & (SETUP_SINGLE_ISSUER | SETUP_COOP_TASKRUN), 0);

  const single = await runNodeScript(echoScript, {
    ASYNC_ENGINE_URING_DISABLE: 'multishot_accept,multishot_recv',
  });
  t.is(single.code, 0, single.stderr);
  const singleOut = JSON.parse(single.stdout) as { got: string; multi: number[] };
  t.is(singleOut.got, 'PING\n');
  t.deepEqual(singleOut.multi, [0, 0]);
});

// Sends `bytes` of a counting pattern from each of `n` node:net clients to sockets the engine
// does not read, waits until the senders stall (or finish), then reads everything and checks it.
async function floodThenRead(
  t: import('ava').ExecutionContext,
  env: string,
  n: number,
  bytes: number,
) {
  const r = await runNodeScript(
    `const { createEngine, Callback } = await import(process.env.ENGINE_URL);
     const net = await import('node:net');
     const e = createEngine({ impl: 'completion' });
     const l = e.listen({ port: 0 });
     const n = ${n}, bytes = ${bytes};
     const pattern = Buffer.alloc(bytes);
     for (let i = 0; i < bytes; i++) pattern[i] = (i * 7 + (i >> 8)) & 255;
     const socks = [];
     const clients = [];
     await new Promise((resolve) => {
       const arm = () => e.accept(l, new Callback({ success: (s) => {
         socks.push(s);
         if (socks.length === n) resolve(); else arm();
       } }));
       arm();
       for (let i = 0; i < n; i++) clients.push(net.connect(l.address().port, '127.0.0.1'));
     });
     // One byte read arms each socket's receive; then nobody reads while the flood comes, and a
     // multishot receive runs on into the socket's queue, up to a bound.
     await Promise.all(socks.map((s, i) => new Promise((resolve) => {
       e.readExactly(s, 1, new Callback({ success: resolve }));
       clients[i].write('!');
     })));
     for (const c of clients) c.write(pattern);
     await new Promise((r) => setTimeout(r, 300));
     let peak = e.stats().recvBuffersInUse;
     let ok = 0;
     await Promise.all(socks.map((s) => new Promise((resolve) => {
       e.readExactly(s, bytes, new Callback({
         success: (b) => { if (Buffer.compare(b, pattern) === 0) ok++; resolve(); },
         failure: (err) => { console.error(err); resolve(); },
       }));
     })));
     for (const c of clients) c.destroy();
     const inUse = e.stats().recvBuffersInUse;
     await e.shutdown();
     console.log(JSON.stringify({ ok, peak, inUse }));`,
    env ? { ASYNC_ENGINE_URING_DISABLE: env } : {},
    60_000,
  );
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ok: number; peak: number; inUse: number };
  t.log(`buffers held before reading: ${out.peak}`);
  return out;
}

ring(
  'a flood nobody reads is held in provided buffers up to the ring, then waits in the kernel',
  async (t) => {
    // 8 MiB against a 4 MiB ring: the multishot receive is stopped, the rest stays in the socket.
    const out = await floodThenRead(t, '', 1, 8 * 1024 * 1024);
    t.is(out.ok, 1, 'all 8 MiB arrive intact and in order');
    t.true(out.peak > 0 && out.peak <= 256, `buffers held by one unread socket: ${out.peak}`);
    t.is(out.inUse, 0, 'every buffer went back to the kernel');
  },
);

ring(
  'with the provided buffers used up, receives fall back to the socket area and lose nothing',
  async (t) => {
    // 48 unread sockets could hold 384 buffers; the ring has 256.
    const out = await floodThenRead(t, '', 48, 256 * 1024);
    t.is(out.ok, 48);
    t.true(out.peak <= 256);
    t.is(out.inUse, 0);
  },
);

ring(
  'single-shot receives and accepts (multishot switched off) carry the same flood',
  async (t) => {
    const out = await floodThenRead(t, 'multishot_accept,multishot_recv', 8, 512 * 1024);
    t.is(out.ok, 8);
    t.is(out.peak, 0);
  },
);

ring('io_uring unavailable: availableImpls says why and auto picks readiness', async (t) => {
  const r = await runNodeScript(
    `const m = await import(process.env.ENGINE_URL);
     const e = m.createEngine();
     console.log(JSON.stringify({ impls: m.availableImpls(), impl: e.impl }));
     let threw = '';
     try { m.createEngine({ impl: 'completion' }); } catch (err) { threw = err.code; }
     console.log(threw);
     await e.shutdown();`,
    { ASYNC_ENGINE_URING_UNAVAILABLE: '1' },
  );
  t.is(r.code, 0, r.stderr);
  const [first, second] = r.stdout.trim().split('\n');
  const out = JSON.parse(first!) as {
    impls: Array<{ impl: string; available: boolean; reason?: string }>;
    impl: string;
  };
  const c = out.impls.find((i) => i.impl === 'completion')!;
  t.false(c.available);
  t.regex(c.reason ?? '', /ASYNC_ENGINE_URING_UNAVAILABLE/);
  t.is(out.impl, 'readiness');
  t.is(second, 'ERR_IMPL_UNAVAILABLE');
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
(isRoot ? ring : test.skip)(
  'after setuid the ring refuses to submit: ops fail with EPERM',
  async (t) => {
    const r = await runNodeScript(
      `const { createEngine, Callback } = await import(process.env.ENGINE_URL);
       const e = createEngine({ impl: 'completion' });
       const l = e.listen({ port: 0 });
       const port = l.address().port;
       process.setgid(65534);
       process.setuid(65534);
       e.connect({ host: '127.0.0.1', port }, new Callback({
         success: () => console.log('connected'),
         failure: (err) => console.log(err.code),
       }));
       await e.run();
       await e.shutdown();`,
      {},
    );
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.trim(), 'EPERM');
  },
);

ring('a 4-entry ring carries 1,000 concurrent ops; none is lost', async (t) => {
  const engine = createEngine({ impl: 'completion', completion: { entries: 4 } });
  t.is(engine.stats().ringEntries, 4);
  const listener = engine.listen({ port: 0 });
  const port = (listener.address() as { port: number }).port;
  const n = 250;
  const clients: net.Socket[] = [];
  const socks: Socket[] = [];
  await new Promise<void>((resolve) => {
    for (let i = 0; i < n; i++) {
      engine.accept(
        listener,
        new Callback<Socket>({
          success: (s) => {
            socks.push(s);
            if (socks.length === n) resolve();
          },
        }),
      );
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      clients.push(c);
    }
  });
  // 250 reads, 250 writes, 250 more reads: 750 ops, plus the 250 accepts above.
  let settled = 0;
  const lines: string[] = [];
  const done = new Promise<void>((resolve) => {
    const tick = () => {
      if (++settled === 3 * n) resolve();
    };
    for (const [i, s] of socks.entries()) {
      engine.expectLine(s, null, new Callback<string>({ success: (l) => (lines.push(l), tick()) }));
      engine.write(s, `hello ${i}\n`, new Callback<number>({ success: tick }));
      engine.expectLine(s, null, new Callback<string>({ success: (l) => (lines.push(l), tick()) }));
    }
  });
  for (const c of clients) c.on('data', (d) => c.write(d));
  for (const c of clients) c.write('first\n');
  await done;
  for (const c of clients) c.destroy();
  await engine.shutdown();
  t.is(lines.filter((l) => l === 'first').length, n);
  t.is(lines.filter((l) => l.startsWith('hello ')).length, n);
});

ring('5,000 reads in flight at once all complete', async (t) => {
  const engine = createEngine({ impl: 'completion' });
  const listener = engine.listen({ port: 0 });
  const port = (listener.address() as { port: number }).port;
  const n = 5000;
  const clients: net.Socket[] = [];
  const socks: Socket[] = [];
  await new Promise<void>((resolve) => {
    let connected = 0;
    const arm = () =>
      engine.accept(
        listener,
        new Callback<Socket>({
          success: (s) => {
            socks.push(s);
            if (socks.length === n) resolve();
            else arm();
          },
        }),
      );
    arm();
    const open = () => {
      if (connected === n) return;
      connected++;
      const c = net.connect(port, '127.0.0.1', open);
      c.on('error', () => {});
      clients.push(c);
    };
    for (let i = 0; i < 50; i++) open();
  });
  let got = 0;
  const done = new Promise<void>((resolve) => {
    for (const s of socks) {
      engine.readExactly(s, 3, new Callback<Buffer>({ success: () => ++got === n && resolve() }));
    }
  });
  t.true(engine.stats().opsInFlight >= n);
  for (const c of clients) c.write('abc');
  await done;
  for (const c of clients) c.destroy();
  await engine.shutdown();
  t.is(got, n);
});
