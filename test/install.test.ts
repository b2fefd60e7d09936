// The packed package, installed the way another project would: `npm pack` (which makes the
// prebuilt addon if prebuilds/ has none), then `npm install <tarball>` into an empty project on
// a PATH that holds node, npm and npx but no compiler (CXX=false, CC=false, no g++, make or
// python3), so that any attempt to compile fails. The install must take the prebuilt addon
// (no build/ in the installed package), and a small server and client, importing the package
// by name (ESM), must talk through it on every impl.
//
// It packs and installs once (a few minutes when the prebuild has to be compiled), so it runs
// as `npm run test:install` (scripts/install-ava.config.mjs), not inside `npm test`.
import test from 'ava';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { implsUnderTest } from './helpers/harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(join(tmpdir(), 'async-engine-install-'));
const bin = join(work, 'bin');
const app = join(work, 'app');
const installed = join(app, 'node_modules', 'async-engine');

interface Run {
  code: number | null;
  out: string;
}

function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  deadlineMs: number,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** This process's environment without npm's lifecycle variables, which would steer a nested npm. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE' && k !== 'ENGINE_URL') env[k] = v;
  }
  return env;
}

/** node, npm and npx, and the two programs npm's scripts run through; nothing that compiles. */
function noCompilerEnv(): NodeJS.ProcessEnv {
  mkdirSync(bin, { recursive: true });
  const nodeDir = dirname(process.execPath);
  const links: Record<string, string> = {
    node: process.execPath,
    npm: join(nodeDir, 'npm'),
    npx: join(nodeDir, 'npx'),
    sh: '/bin/sh',
    env: '/usr/bin/env',
  };
  for (const [name, target] of Object.entries(links)) symlinkSync(target, join(bin, name));
  return { ...cleanEnv(), PATH: bin, CXX: 'false', CC: 'false' };
}

const env = noCompilerEnv();

const consumer = `
import { createEngine, Callback } from 'async-engine';

const engine = createEngine({ impl: process.argv[2] });
const listener = engine.listen({ host: '127.0.0.1', port: 0 });
const server = engine.serve(listener, (sock) =>
  engine.expectLine(sock, null, new Callback({
    timeout: 5_000,
    success: (line) => engine.write(sock, 'echo ' + line + '\\r\\n', () => engine.close(sock)),
    failure: () => engine.close(sock),
  })),
);
const fail = (e) => {
  console.log('client failed: ' + (e && e.code) + ' ' + (e && e.message));
  process.exitCode = 1;
  server.stop();
  void engine.shutdown();
};
engine.connect({ host: '127.0.0.1', port: listener.address().port }, new Callback({
  timeout: 5_000,
  failure: fail,
  success: (sock) =>
    engine.writeThenExpectLine(sock, 'hello from a consumer\\r\\n', null, [
      new Callback({ timeout: 5_000, failure: fail }),
      new Callback({
        timeout: 5_000,
        failure: fail,
        success: (line) => {
          console.log('impl ' + engine.impl);
          console.log('reply ' + line);
          console.log('from ' + import.meta.resolve('async-engine'));
          engine.close(sock);
          server.stop();
          void engine.shutdown();
        },
      }),
    ]),
}));
`;

let tarball = '';
let installLog = '';

test.before(
  'npm pack, then npm install the tarball into an empty project with no compiler',
  async (t) => {
    t.timeout(20 * 60_000);
    const packed = await run(
      'npm',
      ['pack', '--pack-destination', work],
      root,
      cleanEnv(),
      15 * 60_000,
    );
    t.is(packed.code, 0, packed.out);
    const name = readdirSync(work).find((f) => f.endsWith('.tgz'));
    if (name === undefined) throw new Error(`npm pack made no tarball:\n${packed.out}`);
    tarball = join(work, name);

    mkdirSync(app);
    const init = await run('npm', ['init', '-y'], app, env, 60_000);
    t.is(init.code, 0, init.out);
    const install = await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball],
      app,
      env,
      5 * 60_000,
    );
    installLog = install.out;
    t.is(install.code, 0, install.out);
    writeFileSync(join(app, 'consumer.mjs'), consumer);
  },
);

test.after.always('remove the temp project', () => {
  rmSync(work, { recursive: true, force: true });
});

test.serial('the tarball ships the prebuilt addon and the install did not compile', (t) => {
  const prebuilds = join(installed, 'prebuilds', `${process.platform}-${process.arch}`);
  t.true(existsSync(prebuilds), 'prebuilds/<platform>-<arch> is in the package');
  t.true(
    readdirSync(prebuilds).some((f) => /^async-engine\.napi\.(glibc|musl)\.node$/.test(f)),
    'one napi-tagged binary, tagged with its C library',
  );
  t.false(existsSync(join(installed, 'build')), 'no build/ in the installed package');
  t.regex(installLog, /async-engine: using prebuilds\/linux-x64\/async-engine\.napi\.glibc\.node/);
  t.false(existsSync(join(installed, 'src')), 'the TypeScript sources are not shipped');
  t.true(existsSync(join(installed, 'dist', 'index.d.ts')), 'the declarations are');
});

test.serial(
  'the PATH of the install has no compiler, and the build-from-source path fails on it',
  async (t) => {
    t.deepEqual(readdirSync(bin).sort(), ['env', 'node', 'npm', 'npx', 'sh']);
    // The compiler path itself, run by hand in the installed package, cannot compile here.
    const r = await run(
      'node',
      [join(installed, 'scripts', 'build-native.mjs')],
      installed,
      env,
      5 * 60_000,
    );
    t.not(r.code, 0, r.out);
    t.false(existsSync(join(installed, 'build', 'Release', 'async_engine.node')));
    rmSync(join(installed, 'build'), { recursive: true, force: true });
  },
);

for (const impl of implsUnderTest()) {
  test.serial(
    `[${impl}] a server and a client in the consumer project, through the installed package`,
    async (t) => {
      t.timeout(60_000);
      const r = await run('node', ['consumer.mjs', impl], app, env, 30_000);
      t.is(r.code, 0, r.out);
      t.regex(r.out, new RegExp(`^impl ${impl}$`, 'm'));
      t.regex(r.out, /^reply echo hello from a consumer$/m);
      const from = r.out.match(/^from (.*)$/m)?.[1] ?? '';
      t.true(fileURLToPath(from).startsWith(installed + '/'), `imported from ${from}`);
    },
  );
}

test.serial(
  'CommonJS: require(esm) and a dynamic import both load the installed package',
  async (t) => {
    writeFileSync(
      join(app, 'consumer.cjs'),
      `
const viaRequire = require('async-engine');
import('async-engine').then((viaImport) => {
  console.log('require ' + typeof viaRequire.createEngine);
  console.log('import ' + typeof viaImport.createEngine);
  console.log('same ' + (viaRequire.createEngine === viaImport.createEngine));
  const engine = viaRequire.createEngine({ impl: 'readiness' });
  console.log('impl ' + engine.impl);
  return engine.shutdown();
});
`,
    );
    const r = await run('node', ['consumer.cjs'], app, env, 30_000);
    t.is(r.code, 0, r.out);
    t.regex(r.out, /^require function$/m);
    t.regex(r.out, /^import function$/m);
    t.regex(r.out, /^same true$/m);
    t.regex(r.out, /^impl readiness$/m);
  },
);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const typesDir = join(root, 'node_modules', '@types');
const tsSettings: Record<string, Record<string, string>> = {
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext' },
  node16: { module: 'node16', moduleResolution: 'node16' },
  bundler: { module: 'esnext', moduleResolution: 'bundler' },
};

for (const [name, settings] of Object.entries(tsSettings)) {
  test.serial(
    `TypeScript (${settings.module}/${settings.moduleResolution}) type-checks a consumer against the installed declarations`,
    async (t) => {
      const dir = join(app, `ts-${name}`);
      mkdirSync(dir);
      const compilerOptions = {
        ...settings,
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        typeRoots: [typesDir],
        types: ['node'],
      };
      writeFileSync(
        join(dir, 'good.mts'),
        `
import { createEngine, Callback, availableImpls, type EngineConfig, type ImplName } from 'async-engine';
const config: EngineConfig = { impl: 'readiness' };
const engine = createEngine(config);
const impl: ImplName = engine.impl;
const names: string[] = availableImpls().map((a) => a.impl);
engine.connect({ host: '127.0.0.1', port: 1 }, new Callback({ failure: (e) => console.log(e.code, impl, names) }));
`,
      );
      writeFileSync(
        join(dir, 'bad.mts'),
        `import { createEngine } from 'async-engine';\nconst n: number = createEngine().impl;\n`,
      );
      const check = async (file: string) => {
        writeFileSync(
          join(dir, 'tsconfig.json'),
          JSON.stringify({ compilerOptions, files: [file] }, null, 2),
        );
        return run('node', [tsc, '-p', 'tsconfig.json'], dir, env, 120_000);
      };
      const good = await check('good.mts');
      t.is(good.code, 0, good.out);
      // The same setup reports a type error, so the clean check above says something.
      const bad = await check('bad.mts');
      t.not(bad.code, 0, bad.out);
      t.regex(bad.out, /bad\.mts.*error TS2322/);
    },
  );
}
