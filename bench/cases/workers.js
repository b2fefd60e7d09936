// Worker threads: redis-benchmark against the Redis-protocol demo with one engine (`--workers
// 1`, the main thread) and with two worker threads sharing the port through SO_REUSEPORT
// (`--workers 2`), on every impl, beside the single-process node:net baseline. Requests per
// second and the server's CPU per request (the whole process: every thread, workers included).
import { redisServers, shown } from '../lib/contenders.js';
import { interleaved } from '../lib/interleave.js';
import { redisBenchmarkArgs, redisBenchmarkSteps } from '../lib/loadgen.js';
import { sleep } from '../lib/measure.js';

export const name = 'workers';
export const title = 'Worker threads: one engine per worker with reusePort';
export const order = 15;
export const needs = ['redis-benchmark'];

export const WORKER_COUNTS = [1, 2];

/** `-c 50 -P 1`, where the client does most of the work, and `-P 16`, where the server does. */
const CONFIGS = [
  { test: 'set', clients: 50, pipeline: 1, quick: 4_000, full: 20_000 },
  { test: 'set', clients: 50, pipeline: 16, quick: 16_000, full: 80_000 },
];

export const METRICS = [
  { key: 'cpuUsPerReq', ratio: true },
  { key: 'rps', ratio: true },
  { key: 'p50Ms' },
  { key: 'p99Ms' },
  { key: 'requests' },
  { key: 'serverCpuS' },
];

const contenderName = (impl, workers) => `${impl}-${workers}w`;

/** The demo on each impl with 1 and 2 workers, then the node:net baseline. */
function contendersFor(impls) {
  const [net] = redisServers([], { redisServer: false });
  const list = [];
  for (const impl of impls) {
    const [demo] = redisServers([impl], { redisServer: false });
    for (const workers of WORKER_COUNTS) {
      list.push({
        ...demo,
        name: contenderName(impl, workers),
        label: `async-engine ${impl}, ${workers} worker${workers === 1 ? '' : 's'}`,
        impl,
        workers,
        args: [...demo.args, '--workers', String(workers)],
      });
    }
  }
  list.push({ ...net, workers: 1 });
  return list;
}

/**
 * startServer is satisfied by the first connection accepted; with two workers the second may
 * not listen yet, so wait for the demo's banner (printed once every worker listens).
 */
async function untilListening(server, c) {
  if (!c.engine) return;
  const deadline = Date.now() + 10_000;
  while (!/listening on/.test(server.output())) {
    if (Date.now() > deadline) throw new Error(`no banner from ${c.name}: ${server.output()}`);
    await sleep(20);
  }
}

export async function run(ctx) {
  const full = ctx.mode === 'full';
  // As in the redis case: one unrecorded calibration round, then each run sized from the same
  // contender's previous one (about `wall` seconds, at least `cpu` server CPU seconds).
  const sizing = full ? { wall: 2, cpu: 1, maxWall: 6 } : { wall: 0.6, cpu: 0.5, maxWall: 2 };
  const contenders = contendersFor(ctx.impls);
  const workloads = CONFIGS.map((cfg) => ({
    id: `${cfg.test} -c ${cfg.clients} -P ${cfg.pipeline}`,
    test: cfg.test,
    clients: cfg.clients,
    pipeline: cfg.pipeline,
    first: full ? cfg.full : cfg.quick,
  }));
  const result = await interleaved({
    ctx,
    contenders,
    workloads,
    metrics: METRICS,
    // Each impl's 2-worker runs are divided by its 1-worker run of the same round.
    refs: ctx.impls.map((impl) => contenderName(impl, 1)),
    calibrate: true,
    ...redisBenchmarkSteps({ sizing, full, before: untilListening }),
  });
  return {
    ...result,
    impls: ctx.impls,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      impl: c.impl,
      workers: c.workers,
      command: shown(c),
    })),
    commands: [
      `redis-benchmark ${redisBenchmarkArgs({ port: 'PORT', test: 'set', clients: 50, pipeline: 'P', requests: 'N' }).join(' ')}`,
      `P in ${CONFIGS.map((c) => c.pipeline).join(', ')}`,
    ],
    sizing,
  };
}

// ---- Report ----

function implsOf(r) {
  return r.impls ?? [...new Set(r.contenders.filter((c) => c.engine).map((c) => c.impl))];
}

export function render(r, kit) {
  const base = r.baseline;
  const md = [
    '`redis-benchmark` against the Redis-protocol demo with `--workers 1` (one engine on the main',
    'thread, the default) and `--workers 2` (two `worker_threads`, one engine each, both',
    'listening on the port with `reusePort: true`; see [Worker threads](workers.md)), on each',
    `impl, and the single-process \`${base}\` baseline. CPU is the server process's, every thread`,
    "included; the ratios in the `2 ÷ 1` columns divide each round's 2-worker run by the same",
    "impl's 1-worker run next to it. Client command:",
    '',
    '```sh',
    ...r.commands,
    '```',
  ];
  const charts = {};
  const file = 'workers-rps.svg';
  charts[file] = kit.barChart({
    title: 'Requests per second, 1 vs 2 workers (higher is better)',
    unit: 'req/s',
    groups: r.groups.map((g) => ({ label: g.id, bars: kit.barsFor(r, g, 'rps') })),
    note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
  });
  md.push('', `![Requests per second, 1 vs 2 workers](benchmarks/${file})`);
  for (const g of r.groups) {
    md.push('', `### \`${g.id}\``, '');
    const rows = [];
    for (const impl of implsOf(r)) {
      const one = g.summary[contenderName(impl, 1)];
      const two = g.summary[contenderName(impl, 2)];
      const vs = two?.vs[contenderName(impl, 1)];
      rows.push([
        impl,
        kit.cell(one?.metrics.rps),
        kit.cell(two?.metrics.rps),
        kit.ratioCell(vs?.rps),
        kit.cell(one?.metrics.cpuUsPerReq),
        kit.cell(two?.metrics.cpuUsPerReq),
        kit.ratioCell(vs?.cpuUsPerReq),
      ]);
    }
    const b = g.summary[base];
    if (b) {
      rows.push([
        `${base} (baseline, one process)`,
        kit.cell(b.metrics.rps),
        '–',
        '–',
        kit.cell(b.metrics.cpuUsPerReq),
        '–',
        '–',
      ]);
    }
    md.push(
      kit.table(
        [
          'Server',
          'req/s, 1 worker',
          'req/s, 2 workers',
          'req/s 2 ÷ 1',
          'CPU µs/req, 1',
          'CPU µs/req, 2',
          'CPU/req 2 ÷ 1',
        ],
        rows,
        ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([n, s]) => s.failures.map((f) => `${n}, ${g.id}, ${f}`)),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  md.push(
    '',
    `On this machine (${r.machine.cores} cores) the client saturates first: \`redis-benchmark\``,
    'is single-threaded and needs about a core of its own, so a second worker can only use',
    'what the client leaves, and the kernel places the threads of both processes on the same',
    'two cores. These figures show what a second worker costs and whether it helps when cores',
    'are scarce, not how far it scales: that needs more cores than the load generator uses.',
  );
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const standing = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : '–');
  const rows = [];
  for (const g of r.groups) {
    for (const impl of implsOf(r)) {
      const vs = g.summary[contenderName(impl, 2)]?.vs[contenderName(impl, 1)];
      rows.push([
        `\`${g.id}\``,
        `**${impl}**`,
        standing(vs?.rps, 'higher'),
        standing(vs?.cpuUsPerReq, 'lower'),
      ]);
    }
  }
  return [
    '**Worker threads** (`--workers 2` ÷ `--workers 1`, same impl, per-round ratios; *ahead* ' +
      'means the two workers did better in every round). With 2 cores and a single-threaded ' +
      '`redis-benchmark` needing about one of them, the client saturates first, so this says ' +
      'what the second engine costs more than how it scales.\n\n' +
      kit.table(['Workload', 'Impl', 'req/s 2 ÷ 1', 'CPU/req 2 ÷ 1'], rows, ['l', 'l', 'r', 'r']),
  ];
}
