// `npm run coverage:native`: line coverage of the C++ addon (native/) by the ava suite.
//
// 1. Builds the addon with gcov instrumentation (--coverage -O0) into build-coverage/.
// 2. Compiles the TypeScript (dist/, dist-test/).
// 3. Clears the counters of a previous run, then runs ava with ASYNC_ENGINE_ADDON pointing the
//    loader at the instrumented addon. Every node process that loads it (ava's workers, the
//    children tests spawn) adds its counts to the .gcda files when it exits normally.
// 4. Reads the counts with the compiler's own `gcov` (JSON output, no gcovr needed) and prints
//    lines, covered lines and percent per file of native/, the totals of native/core and
//    native/backends, and the total; the lines no test ran go to build-coverage/uncovered.txt.
//
// Extra arguments are passed to ava. Run by hand; CI does not run it. The exit status is ava's:
// the figures are printed either way.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build-coverage', 'build');

function step(cmd, args, opts = {}) {
  console.log(`coverage:native: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(status, what) {
  if (status !== 0) {
    console.error(`coverage:native: ${what} failed (exit ${status})`);
    process.exit(status || 1);
  }
}

function walk(dir, ext, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, ext, out);
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out;
}

must(
  step(process.execPath, ['scripts/build-native.mjs', '--variant=coverage']),
  'building the addon',
);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
must(step(process.execPath, [tsc, '-p', 'tsconfig.json']), 'tsc');
must(step(process.execPath, [tsc, '-p', 'tsconfig.test.json']), 'tsc (tests)');

const addonPath = join(buildDir, 'Release', 'async_engine.node');
if (!existsSync(addonPath)) {
  console.error(`coverage:native: ${addonPath} was not built`);
  process.exit(1);
}

// Counters accumulate across runs: start from zero.
for (const f of walk(buildDir, '.gcda')) rmSync(f);

const ava = join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const avaStatus = step(process.execPath, [ava, ...process.argv.slice(2)], {
  env: { ...process.env, ASYNC_ENGINE_ADDON: addonPath },
});

// file (relative to the repository) -> Map(line -> count), merged over every object file: a
// header's line counts as covered when any translation unit ran it.
const files = new Map();
const gcov = process.env.GCOV || 'gcov';
for (const gcno of walk(join(buildDir, 'Release', 'obj.target'), '.gcno')) {
  const r = spawnSync(gcov, ['--json-format', '--stdout', gcno], {
    cwd: buildDir,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) {
    console.error(`coverage:native: ${gcov} failed on ${gcno}:\n${r.stderr}`);
    process.exit(1);
  }
  // One JSON document per line of output.
  for (const text of r.stdout.split('\n')) {
    if (text.trim() === '') continue;
    const doc = JSON.parse(text);
    const cwd = doc.current_working_directory || buildDir;
    for (const f of doc.files) {
      const rel = relative(root, resolve(cwd, f.file));
      if (!rel.startsWith(`native${'/'}`)) continue;
      let lines = files.get(rel);
      if (!lines) files.set(rel, (lines = new Map()));
      for (const l of f.lines) {
        lines.set(l.line_number, Math.max(lines.get(l.line_number) ?? 0, l.count));
      }
    }
  }
}

if (files.size === 0) {
  console.error('coverage:native: gcov found no data for native/');
  process.exit(1);
}

const rows = [...files.entries()]
  .map(([file, lines]) => {
    const total = lines.size;
    let covered = 0;
    for (const c of lines.values()) if (c > 0) covered++;
    return { file, total, covered };
  })
  .sort((a, b) => a.file.localeCompare(b.file));

function sum(filter) {
  const picked = rows.filter((r) => filter(r.file));
  return {
    total: picked.reduce((n, r) => n + r.total, 0),
    covered: picked.reduce((n, r) => n + r.covered, 0),
  };
}

const pct = (r) => (r.total === 0 ? '100.0' : ((100 * r.covered) / r.total).toFixed(1));
const width = Math.max(...rows.map((r) => r.file.length), 'native/backends (total)'.length);
const line = (name, r) =>
  `${name.padEnd(width)}  ${String(r.total).padStart(6)}  ${String(r.covered).padStart(7)}  ${pct(r).padStart(6)}%`;

console.log('\nNative line coverage (gcov)\n');
console.log(
  `${'file'.padEnd(width)}  ${'lines'.padStart(6)}  ${'covered'.padStart(7)}  ${'percent'.padStart(7)}`,
);
for (const r of rows) console.log(line(r.file, r));
console.log('-'.repeat(width + 26));
console.log(
  line(
    'native/core (total)',
    sum((f) => f.startsWith('native/core/')),
  ),
);
console.log(
  line(
    'native/backends (total)',
    sum((f) => f.startsWith('native/backends/')),
  ),
);
console.log(
  line(
    'native (total)',
    sum(() => true),
  ),
);

// The lines no test ran, as ranges per file, for finding what to test next.
const ranges = (lines) => {
  const out = [];
  for (const n of [...lines.entries()]
    .filter(([, c]) => c === 0)
    .map(([n]) => n)
    .sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last[1] === n - 1) last[1] = n;
    else out.push([n, n]);
  }
  return out.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(' ');
};
const uncoveredFile = join(root, 'build-coverage', 'uncovered.txt');
writeFileSync(
  uncoveredFile,
  rows.map((r) => `${r.file}: ${ranges(files.get(r.file))}`).join('\n') + '\n',
);
console.log(`\nLines not run, per file: ${relative(root, uncoveredFile)}`);

if (avaStatus !== 0) {
  console.error(`coverage:native: ava exited with ${avaStatus}; the figures above are of that run`);
  process.exit(avaStatus);
}
