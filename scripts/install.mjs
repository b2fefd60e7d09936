// The package's install script. Uses the addon node-gyp-build would load (build/Release, or a
// prebuild in prebuilds/<platform>-<arch>/ whose tags match this Node: napi, and glibc or musl)
// when it loads in a child process; compiles with scripts/build-native.mjs (node-gyp, python3,
// make and a C++20 compiler) only when none matches or the match does not load.
// `npm install --build-from-source` (npm_config_build_from_source) always compiles, and so does
// an install where build/ was configured before (a development clone).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function compile(why) {
  console.log(`async-engine: ${why}; compiling the addon (node-gyp)`);
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.error) throw r.error;
  process.exit(r.status ?? 1);
}

const fromSource = process.env.npm_config_build_from_source;
if (fromSource === 'true' || fromSource === 'async-engine') compile('--build-from-source');

// A configured node-gyp build (a clone where the addon was compiled before): keep it current
// (an incremental make), as `npm run build` does, rather than load a stale binary.
if (existsSync(join(root, 'build', 'config.gypi'))) compile('build/ is configured here');

// Load it in a child, so that a binary that crashes on load cannot take the install with it.
const probe = `
const load = require('node-gyp-build');
const file = load.path(process.argv[1]);
require(file);
process.stdout.write(file);
`;
const r = spawnSync(process.execPath, ['-e', probe, root], { cwd: root, encoding: 'utf8' });
if (r.status === 0) {
  console.log(`async-engine: using ${relative(root, r.stdout)}`);
  process.exit(0);
}
const reason =
  (r.stderr || '').split('\n').find((l) => /^\w*Error: /.test(l)) ?? `exit ${r.status}`;
compile(`no prebuilt addon loads here (${reason.trim()})`);
