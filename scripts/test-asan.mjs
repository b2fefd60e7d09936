// `npm run test:asan`: the whole ava suite against an addon built with AddressSanitizer and
// UndefinedBehaviorSanitizer.
//
// 1. Builds the addon with -fsanitize=address,undefined into build-asan/ (build/ is left alone).
// 2. Compiles the TypeScript (dist/, dist-test/), so the suite matches the sources.
// 3. Runs ava with the sanitizer runtimes preloaded into node (only the addon is instrumented;
//    node itself is not, so the runtimes must be loaded before anything else) and
//    ASYNC_ENGINE_ADDON pointing the loader at the instrumented addon. ava's workers and every
//    node process a test spawns inherit that environment.
// 4. Fails if ava fails or if any sanitizer wrote a report. Reports go to files in a fresh
//    directory (log_path) rather than only to stderr: a report in a child process whose exit a
//    test expected to be abnormal, or whose stderr a test swallowed, still fails the lane.
//
// Extra arguments are passed to ava, e.g. `npm run test:asan -- dist-test/test/files.test.js`.
// Leak detection is off: V8 and node keep memory alive until exit by design, and LeakSanitizer
// cannot tell that from the addon's leaks.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();

function step(cmd, args, opts = {}) {
  console.log(`test:asan: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(status, what) {
  if (status !== 0) {
    console.error(`test:asan: ${what} failed (exit ${status})`);
    process.exit(status || 1);
  }
}

// The runtime libraries of the compiler that builds the addon.
function runtime(name) {
  const cc = process.env.CXX || 'g++';
  const r = spawnSync(cc, [`-print-file-name=${name}`], { encoding: 'utf8' });
  const path = (r.stdout || '').trim();
  if (r.status !== 0 || !path.startsWith('/') || !existsSync(path)) {
    console.error(
      `test:asan: ${cc} does not know ${name}; install the compiler's sanitizer runtimes`,
    );
    process.exit(1);
  }
  return path;
}

must(step(process.execPath, ['scripts/build-native.mjs', '--variant=asan']), 'building the addon');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
must(step(process.execPath, [tsc, '-p', 'tsconfig.json']), 'tsc');
must(step(process.execPath, [tsc, '-p', 'tsconfig.test.json']), 'tsc (tests)');

const addonPath = join(root, 'build-asan', 'build', 'Release', 'async_engine.node');
if (!existsSync(addonPath)) {
  console.error(`test:asan: ${addonPath} was not built`);
  process.exit(1);
}

const logDir = mkdtempSync(join(tmpdir(), 'async-engine-asan-'));
const logPath = join(logDir, 'report');
// Both runtimes get the same log_path: libubsan's start-up sets the report path through the
// exported __sanitizer_set_report_path, which libasan (first in LD_PRELOAD) provides, so
// whichever runtime starts last decides where ASan's reports go. UBSan's own message still goes
// to stderr (its private report file cannot be redirected while libasan is loaded), so a UBSan
// finding aborts (abort_on_error) and ASan's SIGABRT handler (handle_abort) writes the stack,
// with the __ubsan_handle_* frame and the addon's frames, to the log file.
const env = {
  ...process.env,
  ASYNC_ENGINE_ADDON: addonPath,
  // Tests assert RSS caps only outside this lane (see rssIsMeaningful in the test harness).
  ASYNC_ENGINE_SANITIZED: '1',
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so'), process.env.LD_PRELOAD]
    .filter(Boolean)
    .join(':'),
  ASAN_OPTIONS: [
    'detect_leaks=0',
    'abort_on_error=1',
    'halt_on_error=1',
    'handle_abort=1',
    'strict_string_checks=1',
    'detect_stack_use_after_return=1',
    'check_initialization_order=1',
    `log_path=${logPath}`,
  ].join(':'),
  UBSAN_OPTIONS: [
    'halt_on_error=1',
    'abort_on_error=1',
    'print_stacktrace=1',
    `log_path=${logPath}`,
  ].join(':'),
};

// Sanitized code runs a few times slower: a generous per-test timeout (the tests' own deadlines
// still bound every wait), and one test file at a time, so that the tests' deadlines are met on
// a two-core machine.
const ava = join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const avaStatus = step(
  process.execPath,
  [ava, '--timeout=10m', '--concurrency=1', ...process.argv.slice(2)],
  { env },
);

// The runtime's own symbolizer names the addon's functions but gives no file and line for a
// module loaded with dlopen; addr2line (binutils, beside the compiler) adds them.
function withSourceLines(report) {
  const frame = /\((\/[^()+]+\.node)\+(0x[0-9a-f]+)\)$/;
  return report
    .split('\n')
    .map((l) => {
      const m = frame.exec(l);
      if (!m) return l;
      const r = spawnSync('addr2line', ['-e', m[1], m[2]], { encoding: 'utf8' });
      const where = (r.stdout || '').trim();
      if (r.status !== 0 || !where || where.startsWith('??')) return l;
      const [file, lineNo] = [
        where.slice(0, where.lastIndexOf(':')),
        where.slice(where.lastIndexOf(':')),
      ];
      return `${l} ${relative(root, resolve(dirname(m[1]), file))}${lineNo}`;
    })
    .join('\n');
}

const reports = readdirSync(logDir).sort();
for (const f of reports) {
  console.error(`\n===== sanitizer report ${f} =====`);
  console.error(withSourceLines(readFileSync(join(logDir, f), 'utf8')));
}
rmSync(logDir, { recursive: true, force: true });

const secs = ((Date.now() - started) / 1000).toFixed(0);
if (reports.length > 0) {
  console.error(`test:asan: FAILED: ${reports.length} sanitizer report(s) (${secs} s)`);
  process.exit(1);
}
if (avaStatus !== 0) {
  console.error(`test:asan: FAILED: ava exited with ${avaStatus} (${secs} s)`);
  process.exit(avaStatus);
}
console.log(`test:asan: clean, no sanitizer report (${secs} s)`);
