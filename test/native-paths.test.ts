// Paths of the native core looked for with `npm run coverage:native`: errors that come back as
// values from the kernel, limits of the framed reads, and ops still pending when their engine
// goes away or their caller cancels them. Also the test-only ASYNC_ENGINE_ADDON loader knob.
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { File, Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  runNodeScript,
  tcpPair,
} from './helpers/harness.js';

noFdLeaks();

forEachImpl('shutdown() with a connect still in progress fails it ECANCELED', async (t, engine) => {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const c = once<Socket>({}, 'connect');
  engine.connect({ host: '127.0.0.1', port }, c.cb);
  // No turn of the loop between the two calls: the connect is still the engine's.
  const down = engine.shutdown();
  await expectErr(t, c, 'ECANCELED');
  await down;
  t.is(c.calls.length, 1);
});

forEachImpl(
  'fsync of a file that cannot be synced fails with EINVAL from fsync',
  async (t, engine) => {
    const o = once<File>({}, 'open /dev/null');
    engine.open('/dev/null', { flags: 'r+' }, o.cb);
    const f = await expectOk(t, o);
    const s = once<void>({}, 'fsync /dev/null');
    engine.fsync(f, s.cb);
    const err = await expectErr(t, s, 'EINVAL');
    t.is(err.syscall, 'fsync');
    // The file stays usable after the failure.
    const w = once<number>({}, 'write after the failed fsync');
    engine.write(f, Buffer.from('x'), w.cb);
    t.is(await expectOk(t, w), 1);
    engine.close(f);
  },
);

forEachImpl(
  'readUntilLineglob: lines that never match, past maxBytes in all, fail ERR_LIMIT',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<string[]>({}, 'lineglob END*');
    engine.readUntilLineglob(p.sock, 'END*', { maxBytes: 64 }, r.cb);
    // Twenty short lines (120 bytes), none of them END: the glob's lines outgrow the limit.
    p.client.write('line\r\n'.repeat(20));
    await expectErr(t, r, 'ERR_LIMIT');
    engine.close(p.sock);
  },
);

forEachImpl(
  'opens cancelled at once: each settles once, ECANCELED when the cancel won, and no fd is left',
  async (t, engine) => {
    const dir = fs.mkdtempSync('/tmp/ae-native-paths-');
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(`${dir}/f`, 'data');
    const trs = Array.from({ length: 32 }, (_, i) => once<File>({}, `open #${i}`));
    for (const tr of trs) engine.open(`${dir}/f`, tr.cb);
    // Cancelled before the engine ran again: an open still queued or running in a worker loses
    // its result (the engine closes an fd opened meanwhile); one already done (some impls open
    // a file inline) keeps it, and the cancel returns false.
    const won = trs.map((tr) => tr.cancel());
    for (const [i, tr] of trs.entries()) {
      if (won[i]) {
        await expectErr(t, tr, 'ECANCELED');
      } else {
        engine.close(await expectOk(t, tr));
      }
      t.is(tr.calls.length, 1);
    }
    // The engine is still usable; noFdLeaks checks the fds after the file's tests.
    const again = once<File>({}, 'open after the cancels');
    engine.open(`${dir}/f`, again.cb);
    engine.close(await expectOk(t, again));
  },
);

test('ASYNC_ENGINE_ADDON loads the addon file it names, and refuses a relative path', async (t) => {
  const addon = fileURLToPath(new URL('../../build/Release/async_engine.node', import.meta.url));
  const script = `const m = await import(process.env.ENGINE_URL);
    const e = m.createEngine({ impl: 'readiness' });
    await e.shutdown();
    console.log('loaded');`;
  const good = await runNodeScript(script, { ASYNC_ENGINE_ADDON: addon });
  t.is(good.code, 0, good.stderr);
  t.is(good.stdout.trim(), 'loaded');

  const relative = await runNodeScript(script, {
    ASYNC_ENGINE_ADDON: 'build/Release/async_engine.node',
  });
  t.not(relative.code, 0);
  t.regex(relative.stderr, /ASYNC_ENGINE_ADDON must be an absolute path/);

  const missing = await runNodeScript(script, { ASYNC_ENGINE_ADDON: `${addon}.missing` });
  t.not(missing.code, 0);
  t.regex(missing.stderr, /async_engine\.node\.missing/);
});
