// The benchmark runner: runs every case in bench/cases (or the ones named), writes each case's
// figures to bench/results/<case>.json and regenerates docs/benchmarks.md from them.
// `npm run bench` is the quick pass (3 rounds, short runs: a few minutes on 2 cores);
// `npm run bench:full` runs 5 rounds of longer runs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { machineFacts } from './lib/machine.js';
import { ensureTools } from './lib/tools.js';

const USAGE = `usage: node bench/run.js [options]
  --full            5 rounds of longer runs (default: the quick pass, 3 rounds)
  --only CASES      comma-separated case names (files in bench/cases: redis, http, ...)
  --rounds N        rounds per case (at least 3 for the report to mean anything)
  --impls LIST      comma-separated engine impls (default: every available one)
  --no-install      do not apt-get missing tools; skip the cases that need them
  --no-report       do not regenerate docs/benchmarks.md
  -h, --help`;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

let values;
try {
  ({ values } = parseArgs({
    options: {
      full: { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      impls: { type: 'string' },
      'no-install': { type: 'boolean', default: false },
      'no-report': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const log = (s) => console.log(s);
const began = Date.now();

// The package's dist must exist for examples and clients to import 'async-engine'.
if (!existsSync('dist/index.js')) {
  log('dist/ is missing: building it with tsc');
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('tsc failed; run `npm install` (it builds the addon and dist) and try again');
    process.exit(1);
  }
}
let availableImpls;
try {
  ({ availableImpls } = await import('async-engine'));
  availableImpls();
} catch (err) {
  console.error(`cannot load async-engine (${err.message}); run \`npm install\` first`);
  process.exit(1);
}
const implReport = availableImpls();
let impls = implReport.filter((i) => i.available).map((i) => i.impl);
for (const i of implReport.filter((x) => !x.available))
  log(`impl ${i.impl}: unavailable (${i.reason})`);
if (values.impls) {
  const wanted = values.impls.split(',').map((s) => s.trim());
  impls = impls.filter((i) => wanted.includes(i));
}

// Every case module, in its `order`.
const caseDir = path.join(ROOT, 'bench', 'cases');
const cases = [];
for (const file of readdirSync(caseDir).filter((f) => f.endsWith('.js'))) {
  cases.push(await import(pathToFileURL(path.join(caseDir, file)).href));
}
cases.sort((a, b) => (a.order ?? 99) - (b.order ?? 99) || a.name.localeCompare(b.name));
let selected = cases;
if (values.only) {
  const names = values.only.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => !cases.some((c) => c.name === n));
  if (unknown.length) {
    console.error(`unknown case(s): ${unknown.join(', ')}; known: ${cases.map((c) => c.name)}`);
    process.exit(2);
  }
  selected = cases.filter((c) => names.includes(c.name));
}

const needed = [...new Set(selected.flatMap((c) => [...(c.needs ?? []), ...(c.wants ?? [])]))];
const tools = ensureTools(needed, { install: !values['no-install'], log });

const mode = values.full ? 'full' : 'quick';
const rounds = values.rounds ? Number(values.rounds) : values.full ? 5 : 3;
if (!(rounds >= 1)) {
  console.error('--rounds must be a positive number');
  process.exit(2);
}
const machine = machineFacts({ impls: implReport });
log(
  `async-engine benchmarks, ${mode} pass, ${rounds} rounds; impls: ${impls.join(', ')}\n` +
    `${machine.cpu} x${machine.cores}, ${machine.kernel}, Node ${machine.node}, ` +
    `load average ${machine.loadAverage.join(' ')}`,
);

mkdirSync('bench/results', { recursive: true });
const ctx = { mode, rounds, impls, tools, log, machine };
const summary = [];
for (const c of selected) {
  const missing = (c.needs ?? []).filter((t) => !tools[t]);
  if (missing.length) {
    log(`\n== ${c.title}: skipped, missing ${missing.join(', ')}`);
    summary.push(`${c.name}: skipped (missing ${missing.join(', ')})`);
    continue;
  }
  log(`\n== ${c.title}`);
  const started = new Date();
  const t0 = Date.now();
  const caseMachine = {
    ...machine,
    date: started.toISOString(),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  let result;
  try {
    result = await c.run({ ...ctx, machine: caseMachine });
  } catch (err) {
    log(`${c.name} failed: ${err.stack ?? err}`);
    summary.push(`${c.name}: FAILED (${err.message})`);
    continue;
  }
  const seconds = (Date.now() - t0) / 1000;
  const record = {
    name: c.name,
    title: c.title,
    mode,
    rounds,
    machine: caseMachine,
    seconds,
    ...result,
  };
  writeFileSync(`bench/results/${c.name}.json`, `${JSON.stringify(record, null, 1)}\n`);
  log(`== ${c.name}: ${seconds.toFixed(1)} s, written to bench/results/${c.name}.json`);
  summary.push(`${c.name}: ${seconds.toFixed(1)} s`);
}

const total = (Date.now() - began) / 1000;
writeFileSync(
  'bench/results/run.json',
  `${JSON.stringify({ mode, rounds, cases: selected.map((c) => c.name), seconds: total, machine }, null, 1)}\n`,
);
if (!values['no-report']) {
  const { writeReport } = await import('./report.js');
  const out = await writeReport();
  log(`\nreport: ${out}`);
}
log(`\n${summary.join('\n')}\ntotal: ${total.toFixed(1)} s`);
