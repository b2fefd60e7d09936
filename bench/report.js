// Writes docs/benchmarks.md, and its SVG charts under docs/benchmarks/, from the JSON that
// bench/run.js leaves in bench/results/. Each case module renders its own section.
// usage: node bench/report.js
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as kit from './lib/report-kit.js';

// Why the threadpool implementation stands where it does (issue 5 asks the report to say so).
const THREADPOOL = [
  '## The threadpool implementation: where it stands and why',
  '',
  'A send with room in the socket, or an accept with a connection waiting, is made at once on',
  'the JavaScript thread, non-blocking, as `readiness` would. Every receive, and whatever would',
  "block, crosses threads twice: the JavaScript thread hands it to the socket's home worker,",
  'which waits in an epoll set of its own and makes the non-blocking call, and the result comes',
  'back through a completion list and one eventfd write per batch. A request therefore costs',
  'what it costs on `readiness` plus two thread hand-offs and a wake-up for its receive, which',
  'is why it needs about twice the CPU per request of the `net` baseline and has the highest',
  "latency at `-c 1`. An idle socket costs one registration in its worker's epoll set and",
  'nothing else, so it holds 10,000 idle connections and serves a new client among them as',
  'fast as the others, at about 1.5× the memory per connection of `readiness`. Its place is',
  'the portable fallback where neither io_uring nor a readiness API can be used, and the',
  'honest baseline for "is the kernel\'s asynchronous interface worth it": on this machine',
  '`completion` and `readiness` each serve a request for about half its CPU.',
].join('\n');

// What the poll implementation is for, and what its rows measure.
const POLL = [
  '## The poll implementation: the portable reference',
  '',
  '`poll` is a reactor over poll(2), the readiness call every Unix has, built as the proof that',
  'a backend is one file and one table row. It keeps one pollfd array of the fds with a',
  'primitive pending, so each wait costs time in proportion to that set, not to what is ready,',
  'and its rows grow worse with the number of connections waiting at once. In `auto` drive a',
  "watcher thread polls on the engine thread's behalf and signals an eventfd that Node's event",
  'loop watches; every wake-up therefore costs two poll(2) calls over the set and a hand-off',
  'each way. `auto` never chooses it: it is there to run where nothing better does, and as the',
  'plainest reading of the `readiness` protocol for comparison. The scale case shows the cost',
  'plainly: with 10,000 idle connections every one of them is in the set, each PING pays two',
  'passes over 10,000 fds, and redis-benchmark does not finish its PINGs within 30 s, where the',
  'other implementations answer in a tenth of a millisecond.',
].join('\n');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function loadResults(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'run.json')) {
    try {
      out.push(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
    } catch (err) {
      console.error(`skipping ${file}: ${err.message}`);
    }
  }
  return out;
}

function machineSection(results, run) {
  const m = results[0].machine;
  const rows = [
    ['CPU', `${m.cpu}, ${m.cores} cores available, ${m.memoryGiB} GiB`],
    ['Kernel', `${m.kernel} (${m.kernelVersion}), ${m.arch}`],
    ['Node.js', m.node],
    [
      'async-engine impls',
      m.impls
        .map((i) => (i.available ? i.impl : `${i.impl} (unavailable: ${i.reason})`))
        .join(', '),
    ],
    ['Clients and peers', Object.values(m.tools).join('; ') || '–'],
    [
      'Code measured',
      m.commit
        ? `commit ${m.commit.replace('+', ' with uncommitted changes in src/ or native/')}`
        : '–',
    ],
  ];
  if (run) {
    rows.push(['Last run', `${run.mode} pass, ${run.rounds} rounds, ${run.seconds.toFixed(0)} s`]);
  }
  const perCase = results.map((r) => [
    r.title,
    r.mode,
    r.rounds,
    r.machine.date.replace('T', ' ').slice(0, 16) + ' UTC',
    `${r.seconds.toFixed(0)} s`,
    r.machine.loadAverage.join(' '),
  ]);
  return [
    kit.table(['', ''], rows, ['l', 'l']),
    '',
    kit.table(
      ['Case', 'Pass', 'Rounds', 'Run at', 'Took', 'Load average at start (1/5/15 min)'],
      perCase,
      ['l', 'l', 'r', 'l', 'r', 'l'],
    ),
  ].join('\n');
}

const METHOD = `Every figure comes from \`npm run bench\` (the quick pass) or \`npm run bench:full\`
on the machine described below, a small shared VM where other jobs ran at the same time. Absolute
figures move a lot between runs there, so the runner:

- starts each server under test in its own child process and reads that process's CPU time
  (user + system, all threads: \`utime + stime\` in \`/proc/<pid>/stat\`, 10 ms ticks) just before
  and just after each client run; **server CPU time per request** is that difference divided by
  the requests answered. On 2 cores the load generator saturates before a good server does, so
  requests per second says more about the client than the server; CPU per request does not;
- runs the contenders interleaved, A B C A B C, for every workload, 3 rounds (quick) or 5 (full),
  after a warm-up of each server, and sizes later rounds so that each run lasts long enough to
  span many clock ticks;
- reports the **median (min–max)** over rounds, and **ratios** to the baseline computed pair by
  pair within each round (contender's run / baseline's run right next to it), then their median
  (min–max). A ratio whose whole range lies on one side of 1 held in every round; one whose
  range straddles 1 is not a difference this run can show.

Ratios below 1 are better for CPU time, memory and latency; above 1 better for throughput.`;

/** Writes the report; returns its path. */
export async function writeReport({ root = ROOT } = {}) {
  const resultsDir = path.join(root, 'bench', 'results');
  const docsDir = path.join(root, 'docs');
  const chartDir = path.join(docsDir, 'benchmarks');
  const results = loadResults(resultsDir);
  const run = existsSync(path.join(resultsDir, 'run.json'))
    ? JSON.parse(readFileSync(path.join(resultsDir, 'run.json'), 'utf8'))
    : null;
  const modules = new Map();
  for (const r of results) {
    const file = path.join(root, 'bench', 'cases', `${r.name}.js`);
    if (existsSync(file)) modules.set(r.name, await import(pathToFileURL(file).href));
  }
  results.sort((a, b) => (modules.get(a.name)?.order ?? 99) - (modules.get(b.name)?.order ?? 99));

  const md = [
    '# Benchmarks',
    '',
    '<!-- Generated by `node bench/report.js` from bench/results/*.json (`npm run bench` runs it). Do not edit by hand. -->',
    '',
  ];
  if (results.length === 0) {
    md.push('No results yet: run `npm run bench`.');
  } else {
    md.push(
      'async-engine measured against what a Node.js program would use instead (`node:net`, `node:http`,',
      '`node:fs`) and against native ceilings (`redis-server`; `fio` and `cat` for files), with real',
      'clients (`redis-benchmark`, `wrk`).',
      '',
    );
    const charts = {};
    const sections = [];
    const headlines = [];
    const readings = [];
    for (const r of results) {
      const mod = modules.get(r.name);
      if (!mod?.render) continue;
      const out = mod.render(r, kit);
      Object.assign(charts, out.charts ?? {});
      sections.push(`## ${r.title}\n\n${out.markdown}`);
      if (mod.headline) headlines.push(mod.headline(r, kit));
      if (mod.reading) readings.push(...mod.reading(r, kit));
    }
    if (headlines.length) md.push(...headlines, '');
    md.push(
      '## Where async-engine is ahead and where it is behind',
      '',
      'Read from the ratios to the baseline, round by round: *ahead* means better than the baseline',
      'in every round, *behind* worse in every round, *mixed* that the rounds disagree (the',
      'difference, if any, is smaller than the noise of this run).',
      '',
      ...readings.flatMap((block) => [block, '']),
      '',
      THREADPOOL,
      '',
      POLL,
      '',
      '## How these figures are made',
      '',
      METHOD,
      '',
      '## Machine',
      '',
      machineSection(results, run),
      '',
      ...sections.flatMap((s) => [s, '']),
    );
    md.push(
      '## Reproduce',
      '',
      '```sh',
      'npm install                  # builds the addon and dist/',
      'npm run bench                # quick pass: every case, 3 rounds; rewrites this file',
      'npm run bench:full           # 5 rounds of longer runs',
      'node bench/run.js --only redis,http --rounds 5   # some cases only; others keep their last results',
      'node bench/run.js --impls readiness              # one impl',
      'node bench/report.js         # this file again from bench/results/*.json',
      '```',
      '',
      'The runner installs `redis-tools`, `redis-server`, `wrk`, `fio` and `openssl` with apt-get when they are missing',
      '(as root; otherwise it prints the command and skips the cases that need them). Each',
      "case's exact client command lines are listed in its section; the programs under test are:",
    );
    for (const r of results) {
      md.push('', `${r.title}:`, '');
      for (const c of r.contenders ?? []) md.push(`- ${c.label}: \`${c.command}\``);
    }
    md.push('');
    mkdirSync(chartDir, { recursive: true });
    for (const [file, svg] of Object.entries(charts)) {
      writeFileSync(path.join(chartDir, file), svg);
    }
  }
  const out = path.join(docsDir, 'benchmarks.md');
  mkdirSync(docsDir, { recursive: true });
  writeFileSync(
    out,
    `${md
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd()}\n`,
  );
  return path.relative(root, out);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  console.log(`wrote ${await writeReport()}`);
}
