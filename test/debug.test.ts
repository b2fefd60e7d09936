// createEngine({ debug: true }) (or ASYNC_ENGINE_DEBUG=1): the first failure dropped because its
// Callback has no `failure` slot is a process warning; without debug, failures drop silently.
import { createEngine } from 'async-engine';
import { forEachImpl, noFdLeaks, runNodeScript } from './helpers/harness.js';

noFdLeaks();

// Two refused connects and a mismatched line framed from held bytes, none with a failure slot;
// then it prints the warnings' codes and messages it saw.
const SCRIPT = (config: string) => `
const { createEngine, Callback } = await import(process.env.ENGINE_URL);
const net = await import('node:net');
const warnings = [];
process.on('warning', (w) => warnings.push(w.code + ' ' + w.message));
const engine = createEngine({ impl: process.env.IMPL, ${config} });
const l = engine.listen({ port: 0 });
const port = l.address().port;
engine.close(l);
for (let i = 0; i < 2; i++) {
  await new Promise((resolve) => {
    engine.connect({ host: '127.0.0.1', port }, new Callback({}));
    setTimeout(resolve, 200);
  });
}
const srv = net.createServer((c) => c.end('one\\ntwo\\n')).listen(0, '127.0.0.1');
await new Promise((r) => srv.once('listening', r));
const sock = await new Promise((resolve, reject) =>
  engine.connect({ host: '127.0.0.1', port: srv.address().port }, new Callback({ success: (_v, s) => resolve(s), failure: reject })));
await new Promise((resolve) => engine.expectLine(sock, null, new Callback({ success: resolve })));
engine.expectLine(sock, 'nope', new Callback({}));
await new Promise((r) => setTimeout(r, 100));
engine.close(sock);
srv.close();
await engine.shutdown();
await new Promise((r) => setImmediate(r));
console.log(JSON.stringify(warnings));
`;

forEachImpl(
  'debug: the first dropped failure is a warning, once; without debug, none',
  async (t, _e, impl) => {
    const on = await runNodeScript(SCRIPT('debug: true'), { IMPL: impl, ASYNC_ENGINE_DEBUG: '' });
    t.is(on.code, 0, on.stderr);
    const seen = JSON.parse(on.stdout.trim()) as string[];
    t.is(seen.length, 1, `one warning: ${on.stdout}`);
    t.regex(seen[0]!, /^ASYNC_ENGINE_DROPPED_FAILURE .*no failure slot: .*ECONNREFUSED/);
    const off = await runNodeScript(SCRIPT('debug: false'), {
      IMPL: impl,
      ASYNC_ENGINE_DEBUG: '1',
    });
    t.is(off.code, 0, off.stderr);
    t.deepEqual(JSON.parse(off.stdout.trim()), [], 'debug: false wins over the environment');
    const env = await runNodeScript(SCRIPT(''), { IMPL: impl, ASYNC_ENGINE_DEBUG: '1' });
    t.is(env.code, 0, env.stderr);
    t.is((JSON.parse(env.stdout.trim()) as string[]).length, 1, 'ASYNC_ENGINE_DEBUG=1 turns it on');
    const quiet = await runNodeScript(SCRIPT(''), { IMPL: impl, ASYNC_ENGINE_DEBUG: '' });
    t.deepEqual(JSON.parse(quiet.stdout.trim()), [], 'silent by default');
  },
);

forEachImpl('config.debug must be a boolean', (t, _e, impl) => {
  t.throws(() => createEngine({ impl, debug: 1 as unknown as boolean }), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  });
});
