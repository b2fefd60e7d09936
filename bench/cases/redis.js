// Line protocol with a real client: redis-benchmark against the Redis-protocol demo on every
// impl, the node:net baseline and redis-server, the server's CPU time per request measured.
import { redisServers, shown } from '../lib/contenders.js';
import { interleaved } from '../lib/interleave.js';
import { run as exec } from '../lib/exec.js';
import { redisBenchmarkArgs, redisBenchmarkSteps } from '../lib/loadgen.js';
import { HOST } from '../lib/servers.js';

export const name = 'redis';
export const title = 'Redis protocol: redis-benchmark';
export const order = 10;
export const needs = ['redis-benchmark'];
/** Used when present: the native ceiling. */
export const wants = ['redis-server'];

export const TESTS = ['ping_inline', 'ping_mbulk', 'set', 'get'];

/**
 * redis-benchmark's default test list (what it runs with no `-t`), each run on its own with
 * `-t`. The LRANGE tests first fill the list with as many LPUSHes as LRANGEs; both are served
 * by the server in the same run, so their CPU per request is over both.
 */
export const DEFAULT_TESTS = [
  'ping_inline',
  'ping_mbulk',
  'set',
  'get',
  'incr',
  'lpush',
  'rpush',
  'lpop',
  'rpop',
  'sadd',
  'hset',
  'spop',
  'zadd',
  'zpopmin',
  'lrange_100',
  'lrange_300',
  'lrange_500',
  'lrange_600',
  'mset',
];
/** The default list's client shape and first request counts (quick, full). */
const DEFAULT_CONFIG = { clients: 50, pipeline: 1, quick: 2_000, full: 10_000 };

/** The three client shapes, with the calibration run's request count per mode. */
const CONFIGS = [
  { clients: 50, pipeline: 1, quick: 4_000, full: 20_000 },
  { clients: 50, pipeline: 16, quick: 16_000, full: 80_000 },
  { clients: 1, pipeline: 1, quick: 1_000, full: 5_000 },
];

export const METRICS = [
  { key: 'cpuUsPerReq', ratio: true },
  { key: 'rps', ratio: true },
  { key: 'p50Ms', ratio: true },
  { key: 'p99Ms', ratio: true },
  { key: 'requests' },
  { key: 'serverCpuS' },
];

export function workloadId(test, clients, pipeline) {
  return `${test} -c ${clients} -P ${pipeline}`;
}

export async function run(ctx) {
  const full = ctx.mode === 'full';
  // A calibration round (not recorded) warms each server up on each workload; every later run
  // is sized from the same contender's previous one: about `wall` seconds, but long enough for
  // the server to use `cpu` seconds (/proc counts in 10 ms ticks), and never over `maxWall`.
  const sizing = full ? { wall: 2, cpu: 1, maxWall: 6 } : { wall: 0.3, cpu: 0.3, maxWall: 1 };
  const contenders = redisServers(ctx.impls, { redisServer: Boolean(ctx.tools['redis-server']) });
  const workloads = [];
  for (const cfg of CONFIGS) {
    for (const test of TESTS) {
      workloads.push({
        id: workloadId(test, cfg.clients, cfg.pipeline),
        test,
        clients: cfg.clients,
        pipeline: cfg.pipeline,
        first: full ? cfg.full : cfg.quick,
      });
    }
  }
  const result = await interleaved({
    ctx,
    contenders,
    workloads,
    metrics: METRICS,
    refs: contenders.some((c) => c.name === 'redis-server') ? ['redis-server'] : [],
    calibrate: true,
    ...redisBenchmarkSteps({ sizing, full }),
  });
  const defaultList = ctx.tools['redis-server']
    ? await runDefaultList(ctx, sizing, full)
    : undefined;
  return {
    ...result,
    defaultList,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      command: shown(c),
    })),
    commands: [
      `redis-benchmark ${redisBenchmarkArgs({ port: 'PORT', test: 'TEST', clients: 'C', pipeline: 'P', requests: 'N' }).join(' ')}`,
      `TEST in ${TESTS.join(', ')}; (C, P) in ${CONFIGS.map((c) => `(${c.clients}, ${c.pipeline})`).join(', ')}`,
    ],
    sizing,
  };
}

/**
 * The whole default test list, `-c 50 -P 1`, on the demo on every impl and on redis-server (the
 * reference every ratio is to), interleaved; the keyspace is emptied before each run, outside
 * the CPU window, so no run pays for the lists an earlier one grew.
 */
async function runDefaultList(ctx, sizing, full) {
  const contenders = redisServers(ctx.impls, { redisServer: true })
    .filter((c) => c.name !== 'net')
    .map((c) => (c.name === 'redis-server' ? { ...c, baseline: true } : c));
  const cfg = DEFAULT_CONFIG;
  const workloads = DEFAULT_TESTS.map((test) => ({
    id: workloadId(test, cfg.clients, cfg.pipeline),
    test,
    clients: cfg.clients,
    pipeline: cfg.pipeline,
    first: full ? cfg.full : cfg.quick,
  }));
  const steps = redisBenchmarkSteps({ sizing, full });
  const result = await interleaved({
    ctx,
    contenders,
    workloads,
    metrics: METRICS,
    calibrate: true,
    failuresPerWorkload: true,
    async prepare(server) {
      await exec('redis-cli', ['-h', HOST, '-p', String(server.port), 'FLUSHALL'], {
        timeoutMs: 30_000,
      });
    },
    async measure(server, c, w) {
      const r = await steps.measure(server, c, w);
      // The LRANGE tests' fill: as many LPUSHes, served in the same run.
      return w.test.startsWith('lrange') ? { ...r, requests: 2 * r.requests } : r;
    },
    finish: steps.finish,
    describe: steps.describe,
  });
  return {
    ...result,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      command: shown(c),
    })),
    command: `redis-benchmark ${redisBenchmarkArgs({ port: 'PORT', test: 'TEST', clients: cfg.clients, pipeline: cfg.pipeline, requests: 'N' }).join(' ')}`,
  };
}

// ---- Report ----

const CONFIG_TITLES = {
  '50/1': '50 clients, no pipelining (`-c 50 -P 1`)',
  '50/16': '50 clients, 16 requests pipelined (`-c 50 -P 16`)',
  '1/1': 'one client, latency (`-c 1`)',
};

function configsOf(r) {
  const seen = new Map();
  for (const g of r.groups) {
    const key = `${g.clients}/${g.pipeline}`;
    if (!seen.has(key))
      seen.set(key, { key, clients: g.clients, pipeline: g.pipeline, groups: [] });
    seen.get(key).groups.push(g);
  }
  return [...seen.values()];
}

function standing(s, kit, better) {
  return s?.n ? `${s.median.toFixed(2)}× ${kit.verdict(s, better)}` : 'failed';
}

/** The headline table: server CPU per request and req/s at -c 50 -P 1. */
export function headline(r, kit) {
  const base = r.baseline;
  const tests = ['ping_inline', 'set', 'get'];
  const groups = tests.map((t) => r.groups.find((g) => g.id === workloadId(t, 50, 1)));
  const rows = r.contenders.map((c) => [
    c.label,
    ...groups.map((g) => {
      const s = g?.summary[c.name];
      return s
        ? `${kit.fmt(s.metrics.cpuUsPerReq.median)} µs (${kit.ratioCell(s.ratios.cpuUsPerReq).split(' ')[0]})`
        : '–';
    }),
    ...groups.map((g) => {
      const s = g?.summary[c.name];
      return s
        ? `${kit.fmt(s.metrics.rps.median)} (${kit.ratioCell(s.ratios.rps).split(' ')[0]})`
        : '–';
    }),
  ]);
  const lines = [
    '## Headline: server CPU per request, `redis-benchmark -c 50 -P 1`',
    '',
    `Median of ${r.rounds} interleaved rounds (${r.mode} pass, ${r.machine.date.slice(0, 10)}); in`,
    `brackets the median of the per-round ratios to the \`${base}\` baseline. Lower CPU is better.`,
    '',
    kit.table(
      ['Server', ...tests.map((t) => `${t} CPU/req`), ...tests.map((t) => `${t} req/s`)],
      rows,
    ),
  ];
  // The target for the completion impl (at most 2/3 of net's CPU per request, no more than
  // redis-server's), checked on the same figures.
  const completion = groups.map((g) => g?.summary.completion);
  if (completion.every(Boolean) && r.contenders.some((c) => c.name === 'redis-server')) {
    const parts = tests.map((t, i) => {
      const s = completion[i];
      return (
        `${t} ${s.ratios.cpuUsPerReq.median.toFixed(2)}× net, ` +
        `${s.vs['redis-server'].cpuUsPerReq.median.toFixed(2)}× redis-server`
      );
    });
    const met = completion.every(
      (s) => s.ratios.cpuUsPerReq.median <= 2 / 3 && s.vs['redis-server'].cpuUsPerReq.median <= 1,
    );
    lines.push(
      '',
      `Target for \`completion\` (at most 2/3 of \`net\`'s CPU per request and no more than`,
      `\`redis-server\`'s): ${parts.join('; ')} — **${met ? 'met' : 'not met'}** in this run.`,
    );
  }
  // Pipelined: at most net's CPU per request and within 2x redis-server's, on completion and
  // readiness.
  const piped = tests.map((t) => r.groups.find((g) => g.id === workloadId(t, 50, 16)));
  const cells = [];
  let pipedMet = true;
  for (const impl of ['completion', 'readiness']) {
    for (const [i, t] of tests.entries()) {
      const s = piped[i]?.summary[impl];
      if (!s?.ratios.cpuUsPerReq.n) continue;
      const vsNet = s.ratios.cpuUsPerReq.median;
      const vsRedis = s.vs['redis-server']?.cpuUsPerReq.median;
      if (vsNet > 1 || (vsRedis !== undefined && vsRedis > 2)) pipedMet = false;
      cells.push(
        `${impl} ${t} ${vsNet.toFixed(2)}× net` +
          (vsRedis === undefined ? '' : `, ${vsRedis.toFixed(2)}× redis-server`),
      );
    }
  }
  if (cells.length) {
    lines.push(
      '',
      `Target at \`-c 50 -P 16\` (at most \`net\`'s CPU per request and at most 2× \`redis-server\`'s,`,
      `on \`completion\` and \`readiness\`): ${cells.join('; ')} — **${pipedMet ? 'met' : 'not met'}** in this run.`,
    );
  }
  return lines.join('\n');
}

export function render(r, kit) {
  const base = r.baseline;
  const md = [
    '`redis-benchmark` against the Redis-protocol demo (`examples/redis-server`) on each impl,',
    `a plain \`node:net\` server of the same protocol subset (\`bench/baselines/net-redis-server.js\`,`,
    'the baseline), and `redis-server` itself with persistence off. Each run is one workload',
    'with a request count sized from the same contender’s previous run (after one unrecorded',
    "calibration round); CPU is the server process's. Client command:",
    '',
    '```sh',
    ...r.commands,
    '```',
  ];
  const charts = {};
  for (const cfg of configsOf(r)) {
    md.push('', `### ${CONFIG_TITLES[cfg.key] ?? `-c ${cfg.clients} -P ${cfg.pipeline}`}`, '');
    const file = `redis-c${cfg.clients}-p${cfg.pipeline}-cpu.svg`;
    charts[file] = kit.barChart({
      title: `Server CPU µs per request, redis-benchmark -c ${cfg.clients} -P ${cfg.pipeline} (lower is better)`,
      unit: 'µs',
      groups: cfg.groups.map((g) => ({ label: g.test, bars: kit.barsFor(r, g, 'cpuUsPerReq') })),
      note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
    });
    md.push(
      `![Server CPU per request, -c ${cfg.clients} -P ${cfg.pipeline}](benchmarks/${file})`,
      '',
    );
    md.push(kit.redisGroupsTable(r, cfg.groups, base));
  }
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([name, s]) =>
      s.failures.map((f) => `${name}, ${g.id}, ${f}`),
    ),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  if (r.defaultList) md.push('', renderDefaultList(r, kit, charts));
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const base = r.baseline;
  const tests = TESTS.filter((t) => r.groups.some((g) => g.test === t));
  const rows = [];
  for (const cfg of configsOf(r)) {
    for (const c of r.contenders.filter((x) => x.name !== base)) {
      rows.push([
        `-c ${cfg.clients} -P ${cfg.pipeline}`,
        c.engine ? `**${c.name}**` : c.name,
        ...tests.map((t) => {
          const g = cfg.groups.find((x) => x.test === t);
          return standing(g?.summary[c.name]?.ratios.cpuUsPerReq, kit, 'lower');
        }),
      ]);
    }
  }
  const out = [];
  const d = r.defaultList;
  if (d) {
    const rows2 = d.contenders
      .filter((c) => c.name !== d.baseline)
      .map((c) => {
        const ratios = d.groups
          .map((g) => g.summary[c.name]?.ratios.cpuUsPerReq)
          .filter((x) => x?.n)
          .map((x) => x.median)
          .sort((a, b) => a - b);
        const mid = ratios.length ? ratios[Math.floor((ratios.length - 1) / 2)] : NaN;
        return [
          c.engine ? `**${c.name}**` : c.name,
          `${ratios.length} of ${d.groups.length}`,
          ratios.length ? `${mid.toFixed(2)}×` : '–',
          ratios.length ? `${ratios[0].toFixed(2)}×–${ratios.at(-1).toFixed(2)}×` : '–',
        ];
      });
    out.push(
      `**Redis protocol, redis-benchmark's default test list** (\`-c 50 -P 1\`): server CPU per ` +
        `request ÷ \`${d.baseline}\`'s, per test the median of the per-round ratios; below, the ` +
        'median and range of those over the tests run.\n\n' +
        kit.table(['Server', 'Tests run', 'Median over tests', 'Range'], rows2),
    );
  }
  return [
    ...out,
    `**Redis protocol** (redis-benchmark): server CPU per request ÷ \`${base}\`'s, median of the ` +
      'per-round ratios (below 1: cheaper than the baseline). Requests per second and latency ' +
      'are in the section below.\n\n' +
      kit.table(['Clients', 'Server', ...tests], rows, ['l', 'l', ...tests.map(() => 'r')]),
  ];
}

/** The default test list's section: CPU per request and req/s, each as a ratio to redis-server's. */
function renderDefaultList(r, kit, charts) {
  const d = { ...r.defaultList, rounds: r.rounds };
  const base = d.baseline;
  const impls = d.contenders.filter((c) => c.name !== base);
  const md = [
    "### redis-benchmark's default test list against `redis-server`",
    '',
    "Every test of redis-benchmark's default list (what it runs with no `-t`), one `-t` at a time,",
    `at \`-c 50 -P 1\`, against the demo on each impl and \`${base}\` (the reference: ratios are to`,
    'its figures, median of the per-round ratios), interleaved; the keyspace is emptied before each',
    "run, outside the CPU window. An LRANGE test's CPU per request is over its LPUSH fill and its",
    'LRANGEs together (redis-benchmark fills the list first, in the same run). Client command:',
    '',
    '```sh',
    d.command,
    '```',
    '',
  ];
  const file = 'redis-default-list-cpu.svg';
  charts[file] = kit.barChart({
    title:
      "Server CPU µs per request, redis-benchmark's default list, -c 50 -P 1 (lower is better)",
    unit: 'µs',
    groups: d.groups.map((g) => ({ label: g.test, bars: kit.barsFor(d, g, 'cpuUsPerReq') })),
    note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
  });
  md.push(`![Server CPU per request, default test list](benchmarks/${file})`, '');
  const rows = d.groups.map((g) => {
    const s = g.summary[base];
    return [
      g.test,
      s?.metrics.cpuUsPerReq.n ? kit.fmt(s.metrics.cpuUsPerReq.median) : 'failed',
      ...impls.map((c) => {
        const x = g.summary[c.name];
        return x?.ratios.cpuUsPerReq.n ? kit.ratioCell(x.ratios.cpuUsPerReq) : 'failed';
      }),
      s?.metrics.rps.n ? kit.fmt(s.metrics.rps.median) : 'failed',
      ...impls.map((c) => {
        const x = g.summary[c.name];
        return x?.ratios.rps.n ? kit.ratioCell(x.ratios.rps).split(' ')[0] : 'failed';
      }),
    ];
  });
  md.push(
    kit.table(
      [
        'Test',
        `${base} CPU µs/req`,
        ...impls.map((c) => `${c.name} CPU ×`),
        `${base} req/s`,
        ...impls.map((c) => `${c.name} req/s ×`),
      ],
      rows,
    ),
  );
  const failures = d.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([name, s]) =>
      s.failures.map((f) => `${name}, ${g.id}, ${f}`),
    ),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return md.join('\n');
}
