// Unix socket paths: the file goes with its listener, and over-long paths are refused up front.
import test from 'ava';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, Callback, type Socket } from 'async-engine';
import { implsUnderTest } from './helpers/harness.js';

for (const impl of implsUnderTest()) {
  test(`[${impl}] closing a Unix listener removes its file; the path can be listened on again`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ae-unix-'));
    const path = join(dir, 's.sock');
    const engine = createEngine({ impl });
    try {
      const l1 = engine.listen({ path });
      t.true(existsSync(path));
      engine.close(l1);
      t.false(existsSync(path));
      const l2 = engine.listen({ path });
      t.is(l2.address(), path);
    } finally {
      await engine.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`[${impl}] an over-long Unix path throws and leaves nothing queued`, async (t) => {
    const engine = createEngine({ impl });
    const long = '/tmp/' + 'x'.repeat(120);
    let failures = 0;
    const cb = new Callback<Socket>({ failure: () => failures++ });
    t.throws(() => engine.listen({ path: long }), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => engine.connect({ path: long }, cb), { code: 'ERR_INVALID_ARG_VALUE' });
    t.is(engine.stats().opsInFlight, 0);
    // The Callback is free: it can be used for a real op at once.
    t.notThrows(() => engine.connect({ path: '/nonexistent/async-engine.sock' }, cb));
    await engine.shutdown();
    t.is(failures, 1);
  });
}
