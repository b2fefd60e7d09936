// TLS soak: many TLS handshakes per implementation, mixing clean ones with peers that misbehave
// or leave, then checks that no descriptor, socket, pending op or memory was left behind.
//
//   npm run soak:tls                       every available implementation, 10 000 handshakes each
//   SOAK_TLS_SEED=123 npm run soak:tls     replay a run (the seed is printed on the first line)
//   SOAK_TLS_COUNT=2000 SOAK_TLS_IMPLS=readiness,poll npm run soak:tls
//
// Each implementation runs in a child process of its own (node --expose-gc), so that its fd
// count and memory start from a fresh process. The scenario mix (see SCENARIOS) runs with a
// bounded number of connections at once; each handshake is one scenario. Figures are taken
// after a warm-up (the first tenth), halfway through the rest and after each eighth of the
// second half, each time with no connection open and after a full gc. `soak()` is also what test/tls-soak.test.ts runs, short.
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { makeCertPair } from '../bench/lib/certs.js';

const self = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;

// RSS slack, per 1 000 handshakes, over the second half of the run (after the warm-up and the
// halfway point, so allocator arenas, OpenSSL's per-thread state, the SSL_CTX caches and V8's
// heap have reached their working size). An open engine TLS connection costs about 47 KiB of
// RSS for its two ends (measured here: 1 000 engine-to-engine connections held open, after gc),
// so a leaked TLS socket (SSL object, BIOs, record buffers, socket record) is some 20 KiB or
// more: 20 MiB per 1 000 handshakes. 4 MiB per 1 000 is five times below that, and above the
// trend the lows show on a steady run (under 1 MiB per 1 000 either way; see the trend's
// computation below for why the lows).
const RSS_SLACK_PER_1000 = 4 * MiB;
// Buffers JavaScript can still reach after gc (external memory, ArrayBuffers): a leak of a
// Buffer per handshake (a held input buffer, a certificate) shows here directly. 1 MiB in all
// over the second half absorbs pooled slabs (Buffer's 8 KiB pool, Node's TLS buffers).
const EXTERNAL_SLACK = 1 * MiB;
// Runs shorter than this print the memory figures without judging them.
const MEMORY_CHECKED_FROM = 5_000;

// A backend's own wake and poll descriptors (eventfd, epoll). The threadpool implementation
// starts a worker thread, with one of each, when every worker is busy, and keeps it until the
// engine shuts down: how many it has depends on timing, not on leaks. The count during the run
// leaves them out; after shutdown every descriptor is compared, these included.
const BACKEND_FD = /^anon_inode:\[(?:eventfd|eventpoll)\]$/;

/** Open descriptors of this process, other than a backend's wake and poll descriptors. */
export function fdCount() {
  let n = 0;
  for (const target of fdTargets().values()) if (!BACKEND_FD.test(target)) n++;
  return n;
}

/** What each open descriptor of this process is, for a failure message. */
function fdTargets() {
  const out = new Map();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // readdir's own descriptor, gone already
    }
  }
  return out;
}

function fdDiff(before, after) {
  return [...after]
    .filter(([fd, target]) => before.get(fd) !== target)
    .map(([fd, target]) => `${fd}->${target}`)
    .join(', ');
}

/** A self-signed localhost / 127.0.0.1 pair made with the openssl CLI (bench/lib/certs.js). */
export function makeCerts() {
  const pair = makeCertPair();
  pair.remove();
  return { key: pair.key, cert: pair.cert };
}

/** Deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withDeadline(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no outcome within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves when `s` (a node:net or node:tls socket) has closed. */
function closed(s) {
  return new Promise((r) => (s.destroyed && s.closed ? r() : s.once('close', () => r())));
}

/** A node:tls client that sends a line and waits for the reply, then ends. */
function nodeTlsRequest(port, ca, line) {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    let got = '';
    c.setEncoding('utf8');
    c.on('secureConnect', () => c.write(`${line}\n`));
    c.on('data', (d) => {
      got += d;
      if (got.includes('\n')) {
        c.end();
        resolve(got);
      }
    });
    c.on('error', (e) => reject(e));
    c.on('close', () => reject(new Error(`closed before a reply (got ${JSON.stringify(got)})`)));
  });
}

/** One node:tls handshake, which makes Node open the descriptor it keeps after first use. */
async function warmNodeTls(certs) {
  const server = tls.createServer(certs, (s) => s.end());
  server.on('tlsClientError', () => {});
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  await new Promise((r) => {
    const c = tls.connect({ host: '127.0.0.1', port: server.address().port, ca: certs.cert });
    c.on('error', () => r());
    c.on('close', () => r());
    c.resume();
  });
  await new Promise((r) => server.close(() => r()));
}

/**
 * The scenarios, each one handshake (attempted), with its weight. `run(ctx, rnd)` resolves when
 * the scenario is over on the client side and throws when an outcome is not one allowed.
 */
const SCENARIOS = [
  {
    // node:tls client, engine TLS listener: handshake, a request and its reply, close.
    name: 'clean node:tls client',
    weight: 20,
    async run(x) {
      const reply = await nodeTlsRequest(x.ports.main, x.certs.cert, 'PING');
      if (reply !== 'PONG PING\n') throw new Error(`reply ${JSON.stringify(reply)}`);
    },
  },
  {
    // Engine client (the client engine), engine TLS listener.
    name: 'clean engine client',
    weight: 12,
    async run(x) {
      const p = x.client.promises;
      const sock = await p.connect({
        host: '127.0.0.1',
        port: x.ports.main,
        tls: { ca: x.certs.cert, servername: 'localhost' },
      });
      try {
        await p.write(sock, 'HELLO\n');
        const line = await p.expectLine(sock, null, { timeout: 5_000 });
        if (line !== 'PONG HELLO') throw new Error(`reply ${JSON.stringify(line)}`);
      } finally {
        x.client.close(sock);
      }
    },
  },
  {
    // node:tls client that goes away mid-handshake (0 to 3 ms after connecting).
    name: 'client closes mid-handshake',
    weight: 10,
    async run(x, rnd) {
      const c = tls.connect({ host: '127.0.0.1', port: x.ports.main, ca: x.certs.cert });
      c.on('error', () => {});
      const done = closed(c);
      const ms = Math.floor(rnd() * 4);
      if (ms === 0) setImmediate(() => c.destroy());
      else setTimeout(() => c.destroy(), ms);
      await done;
    },
  },
  {
    // A TCP client that sends nothing: the listener's accept (handshake) timeout closes it.
    name: 'silent client (server handshake timeout)',
    weight: 8,
    async run(x) {
      const c = net.connect({ host: '127.0.0.1', port: x.ports.silent });
      c.on('error', () => {});
      c.resume();
      await withDeadline(closed(c), 5_000, 'the server to time the handshake out');
    },
  },
  {
    // Plaintext or random bytes sent to the TLS listener: the server fails the handshake and
    // closes. Random bytes may also be only the head of a record (a TLS record header, or an
    // SSLv2-style ClientHello length when the first byte has its top bit set), which OpenSSL
    // waits for, as node:tls does: such a client gives up after 1 s (the server then sees the
    // connection end mid-handshake). Plaintext must always be refused.
    name: 'client sends garbage or plaintext',
    weight: 8,
    async run(x, rnd) {
      const c = net.connect({ host: '127.0.0.1', port: x.ports.main });
      c.on('error', () => {});
      c.resume();
      const plaintext = rnd() < 0.5;
      const bytes = plaintext
        ? Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
        : Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 600) }, () => rnd() * 256));
      c.on('connect', () => c.write(bytes));
      const done = closed(c);
      if (plaintext) {
        await withDeadline(done, 5_000, 'the server to refuse the plaintext');
        return;
      }
      let gaveUp = false;
      const timer = setTimeout(() => {
        gaveUp = true;
        c.destroy();
      }, 1_000);
      await done;
      clearTimeout(timer);
      if (gaveUp) x.count('random bytes the server waited on (client gave up)');
    },
  },
  {
    // The server closes each socket as soon as its accept (and handshake) succeeds.
    name: 'server closes right after accept',
    weight: 8,
    async run(x) {
      const c = tls.connect({
        host: '127.0.0.1',
        port: x.ports.closing,
        ca: x.certs.cert,
        servername: 'localhost',
      });
      c.on('error', () => {});
      c.resume();
      await withDeadline(closed(c), 5_000, 'the server to close');
    },
  },
  {
    // Engine client against a node:tls server, aborted by an AbortSignal at a random moment
    // (before the connect, during the handshake, or after it).
    name: 'engine client aborted (AbortSignal)',
    weight: 12,
    async run(x, rnd) {
      const p = x.client.promises;
      const ac = new AbortController();
      const ms = Math.floor(rnd() * 6);
      const timer = setTimeout(() => ac.abort(), ms);
      let sock;
      try {
        sock = await p.connect(
          { host: '127.0.0.1', port: x.ports.node, tls: { ca: x.certs.cert } },
          { signal: ac.signal },
        );
        await p.write(sock, 'HI\n', { signal: ac.signal });
        await p.expectLine(sock, null, { signal: ac.signal, timeout: 5_000 });
      } catch (e) {
        if (e.name !== 'AbortError' && e.code !== 'ECANCELED') throw e;
      } finally {
        clearTimeout(timer);
        if (sock) x.client.close(sock);
      }
    },
  },
  {
    // Engine client with a short timeout: against a server that never answers the ClientHello
    // (the timeout must fire), or against the node:tls server (it may or may not).
    name: 'engine client timeout',
    weight: 10,
    async run(x, rnd) {
      const p = x.client.promises;
      const silent = rnd() < 0.5;
      const timeout = silent ? 20 + Math.floor(rnd() * 40) : 1 + Math.floor(rnd() * 8);
      let sock;
      try {
        sock = await p.connect(
          {
            host: '127.0.0.1',
            port: silent ? x.ports.nodeSilent : x.ports.node,
            tls: { ca: x.certs.cert },
          },
          { timeout },
        );
        if (silent) throw new Error('a handshake with a silent server succeeded');
      } catch (e) {
        if (e.code !== 'ETIMEDOUT') throw e;
      } finally {
        if (sock) x.client.close(sock);
      }
    },
  },
  {
    // STARTTLS between two engines: a plaintext line, both sides upgrade, a line over TLS.
    name: 'startTls upgrade',
    weight: 12,
    async run(x) {
      const p = x.client.promises;
      const sock = await p.connect({ host: '127.0.0.1', port: x.ports.plain });
      try {
        await p.write(sock, 'STARTTLS\n');
        const ok = await p.expectLine(sock, null, { timeout: 5_000 });
        if (ok !== 'GO') throw new Error(`STARTTLS answered ${JSON.stringify(ok)}`);
        await p.startTls(sock, { ca: x.certs.cert, servername: 'localhost' }, { timeout: 5_000 });
        await p.write(sock, 'SECRET\n');
        const line = await p.expectLine(sock, null, { timeout: 5_000 });
        if (line !== 'PONG SECRET') throw new Error(`reply ${JSON.stringify(line)}`);
      } finally {
        x.client.close(sock);
      }
    },
  },
];

const TOTAL_WEIGHT = SCENARIOS.reduce((s, c) => s + c.weight, 0);

function pick(rnd) {
  let w = rnd() * TOTAL_WEIGHT;
  for (const s of SCENARIOS) {
    w -= s.weight;
    if (w < 0) return s;
  }
  return SCENARIOS[SCENARIOS.length - 1];
}

/** Keeps `n` accepts armed on `listener`, each handing its socket to `serve`, until `stop`. */
function acceptLoops(engine, listener, n, options, serve, state) {
  const loops = [];
  for (let i = 0; i < n; i++) {
    loops.push(
      (async () => {
        while (!state.stopping) {
          let sock;
          try {
            sock = await engine.promises.accept(listener, options);
          } catch (e) {
            state.acceptErrors.set(e.code, (state.acceptErrors.get(e.code) ?? 0) + 1);
            // The listener is gone: this loop is over (at the end, `stopping` ends it).
            if (e.code === 'EBADF') break;
            continue;
          }
          state.accepted++;
          serve(sock).catch(() => {});
        }
      })(),
    );
  }
  return loops;
}

/** Reads a line, answers `PONG <line>`, closes. */
async function answer(engine, sock) {
  try {
    const line = await engine.promises.expectLine(sock, null, { timeout: 5_000, maxBytes: 256 });
    await engine.promises.write(sock, `PONG ${line}\n`);
  } finally {
    engine.close(sock);
  }
}

function snapshot(server, client, label, done) {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  const s = server.stats();
  const c = client.stats();
  return {
    label,
    handshakes: done,
    fds: fdCount(),
    fdTargets: new Map([...fdTargets()].filter(([, t]) => !BACKEND_FD.test(t))),
    sockets: s.sockets,
    clientSockets: c.sockets,
    opsInFlight: s.opsInFlight,
    clientOpsInFlight: c.opsInFlight,
    tlsContexts: s.tlsContexts,
    clientTlsContexts: c.tlsContexts,
    rss: m.rss,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

/**
 * Runs `count` scenarios against engine listeners on `engine` (a new engine of `impl` when not
 * given), with a second engine of the same implementation as the client. Resolves with the
 * figures and the failures found (empty when all is well); `memory: true` also checks RSS and
 * external memory growth.
 */
export async function soak(options) {
  const {
    impl,
    count = 10_000,
    seed = 1,
    concurrency = 16,
    memory = false,
    log = () => {},
    certs = makeCerts(),
  } = options;
  const { createEngine } = await import('../dist/index.js');
  const failures = [];
  const fail = (msg) => {
    if (failures.length < 20) failures.push(msg);
  };
  await warmNodeTls(certs);
  const fd0 = fdTargets();
  const ownServer = options.engine === undefined;
  const server = options.engine ?? createEngine({ impl });
  const client = createEngine({ impl });
  const state = { stopping: false, accepted: 0, acceptErrors: new Map() };
  const tlsOpts = { key: certs.key, cert: certs.cert };

  // Engine listeners: `main` answers a line, `closing` closes at once, `silent` gives each
  // handshake 100 ms (its clients never speak), `plain` answers STARTTLS and upgrades.
  const lMain = server.listen({ host: '127.0.0.1', port: 0, tls: tlsOpts });
  const lClosing = server.listen({ host: '127.0.0.1', port: 0, tls: tlsOpts });
  const lSilent = server.listen({ host: '127.0.0.1', port: 0, tls: tlsOpts });
  const lPlain = server.listen({ host: '127.0.0.1', port: 0 });
  const loops = [
    ...acceptLoops(server, lMain, concurrency, {}, (s) => answer(server, s), state),
    ...acceptLoops(server, lClosing, 4, {}, async (s) => server.close(s), state),
    ...acceptLoops(
      server,
      lSilent,
      concurrency,
      { timeout: 100 },
      async (s) => server.close(s),
      state,
    ),
    ...acceptLoops(
      server,
      lPlain,
      concurrency,
      {},
      async (s) => {
        try {
          const p = server.promises;
          await p.expectLine(s, 'STARTTLS', { timeout: 5_000 });
          await p.write(s, 'GO\n');
          await p.startTls(s, { isServer: true, ...tlsOpts }, { timeout: 5_000 });
          await answer(server, s);
        } finally {
          server.close(s);
        }
      },
      state,
    ),
  ];

  // node:tls peers of the engine client: one answering a line, one plain TCP server that never
  // answers the ClientHello.
  const nodeConns = new Set();
  const track = (c) => {
    nodeConns.add(c);
    c.on('error', () => {});
    c.on('close', () => nodeConns.delete(c));
  };
  const nodeServer = tls.createServer(tlsOpts, (s) => {
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) s.end(`PONG ${buf.slice(0, buf.indexOf('\n'))}\n`);
    });
  });
  nodeServer.on('connection', track);
  nodeServer.on('tlsClientError', () => {});
  const nodeSilent = net.createServer((s) => s.resume());
  nodeSilent.on('connection', track);
  await Promise.all(
    [nodeServer, nodeSilent].map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r))),
  );

  const counts = new Map();
  const x = {
    count: (what) => counts.set(what, (counts.get(what) ?? 0) + 1),
    client,
    certs,
    ports: {
      main: lMain.address().port,
      closing: lClosing.address().port,
      silent: lSilent.address().port,
      plain: lPlain.address().port,
      node: nodeServer.address().port,
      nodeSilent: nodeSilent.address().port,
    },
  };

  const rnd = prng(seed);
  const tally = new Map(SCENARIOS.map((s) => [s.name, { runs: 0, failed: 0, ms: 0 }]));
  let next = 0;
  async function runUntil(end) {
    const from = next;
    const started = Date.now();
    const worker = async () => {
      while (next < end) {
        const i = next++;
        const sc = pick(rnd);
        const r = prng(seed ^ Math.imul(i + 1, 0x9e3779b1));
        const t = tally.get(sc.name);
        t.runs++;
        const started = Date.now();
        try {
          await withDeadline(sc.run(x, r), 15_000, `${sc.name} #${i}`);
        } catch (e) {
          t.failed++;
          fail(`${sc.name} #${i}: ${e.code ?? ''} ${e.message}`);
        }
        t.ms += Date.now() - started;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    log(`${end - from} handshakes in ${Date.now() - started} ms`);
  }

  // No connection open on either side, every server-side close done, for up to 10 s.
  // Once the engines failed to get back to idle, later checkpoints wait only briefly: the run
  // has failed already and goes on to report the figures.
  let quiesceMs = 10_000;
  async function quiesce(fdTarget) {
    const deadline = Date.now() + quiesceMs;
    for (;;) {
      const idle =
        server.stats().sockets === 0 &&
        client.stats().sockets === 0 &&
        client.stats().opsInFlight === 0 &&
        nodeConns.size === 0 &&
        (fdTarget === undefined || fdCount() <= fdTarget);
      if (idle) return;
      if (Date.now() > deadline) {
        if (quiesceMs > 500) {
          fail(
            `not idle ${quiesceMs} ms after handshake ${next}: sockets ${server.stats().sockets} ` +
              `server, ${client.stats().sockets} client; client ops ${client.stats().opsInFlight}; ` +
              `node:tls peers ${nodeConns.size}; fds ${fdCount()}` +
              (fdTarget === undefined ? '' : ` (${fdTarget} after the warm-up)`),
          );
        }
        quiesceMs = 500;
        return;
      }
      await sleep(20);
    }
  }

  const warmup = Math.max(1, Math.min(1_000, Math.floor(count / 10)));
  const t0 = Date.now();
  await runUntil(warmup);
  await quiesce();
  await sleep(50);
  const base = snapshot(server, client, 'after warm-up', warmup);
  log(base);
  if (base.sockets !== 0 || base.clientSockets !== 0) {
    fail(
      `sockets still open after the warm-up: ${base.sockets} server, ${base.clientSockets} client`,
    );
  }
  const half = warmup + Math.floor((count - warmup) / 2);
  await runUntil(half);
  await quiesce(base.fds);
  const mid = snapshot(server, client, 'halfway', half);
  log(mid);
  // The second half in eight parts, with a snapshot after each, for the memory trend.
  const points = [mid];
  for (let k = 1; k <= 8; k++) {
    await runUntil(half + Math.round(((count - half) * k) / 8));
    await quiesce(base.fds);
    points.push(snapshot(server, client, k === 8 ? 'end' : `part ${k}/8`, next));
  }
  const end = points[points.length - 1];
  log(end);
  const ms = Date.now() - t0;

  for (const k of ['fds', 'sockets', 'clientSockets', 'opsInFlight', 'clientOpsInFlight']) {
    if (end[k] !== base[k]) {
      const which = k === 'fds' ? `: ${fdDiff(base.fdTargets, end.fdTargets)}` : '';
      fail(`${k}: ${base[k]} after the warm-up, ${end[k]} at the end${which}`);
    }
  }
  for (const k of ['tlsContexts', 'clientTlsContexts']) {
    if (end[k] > base[k]) fail(`${k}: ${base[k]} after the warm-up, ${end[k]} at the end`);
  }
  // RSS after gc still holds memory malloc has not given back, which depends on how many
  // connections happened to be alive at once: it moves up and down by tens of MiB on a loaded
  // machine. A leak raises the lows too, so the trend compares the lowest of the first three
  // snapshots of the second half with the lowest of the last three, over the handshakes that
  // certainly lie between them.
  const low = (ps) => Math.min(...ps.map((p) => p.rss));
  const span = points[points.length - 3].handshakes - points[2].handshakes;
  const rssPerK = ((low(points.slice(-3)) - low(points.slice(0, 3))) * 1000) / Math.max(1, span);
  const externalGrowth = end.external - mid.external;
  const abGrowth = end.arrayBuffers - mid.arrayBuffers;
  if (memory) {
    if (rssPerK > RSS_SLACK_PER_1000) {
      fail(
        `RSS grew ${(rssPerK / MiB).toFixed(2)} MiB per 1000 handshakes over the second half ` +
          `(slack ${RSS_SLACK_PER_1000 / MiB} MiB; snapshots ${points
            .map((p) => (p.rss / MiB).toFixed(1))
            .join(' ')} MiB)`,
      );
    }
    if (externalGrowth > EXTERNAL_SLACK || abGrowth > EXTERNAL_SLACK) {
      fail(
        `external memory grew ${(externalGrowth / MiB).toFixed(2)} MiB, arrayBuffers ` +
          `${(abGrowth / MiB).toFixed(2)} MiB over the second half (slack ${EXTERNAL_SLACK / MiB} MiB)`,
      );
    }
  }

  // Tear down: every loop ends, both engines and the node:tls peers go, descriptors return.
  state.stopping = true;
  for (const l of [lMain, lClosing, lSilent, lPlain]) server.close(l);
  await withDeadline(Promise.all(loops), 10_000, 'the accept loops to end').catch((e) =>
    fail(e.message),
  );
  await client.shutdown();
  if (ownServer) await server.shutdown();
  for (const c of nodeConns) c.destroy();
  await Promise.all([nodeServer, nodeSilent].map((s) => new Promise((r) => s.close(() => r()))));
  if (ownServer) {
    const deadline = Date.now() + 5_000;
    while (fdTargets().size > fd0.size && Date.now() < deadline) await sleep(20);
    const fds = fdTargets();
    if (fds.size !== fd0.size) {
      fail(`fds: ${fd0.size} before the engines, ${fds.size} after shutdown: ${fdDiff(fd0, fds)}`);
    }
  }
  return {
    impl,
    seed,
    count,
    ms,
    base,
    mid,
    end,
    rssPerK,
    rssPoints: points.map((p) => p.rss),
    counts: Object.fromEntries(counts),
    externalGrowth,
    abGrowth,
    accepted: state.accepted,
    acceptErrors: Object.fromEntries(state.acceptErrors),
    tally: Object.fromEntries(tally),
    failures,
  };
}

function fmt(s) {
  return (
    `${s.label.padEnd(13)} n=${String(s.handshakes).padStart(5)} fds=${s.fds} ` +
    `sockets=${s.sockets}/${s.clientSockets} ops=${s.opsInFlight}/${s.clientOpsInFlight} ` +
    `tlsContexts=${s.tlsContexts}/${s.clientTlsContexts} rss=${(s.rss / MiB).toFixed(1)}MiB ` +
    `external=${(s.external / MiB).toFixed(2)}MiB arrayBuffers=${(s.arrayBuffers / MiB).toFixed(2)}MiB`
  );
}

async function child(impl) {
  const seed = Number(process.env.SOAK_TLS_SEED);
  const count = Number(process.env.SOAK_TLS_COUNT ?? 10_000);
  const r = await soak({
    impl,
    seed,
    count,
    // Below a few thousand handshakes the process is still growing into its working size
    // (see RSS_SLACK_PER_1000): the memory figures are printed, not judged.
    memory: count >= MEMORY_CHECKED_FROM,
    log: (s) => console.log(`  [${impl}] ${typeof s === 'string' ? s : fmt(s)}`),
  });
  console.log(
    `  [${impl}] ${count} handshakes in ${(r.ms / 1000).toFixed(1)} s; RSS ` +
      `${(r.rssPerK / 1024).toFixed(0)} KiB per 1000 over the second half (slack ` +
      `${RSS_SLACK_PER_1000 / 1024} KiB); external ${(r.externalGrowth / 1024).toFixed(0)} KiB, ` +
      `arrayBuffers ${(r.abGrowth / 1024).toFixed(0)} KiB`,
  );
  console.log(
    `  [${impl}] scenarios: ${Object.entries(r.tally)
      .map(
        ([k, v]) =>
          `${k} ${v.runs} (${(v.ms / Math.max(1, v.runs)).toFixed(0)} ms each` +
          `${v.failed ? `, ${v.failed} failed` : ''})`,
      )
      .join(', ')}`,
  );
  console.log(
    `  [${impl}] server accepts: ${r.accepted} ok, failed (ETIMEDOUT counts the silent ` +
      `listener's idle accepts too): ${JSON.stringify(r.acceptErrors)}; ` +
      `${JSON.stringify(r.counts)}`,
  );
  console.log(
    `  [${impl}] RSS after each eighth of the second half: ` +
      `${r.rssPoints.map((v) => (v / MiB).toFixed(1)).join(' ')} MiB`,
  );
  if (count < MEMORY_CHECKED_FROM) {
    console.log(`  [${impl}] memory not judged: fewer than ${MEMORY_CHECKED_FROM} handshakes`);
  }
  if (r.failures.length > 0) {
    console.error(`  [${impl}] FAILED:`);
    for (const f of r.failures) console.error(`    ${f}`);
    process.exitCode = 1;
  }
}

async function main() {
  const { availableImpls } = await import('../dist/index.js');
  const seed =
    process.env.SOAK_TLS_SEED !== undefined
      ? Number(process.env.SOAK_TLS_SEED)
      : Math.floor(Math.random() * 2 ** 31);
  const only = process.env.SOAK_TLS_IMPLS?.split(',').map((s) => s.trim());
  const count = Number(process.env.SOAK_TLS_COUNT ?? 10_000);
  if (!Number.isInteger(seed) || !Number.isInteger(count) || count < 20) {
    console.error('soak:tls: SOAK_TLS_SEED and SOAK_TLS_COUNT (at least 20) must be integers');
    process.exit(2);
  }
  console.log(
    `soak:tls seed=${seed} handshakes=${count} per implementation (SOAK_TLS_SEED replays)`,
  );
  const t0 = Date.now();
  const impls = [];
  for (const { impl, available, reason } of availableImpls()) {
    if (only && !only.includes(impl)) continue;
    if (available) impls.push(impl);
    else console.log(`  [${impl}] not available here: ${reason}`);
  }
  // Two implementations at a time (one per core of a small CI machine); each child's output is
  // printed whole when it ends.
  const jobs = Math.max(1, Number(process.env.SOAK_TLS_JOBS ?? 2));
  const failed = [];
  const runOne = (impl) =>
    new Promise((resolve) => {
      const c = spawn(process.execPath, ['--expose-gc', self, '--impl', impl], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SOAK_TLS_SEED: String(seed), SOAK_TLS_COUNT: String(count) },
      });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (out += d));
      c.on('close', (code, signal) => {
        process.stdout.write(out);
        if (code !== 0) {
          console.error(`  [${impl}] exited with ${signal ?? code}`);
          failed.push(impl);
        }
        resolve();
      });
    });
  const queue = [...impls];
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (queue.length > 0) await runOne(queue.shift());
    }),
  );
  console.log(`soak:tls took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failed.length > 0) {
    console.error(`soak:tls FAILED on ${failed.join(', ')} (seed ${seed})`);
    process.exit(1);
  }
  console.log('soak:tls passed: no fd, socket, op or memory growth');
}

if (process.argv[1] === self) {
  if (process.argv[2] === '--impl') await child(process.argv[3]);
  else await main();
}
