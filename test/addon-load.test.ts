// Where the native addon cannot load, importing the package fails with an error that says why
// (no build for this platform, architecture and C library; or the dynamic loader's own error
// text) and what to run (`npm rebuild async-engine`, and what that needs). Each case imports
// the package in a child process whose ASYNC_ENGINE_PREBUILD (node-gyp-build's per-package
// override of the directory it searches) points at a directory with no build, or with a broken
// one. Loading comes before any implementation is chosen, so these run once, not per impl.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNodeScript } from './helpers/harness.js';

const work = mkdtempSync(join(tmpdir(), 'async-engine-load-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

// The ASan lane points every process at its instrumented addon (ASYNC_ENGINE_ADDON), which
// would bypass the search these cases are about.
const NO_OVERRIDE = { ASYNC_ENGINE_ADDON: '' };

const importIt = `
try {
  await import(process.env.ENGINE_URL);
  console.log('loaded');
} catch (e) {
  console.log(e.message);
  process.exitCode = 3;
}
`;

test('no build for this platform: the error names the platform and says to run npm rebuild', async (t) => {
  const empty = join(work, 'empty');
  mkdirSync(empty);
  const r = await runNodeScript(importIt, { ASYNC_ENGINE_PREBUILD: empty, ...NO_OVERRIDE });
  t.is(r.code, 3, r.stdout + r.stderr);
  t.regex(
    r.stdout,
    new RegExp(
      `no native addon was built for ${process.platform}-${process.arch} \\(libc \\w+, Node `,
    ),
  );
  t.true(r.stdout.includes(`in ${empty}:`), r.stdout);
  t.regex(r.stdout, /--ignore-scripts/);
  t.regex(r.stdout, /Run `npm rebuild async-engine`/);
  t.regex(r.stdout, /python3, make and a C\+\+20 compiler/);
});

test('a build that does not load: the error carries the dlopen text and says to run npm rebuild', async (t) => {
  const dir = join(work, 'broken', 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'async-engine.napi.node');
  writeFileSync(
    file,
    'this is not an ELF shared object, but it is long enough to be read as a header\n',
  );
  const r = await runNodeScript(importIt, {
    ASYNC_ENGINE_PREBUILD: join(work, 'broken'),
    ...NO_OVERRIDE,
  });
  t.is(r.code, 3, r.stdout + r.stderr);
  t.true(r.stdout.includes(`the native addon ${file} did not load: `), r.stdout);
  t.regex(r.stdout, /invalid ELF header/);
  t.regex(r.stdout, /Run `npm rebuild async-engine`/);
});

test('with a build, the same import loads', async (t) => {
  const r = await runNodeScript(importIt, {});
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.stdout.trim(), 'loaded');
});
