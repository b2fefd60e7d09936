// Long fuzz runs: `FUZZ_SECONDS=N npm run fuzz` builds, then runs the framing fuzz and the cancel
// storms with random seeds for about N seconds per file (shared among the implementations under
// test; ASYNC_ENGINE_TEST_IMPLS narrows them). Each failure prints its seed and a minimal
// reproduction; FUZZ_SEED=s replays one seed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(
    `FUZZ_SECONDS must be a positive number of seconds, got ${process.env.FUZZ_SECONDS}`,
  );
  process.exit(2);
}

const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ??
  1;

if (run('npm', ['run', 'build', '--silent']) !== 0) process.exit(1);
const files = ['dist-test/test/fuzz-framing.test.js', 'dist-test/test/cancel-storm.test.js'];
const status = run(
  'npx',
  [
    'ava',
    '--verbose',
    `--timeout=${Math.ceil(seconds) + 180}s`,
    ...files,
    ...process.argv.slice(2),
  ],
  { FUZZ_SECONDS: String(seconds) },
);
process.exit(status);
