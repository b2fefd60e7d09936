// Scale: hold 1,000 then 10,000 idle connections on a fresh server and report its resident
// memory per connection, its CPU while they idle, and PING latency (redis-benchmark -c 1)
// while they are held; each impl of the Redis demo against the node:net baseline.
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { redisServers, shown } from '../lib/contenders.js';
import { redisBenchmark, redisBenchmarkArgs } from '../lib/loadgen.js';
import { sleep, withServerCpu } from '../lib/measure.js';
import { cpuSeconds, openFilesLimit, rssBytes } from '../lib/proc.js';
import { startServer } from '../lib/servers.js';
import { Series } from '../lib/stats.js';

export const name = 'scale';
export const title = 'Scale: idle connections held';
export const order = 30;
export const needs = ['redis-benchmark'];
export const wants = ['redis-server'];

export const SIZES = [1000, 10_000];
const NOFILE = 65_536;

export const METRICS = [
  { key: 'rssPerConnKiB', ratio: true },
  { key: 'p50Ms', ratio: true },
  { key: 'p99Ms', ratio: true },
  { key: 'idleCpuPct' },
  { key: 'rssMiB' },
  { key: 'openSeconds' },
  { key: 'cpuUsPerReq', ratio: true },
];

/** The connection holder, a child under the same raised fd limit, driven by stdin lines. */
function startHolder(port) {
  const script = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn(
    '/bin/sh',
    ['-c', script, 'sh', process.execPath, 'bench/lib/hold-connections.js', String(port)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.resolve(JSON.parse(line)));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w.reject(new Error('connection holder exited'));
  });
  return {
    pid: child.pid,
    ask(command, timeoutMs = 90_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`holder: ${command} timed out`)),
          timeoutMs,
        );
        waiting.push({
          resolve: (v) => (clearTimeout(timer), resolve(v)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        child.stdin.write(`${command}\n`);
      });
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const pings = full ? 10_000 : 2000;
  const settleMs = full ? 1000 : 400;
  // Give up on a size when no connection completes for stallMs, or after openMs in all.
  const stallMs = full ? 10_000 : 3000;
  const openMs = full ? 30_000 : 12_000;
  const contenders = redisServers(ctx.impls, {
    redisServer: full && Boolean(ctx.tools['redis-server']),
  });
  const baseline = contenders.find((c) => c.baseline).name;
  const series = new Map(SIZES.map((n) => [n, new Series(baseline, METRICS)]));
  const notes = [];
  const gaveUp = new Map(); // `${contender}|${size}` → the round it failed in; not retried
  let fdLimit;

  async function measureOne(c, round) {
    const server = await startServer({ ...c, nofile: NOFILE });
    const holder = startHolder(server.port);
    try {
      const limit = openFilesLimit(server.pid);
      fdLimit = limit;
      const rss0 = rssBytes(server.pid);
      for (const size of SIZES) {
        const s = series.get(size);
        if (limit < size + 64) {
          s.fail(c.name, round, `fd limit ${limit} too low`);
          continue;
        }
        if (gaveUp.has(`${c.name}|${size}`)) {
          s.fail(c.name, round, `skipped: failed in round ${gaveUp.get(`${c.name}|${size}`) + 1}`);
          break;
        }
        const opened = await holder.ask(`open ${size} ${stallMs} ${openMs}`);
        if (opened.held < size) {
          gaveUp.set(`${c.name}|${size}`, round);
          s.fail(
            c.name,
            round,
            `held ${opened.held} of ${size} after ${opened.seconds.toFixed(1)} s` +
              (opened.stalled
                ? ` (gave up: none accepted for ${stallMs / 1000} s, or ${openMs / 1000} s in all)`
                : ` (${opened.lastError})`),
          );
          ctx.log(
            `  r${round + 1} ${String(size).padEnd(6)} ${c.name.padEnd(13)} held only ${opened.held} ` +
              `in ${opened.seconds.toFixed(1)} s (${opened.stalled ? 'stalled' : opened.lastError})`,
          );
          break;
        }
        const cpu0 = cpuSeconds(server.pid);
        await sleep(settleMs);
        const idleCpuPct = ((cpuSeconds(server.pid) - cpu0) * 100 * 1000) / settleMs;
        const rss = rssBytes(server.pid);
        let r;
        try {
          r = await withServerCpu(server, () =>
            redisBenchmark(
              { port: server.port, test: 'ping_inline', clients: 1, pipeline: 1, requests: pings },
              { timeoutMs: 30_000 },
            ),
          );
        } catch (err) {
          // This size failed (poll(2) at 10,000 fds is too slow for the PINGs, for one): the
          // sizes measured before it keep their figures, the larger ones are not tried.
          gaveUp.set(`${c.name}|${size}`, round);
          s.fail(c.name, round, err.message);
          notes.push(`${c.name} round ${round + 1}, ${size} connections: ${err.message}`);
          ctx.log(
            `  r${round + 1} ${String(size).padEnd(6)} ${c.name.padEnd(13)} FAILED ${err.message}`,
          );
          break;
        }
        const m = {
          rssPerConnKiB: (rss - rss0) / size / 1024,
          rssMiB: rss / 2 ** 20,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          idleCpuPct,
          openSeconds: opened.seconds,
          cpuUsPerReq: (r.serverCpuS * 1e6) / pings,
        };
        s.add(c.name, round, m);
        ctx.log(
          `  r${round + 1} ${String(size).padEnd(6)} ${c.name.padEnd(13)} ` +
            `${m.rssPerConnKiB.toFixed(2).padStart(6)} KiB/conn  rss ${m.rssMiB.toFixed(1)} MiB  ` +
            `idle cpu ${idleCpuPct.toFixed(1)}%  ping p50 ${r.p50Ms} p99 ${r.p99Ms} ms  ` +
            `(opened in ${opened.seconds.toFixed(2)} s)`,
        );
      }
    } finally {
      await holder.stop();
      await server.stop();
    }
  }

  for (let round = 0; round < ctx.rounds; round++) {
    for (const c of contenders) {
      try {
        await measureOne(c, round);
      } catch (err) {
        for (const s of series.values()) s.fail(c.name, round, err.message);
        notes.push(`${c.name} round ${round + 1}: ${err.message}`);
        ctx.log(`  r${round + 1} ${c.name}: FAILED ${err.message}`);
      }
    }
  }
  return {
    baseline,
    fdLimit,
    groups: SIZES.map((size) => ({
      id: `${size.toLocaleString('en-US')} idle connections`,
      connections: size,
      summary: series.get(size).summary(),
    })),
    notes,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      command: shown(c),
    })),
    commands: [
      `node bench/lib/hold-connections.js PORT   # then 'open 1000', 'open 10000' on its stdin`,
      `redis-benchmark ${redisBenchmarkArgs({ port: 'PORT', test: 'ping_inline', clients: 1, pipeline: 1, requests: pings }).join(' ')}`,
    ],
  };
}

// ---- Report ----

export function render(r, kit) {
  const base = r.baseline;
  const charts = {};
  const file = 'scale-rss.svg';
  charts[file] = kit.barChart({
    title: 'Resident memory per idle connection, KiB (lower is better)',
    unit: 'KiB',
    groups: r.groups.map((g) => ({ label: g.id, bars: kit.barsFor(r, g, 'rssPerConnKiB') })),
    note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
  });
  const md = [
    'A fresh Redis-demo server per contender and round; a client process',
    '(`bench/lib/hold-connections.js`) opens 1,000, then 10,000 connections and leaves them',
    "idle. Memory per connection is the growth of the server's resident set (VmRSS) over its",
    'size before the first connection, divided by the connections held; idle CPU is the',
    "server's CPU over a short pause with them all open; PING latency is `redis-benchmark -c 1`",
    'on one more connection while they are held. Server and client run under `ulimit -n 65536`',
    `(or the hard limit when lower: the servers got ${r.fdLimit}). A size that a server cannot`,
    'reach is given up when no connection completes for a few seconds, or after a deadline;',
    'it is not tried again in later rounds.',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    `![Memory per connection](benchmarks/${file})`,
  ];
  for (const g of r.groups) {
    const rows = r.contenders.map((c) => {
      const s = g.summary[c.name];
      if (!s) return [c.name, '–', '–', '–', '–', '–', '–', '–'];
      const failed = s.failures.length ? `${s.failures.length} of ${r.rounds}` : '';
      return [
        c.name === base ? `${c.name} (baseline)` : c.name,
        kit.cell(s.metrics.rssPerConnKiB),
        kit.ratioCell(s.ratios.rssPerConnKiB),
        kit.cell(s.metrics.rssMiB),
        kit.cell(s.metrics.idleCpuPct),
        kit.cell(s.metrics.p50Ms),
        kit.cell(s.metrics.p99Ms),
        failed,
      ];
    });
    md.push(
      '',
      `### ${g.id}`,
      '',
      kit.table(
        [
          'Server',
          'RSS KiB/conn',
          `× ${base}`,
          'RSS MiB',
          'idle CPU %',
          'PING p50 ms',
          'PING p99 ms',
          'rounds failed',
        ],
        rows,
      ),
    );
  }
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([name, s]) =>
      s.failures.map((f) => `${name}, ${g.id}, ${f}`),
    ),
  );
  const big = r.groups.find((g) => g.id.startsWith('10'));
  if (big) {
    const parts = r.contenders
      .filter((c) => c.name !== base && big.summary[c.name]?.ratios.rssPerConnKiB.n)
      .map((c) => [c.name, big.summary[c.name].ratios.rssPerConnKiB.median]);
    if (parts.length) {
      const engines = parts.filter(([name]) =>
        ['completion', 'readiness', 'threadpool', 'poll'].includes(name),
      );
      const met = engines.every(([, v]) => v <= 1);
      md.push(
        '',
        `**Target:** memory per idle connection at ${big.id} at most \`${base}\`'s: ` +
          engines.map(([name, v]) => `${name} ${v.toFixed(2)}×`).join(', ') +
          ` — **${met ? 'met' : 'not met'}** in this run.`,
      );
    }
  }
  if (failures.length) md.push('', 'Failed rounds:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const v = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : '–');
  const rows = [];
  for (const g of r.groups) {
    for (const c of r.contenders.filter((x) => x.name !== r.baseline)) {
      const s = g.summary[c.name];
      const failed = !s || s.metrics.rssPerConnKiB.n === 0;
      rows.push([
        g.connections.toLocaleString('en-US'),
        c.engine ? `**${c.name}**` : c.name,
        failed
          ? `failed: ${s?.failures[0]?.replace(/^round \d+: /, '') ?? 'unmeasured'}`
          : v(s.ratios.rssPerConnKiB, 'lower'),
        failed ? '–' : v(s.ratios.p99Ms, 'lower'),
      ]);
    }
  }
  return [
    `**Idle connections**: ratios to \`${r.baseline}\` (the node:net Redis server).\n\n` +
      kit.table(['Connections', 'Server', 'memory per connection', 'PING p99 while held'], rows, [
        'r',
        'l',
        'l',
        'l',
      ]),
  ];
}
