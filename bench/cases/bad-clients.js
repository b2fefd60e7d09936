// Bad clients: a flood of connections with garbage first lines (or none) beside a few good
// clients, against the same line protocol served three ways (bench/lib/bad-clients-server.js):
// acceptWhen refusing bad connections natively ("filter"), accept + expectLine with the reply
// written from JavaScript ("plain"), and node:net. The figure is the server's CPU time per
// rejected connection; the good clients' round-trip latency during the flood is the other.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { run as exec } from '../lib/exec.js';
import { shown } from '../lib/contenders.js';
import { interleaved } from '../lib/interleave.js';
import { sleep } from '../lib/measure.js';
import { cpuTimes } from '../lib/proc.js';
import { HOST } from '../lib/servers.js';

export const name = 'bad-clients';
export const title = 'Bad clients: a flood of garbage first lines beside good clients';
export const order = 27;

/** The target: the filter's CPU per rejected connection at most this × plain's. */
export const TARGET = 0.5;

const GREETING = 'HELLO bench';
const REPLY = 'ERR bad greeting\r\n';
/** The servers' first-line timeout (ms, from the accept) and line limit (bytes). */
const FIRST_LINE_TIMEOUT = 250;
const MAX_BYTES = 128;
/** The deferAccept contenders' TCP_DEFER_ACCEPT, in seconds. */
const DEFER_S = 1;
/** Bad connections the flood keeps open at once, silent ones not counted. */
const CONCURRENCY = 64;
/** Good clients: how many, the pause between PINGs, PINGs per connection. */
const GOOD = { clients: 4, intervalMs: 20, pingsPerSession: 20 };

const node = process.execPath;

export const METRICS = [
  { key: 'cpuUsPerRejected', ratio: true },
  { key: 'userUsPerRejected', ratio: true },
  { key: 'systemUsPerRejected', ratio: true },
  { key: 'rejectedCallbacksPerRejected' },
  { key: 'callbacksPerRejected' },
  { key: 'batchesPerRejected' },
  { key: 'syscallsPerRejected' },
  { key: 'rejectedPerS', ratio: true },
  { key: 'pingP50Ms', ratio: true },
  { key: 'pingP99Ms', ratio: true },
  { key: 'greetP50Ms' },
  { key: 'greetP99Ms' },
  { key: 'pings' },
  { key: 'rejected' },
  { key: 'serverRejected' },
  { key: 'replied' },
  { key: 'goodErrors' },
  { key: 'filteredMismatch' },
  { key: 'filteredTimeout' },
  { key: 'filteredTooLong' },
  { key: 'serverCpuS' },
];

/**
 * The contenders: filter and plain on each impl, side by side, without and with deferAccept on
 * the listener, then node:net.
 */
export function badClientServers(impls) {
  const server = (kind, impl, defer = false) => [
    'bench/lib/bad-clients-server.js',
    '--kind',
    kind,
    ...(impl ? ['--impl', impl] : []),
    '--port',
    '{port}',
    '--timeout',
    String(FIRST_LINE_TIMEOUT),
    '--max-bytes',
    String(MAX_BYTES),
    ...(defer ? ['--defer-accept', String(DEFER_S)] : []),
  ];
  const list = [];
  for (const impl of impls) {
    list.push({
      name: `${impl} filter`,
      label: `async-engine ${impl}, acceptWhen (filter)`,
      engine: true,
      impl,
      kind: 'filter',
      command: node,
      args: server('filter', impl),
    });
    list.push({
      name: `${impl} plain`,
      label: `async-engine ${impl}, accept + expectLine + JS reply (plain)`,
      engine: true,
      impl,
      kind: 'plain',
      command: node,
      args: server('plain', impl),
    });
    list.push({
      name: `${impl} filter+defer`,
      label: `async-engine ${impl}, deferAccept + acceptWhen (filter)`,
      engine: true,
      impl,
      kind: 'filter',
      defer: true,
      command: node,
      args: server('filter', impl, true),
    });
    list.push({
      name: `${impl} plain+defer`,
      label: `async-engine ${impl}, deferAccept + accept + expectLine + JS reply (plain)`,
      engine: true,
      impl,
      kind: 'plain',
      defer: true,
      command: node,
      args: server('plain', impl, true),
    });
  }
  list.push({
    name: 'net',
    label: 'node:net, the same protocol (reference)',
    kind: 'net',
    baseline: true,
    command: node,
    args: server('net'),
  });
  return list;
}

/** Compiles bench/lib/flood.c into a temporary directory; returns the binary and a remover. */
function buildFlood() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'async-engine-bench-flood-'));
  const bin = path.join(dir, 'flood');
  const cc = process.env.CC || 'cc';
  execFileSync(cc, ['-O2', '-o', bin, 'bench/lib/flood.c'], { stdio: 'pipe' });
  return { bin, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The server's counters, from its control port (printed as `control PORT` when it started). */
function counters(server) {
  const m = /control (\d+)/.exec(server.output());
  if (!m) return Promise.reject(new Error('the server printed no control port'));
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port: Number(m[1]) }, () => s.write('stats\n'));
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      text += d;
      if (text.includes('\n')) {
        s.destroy();
        resolve(JSON.parse(text));
      }
    });
    s.on('error', reject);
    setTimeout(() => {
      s.destroy();
      reject(new Error('no answer on the control port'));
    }, 5000).unref();
  });
}

/** A node:net connection read line by line: `next()` resolves with the next line. */
function lineSocket(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port, noDelay: true });
    const lines = [];
    const waiting = [];
    let ended = null;
    let buf = '';
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, buf[i - 1] === '\r' ? i - 1 : i);
        buf = buf.slice(i + 1);
        const w = waiting.shift();
        if (w) w.resolve(line);
        else lines.push(line);
      }
    });
    const end = (err) => {
      ended ??= err;
      for (const w of waiting.splice(0)) w.reject(ended);
    };
    sock.on('error', (err) => {
      end(err);
      reject(err);
    });
    sock.on('close', () => end(new Error('closed by the server')));
    sock.once('connect', () =>
      resolve({
        sock,
        next: () =>
          lines.length
            ? Promise.resolve(lines.shift())
            : ended
              ? Promise.reject(ended)
              : new Promise((res, rej) => waiting.push({ resolve: res, reject: rej })),
      }),
    );
  });
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * The good clients: each connects, greets, sends `pingsPerSession` PINGs `intervalMs` apart
 * (each waiting for its PONG), closes and starts again, until stopped. Records the greeting's
 * time (connect to OK) and each PING's round trip.
 */
function startGoodClients(port) {
  let stopping = false;
  const pingMs = [];
  const greetMs = [];
  let errors = 0;
  let lastError = '';
  async function client() {
    while (!stopping) {
      let c;
      try {
        const t0 = nowMs();
        c = await lineSocket(port);
        c.sock.write(`${GREETING}\r\n`);
        const ok = await c.next();
        if (ok !== 'OK') throw new Error(`greeting answered ${JSON.stringify(ok)}`);
        greetMs.push(nowMs() - t0);
        for (let i = 0; i < GOOD.pingsPerSession && !stopping; i++) {
          await sleep(GOOD.intervalMs);
          const t = nowMs();
          c.sock.write(`PING ${i}\r\n`);
          const pong = await c.next();
          if (pong !== `PONG ${i}`) throw new Error(`PING ${i} answered ${JSON.stringify(pong)}`);
          pingMs.push(nowMs() - t);
        }
      } catch (err) {
        errors++;
        lastError = err.message;
        await sleep(10);
      } finally {
        c?.sock.destroy();
      }
    }
  }
  const running = Array.from({ length: GOOD.clients }, client);
  return {
    async stop() {
      stopping = true;
      await Promise.all(running);
      return { pingMs, greetMs, errors, lastError };
    },
  };
}

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
}

const sum = (o) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const total = 10_000;
  const flood = buildFlood();
  const contenders = badClientServers(ctx.impls);
  const before = new Map();
  // The same seed for every contender of a round: each gets the same garbage.
  const runFlood = async (port, n, seed) => {
    const r = await exec(
      flood.bin,
      [HOST, String(port), String(n), String(CONCURRENCY), String(seed), REPLY, '60000'],
      { timeoutMs: 90_000 },
    );
    if (r.code !== 0) throw new Error(`flood exited ${r.code}: ${r.stderr.trim() || r.stdout}`);
    return JSON.parse(r.stdout);
  };
  try {
    const result = await interleaved({
      ctx,
      contenders,
      workloads: [{ id: `${total} bad + ${GOOD.clients} good`, total }],
      metrics: METRICS,
      refs: contenders.filter((c) => c.kind === 'plain').map((c) => c.name),
      // A whole flood first, so that each server's JavaScript is compiled before the rounds.
      async warmup(server) {
        await runFlood(server.port, 3000, 1);
      },
      async prepare(server, c) {
        before.set(c.name, await counters(server));
      },
      async measure(server, c, w, round) {
        const t0 = cpuTimes(server.pid);
        const good = startGoodClients(server.port);
        const f = await runFlood(server.port, w.total, round + 2);
        const g = await good.stop();
        const t1 = cpuTimes(server.pid);
        const after = await counters(server);
        const cpu = { user: t1.user - t0.user, system: t1.system - t0.system };
        return { flood: f, good: g, before: before.get(c.name), after, cpu };
      },
      finish(r, w, c) {
        const { flood: f, good: g, before: b, after: a } = r;
        if (f.done !== w.total) {
          throw new Error(`${f.done} of ${w.total} bad connections ended (${JSON.stringify(f)})`);
        }
        const rejected = f.done;
        const serverRejected =
          c.kind === 'filter'
            ? sum(a.engine.filtered) - sum(b.engine.filtered) + (a.rejected - b.rejected)
            : a.rejected - b.rejected;
        const engine = Boolean(a.engine?.impl);
        return {
          cpuUsPerRejected: (r.serverCpuS * 1e6) / rejected,
          userUsPerRejected: (r.cpu.user * 1e6) / rejected,
          systemUsPerRejected: (r.cpu.system * 1e6) / rejected,
          rejectedCallbacksPerRejected: engine
            ? (a.rejectedCallbacks - b.rejectedCallbacks) / rejected
            : NaN,
          callbacksPerRejected: engine ? (a.callbacks - b.callbacks) / rejected : NaN,
          batchesPerRejected: engine ? (a.engine.batches - b.engine.batches) / rejected : NaN,
          syscallsPerRejected: engine ? (a.engine.syscalls - b.engine.syscalls) / rejected : NaN,
          rejectedPerS: rejected / f.seconds,
          pingP50Ms: percentile(g.pingMs, 50),
          pingP99Ms: percentile(g.pingMs, 99),
          greetP50Ms: percentile(g.greetMs, 50),
          greetP99Ms: percentile(g.greetMs, 99),
          pings: g.pingMs.length,
          rejected,
          serverRejected,
          replied: f.replied,
          goodErrors: g.errors,
          filteredMismatch: engine ? a.engine.filtered.mismatch - b.engine.filtered.mismatch : NaN,
          filteredTimeout: engine ? a.engine.filtered.timeout - b.engine.filtered.timeout : NaN,
          filteredTooLong: engine ? a.engine.filtered.tooLong - b.engine.filtered.tooLong : NaN,
          serverCpuS: r.serverCpuS,
          seconds: f.seconds,
          mix: { garbage: f.garbage, long: f.long, silent: f.silent },
          lastGoodError: g.lastError || undefined,
        };
      },
      describe: (m) =>
        `${m.cpuUsPerRejected.toFixed(1).padStart(6)} µs/rejected ` +
        `(user ${m.userUsPerRejected.toFixed(0)}, sys ${m.systemUsPerRejected.toFixed(0)}) ` +
        `${Math.round(m.rejectedPerS).toLocaleString('en-US').padStart(7)} rejected/s ` +
        `cb/rej ${Number.isFinite(m.rejectedCallbacksPerRejected) ? m.rejectedCallbacksPerRejected.toFixed(2) : '–'} ` +
        `ping p50/p99 ${m.pingP50Ms.toFixed(2)}/${m.pingP99Ms.toFixed(2)} ms ` +
        `replied ${m.replied}/${m.rejected} server saw ${m.serverRejected}` +
        (m.goodErrors ? ` good errors ${m.goodErrors} (${m.lastGoodError})` : ''),
    });
    return {
      ...result,
      contenders: contenders.map((c) => ({
        name: c.name,
        label: c.label,
        engine: Boolean(c.engine),
        impl: c.impl,
        kind: c.kind,
        defer: Boolean(c.defer),
        command: shown(c),
      })),
      load: {
        total,
        concurrency: CONCURRENCY,
        good: GOOD,
        firstLineTimeoutMs: FIRST_LINE_TIMEOUT,
        deferS: DEFER_S,
        maxBytes: MAX_BYTES,
        greeting: GREETING,
        reply: REPLY,
      },
      commands: [
        `flood 127.0.0.1 PORT ${total} ${CONCURRENCY} SEED 'ERR bad greeting\\r\\n' 60000   # bench/lib/flood.c, built with cc -O2`,
      ],
    };
  } finally {
    flood.remove();
  }
}

// ---- Report ----

// The filter/plain pairs: per impl, without and then with deferAccept (`impl` is the pair's
// name in the report).
function byImpl(r) {
  const impls = [...new Set(r.contenders.filter((c) => c.impl).map((c) => c.impl))];
  const pair = (impl, defer) => ({
    impl: defer ? `${impl} + deferAccept` : impl,
    filter: r.contenders.find(
      (c) => c.impl === impl && c.kind === 'filter' && Boolean(c.defer) === defer,
    ),
    plain: r.contenders.find(
      (c) => c.impl === impl && c.kind === 'plain' && Boolean(c.defer) === defer,
    ),
  });
  return [false, true].flatMap((defer) =>
    impls.map((impl) => pair(impl, defer)).filter((p) => p.filter && p.plain),
  );
}

/** filter ÷ plain CPU per rejected connection on one impl, per round, as a ratio summary. */
function targetRatio(g, pair) {
  return g.summary[pair.filter.name]?.vs[pair.plain.name]?.cpuUsPerRejected;
}

function verdicts(r) {
  const g = r.groups[0];
  return byImpl(r).flatMap((pair) => {
    const s = targetRatio(g, pair);
    if (!s?.n) return [];
    return [{ impl: pair.impl, s, met: s.median <= TARGET, always: s.max <= TARGET }];
  });
}

export function headline(r, kit) {
  const v = verdicts(r);
  if (!v.length) return '';
  return [
    '## Headline: server CPU per rejected connection, acceptWhen vs accept + expectLine',
    '',
    `A flood of ${r.load.total.toLocaleString('en-US')} bad connections a round beside ${r.load.good.clients} good clients;`,
    `server CPU per rejected connection with \`acceptWhen\` ÷ the same server with \`accept\` +`,
    `\`expectLine\` + a JavaScript reply, per impl, median (min–max) of ${r.rounds} interleaved rounds (${r.mode}`,
    `pass, ${r.machine.date.slice(0, 10)}); the target is at most ${TARGET}×:`,
    v.map((x) => `\`${x.impl}\` ${kit.ratioCell(x.s)} (${x.met ? 'met' : 'not met'})`).join(', ') +
      '. User time alone (where JavaScript runs): ' +
      byImpl(r)
        .map((p) => [
          p.impl,
          r.groups[0].summary[p.filter.name]?.vs[p.plain.name]?.userUsPerRejected,
        ])
        .filter(([, s]) => s?.n)
        .map(([impl, s]) => `\`${impl}\` ${kit.ratioCell(s)}`)
        .join(', ') +
      '. JavaScript callbacks run per rejected connection with `acceptWhen`: ' +
      byImpl(r)
        .map((p) => r.groups[0].summary[p.filter.name]?.metrics.rejectedCallbacksPerRejected)
        .filter((s) => s?.n)
        .map((s) => kit.fmt(s.max, { digits: 0 }))
        .filter((x, i, a) => a.indexOf(x) === i)
        .join(', ') +
      ' (measured, the most in any round).',
  ].join('\n');
}

export function render(r, kit) {
  const g = r.groups[0];
  const L = r.load;
  const net = r.contenders.find((c) => c.kind === 'net');
  const file = 'bad-clients-cpu.svg';
  const groups = byImpl(r).map((p) => ({
    label: p.impl,
    bars: [p.filter, p.plain].map((c, i) => {
      const s = g.summary[c.name]?.metrics.cpuUsPerRejected;
      return {
        label: c.kind === 'filter' ? 'acceptWhen (filter)' : 'accept + expectLine (plain)',
        value: s?.median,
        min: s?.min,
        max: s?.max,
        kind: 'engine',
        shade: i,
      };
    }),
  }));
  if (net) {
    const s = g.summary[net.name]?.metrics.cpuUsPerRejected;
    groups.push({
      label: 'node:net',
      bars: [
        { label: 'net (reference)', value: s?.median, min: s?.min, max: s?.max, kind: 'baseline' },
      ],
    });
  }
  const chart = kit.barChart({
    title: 'Server CPU µs per rejected connection, bad-clients flood (lower is better)',
    unit: 'µs',
    groups,
    note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
  });
  const order = [...byImpl(r).flatMap((p) => [p.filter, p.plain]), ...(net ? [net] : [])];
  const cpuRows = order.map((c) => {
    const s = g.summary[c.name];
    const pair = byImpl(r).find((p) => p.filter === c || p.plain === c);
    if (!s) return [c.name, '–', '–', '–', '–', '–', '–'];
    const m = s.metrics;
    const vs = c.kind === 'filter' ? s.vs[pair.plain.name] : undefined;
    return [
      c.name,
      kit.cell(m.cpuUsPerRejected),
      kit.cell(m.userUsPerRejected),
      kit.cell(m.systemUsPerRejected),
      vs ? kit.ratioCell(vs.cpuUsPerRejected) : '',
      vs ? kit.ratioCell(vs.userUsPerRejected) : '',
      kit.cell(m.rejectedPerS),
    ];
  });
  const jsRows = order
    .filter((c) => c.engine)
    .map((c) => {
      const m = g.summary[c.name]?.metrics;
      if (!m) return [c.name, '–', '–', '–', '–'];
      const or = (x, opts) => (x.n ? kit.cell(x, opts) : '–');
      return [
        c.name,
        or(m.rejectedCallbacksPerRejected, { digits: 2 }),
        or(m.callbacksPerRejected),
        or(m.batchesPerRejected),
        or(m.syscallsPerRejected),
      ];
    });
  const latencyRows = order.map((c) => {
    const s = g.summary[c.name];
    if (!s) return [c.name, '–', '–', '–', '–', '–', '–', '–'];
    const m = s.metrics;
    return [
      c.name,
      kit.cell(m.pingP50Ms),
      kit.cell(m.pingP99Ms),
      kit.cell(m.greetP50Ms),
      kit.cell(m.greetP99Ms),
      kit.fmt(m.pings.median, { digits: 0 }),
      `${kit.fmt(m.replied.min, { digits: 0 })} / ${kit.fmt(m.rejected.median, { digits: 0 })}`,
      kit.fmt(m.goodErrors.max, { digits: 0 }),
    ];
  });
  const v = verdicts(r);
  const md = [
    'One line protocol, served three ways by `bench/lib/bad-clients-server.js`: a client’s first',
    `line must be \`${L.greeting}\`, answered \`OK\`; then each \`PING n\` is answered \`PONG n\` until`,
    `the client closes. Any other first line, one over ${L.maxBytes} bytes, or none within`,
    `${L.firstLineTimeoutMs} ms of the accept gets \`ERR bad greeting\` and the server closes the connection.`,
    '',
    '- **filter**: `acceptWhen(listener, GREETING, { reply, timeout, maxBytes })`, one armed at a',
    '  time and re-armed from its callback; the engine refuses bad connections natively. Good',
    '  connections are served with `expectLine` + `write`.',
    '- **plain**: `accept` re-armed from its callback, `expectLine(sock, GREETING, { maxBytes })`',
    '  with the timeout on its Callback, and for a bad line a `write` of the reply from',
    '  JavaScript and `close` in its callback.',
    '- **net**: the same rules on `node:net` stream events (`socket.end(reply)`), as a reference.',
    '',
    `Each engine server runs twice: as above, and with \`deferAccept: ${L.deferS ?? 1}\` on its listener`,
    '(`+ deferAccept`, `TCP_DEFER_ACCEPT`), the accept filter the kernel offers: an accept',
    'completes once the client has sent something, so a bad line is there to be judged when the',
    'connection is accepted, and a silent client is held by the kernel until the deferral ends,',
    'then accepted and cut by the timeout. The filter/plain ratio is taken within each setup.',
    '',
    `Every good client greets with the same \`${L.greeting}\`, matched as a whole line by both`,
    'servers, natively: `acceptWhen`’s `expect`, and a string `expect` for the plain server’s',
    '`expectLine`.',
    '',
    `**Load, per round and server:** ${L.total.toLocaleString('en-US')} bad connections from \`bench/lib/flood.c\` (C, epoll,`,
    `built with \`cc -O2\` when the case starts), ${L.concurrency} at a time plus the silent ones, each waiting for the`,
    'server to answer and close: 70 % a garbage line (1–100 random bytes, CRLF), 20 % a 300-byte',
    `line (over the ${L.maxBytes}-byte limit), 10 % silent (cut by the ${L.firstLineTimeoutMs} ms timeout). Meanwhile ${L.good.clients} good`,
    `\`node:net\` clients in the runner greet, send ${L.good.pingsPerSession} PINGs ${L.good.intervalMs} ms apart each waiting for`,
    'its PONG, close and start again, until the flood is over. Every contender of a round gets',
    'the same garbage (the same seed); rounds are interleaved `filter`, `plain`, `filter+defer`,',
    '`plain+defer` per impl, then `net`.',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    `![Server CPU per rejected connection](benchmarks/${file})`,
    '',
    kit.table(
      [
        'Server',
        'CPU µs / rejected',
        'user µs',
        'system µs',
        'filter ÷ plain',
        'filter ÷ plain, user time',
        'rejected/s',
      ],
      cpuRows,
    ),
    '',
    kit.table(
      [
        'Server',
        'JS callbacks for rejected connections / rejected',
        'all JS callbacks / rejected',
        'JS wake-ups / rejected',
        'engine syscalls / rejected',
      ],
      jsRows,
    ),
    '',
    '- **CPU µs / rejected**: the server process’s CPU time (user + system, all threads) over',
    '  the round ÷ the bad connections, median (min–max) of the rounds; **user** and **system**',
    '  split it (`utime`, `stime`). Nothing is subtracted: it includes serving the good clients',
    '  during the round (their PINGs are a few per hundred rejected connections) and the',
    '  kernel’s work on the server’s side of each connection.',
    '- **filter ÷ plain**: the ratio of those on the same impl, round by round (they run one',
    `  after the other), median (min–max); the target is at most ${TARGET}× of the whole CPU time.`,
    '- **JS callbacks for rejected connections**: the engine callbacks the server ran that were',
    '  charged to a rejected connection (each server counts every callback it runs and which',
    '  connection it was for), ÷ rejected connections; **all JS callbacks** counts every callback',
    '  of the round, the good clients’ included; **JS wake-ups** are `stats().batches`, the',
    '  times the engine woke JavaScript; **engine syscalls** are `stats().syscalls`, the socket',
    '  and wait system calls the engine made (`close` and Node’s own are not in it). The',
    '  filter’s rejected count is `stats().filteredConnections` (all reasons), the plain and net',
    '  servers count the rejections they make; each agreed with the flood’s count in every',
    '  round, or the round would have failed.',
    '- **rejected/s**: bad connections ÷ the flood’s wall time, which ends with the last silent',
    '  connection’s timeout: on 2 cores it says more about the pair than about the server.',
    '',
    '**Good clients during the flood** (round-trip ms; greeting: from connect to `OK`):',
    '',
    kit.table(
      [
        'Server',
        'PING p50',
        'PING p99',
        'greeting p50',
        'greeting p99',
        'PINGs / round',
        'bad connections answered with the reply (fewest) / round',
        'good-client errors (most)',
      ],
      latencyRows,
    ),
  ];
  if (v.length) {
    md.push(
      '',
      `**Target** (filter at most ${TARGET}× plain’s CPU per rejected connection, JS callbacks for`,
      `rejected connections 0): ${v.map((x) => `\`${x.impl}\` ${kit.ratioCell(x.s)} — ${x.met ? 'met' : 'not met'}${x.met && !x.always ? ' (not in every round)' : ''}`).join('; ')}.`,
    );
  }
  const split = byImpl(r).flatMap((p) => {
    const f = g.summary[p.filter.name]?.metrics;
    const b = g.summary[p.plain.name]?.metrics;
    if (!f?.userUsPerRejected?.n || !b?.userUsPerRejected?.n) return [];
    const µs = (x) => kit.fmt(x.median);
    return [
      {
        impl: p.impl,
        user: `${µs(f.userUsPerRejected)} vs ${µs(b.userUsPerRejected)}`,
        system: `${µs(f.systemUsPerRejected)} vs ${µs(b.systemUsPerRejected)}`,
      },
    ];
  });
  const reasons = byImpl(r).flatMap((p) => {
    const m = g.summary[p.filter.name]?.metrics;
    if (!m?.filteredMismatch?.n) return [];
    const n = (x) => kit.fmt(x.median, { digits: 0 });
    return [
      `\`${p.impl}\` ${n(m.filteredMismatch)} / ${n(m.filteredTooLong)} / ${n(m.filteredTimeout)}`,
    ];
  });
  if (reasons.length) {
    md.push(
      '',
      'The filter server’s `stats().filteredConnections` per round (median), mismatch / tooLong /',
      `timeout: ${reasons.join(', ')}; the garbage lines, the long lines and the silent clients of`,
      'the mix.',
    );
  }
  if (split.length) {
    md.push(
      '',
      '**Where the CPU goes** (medians, µs per rejected connection, filter vs plain). User time,',
      `where JavaScript runs: ${split.map((x) => `\`${x.impl}\` ${x.user}`).join(', ')}. System time,`,
      'the kernel’s work for each connection on the server’s side (the accept, the socket’s',
      'set-up and tear-down, the loopback TCP segments of the reply and the close), which both',
      `servers pay: ${split.map((x) => `\`${x.impl}\` ${x.system}`).join(', ')}. The filter takes`,
      'the JavaScript out of a rejection (no callback, no wake-up for it), so what it saves is',
      'the plain server’s user time less its own; the system time it cannot save bounds the',
      'whole-CPU ratio from below. The filter looks at what a connection sent with one `recv`',
      'as it accepts it; a connection refused on that look costs no handle, no registration with',
      'the poller or the ring and no timer, and its reply and close are direct `sendto` and',
      '`close` calls on every impl (the reply sent with `MSG_MORE`, so that it leaves with the',
      'FIN in one segment). One accepted before its line arrived is judged as its bytes',
      'come, and its refusal drains unread bytes (a `recv` that finds nothing) before the close.',
      'With `deferAccept` nearly every bad connection is refused on the first look.',
    );
  }
  md.push(
    '',
    `**Machine limits.** ${r.machine.cores} cores shared with other work (load average ${r.machine.loadAverage.join(' ')}`,
    'at the start of this case): the flood, the good clients and the server share them, so',
    'rejected/s and latency carry the client side’s cost too; the CPU per rejected connection is',
    'the server’s own. `/proc` counts CPU in 10 ms ticks, a few per cent of a round’s server CPU.',
    'Latency is measured by `node:net` clients whose timers and event loop share the same cores.',
  );
  const failures = Object.entries(g.summary).flatMap(([who, s]) =>
    s.failures.map((f) => `${who}, ${f}`),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts: { [file]: chart } };
}

export function reading(r, kit) {
  const g = r.groups[0];
  const rows = byImpl(r).map((p) => {
    const s = targetRatio(g, p);
    const lat = g.summary[p.filter.name]?.vs[p.plain.name];
    const v = (x, better) => (x?.n ? `${kit.ratioCell(x)} ${kit.verdict(x, better)}` : 'failed');
    return [
      `**${p.impl}**`,
      v(s, 'lower'),
      v(lat?.pingP99Ms, 'lower'),
      v(lat?.rejectedPerS, 'higher'),
    ];
  });
  return [
    '**Bad clients** (a flood of garbage first lines): `acceptWhen` ÷ `accept` + `expectLine` + a ' +
      'JavaScript reply, on the same impl.\n\n' +
      kit.table(['Impl', 'CPU per rejected connection', 'good PING p99', 'rejected/s'], rows),
  ];
}
