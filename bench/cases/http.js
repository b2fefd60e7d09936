// HTTP/1.1 plaintext with a real client: wrk (keep-alive) against examples/http-hello on every
// impl, the node:net baseline of the same behaviour and node:http, with the server's CPU time
// per request.
import { httpServers, shown } from '../lib/contenders.js';
import { interleaved } from '../lib/interleave.js';
import { wrkArgs, wrkHooks } from '../lib/loadgen.js';

export const name = 'http';
export const title = 'HTTP/1.1 plaintext: wrk';
export const order = 20;
export const needs = ['wrk'];

export const METRICS = [
  { key: 'cpuUsPerReq', ratio: true },
  { key: 'rps', ratio: true },
  { key: 'p50Ms', ratio: true },
  { key: 'p99Ms', ratio: true },
  { key: 'requests' },
  { key: 'serverCpuS' },
  { key: 'errors' },
];

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const seconds = full ? 5 : 1;
  const load = { threads: 1, connections: 50 };
  const contenders = httpServers(ctx.impls);
  const workloads = [{ id: `wrk -t1 -c${load.connections}`, ...load, seconds }];
  const result = await interleaved({
    ctx,
    contenders,
    workloads,
    metrics: METRICS,
    ...wrkHooks(load),
  });
  return {
    ...result,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      command: shown(c),
    })),
    commands: [`wrk ${wrkArgs({ port: 'PORT', ...load, seconds }).join(' ')}`],
  };
}

// ---- Report ----

export function render(r, kit) {
  const base = r.baseline;
  const g = r.groups[0];
  const file = 'http-cpu.svg';
  const charts = {
    [file]: kit.barChart({
      title: 'Server CPU µs per request, wrk HTTP/1.1 keep-alive (lower is better)',
      unit: 'µs',
      groups: [{ label: g.id, bars: kit.barsFor(r, g, 'cpuUsPerReq') }],
      note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
    }),
  };
  const rows = r.contenders.map((c) => {
    const s = g.summary[c.name];
    if (!s) return [c.name, '–', '–', '–', '–', '–', '–', '–'];
    return [
      c.name === base ? `${c.name} (baseline)` : c.name,
      kit.cell(s.metrics.cpuUsPerReq),
      kit.ratioCell(s.ratios.cpuUsPerReq),
      kit.cell(s.metrics.rps),
      kit.ratioCell(s.ratios.rps),
      kit.cell(s.metrics.p50Ms),
      kit.cell(s.metrics.p99Ms),
      kit.fmt(s.metrics.errors.max, { digits: 0 }),
    ];
  });
  const md = [
    '`wrk` (one thread, 50 keep-alive connections) against `examples/http-hello` on each impl —',
    "each request (head and body) read by one `readLengthPrefixed` with the `'\\r\\n\\r\\n'` delimiter, every request answered",
    '`Hello, World!` with a `Date` header — against the same behaviour on `node:net` with the',
    'heads framed by hand (`bench/baselines/http-net.js`, the baseline) and on `node:http`',
    '(`bench/baselines/http-node.js`). Client command:',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    `![Server CPU per request, wrk](benchmarks/${file})`,
    '',
    kit.table(
      [
        'Server',
        'CPU µs/req',
        `× ${base}`,
        'req/s',
        `× ${base}`,
        'p50 ms',
        'p99 ms',
        'errors (max)',
      ],
      rows,
    ),
  ];
  const failures = Object.entries(g.summary).flatMap(([name, s]) =>
    s.failures.map((f) => `${name}: ${f}`),
  );
  const completion = g.summary.completion;
  if (completion?.ratios.cpuUsPerReq.n) {
    const ratio = completion.ratios.cpuUsPerReq.median;
    md.push(
      '',
      `**Target:** \`completion\` at most ${TARGET}× \`${base}\`'s CPU per request: ` +
        `${ratio.toFixed(2)}× — **${ratio <= TARGET ? 'met' : 'not met'}** in this run.`,
    );
  }
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

/** Server CPU per request that `completion` aims for, as a multiple of the baseline's. */
export const TARGET = 0.5;

export function reading(r, kit) {
  const g = r.groups[0];
  const v = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : 'failed');
  const rows = r.contenders
    .filter((c) => c.name !== r.baseline)
    .map((c) => {
      const s = g.summary[c.name];
      return [
        c.engine ? `**${c.name}**` : c.name,
        v(s?.ratios.cpuUsPerReq, 'lower'),
        v(s?.ratios.rps, 'higher'),
        v(s?.ratios.p99Ms, 'lower'),
      ];
    });
  return [
    `**HTTP/1.1** (wrk): ratios to \`${r.baseline}\` (the same server on node:net).\n\n` +
      kit.table(['Server', 'CPU per request', 'req/s', 'p99 latency'], rows),
  ];
}
