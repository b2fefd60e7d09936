// Files: reads of a 1 GiB file that sits in the page cache. Random 4 KiB reads with 32 in
// flight (engine.readInto with a position on each impl, fs.read, fio with io_uring and psync
// as ceilings) and sequential reads of the whole file in 1 MiB chunks (engine.readInto into
// one reused Buffer and engine.readChunk on each impl, fs.createReadStream,
// fs.promises.readFile, cat). Every contender runs in its own child process, interleaved
// round by round; the node children measure their own CPU time (process.cpuUsage(), all
// threads) over the measured part, fio reports its job's, and cat's comes from the shell's
// `times`.
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run as exec } from '../lib/exec.js';
import { Series } from '../lib/stats.js';
import { which } from '../lib/tools.js';

export const name = 'files';
export const title = 'Files: random and sequential reads from the page cache';
export const order = 50;
export const needs = [];
/** Used when present: the native ceilings for random reads. */
export const wants = ['fio'];

export const RANDOM_METRICS = [
  { key: 'iops', ratio: true },
  { key: 'cpuUsPerRead', ratio: true },
  { key: 'ops' },
  { key: 'cpuS' },
  { key: 'seconds' },
];
export const SEQ_METRICS = [
  { key: 'gbPerS', ratio: true },
  { key: 'cpuMsPerGiB', ratio: true },
  { key: 'cpuS' },
  { key: 'seconds' },
];
export const METRICS = [...RANDOM_METRICS, ...SEQ_METRICS];

export const FILE_SIZE = 2 ** 30;
const BS = 4096;
const DEPTH = 32;
const CHUNK = 1 << 20;
const MAX_FAILURES = 2;
const READER = 'bench/lib/file-reader.js';
const node = process.execPath;

/** The test file: reused when it is there with the right size, else written afresh. */
function ensureFile(file, log) {
  if (existsSync(file) && statSync(file).size === FILE_SIZE) {
    log(`  reusing ${file}`);
    return;
  }
  log(`  writing ${file} (1 GiB of random bytes)`);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  const buf = Buffer.alloc(CHUNK);
  try {
    for (let off = 0; off < FILE_SIZE; off += CHUNK) {
      randomFillSync(buf);
      writeSync(fd, buf, 0, CHUNK, off);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Reads the file once so that it is in the page cache. */
async function warmCache(file) {
  const r = await exec('/bin/sh', ['-c', 'cat "$1" > /dev/null', 'sh', file], {
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`cat ${file} failed: ${r.stderr.trim()}`);
}

/** Bytes of the file in the page cache (fincore), or NaN without fincore. */
async function cachedBytes(file) {
  if (!which('fincore')) return NaN;
  const r = await exec('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]);
  return r.code === 0 ? Number(r.stdout.trim()) : NaN;
}

async function fsType(file) {
  const r = await exec('findmnt', ['-no', 'FSTYPE', '-T', file]).catch(() => null);
  return r?.code === 0 ? r.stdout.trim() : 'unknown';
}

/** fio's command line for a random-read ceiling. */
export function fioArgs({ file, ioengine, seconds }) {
  return [
    '--name=r',
    `--filename=${file}`,
    '--rw=randread',
    `--bs=${BS / 1024}k`,
    `--ioengine=${ioengine}`,
    ...(ioengine === 'psync' ? ['--numjobs=1'] : [`--iodepth=${DEPTH}`]),
    `--runtime=${seconds}`,
    '--time_based',
    '--direct=0',
    // fio's default invalidate=1 would drop the file from the page cache before the run.
    '--invalidate=0',
    '--norandommap',
    '--randrepeat=0',
    '--output-format=json',
  ];
}

function parseLastJson(text) {
  const line = text.trim().split('\n').at(-1);
  return JSON.parse(line);
}

/** A node child (bench/lib/file-reader.js): `{ ops, bytes, seconds, cpuS, stats? }`. */
async function nodeChild(args, timeoutMs) {
  const r = await exec(node, [READER, ...args], { timeoutMs });
  if (r.timedOut) throw new Error(`overran ${timeoutMs / 1000} s`);
  let out;
  try {
    out = parseLastJson(r.stdout);
  } catch {
    throw new Error(`exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300) || 'no output'}`);
  }
  if (out.error) throw new Error(out.error);
  if (!(out.ops > 0)) throw new Error('no reads completed');
  return out;
}

/** One fio run: `{ ops, seconds, cpuS, iops }` of its job. */
async function fioRun(args, timeoutMs) {
  const r = await exec('fio', args, { timeoutMs });
  if (r.timedOut) throw new Error(`fio overran ${timeoutMs / 1000} s`);
  let job;
  try {
    job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
  } catch {
    throw new Error(`fio failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
  if (job.error) throw new Error(`fio job error ${job.error}`);
  const seconds = job.job_runtime / 1000; // ms
  return {
    ops: job.read.total_ios,
    iops: job.read.iops,
    seconds,
    cpuS: ((job.usr_cpu + job.sys_cpu) / 100) * seconds,
  };
}

/** `cat FILE > /dev/null`, `passes` times: wall time in the shell, CPU from `times`. */
async function catRun(file, passes, timeoutMs) {
  const script =
    't0=$(date +%s%N); i=0; while [ $i -lt "$2" ]; do cat "$1" > /dev/null || exit 1; ' +
    'i=$((i+1)); done; t1=$(date +%s%N); echo "$t0 $t1"; times';
  const r = await exec('/bin/sh', ['-c', script, 'sh', file, String(passes)], { timeoutMs });
  if (r.timedOut) throw new Error(`cat overran ${timeoutMs / 1000} s`);
  const lines = r.stdout.trim().split('\n');
  if (r.code !== 0 || lines.length < 3) {
    throw new Error(`cat failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
  const [t0, t1] = lines[0].split(' ').map(BigInt);
  // `times`: the shell's user and system time, then its children's: `0m0.010000s 0m0.220000s`.
  const secs = (s) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(s);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  };
  const cpuS = lines[2]
    .trim()
    .split(/\s+/)
    .map(secs)
    .reduce((a, b) => a + b, 0);
  return { ops: passes, bytes: passes * FILE_SIZE, seconds: Number(t1 - t0) / 1e9, cpuS };
}

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const seconds = full ? 10 : 3; // each random-read run
  const passes = full ? 5 : 3; // each sequential run reads the file this many times
  const file = path.join(os.tmpdir(), 'async-engine-bench-1GiB.dat');
  const hasFio = Boolean(ctx.tools.fio);

  ensureFile(file, ctx.log);
  await warmCache(file);
  const cachedAtStart = await cachedBytes(file);
  ctx.log(
    `  ${file}: ${await fsType(file)}, ` +
      `${Number.isFinite(cachedAtStart) ? `${((cachedAtStart / FILE_SIZE) * 100).toFixed(0)}%` : 'unknown share'} in the page cache`,
  );

  const randomArgs = ['--file', 'FILE', '--mode', 'random', '--seconds', String(seconds)];
  const randomContenders = [
    ...ctx.impls.map((impl) => ({
      name: impl,
      label: `async-engine ${impl}: readInto with position`,
      engine: true,
      kind: 'node',
      args: [...randomArgs, '--impl', impl],
    })),
    {
      name: 'fs.read',
      label: 'node:fs fs.read (libuv threadpool)',
      baseline: true,
      kind: 'node',
      args: [...randomArgs, '--impl', 'fs'],
    },
  ];
  if (hasFio) {
    for (const ioengine of ['io_uring', 'psync']) {
      randomContenders.push({
        name: `fio ${ioengine}`,
        label: `fio --ioengine=${ioengine} (C, ceiling)`,
        kind: 'fio',
        args: fioArgs({ file: 'FILE', ioengine, seconds }),
      });
    }
  }
  const seqArgs = ['--file', 'FILE', '--mode', 'seq', '--passes', String(passes)];
  const seqContenders = [];
  for (const impl of ctx.impls) {
    for (const how of ['readInto', 'readChunk']) {
      seqContenders.push({
        name: `${impl} ${how}`,
        impl,
        label:
          how === 'readInto'
            ? `async-engine ${impl}: readInto, one 1 MiB Buffer reused`
            : `async-engine ${impl}: readChunk(file, 1 MiB)`,
        engine: true,
        kind: 'node',
        args: [...seqArgs, '--impl', impl, '--how', how],
      });
    }
  }
  seqContenders.push(
    {
      name: 'createReadStream',
      label: 'node:fs createReadStream, highWaterMark 1 MiB',
      baseline: true,
      kind: 'node',
      args: [...seqArgs, '--impl', 'fs', '--how', 'stream'],
    },
    {
      name: 'readFile',
      label: 'node:fs fs.promises.readFile',
      kind: 'node',
      args: [...seqArgs, '--impl', 'fs', '--how', 'readFile'],
    },
    {
      name: 'cat',
      label: 'cat FILE > /dev/null (C, ceiling)',
      kind: 'cat',
      args: [],
    },
  );

  const workloads = [
    {
      id: `random ${BS / 1024} KiB reads, ${DEPTH} in flight`,
      kind: 'random',
      baseline: 'fs.read',
      refs: hasFio ? ['fio io_uring'] : [],
      metrics: RANDOM_METRICS,
      contenders: randomContenders,
      seconds,
    },
    {
      id: 'sequential 1 MiB reads, whole file',
      kind: 'seq',
      baseline: 'createReadStream',
      refs: ['cat'],
      metrics: SEQ_METRICS,
      contenders: seqContenders,
      passes,
    },
  ];
  const series = new Map(workloads.map((w) => [w.id, new Series(w.baseline, w.metrics)]));
  const failures = new Map();
  const notes = [];
  const engineStats = {};
  const withFile = (args) => args.map((a) => a.replaceAll('FILE', file));

  async function measure(w, c) {
    if (w.kind === 'random') {
      const timeoutMs = (seconds + 30) * 1000;
      const r =
        c.kind === 'fio'
          ? await fioRun(withFile(c.args), timeoutMs)
          : await nodeChild(withFile(c.args), timeoutMs);
      if (r.stats) engineStats[`${w.kind} ${c.name}`] = r.stats;
      return {
        iops: r.ops / r.seconds,
        cpuUsPerRead: (r.cpuS / r.ops) * 1e6,
        ops: r.ops,
        cpuS: r.cpuS,
        seconds: r.seconds,
      };
    }
    const timeoutMs = (passes * 10 + 30) * 1000;
    const r =
      c.kind === 'cat'
        ? await catRun(file, passes, timeoutMs)
        : await nodeChild(withFile(c.args), timeoutMs);
    if (r.stats) engineStats[`${w.kind} ${c.name}`] = r.stats;
    return {
      gbPerS: r.bytes / r.seconds / 1e9,
      cpuMsPerGiB: ((r.cpuS * 1000) / r.bytes) * FILE_SIZE,
      cpuS: r.cpuS,
      seconds: r.seconds,
    };
  }

  const describe = (w, m) =>
    w.kind === 'random'
      ? `${Math.round(m.iops).toLocaleString('en-US').padStart(9)} IOPS ` +
        `${m.cpuUsPerRead.toFixed(2).padStart(6)} CPU µs/read`
      : `${m.gbPerS.toFixed(2).padStart(6)} GB/s ${m.cpuMsPerGiB.toFixed(0).padStart(6)} CPU ms/GiB`;

  for (let round = 0; round < ctx.rounds; round++) {
    await warmCache(file); // keeps the file cached whatever ran before
    for (const w of workloads) {
      const s = series.get(w.id);
      for (const c of w.contenders) {
        const key = `${w.id}|${c.name}`;
        if ((failures.get(key) ?? 0) >= MAX_FAILURES) {
          s.fail(c.name, round, 'skipped: failed before');
          continue;
        }
        try {
          const m = await measure(w, c);
          s.add(c.name, round, m);
          ctx.log(`  r${round + 1} ${w.kind.padEnd(6)} ${c.name.padEnd(22)} ${describe(w, m)}`);
        } catch (err) {
          failures.set(key, (failures.get(key) ?? 0) + 1);
          s.fail(c.name, round, err.message);
          notes.push(`${c.name}, ${w.id}, round ${round + 1}: ${err.message}`);
          ctx.log(`  r${round + 1} ${w.kind.padEnd(6)} ${c.name.padEnd(22)} FAILED ${err.message}`);
        }
      }
    }
  }
  const cachedAtEnd = await cachedBytes(file);

  const shownCommand = (c) =>
    c.kind === 'fio'
      ? `fio ${c.args.join(' ')}`
      : c.kind === 'cat'
        ? `for i in $(seq ${passes}); do cat FILE > /dev/null; done   # timed; CPU from the shell's \`times\``
        : `node ${READER} ${c.args.join(' ')}`;
  const describeContender = (w) => (c) => ({
    name: c.name,
    label: c.label,
    engine: Boolean(c.engine),
    kind: c.kind,
    command: shownCommand(c),
    workload: w.kind,
  });
  return {
    baseline: 'fs.read',
    file: {
      path: file,
      bytes: FILE_SIZE,
      fsType: await fsType(file),
      cachedBytesAtStart: cachedAtStart,
      cachedBytesAtEnd: cachedAtEnd,
    },
    groups: workloads.map((w) => ({
      id: w.id,
      kind: w.kind,
      baseline: w.baseline,
      refs: w.refs,
      seconds: w.seconds,
      passes: w.passes,
      contenders: w.contenders.map((c) => c.name),
      summary: series.get(w.id).summary(w.refs),
    })),
    notes,
    engineStats,
    contenders: workloads.flatMap((w) => w.contenders.map(describeContender(w))),
    commands: [
      `cat FILE > /dev/null   # before each round, so that FILE (1 GiB, ${await fsType(file)}) is in the page cache`,
      `# random: ${DEPTH} reads of ${BS} bytes in flight at random ${BS}-aligned offsets, ${seconds} s after a 0.3 s warm-up`,
      ...randomContenders.map(shownCommand),
      `# sequential: the whole file ${passes} times in 1 MiB reads`,
      ...seqContenders.map(shownCommand),
    ],
  };
}

// ---- Report ----

/** `result` as report-kit's barsFor wants it, for one group's contenders. */
function groupView(r, g) {
  return {
    baseline: g.baseline,
    contenders: g.contenders.map((n) => r.contenders.find((c) => c.name === n)).filter(Boolean),
  };
}

const med = (s) => (s?.n ? s.median : NaN);
const x2 = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–');
/** Like x2, with more digits when two would hide which side of `limit` the value is on. */
function xAt(v, limit) {
  if (!Number.isFinite(v) || v === limit) return x2(v);
  let d = 2;
  while (d < 5 && Number(v.toFixed(d)) === limit) d++;
  return `${v.toFixed(d)}×`;
}

/** The targets this case checks, each `{ text, met }` (met: true, false, or null when unmeasured). */
export function targets(r) {
  const random = r.groups.find((g) => g.kind === 'random');
  const seq = r.groups.find((g) => g.kind === 'seq');
  const out = [];
  const impls = random.contenders.filter(
    (n) => r.contenders.find((c) => c.name === n && c.workload === 'random')?.engine,
  );
  const vsFs = impls.map((n) => [n, med(random.summary[n]?.ratios.iops)]);
  out.push({
    text:
      `every impl ahead of \`fs.read\` in IOPS: ` +
      vsFs.map(([n, v]) => `${n} ${xAt(v, 1)}`).join(', '),
    met: vsFs.some(([, v]) => !Number.isFinite(v)) ? null : vsFs.every(([, v]) => v > 1),
  });
  const c = random.summary.completion;
  if (c) {
    const a = med(c.ratios.iops);
    const b = med(c.vs['fio io_uring']?.iops);
    out.push({
      text: `\`completion\` at least 1.5× \`fs.read\`'s IOPS: ${xAt(a, 1.5)}`,
      met: Number.isFinite(a) ? a >= 1.5 : null,
    });
    out.push({
      text: `\`completion\` at least 0.8× \`fio --ioengine=io_uring\`'s IOPS: ${xAt(b, 0.8)}`,
      met: Number.isFinite(b) ? b >= 0.8 : null,
    });
  }
  for (const how of ['readInto', 'readChunk']) {
    const names = seq.contenders.filter((n) => n.endsWith(` ${how}`));
    if (names.length === 0) continue;
    const vals = names.map((n) => [
      n.split(' ')[0],
      med(seq.summary[n]?.ratios.gbPerS),
      med(seq.summary[n]?.vs.cat?.gbPerS),
    ]);
    const ok = (i, limit) =>
      vals.some((v) => !Number.isFinite(v[i])) ? null : vals.every((v) => v[i] >= limit);
    out.push({
      text:
        `sequential \`${how}\` at least 2× \`createReadStream\`'s GB/s: ` +
        vals.map(([n, v]) => `${n} ${xAt(v, 2)}`).join(', '),
      met: ok(1, 2),
    });
    out.push({
      text:
        `sequential \`${how}\` at least 0.5× \`cat\`'s GB/s: ` +
        vals.map(([n, , v]) => `${n} ${xAt(v, 0.5)}`).join(', '),
      met: ok(2, 0.5),
    });
  }
  return out;
}

const metWord = (m) => (m === true ? '**met**' : m === false ? '**not met**' : 'not measured');

export function render(r, kit) {
  const random = r.groups.find((g) => g.kind === 'random');
  const seq = r.groups.find((g) => g.kind === 'seq');
  const date = r.machine.date.slice(0, 10);
  const note = `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${date}`;
  const charts = {
    'files-random-iops.svg': kit.barChart({
      title: `Random ${BS / 1024} KiB reads from the page cache, ${DEPTH} in flight: IOPS (higher is better)`,
      unit: 'IOPS',
      groups: [{ label: 'random reads', bars: kit.barsFor(groupView(r, random), random, 'iops') }],
      note,
    }),
    'files-seq-gbps.svg': kit.barChart({
      title: 'Sequential 1 MiB reads of a cached 1 GiB file: GB/s (higher is better)',
      unit: 'GB/s',
      groups: [{ label: 'whole file', bars: kit.barsFor(groupView(r, seq), seq, 'gbPerS') }],
      note,
    }),
  };
  const cached = r.file.cachedBytesAtEnd;
  const md = [
    `A 1 GiB file of random bytes (\`${r.file.path}\`, ${r.file.fsType}) is read with \`cat\` before`,
    'each round so that every read is served from the page cache' +
      (Number.isFinite(cached)
        ? ` (\`fincore\` after the last round: ${((cached / r.file.bytes) * 100).toFixed(0)}% resident).`
        : '.'),
    'Every contender is its own process, run one after another within each round. The node',
    'children (`bench/lib/file-reader.js`) measure their own CPU time, all threads',
    '(`process.cpuUsage()`, so libuv and engine worker threads count), over the measured part',
    "after opening the file; fio's figure is its job's user + system CPU, `cat`'s the shell's",
    '`times` for its children. Commands (`FILE` is the path above):',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    `### Random ${BS / 1024} KiB reads, ${DEPTH} in flight`,
    '',
    `![Random read IOPS](benchmarks/files-random-iops.svg)`,
    '',
  ];
  const hasFio = random.refs.includes('fio io_uring');
  const rrows = groupView(r, random).contenders.map((c) => {
    const s = random.summary[c.name];
    if (!s) return [c.label, '–', '–', '–', ...(hasFio ? ['–'] : []), '–'];
    return [
      c.name === random.baseline ? `${c.label} (baseline)` : c.label,
      kit.cell(s.metrics.iops),
      kit.ratioCell(s.ratios.iops),
      ...(hasFio ? [kit.ratioCell(s.vs['fio io_uring']?.iops)] : []),
      kit.cell(s.metrics.cpuUsPerRead),
      kit.ratioCell(s.ratios.cpuUsPerRead),
    ];
  });
  md.push(
    kit.table(
      [
        'Reader',
        'IOPS',
        `× ${random.baseline}`,
        ...(hasFio ? ['× fio io_uring'] : []),
        'CPU µs per read',
        `× ${random.baseline}`,
      ],
      rrows,
    ),
    '',
    '### Sequential reads of the whole file, 1 MiB at a time',
    '',
    `![Sequential GB/s](benchmarks/files-seq-gbps.svg)`,
    '',
  );
  const srows = groupView(r, seq).contenders.map((c) => {
    const s = seq.summary[c.name];
    if (!s) return [c.label, '–', '–', '–', '–', '–'];
    return [
      c.name === seq.baseline ? `${c.label} (baseline)` : c.label,
      kit.cell(s.metrics.gbPerS),
      kit.ratioCell(s.ratios.gbPerS),
      kit.ratioCell(s.vs.cat?.gbPerS),
      kit.cell(s.metrics.cpuMsPerGiB),
      kit.ratioCell(s.ratios.cpuMsPerGiB),
    ];
  });
  md.push(
    kit.table(
      ['Reader', 'GB/s', `× ${seq.baseline}`, '× cat', 'CPU ms per GiB', `× ${seq.baseline}`],
      srows,
    ),
    '',
    '### Targets',
    '',
    'The targets, checked on the medians of the per-round ratios of this run:',
    '',
    ...targets(r).map((t) => `- ${t.text} — ${metWord(t.met)}`),
    '',
    ...readingText(r),
  );
  const failures = r.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([n, s]) => s.failures.map((f) => `${n}, ${g.id}, ${f}`)),
  );
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

/** A short, neutral reading of the figures: who is ahead of node:fs, how far from the ceilings. */
function readingText(r) {
  const random = r.groups.find((g) => g.kind === 'random');
  const seq = r.groups.find((g) => g.kind === 'seq');
  const engines = (g) =>
    g.contenders.filter(
      (n) => r.contenders.find((c) => c.name === n && c.workload === g.kind)?.engine,
    );
  const lines = [];
  const rs = engines(random).map((n) => ({ n, s: random.summary[n] }));
  const ahead = rs.filter((x) => med(x.s?.ratios.iops) > 1).map((x) => `\`${x.n}\``);
  const behind = rs.filter((x) => med(x.s?.ratios.iops) <= 1).map((x) => `\`${x.n}\``);
  let text =
    `Random reads: ${ahead.length ? `${ahead.join(', ')} ${ahead.length > 1 ? 'do' : 'does'} more IOPS than \`fs.read\`` : 'no impl does more IOPS than `fs.read`'}` +
    (behind.length ? `; ${behind.join(', ')} ${behind.length > 1 ? 'do' : 'does'} not` : '') +
    ` (${rs.map((x) => `${x.n} ${x2(med(x.s?.ratios.iops))}`).join(', ')}, at ` +
    `${rs.map((x) => `${x2(med(x.s?.ratios.cpuUsPerRead))}`).join(', ')} its CPU per read).`;
  if (random.refs.includes('fio io_uring')) {
    const psync = random.summary['fio psync'];
    text +=
      ` Against \`fio --ioengine=io_uring\`: ` +
      rs.map((x) => `${x.n} ${x2(med(x.s?.vs['fio io_uring']?.iops))}`).join(', ') +
      (psync ? `; fio's psync run reaches ${x2(med(psync.vs['fio io_uring']?.iops))} of it.` : '.');
  }
  lines.push(text);
  const ss = engines(seq).map((n) => ({ n, s: seq.summary[n] }));
  const ranked = ss
    .filter((x) => x.s?.ratios.gbPerS.n)
    .sort((a, b) => a.s.ratios.gbPerS.median - b.s.ratios.gbPerS.median);
  const [worst, best] = [ranked[0], ranked.at(-1)];
  const vsCat = ranked.map((x) => med(x.s.vs.cat?.gbPerS)).filter(Number.isFinite);
  if (best) {
    lines.push(
      '',
      `Sequential reads: the engine's runs range from ${x2(med(worst.s.ratios.gbPerS))} ` +
        `(\`${worst.n}\`) to ${x2(med(best.s.ratios.gbPerS))} (\`${best.n}\`) of ` +
        `\`createReadStream\`'s GB/s, and from ${x2(Math.min(...vsCat))} to ` +
        `${x2(Math.max(...vsCat))} of \`cat\`'s.` +
        (seq.summary.readFile
          ? ` \`fs.promises.readFile\` (one 1 GiB Buffer) stands at ${x2(med(seq.summary.readFile.ratios.gbPerS))}.`
          : '') +
        (seq.summary.cat?.ratios.gbPerS.n
          ? ` \`cat\` itself reads at ${x2(med(seq.summary.cat.ratios.gbPerS))} ` +
            "`createReadStream`'s rate here, so the 2× target asks for " +
            `${((2 / med(seq.summary.cat.ratios.gbPerS)) * 100).toFixed(0)}% of \`cat\`'s.`
          : ''),
    );
  }
  return lines;
}

export function reading(r, kit) {
  const v = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : 'failed');
  const random = r.groups.find((g) => g.kind === 'random');
  const seq = r.groups.find((g) => g.kind === 'seq');
  const rows = [];
  for (const g of [random, seq]) {
    const [thr, cpu] = g.kind === 'random' ? ['iops', 'cpuUsPerRead'] : ['gbPerS', 'cpuMsPerGiB'];
    for (const n of g.contenders.filter((x) => x !== g.baseline)) {
      const c = r.contenders.find((x) => x.name === n && x.workload === g.kind);
      const s = g.summary[n];
      rows.push([
        g.kind === 'random' ? `random 4 KiB ÷ \`${g.baseline}\`` : `sequential ÷ \`${g.baseline}\``,
        c?.engine ? `**${n}**` : n,
        v(s?.ratios[thr], 'higher'),
        v(s?.ratios[cpu], 'lower'),
      ]);
    }
  }
  return [
    '**Files** (page-cache reads): ratios to `fs.read` (random 4 KiB, 32 in flight) and to ' +
      '`createReadStream` (sequential 1 MiB).\n\n' +
      kit.table(['Workload', 'Reader', 'IOPS or GB/s', 'CPU per read or per GiB'], rows, [
        'l',
        'l',
        'l',
        'l',
      ]),
  ];
}
