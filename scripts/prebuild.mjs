// Builds the prebuilt addon that `npm pack` ships: one N-API binary for this platform and
// architecture, prebuilds/<platform>-<arch>/async-engine.napi.<libc>.node, loaded by every Node
// version >= 20 (binding.gyp pins NAPI_VERSION=8, and the addon uses only the N-API, through
// node-addon-api). Run by `npm run prebuilds` (not `prebuild`: npm would run that before every `npm run build`), and by `prepack` with --if-missing.
//
// prebuildify runs `node-gyp rebuild`, which starts from an empty build/ directory; so that
// the prebuild leaves the development build in build/ alone, it builds in build-prebuild/
// through a two-line binding.gyp that includes the real one (as the sanitizer variants do).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const target = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

if (process.argv.includes('--if-missing') && existsSync(target)) {
  const have = readdirSync(target).filter((f) => f.endsWith('.node'));
  if (have.length > 0) {
    console.log(`async-engine: prebuilds/${process.platform}-${process.arch}/${have[0]} is there`);
    process.exit(0);
  }
}

// npm tells its lifecycle scripts where its own node-gyp is; outside npm, look where npm keeps it.
function findNodeGyp() {
  const npmGyp = join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  const candidates = [process.env.npm_config_node_gyp, npmGyp];
  return candidates.find((p) => p && existsSync(p));
}

let prebuildify;
try {
  prebuildify = require.resolve('prebuildify/bin.js');
} catch {
  console.error('async-engine: prebuildify is a devDependency; run `npm install` first.');
  process.exit(1);
}
const gyp = findNodeGyp();
if (!gyp) {
  console.error('async-engine: node-gyp not found; install it with `npm install -g node-gyp`.');
  process.exit(1);
}

const cwd = join(root, 'build-prebuild');
mkdirSync(cwd, { recursive: true });
writeFileSync(
  join(cwd, 'binding.gyp'),
  JSON.stringify({ includes: ['../binding.gyp'] }, null, 2) + '\n',
);

// Run it with the oldest Node the package supports (20): the addon calls the OpenSSL and libuv of
// the node binary that loads it, so it must not use a function only newer Nodes export.
if (Number(process.versions.node.split('.')[0]) > 20) {
  console.warn(
    `async-engine: building the prebuild with Node ${process.versions.node}; build it with Node 20 ` +
      'so that it loads in every Node >= 20 (OpenSSL 3.0 functions only).',
  );
}

// Build against the headers that came with this Node when they are there (no download); with
// NAPI_VERSION pinned, the headers' Node version does not matter to the binary.
const env = { ...process.env, PREBUILD_NODE_GYP: gyp };
const prefix = join(dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = prefix;
}

// The file is named async-engine.napi.<libc>.node: node-gyp-build reads the `napi` tag as "for any
// Node ABI" and the libc tag as "only where that C library is" (a glibc build on musl compiles).
const args = [
  prebuildify,
  '--napi',
  '--strip',
  '--tag-libc',
  '--name=async-engine.napi',
  `--target=node@${process.versions.node}`,
  `--out=${root}`,
  cwd,
];
const r = spawnSync(process.execPath, args, { cwd, stdio: 'inherit', env });
if (r.error) throw r.error;
if (r.status !== 0) process.exit(r.status ?? 1);
const built = readdirSync(target).filter((f) => f.endsWith('.node'));
console.log(
  `async-engine: built prebuilds/${process.platform}-${process.arch}/${built.join(', ')}`,
);
