// The implementation seam: the TypeScript registry (src/impl/registry.ts, src/impl/<name>/)
// and the native backend table (native/backends/factory.cc) list the same implementations and
// option keys; the registry alone chooses, and `auto` never chooses `poll`.
import test from 'ava';
import { availableImpls, createEngine, type EngineStats, type ImplName } from 'async-engine';
import { engineUrl, forEachImpl, runNodeScript } from './helpers/harness.js';

// The package's own registry and addon (the modules under dist/ that createEngine uses).
type Registry = typeof import('../src/impl/registry.js');
type Native = typeof import('../src/engine/internal/native.js');
const { autoOrder, chooseImpl, impls } = (await import(
  new URL('./impl/registry.js', engineUrl).href
)) as Registry;
const { addon } = (await import(new URL('./engine/internal/native.js', engineUrl).href)) as Native;

test('the registry and the native backend table list the same implementations and option keys, in one order', (t) => {
  const native = addon
    .backends()
    .map((row) => ({ name: row.name, options: [...row.options].sort() }));
  const ts = Object.values(impls).map((d) => ({
    name: d.name as string,
    options: [...d.optionKeys].sort(),
  }));
  t.deepEqual(ts, native);
  t.deepEqual(
    availableImpls().map((a): string => a.impl),
    native.map((r) => r.name),
  );
  for (const [key, d] of Object.entries(impls)) t.is(d.name as string, key);
});

test('poll is an implementation of the native table and can run here', (t) => {
  t.true(
    addon.backends().some((r) => r.name === 'poll'),
    'the native table has a poll row',
  );
  t.is(addon.probe('poll'), '');
  t.regex(addon.probe('kqueue'), /not part of this build/);
});

test('auto never picks poll (nor threadpool): only the implementations of autoOrder', (t) => {
  t.false(autoOrder.includes('poll'));
  t.false(autoOrder.includes('threadpool'));
  const saved = process.env.ASYNC_ENGINE_IMPL;
  delete process.env.ASYNC_ENGINE_IMPL;
  try {
    const picked = chooseImpl('auto');
    t.true(autoOrder.includes(picked));
    t.not(picked, 'poll');
  } finally {
    if (saved !== undefined) process.env.ASYNC_ENGINE_IMPL = saved;
  }
});

test('auto without io_uring picks readiness, never poll', async (t) => {
  const r = await runNodeScript(
    `const m = await import(process.env.ENGINE_URL);
     const e = m.createEngine();
     console.log(e.impl);
     await e.shutdown();`,
    { ASYNC_ENGINE_URING_UNAVAILABLE: '1', ASYNC_ENGINE_IMPL: '' },
  );
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'readiness');
});

test("ASYNC_ENGINE_IMPL=poll turns 'auto' into poll; a name that is no implementation lists poll among those that are", async (t) => {
  const r = await runNodeScript(
    `const m = await import(process.env.ENGINE_URL);
     const e = m.createEngine({ drive: 'manual' });
     console.log(e.impl);
     await e.shutdown();
     process.env.ASYNC_ENGINE_IMPL = 'select';
     try { m.createEngine(); } catch (err) { console.log(err.code + ' ' + err.message); }`,
    { ASYNC_ENGINE_IMPL: 'poll' },
  );
  t.is(r.code, 0, r.stderr);
  const [impl, refusal] = r.stdout.trim().split('\n');
  t.is(impl, 'poll');
  t.regex(refusal ?? '', /^ERR_INVALID_ARG_VALUE .*ASYNC_ENGINE_IMPL.*'poll'/);
  const err = t.throws(() => createEngine({ impl: 'select' as ImplName }));
  t.is((err as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_VALUE');
  t.regex(err!.message, /'auto', 'completion', 'readiness', 'threadpool' or 'poll'/);
});

test('iocp and kqueue, designed for other platforms and not built, are refused by name with where they stand', async (t) => {
  for (const name of ['iocp', 'kqueue']) {
    const err = t.throws(() => createEngine({ impl: name as ImplName }));
    t.is((err as NodeJS.ErrnoException).code, 'ERR_IMPL_UNAVAILABLE', name);
    t.regex(err!.message, new RegExp(`^impl '${name}' cannot run here: .*docs/architecture\\.md`));
  }
  const r = await runNodeScript(
    `const m = await import(process.env.ENGINE_URL);
     try { m.createEngine(); } catch (err) { console.log(err.code + ' ' + err.message); }`,
    { ASYNC_ENGINE_IMPL: 'kqueue' },
  );
  t.is(r.code, 0, r.stderr);
  t.regex(
    r.stdout.trim(),
    /^ERR_IMPL_UNAVAILABLE ASYNC_ENGINE_IMPL 'kqueue' cannot run here: kqueue of macOS/,
  );
});

forEachImpl(
  "stats() carries this implementation's extra fields and no other implementation's",
  (t, engine, impl) => {
    const s = engine.stats() as unknown as Record<string, unknown>;
    for (const d of Object.values(impls)) {
      for (const key of d.extraStats) {
        t.is(key in s, d.name === impl, `${key} (${d.name}) in stats() of ${impl}`);
        if (d.name === impl) t.is(typeof s[key], 'number');
      }
    }
    const base: Array<keyof EngineStats> = ['impl', 'opsInFlight', 'syscalls', 'sockets'];
    for (const key of base) t.true(key in s, key);
  },
);
