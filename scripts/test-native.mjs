// `npm run test:native` (and the first step of `npm test`): the native unit tests.
//
// Each test/native/<unit>.cc is one program (see test/native/check.h). It is compiled with g++
// (or $CXX) into build/native-tests/, linked with the native/core/<name>.cc of every
// "core/<name>.h" it includes directly, run, and reported in one line. The exit code is
// nonzero if any program fails to build or fails.
//
// Programs are built with AddressSanitizer and UndefinedBehaviorSanitizer when the compiler
// can link and run them here (a probe program checks, once per compiler); otherwise they are
// built plainly and the script says so. Objects and programs are rebuilt only when a source,
// a header they include or the command line changed, so a repeated run only runs the tests.
//
// Arguments choose programs by name: `npm run test:native -- framing id_table`. A single test
// runs with `build/native-tests/<unit> <test name>`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'test', 'native');
const coreDir = join(root, 'native', 'core');
const outDir = join(root, 'build', 'native-tests');
const objDir = join(outDir, 'obj');
const cxx = process.env.CXX || 'g++';
// A program that runs longer than this has hung (a probe that never ends, say).
const runTimeoutMs = 120_000;

const baseFlags = ['-std=c++20', '-Wall', '-Wextra', '-Werror', '-O1', '-g'];
// Paths relative to the root (the compiler runs there), so that messages name test/native/...
const includeFlags = ['-Inative', '-Itest/native'];
const sanitizerFlags = [
  '-fsanitize=address,undefined',
  '-fno-sanitize-recover=all',
  '-fno-omit-frame-pointer',
];

function say(line) {
  console.log(`test:native: ${line}`);
}

function mtime(path) {
  try {
    return statSync(resolve(root, path)).mtimeMs;
  } catch {
    return Infinity;
  }
}

function readOr(path, fallback) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

function run(cmd, args, opts = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: root, ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    let timedOut = false;
    const timer = opts.timeout
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeout)
      : null;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      done({ status: 127, signal: null, output: `${output}${err.message}\n`, timedOut });
    });
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      done({ status, signal, output, timedOut });
    });
  });
}

// Runs jobs at most `limit` at a time; resolves with their results in order.
async function pool(jobs, limit) {
  const results = new Array(jobs.length);
  let next = 0;
  async function worker() {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return results;
}

// Whether the sanitizers work with this compiler on this machine: some environments lack the
// runtime libraries, or cannot run them (LeakSanitizer needs ptrace, for one). The answer is
// kept per compiler version in build/native-tests/probe.json.
async function probeSanitizers() {
  const version = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    console.error(`test:native: cannot run ${cxx}: ${version.error?.message ?? version.stderr}`);
    console.error('test:native: a C++20 compiler is needed, as for the addon itself');
    process.exit(1);
  }
  const key = `${cxx}\n${version.stdout}`;
  const cachePath = join(outDir, 'probe.json');
  const cached = JSON.parse(readOr(cachePath, 'null'));
  if (cached && cached.key === key) return cached;

  const src = join(outDir, 'probe.cc');
  const exe = join(outDir, 'probe');
  writeFileSync(
    src,
    'int main() { int* p = new int[2]; p[1] = 1; int r = p[1] - 1; delete[] p; return r; }\n',
  );
  const answer = { key, sanitize: false, leaks: false, reason: '' };
  const built = await run(cxx, [...baseFlags, ...sanitizerFlags, src, '-o', exe]);
  if (built.status !== 0) {
    answer.reason = `the sanitizer runtimes do not link (${firstLine(built.output)})`;
  } else {
    const withLeaks = await run(exe, [], { env: sanitizerEnv(true), timeout: 30_000 });
    const withoutLeaks =
      withLeaks.status === 0
        ? withLeaks
        : await run(exe, [], { env: sanitizerEnv(false), timeout: 30_000 });
    if (withoutLeaks.status === 0) {
      answer.sanitize = true;
      answer.leaks = withLeaks.status === 0;
      if (!answer.leaks)
        answer.reason = `LeakSanitizer cannot run here (${firstLine(withLeaks.output)})`;
    } else {
      answer.reason = `a sanitized program does not run here (${firstLine(withoutLeaks.output)})`;
    }
  }
  writeFileSync(cachePath, JSON.stringify(answer));
  return answer;
}

function firstLine(text) {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? 'no output'
  );
}

function sanitizerEnv(leaks) {
  return {
    ...process.env,
    ASAN_OPTIONS: `detect_leaks=${leaks ? 1 : 0}:abort_on_error=0`,
    UBSAN_OPTIONS: 'print_stacktrace=1',
  };
}

// The files an object was built from, as the compiler listed them (-MMD).
function depsOf(depFile) {
  const text = readOr(depFile, null);
  if (text === null) return null;
  const body = text.replace(/\\\n/g, ' ');
  const colon = body.indexOf(': ');
  if (colon < 0) return null;
  return body
    .slice(colon + 2)
    .split(/\s+/)
    .filter(Boolean);
}

function upToDate(target, cmdFile, cmd, inputs) {
  if (readOr(cmdFile, null) !== cmd || !inputs) return false;
  const built = mtime(target);
  return built !== Infinity && inputs.every((f) => mtime(f) <= built);
}

// Compiles one source to an object unless the object is current. Shared core objects are
// compiled once for every program that links them.
const objects = new Map();
function object(src, flags) {
  if (!objects.has(src)) {
    const rel = relative(root, src);
    const name = rel.replace(/[/\\]/g, '_').replace(/\.cc$/, '');
    const obj = join(objDir, `${name}.o`);
    const dep = join(objDir, `${name}.d`);
    const cmdFile = join(objDir, `${name}.cmd`);
    const args = [...flags, ...includeFlags, '-MMD', '-MF', dep, '-c', rel, '-o', obj];
    const cmd = [cxx, ...args].join(' ');
    objects.set(
      src,
      (async () => {
        if (upToDate(obj, cmdFile, cmd, depsOf(dep))) return { obj, ok: true, built: false };
        const r = await run(cxx, args);
        if (r.status !== 0) return { obj, ok: false, output: r.output };
        writeFileSync(cmdFile, cmd);
        return { obj, ok: true, built: true };
      })(),
    );
  }
  return objects.get(src);
}

// The native/core/<name>.cc of each "core/<name>.h" the test includes directly.
function unitsOf(testSrc) {
  const units = [];
  for (const m of readFileSync(testSrc, 'utf8').matchAll(/^#include "core\/([\w-]+)\.h"/gm)) {
    const cc = join(coreDir, `${m[1]}.cc`);
    if (existsSync(cc)) units.push(cc);
  }
  return units;
}

async function build(name, flags) {
  const testSrc = join(testDir, `${name}.cc`);
  const sources = [testSrc, ...unitsOf(testSrc)];
  const built = await Promise.all(sources.map((src) => object(src, flags)));
  const failed = built.find((b) => !b.ok);
  if (failed) return { ok: false, output: failed.output };
  const exe = join(outDir, name);
  const cmdFile = join(outDir, `${name}.cmd`);
  const args = [...flags, ...built.map((b) => b.obj), '-o', exe];
  const cmd = [cxx, ...args].join(' ');
  const rebuilt = built.some((b) => b.built);
  if (
    !rebuilt &&
    upToDate(
      exe,
      cmdFile,
      cmd,
      built.map((b) => b.obj),
    )
  ) {
    return { ok: true, exe, rebuilt: false };
  }
  const r = await run(cxx, args);
  if (r.status !== 0) return { ok: false, output: r.output };
  writeFileSync(cmdFile, cmd);
  return { ok: true, exe, rebuilt: true };
}

// A program's or the compiler's output under its line, indented; nothing when it said nothing.
function indent(text) {
  const body = text.trimEnd();
  if (body === '') return '';
  return (
    '\n' +
    body
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')
  );
}

async function main() {
  mkdirSync(objDir, { recursive: true });
  const all = readdirSync(testDir)
    .filter((f) => f.endsWith('.cc'))
    .map((f) => basename(f, '.cc'))
    .sort();
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    console.error(
      `test:native: no program ${unknown.join(', ')} in test/native (${all.join(', ')})`,
    );
    process.exit(1);
  }
  const names = wanted.length > 0 ? wanted : all;

  const probe = await probeSanitizers();
  const flags = probe.sanitize ? [...baseFlags, ...sanitizerFlags] : baseFlags;
  const env = probe.sanitize ? sanitizerEnv(probe.leaks) : process.env;
  let mode;
  if (!probe.sanitize) {
    mode = 'plain build';
    say(`building without sanitizers: ${probe.reason}`);
  } else if (!probe.leaks) {
    mode = 'ASan (no leak checks) + UBSan';
    say(`leak checks off: ${probe.reason}`);
  } else {
    mode = 'ASan + UBSan';
  }

  const started = Date.now();
  const builds = await pool(
    names.map((name) => () => build(name, flags)),
    Math.max(1, Math.min(availableParallelism(), 4)),
  );
  const width = Math.max(...names.map((n) => n.length));
  let failures = 0;
  for (let i = 0; i < names.length; i++) {
    const label = names[i].padEnd(width);
    const b = builds[i];
    if (!b.ok) {
      failures++;
      console.log(`test:native: ${label}  FAILED TO BUILD${indent(b.output)}`);
      continue;
    }
    const r = await run(b.exe, [], { env, timeout: runTimeoutMs });
    if (r.status === 0) {
      say(`${label}  ok  ${firstLine(r.output.split('\n').filter(Boolean).pop() ?? '')}`);
    } else {
      failures++;
      const why = r.timedOut
        ? `timed out after ${runTimeoutMs / 1000} s`
        : r.signal
          ? `killed by ${r.signal}`
          : `exit ${r.status}`;
      console.log(`test:native: ${label}  FAILED (${why})${indent(r.output)}`);
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (failures > 0) {
    console.log(
      `test:native: ${failures} of ${names.length} programs failed (${mode}, ${seconds} s)`,
    );
    process.exit(1);
  }
  say(`${names.length} program${names.length === 1 ? '' : 's'} passed (${mode}, ${seconds} s)`);
}

await main();
