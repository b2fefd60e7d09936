// Framing cost: a peer sends N pipelined records at once and a consumer reads them one op at a
// time, each success submitting the next op: the engine's framed reads (expectLine, readUntil,
// readExactly, and a length-prefixed record read as two ops and as one readLengthPrefixed)
// against node:net with the framing done by hand in JavaScript. Every record is already buffered
// when its op is submitted, so what is measured is the cost of an op's round trip between
// JavaScript and native code, not waiting: CPU time of the consumer process per record, and
// records per second.
// One peer serves every run, so the loop is this case's own rather than lib/interleave.js (which
// starts a server per contender); it keeps the same order: each round runs every workload, and
// within it every contender one after another.
import os from 'node:os';
import { run as exec } from '../lib/exec.js';
import { startServer } from '../lib/servers.js';
import { Series } from '../lib/stats.js';

export const name = 'framing';
export const title = 'Framing cost: pipelined records read one op at a time';
export const order = 45;
export const needs = [];

export const METRICS = [
  { key: 'cpuNsPerRecord', ratio: true },
  { key: 'recordsPerS', ratio: true },
  { key: 'cpuNsPerOp' },
  { key: 'records' },
];

/**
 * CPU per record the coming work on framed reads aims for on `completion` and `readiness`, as a
 * multiple of the `net` baseline's.
 */
export const TARGET = 2;
export const TARGET_IMPLS = ['completion', 'readiness'];

const SEED = 1;

/**
 * The workloads. Each engine read is one contender per impl; a workload may hold several reads
 * (the length-prefixed records are read as two ops, expectLine then readExactly, and as one,
 * readLengthPrefixed).
 */
export const WORKLOADS = [
  {
    id: 'lines, expectLine',
    kind: 'lines',
    what: 'lines `<i>:xxxx…\\r\\n` of 16–40 bytes, each read as a string',
    reads: [{ read: 'expectLine', ops: 1, calls: ['expectLine(sock, null, cb)'] }],
    net: "`setEncoding('utf8')`, `indexOf('\\n')` and `slice` on the strings",
  },
  {
    id: 'lines, readUntil',
    kind: 'lines',
    what: 'the same lines, each read as a Buffer with its `\\r\\n`',
    reads: [{ read: 'readUntil', ops: 1, calls: ["readUntil(sock, '\\r\\n', cb)"] }],
    net: '`indexOf(0x0a)` on the Buffer, `subarray`',
  },
  {
    id: '32-byte records, readExactly',
    kind: 'fixed32',
    what: 'fixed 32-byte binary records, each read as a Buffer',
    reads: [{ read: 'readExactly', ops: 1, calls: ['readExactly(sock, 32, cb)'] }],
    net: '`subarray` every 32 bytes',
  },
  {
    id: 'length-prefixed records',
    kind: 'bulk',
    what: 'RESP bulk strings `$<n>\\r\\n<n bytes>\\r\\n`, n from 1 to 48, binary payloads',
    reads: [
      {
        read: 'expectLine+readExactly',
        tag: '2 ops',
        ops: 2,
        calls: ['expectLine(sock, null, cb)', 'readExactly(sock, n + 2, cb)'],
      },
      {
        read: 'readLengthPrefixed',
        ops: 1,
        calls: ["readLengthPrefixed(sock, { length, trailer: '\\r\\n' }, cb)"],
      },
    ],
    net: 'the header parsed byte by byte, the payload a `subarray`',
  },
];

const contenderName = (impl, r) => (r.tag ? `${impl}, ${r.tag}` : impl);

/** The consumers of one workload: every read on every impl, then the node:net baseline. */
function contendersFor(w, impls) {
  const list = [];
  for (const r of w.reads) {
    for (const impl of impls) {
      list.push({
        name: contenderName(impl, r),
        label: `async-engine ${impl}: ${r.read}${r.tag ? ` (${r.tag} per record)` : ''}`,
        engine: true,
        impl,
        ops: r.ops,
        args: ['bench/baselines/framing-engine.js', '--impl', impl, '--read', r.read],
      });
    }
  }
  list.push({
    name: 'net',
    label: 'node:net + framing by hand',
    baseline: true,
    ops: null, // no ops: the records are cut from 'data' events
    args: ['bench/baselines/framing-net.js', '--read', w.reads[0].read],
  });
  return list;
}

const PEER = {
  command: process.execPath,
  args: ['bench/baselines/framing-peer.js', '--port', '{port}'],
};

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const records = full ? 1_000_000 : 200_000;
  const warmup = 20_000; // read first, not measured: lets the JIT settle
  const timeoutMs = (full ? 300 : 120) * 1000;
  const node = process.execPath;
  const common = `--port PORT --records ${records} --warmup ${warmup} --seed ${SEED}`;
  const workloads = WORKLOADS.map((w) => ({
    ...w,
    records,
    warmup,
    contenders: contendersFor(w, ctx.impls),
  }));
  const series = new Map(workloads.map((w) => [w.id, new Series('net', METRICS)]));
  const notes = [];
  let peer = null;
  try {
    for (let round = 0; round < ctx.rounds; round++) {
      for (const w of workloads) {
        const s = series.get(w.id);
        for (const c of w.contenders) {
          if (!peer?.alive) {
            if (peer) notes.push(`peer restarted before ${c.name}, ${w.id}, round ${round + 1}`);
            peer = await startServer(PEER);
          }
          const args = [
            ...c.args,
            '--port',
            String(peer.port),
            '--records',
            String(records),
            '--warmup',
            String(warmup),
            '--seed',
            String(SEED),
          ];
          const r = await exec(node, args, { timeoutMs });
          let out;
          try {
            out = JSON.parse(r.stdout.trim().split('\n').at(-1));
          } catch {
            out = {
              error: r.timedOut
                ? `no answer in ${timeoutMs / 1000} s`
                : (r.stderr || r.stdout || `exit ${r.code}`).trim().slice(-200),
            };
          }
          if (out.error || !(out.records > 0) || !(out.cpuS > 0)) {
            const why = out.error ?? 'nothing measured';
            s.fail(c.name, round, why);
            notes.push(`${c.name}, ${w.id}, round ${round + 1}: ${why}`);
            ctx.log(`  r${round + 1} ${w.id.padEnd(30)} ${c.name.padEnd(18)} FAILED ${why}`);
            continue;
          }
          const m = {
            cpuNsPerRecord: (out.cpuS / out.records) * 1e9,
            recordsPerS: out.records / out.seconds,
            cpuNsPerOp: (out.cpuS / out.ops) * 1e9,
            records: out.records,
          };
          s.add(c.name, round, m);
          ctx.log(
            `  r${round + 1} ${w.id.padEnd(30)} ${c.name.padEnd(18)} ` +
              `${Math.round(m.cpuNsPerRecord).toLocaleString('en-US').padStart(6)} CPU ns/record  ` +
              `${Math.round(m.recordsPerS).toLocaleString('en-US').padStart(10)} records/s`,
          );
        }
      }
    }
  } finally {
    await peer?.stop();
  }
  return {
    baseline: 'net',
    target: { ratio: TARGET, impls: TARGET_IMPLS },
    loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
    groups: workloads.map((w) => ({
      id: w.id,
      kind: w.kind,
      what: w.what,
      net: w.net,
      records: w.records,
      warmup: w.warmup,
      reads: w.reads,
      contenders: w.contenders.map(({ args, ...c }) => ({
        ...c,
        command: `node ${args.join(' ')} ${common}`,
      })),
      summary: series.get(w.id).summary(),
    })),
    notes,
    commands: [
      `node bench/baselines/framing-engine.js --impl IMPL --read READ ${common}`,
      `node bench/baselines/framing-net.js --read READ ${common}`,
    ],
    contenders: [
      {
        name: 'peer',
        label: 'the peer (sends the records)',
        command: 'node bench/baselines/framing-peer.js --port PORT',
      },
      ...ctx.impls.map((impl) => ({
        name: impl,
        label: `async-engine ${impl} consumer`,
        engine: true,
        command: `node bench/baselines/framing-engine.js --impl ${impl} --read READ --port PORT --records N --warmup W`,
      })),
      {
        name: 'net',
        label: 'node:net consumer (framing by hand)',
        command:
          'node bench/baselines/framing-net.js --read READ --port PORT --records N --warmup W',
      },
    ],
  };
}

// ---- Report ----

const TITLES = {
  'lines, expectLine': 'Lines, `expectLine`',
  'lines, readUntil': 'Lines, `readUntil`',
  '32-byte records, readExactly': '32-byte records, `readExactly`',
  'length-prefixed records': 'Length-prefixed records, `$<n>\\r\\n<n bytes>\\r\\n`',
};

/** `met` / `not met` for one contender's ratio to net, by its median over rounds. */
function targetCell(s, target) {
  if (!s?.n) return 'unmeasured';
  return s.median <= target ? 'met' : 'not met';
}

export function render(r, kit) {
  const base = r.baseline;
  const file = 'framing-cpu.svg';
  const first = r.groups[0];
  const charts = {
    [file]: kit.barChart({
      title: 'Consumer CPU ns per record, records read one op at a time (lower is better)',
      unit: 'ns',
      groups: r.groups.map((g) => ({
        label: g.id,
        bars: kit.barsFor({ ...r, contenders: g.contenders }, g, 'cpuNsPerRecord'),
      })),
      note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
    }),
  };
  const md = [
    `A peer (\`bench/baselines/framing-peer.js\`, node:net) sends ${kit.fmt(first.warmup + first.records)}`,
    'records in one write as soon as the consumer asks; the consumer, a process of its own per run,',
    'reads them one op at a time, each success submitting the next op (callbacks made once and',
    'reused: `bench/baselines/framing-engine.js`). The baseline is the same consumer on `node:net`,',
    'with the framing done by hand in JavaScript and each record handed over as the engine',
    'hands it, a string or a Buffer (`bench/baselines/framing-net.js`). Both check every record',
    'against the stream sent. The consumer measures its own CPU time (user + system, all',
    `threads: \`process.cpuUsage()\`) and wall time over the last ${kit.fmt(first.records)} records,`,
    `after ${kit.fmt(first.warmup)} unmeasured ones; connecting is outside. The records are already`,
    'buffered when each op is submitted, so an op whose frame was handed to JavaScript in bulk',
    'settles there with no crossing of its own: this measures what an op costs beyond the',
    'framing.',
    '',
    `**Target for framed reads:** at most ${r.target.ratio}× \`${base}\`'s CPU per`,
    `record on ${r.target.impls.map((i) => `\`${i}\``).join(' and ')}, in every workload.`,
    '',
    `Load average (1/5/15 min) at the start of this case: ${r.machine.loadAverage.join(' ')};`,
    `at its end: ${r.loadAverageAtEnd.join(' ')} (${r.machine.cores} cores, shared with other`,
    `jobs). Code measured: commit ${r.machine.commit ?? 'unknown'}. Each run, for each workload`,
    '(READ is its engine read; the `net` consumer takes the same name and hands over the same values):',
    '',
    '```sh',
    ...(r.commands ?? []),
    '```',
    '',
    `![Consumer CPU per record](benchmarks/${file})`,
  ];
  for (const g of r.groups) {
    const rows = g.contenders.map((c) => {
      const s = g.summary[c.name];
      const label = c.name === base ? `${c.label} (baseline)` : c.label;
      const ops = c.ops ?? '–';
      if (!s?.metrics.cpuNsPerRecord.n) return [label, ops, '–', '–', '–', '–'];
      return [
        label,
        ops,
        kit.cell(s.metrics.cpuNsPerRecord),
        kit.ratioCell(s.ratios.cpuNsPerRecord),
        kit.cell(s.metrics.recordsPerS),
        kit.ratioCell(s.ratios.recordsPerS),
      ];
    });
    md.push(
      '',
      `### ${TITLES[g.id] ?? g.id}`,
      '',
      `${g.what[0].toUpperCase()}${g.what.slice(1)}. Engine: ${g.reads.map((x) => x.calls.map((k) => `\`${k}\``).join(' then ')).join('; ')}.`,
      `\`${base}\`: ${g.net}.`,
      '',
      kit.table(
        ['Consumer', 'Ops per record', 'CPU ns per record', `× ${base}`, 'records/s', `× ${base}`],
        rows,
      ),
    );
  }
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([n, s]) => s.failures.map((f) => `${n}, ${g.id}, ${f}`)),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const rows = [];
  for (const g of r.groups) {
    for (const c of g.contenders.filter((x) => x.name !== r.baseline)) {
      const s = g.summary[c.name];
      const cpu = s?.ratios.cpuNsPerRecord;
      const ops = s?.ratios.recordsPerS;
      rows.push([
        g.id,
        `**${c.name}**`,
        cpu?.n ? `${kit.ratioCell(cpu)} ${kit.verdict(cpu, 'lower')}` : 'failed',
        ops?.n ? `${kit.ratioCell(ops)} ${kit.verdict(ops, 'higher')}` : 'failed',
        r.target.impls.includes(c.impl) ? targetCell(cpu, r.target.ratio) : '–',
      ]);
    }
  }
  return [
    `**Framing cost** (records read one op at a time against node:net with framing by hand): ` +
      `ratios to \`${r.baseline}\`; target at most ${r.target.ratio}× CPU per record on ` +
      `${r.target.impls.join(' and ')}.\n\n` +
      kit.table(
        ['Workload', 'Consumer', 'CPU per record', 'records/s', `≤ ${r.target.ratio}× target`],
        rows,
        ['l', 'l', 'l', 'l', 'l'],
      ),
  ];
}
