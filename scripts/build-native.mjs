// Builds the native addon with node-gyp: configures once, then rebuilds incrementally.
// Run by `npm install` (the "install" script) and by `npm run build`.
//
// `--variant=asan` or `--variant=coverage` builds an instrumented copy instead, in its own
// directory (build-asan/build/Release/async_engine.node, ...), leaving build/ alone: node-gyp
// always builds into ./build, so the variant directory gets a binding.gyp that sets the
// `async_engine_variant` gyp variable and includes the real one.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// npm tells its lifecycle scripts where its own node-gyp is; outside npm, look where npm keeps it.
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  return candidates.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error('async-engine: node-gyp not found; install it with `npm install -g node-gyp`.');
  process.exit(1);
}

// Build against the headers that came with this Node when they are there (no download needed).
const env = { ...process.env };
const prefix = join(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = prefix;
}

const variantArg = process.argv.slice(2).find((a) => a.startsWith('--variant='));
const variant = variantArg ? variantArg.slice('--variant='.length) : '';
if (variant !== '' && variant !== 'asan' && variant !== 'coverage') {
  console.error(`async-engine: unknown build variant ${JSON.stringify(variant)} (asan, coverage)`);
  process.exit(2);
}
const cwd = variant ? join(root, `build-${variant}`) : root;
if (variant) {
  mkdirSync(cwd, { recursive: true });
  const shim = { variables: { async_engine_variant: variant }, includes: ['../binding.gyp'] };
  writeFileSync(join(cwd, 'binding.gyp'), JSON.stringify(shim, null, 2) + '\n');
}

function run(args) {
  const r = spawnSync(process.execPath, [gyp, ...args], { cwd, stdio: 'inherit', env });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const configured = existsSync(join(cwd, 'build', 'config.gypi'));
let status = configured ? run(['build', '-j', 'max']) : 1;
if (status !== 0) status = run(['rebuild', '-j', 'max']);
process.exit(status);
