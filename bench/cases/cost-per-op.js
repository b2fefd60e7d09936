// Cost per op on the client side: a loopback request/response loop (`PING` → `+PONG`) written
// with the engine's own client ops (writeThenExpectLine) against the same loop on node:net with
// line splitting by hand; ops per second and the client's CPU seconds per million ops.
// The peer is redis-server when installed (cheap and outside Node), else the node:net baseline.
import { redisServers, shown } from '../lib/contenders.js';
import { run as exec } from '../lib/exec.js';
import { withServerCpu } from '../lib/measure.js';
import { startServer } from '../lib/servers.js';
import { Series } from '../lib/stats.js';

export const name = 'cost-per-op';
export const title = 'Cost per op: request/response loop, client side';
export const order = 40;
export const needs = [];
export const wants = ['redis-server'];

export const METRICS = [
  { key: 'cpuSPerMop', ratio: true },
  { key: 'opsPerS', ratio: true },
  { key: 'peerCpuUsPerOp' },
  { key: 'ops' },
];

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const peerSpec = redisServers([], { redisServer: Boolean(ctx.tools['redis-server']) }).at(-1);
  const node = process.execPath;
  const contenders = [
    ...ctx.impls.map((impl) => ({
      name: impl,
      label: `async-engine ${impl}: writeThenExpectLine`,
      engine: true,
      args: ['bench/baselines/lineclient-engine.js', '--impl', impl],
    })),
    {
      name: 'net',
      label: 'node:net + line splitting',
      baseline: true,
      args: ['bench/baselines/lineclient-net.js'],
    },
  ];
  const workloads = [
    { id: '1 connection', conns: 1, ops: full ? 100_000 : 10_000 },
    { id: '32 connections', conns: 32, ops: full ? 400_000 : 40_000 },
  ];
  const seconds = full ? 30 : 8; // each client stops by then, whatever it has done
  const series = new Map(workloads.map((w) => [w.id, new Series('net', METRICS)]));
  const notes = [];
  const peer = await startServer(peerSpec);
  try {
    for (let round = 0; round < ctx.rounds; round++) {
      for (const w of workloads) {
        for (const c of contenders) {
          const s = series.get(w.id);
          const args = [
            ...c.args,
            '--port',
            String(peer.port),
            '--ops',
            String(w.ops),
            '--conns',
            String(w.conns),
            '--seconds',
            String(seconds),
          ];
          const r = await withServerCpu(peer, () =>
            exec(node, args, { timeoutMs: (seconds + 15) * 1000 }),
          );
          let out;
          try {
            out = JSON.parse(r.stdout.trim().split('\n').at(-1));
          } catch {
            out = { error: (r.stderr || r.stdout || `exit ${r.code}`).trim().slice(-200) };
          }
          if (out.error || !(out.ops > 0)) {
            s.fail(c.name, round, out.error ?? 'no ops');
            notes.push(`${c.name}, ${w.id}, round ${round + 1}: ${out.error ?? 'no ops'}`);
            ctx.log(`  r${round + 1} ${w.id.padEnd(15)} ${c.name.padEnd(11)} FAILED ${out.error}`);
            continue;
          }
          const m = {
            cpuSPerMop: (out.cpuS / out.ops) * 1e6,
            opsPerS: out.ops / out.seconds,
            // The peer also answered the client's warm-up ops: an upper bound.
            peerCpuUsPerOp: (r.serverCpuS * 1e6) / out.ops,
            ops: out.ops,
          };
          s.add(c.name, round, m);
          ctx.log(
            `  r${round + 1} ${w.id.padEnd(15)} ${c.name.padEnd(11)} ` +
              `${Math.round(m.opsPerS).toLocaleString('en-US').padStart(8)} ops/s  ` +
              `${m.cpuSPerMop.toFixed(1).padStart(6)} CPU s/Mop`,
          );
        }
      }
    }
  } finally {
    await peer.stop();
  }
  return {
    baseline: 'net',
    peer: { name: peerSpec.name, command: shown(peerSpec) },
    groups: workloads.map((w) => ({ ...w, summary: series.get(w.id).summary() })),
    notes,
    contenders: contenders.map((c) => ({
      name: c.name,
      label: c.label,
      engine: Boolean(c.engine),
      command: `node ${c.args.join(' ')} --port PORT --ops N --conns C`,
    })),
    commands: workloads.map(
      (w) => `... --ops ${w.ops} --conns ${w.conns} --seconds ${seconds}   # ${w.id}`,
    ),
  };
}

// ---- Report ----

export function render(r, kit) {
  const base = r.baseline;
  const file = 'cost-per-op.svg';
  const charts = {
    [file]: kit.barChart({
      title: 'Client CPU seconds per million request/response ops (lower is better)',
      unit: 's',
      groups: r.groups.map((g) => ({ label: g.id, bars: kit.barsFor(r, g, 'cpuSPerMop') })),
      note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
    }),
  };
  const md = [
    'A client process runs `PING\\r\\n` → `+PONG` loops on 1 or 32 connections: with the',
    "engine's own client op `writeThenExpectLine` (`bench/baselines/lineclient-engine.js`, callbacks",
    'reused, one chain per op) or with `node:net` and lines split by hand',
    '(`bench/baselines/lineclient-net.js`, the baseline). The peer is',
    `\`${r.peer.command}\`. The client measures its own CPU time (all threads, \`process.cpuUsage()\`)`,
    'over the ops after a warm-up; each run is bounded in ops and in seconds.',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    `![Client CPU per op](benchmarks/${file})`,
  ];
  for (const g of r.groups) {
    const rows = r.contenders.map((c) => {
      const s = g.summary[c.name];
      if (!s) return [c.label, '–', '–', '–', '–'];
      return [
        c.label,
        kit.cell(s.metrics.cpuSPerMop),
        kit.ratioCell(s.ratios.cpuSPerMop),
        kit.cell(s.metrics.opsPerS),
        kit.ratioCell(s.ratios.opsPerS),
      ];
    });
    md.push(
      '',
      `### ${g.id}`,
      '',
      kit.table(['Client', 'CPU s per million ops', `× ${base}`, 'ops/s', `× ${base}`], rows),
    );
  }
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([name, s]) =>
      s.failures.map((f) => `${name}, ${g.id}, ${f}`),
    ),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const v = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : 'failed');
  const rows = [];
  for (const g of r.groups) {
    for (const c of r.contenders.filter((x) => x.name !== r.baseline)) {
      const s = g.summary[c.name];
      rows.push([
        g.id,
        `**${c.name}**`,
        v(s?.ratios.cpuSPerMop, 'lower'),
        v(s?.ratios.opsPerS, 'higher'),
      ]);
    }
  }
  return [
    `**Client loop** (\`writeThenExpectLine\` against node:net + line splitting): ratios to ` +
      `\`${r.baseline}\`.\n\n` +
      kit.table(['Connections', 'Client', 'client CPU per op', 'ops/s'], rows, [
        'l',
        'l',
        'l',
        'l',
      ]),
  ];
}
