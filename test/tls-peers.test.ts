// The openssl command line tools as TLS peers (each spawned with a bounded lifetime): the
// engine as a client of `openssl s_server -rev`, and as the server of `openssl s_client`.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'async-engine';
import {
  type Engine,
  deferred,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  tempDir,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

/** Spawns openssl with args; killed when the test ends (and after 20 s in any case). */
function openssl(engine: Engine, args: string[]): { child: ChildProcess; stdout: () => string } {
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  child.stderr!.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  onCleanup(engine, async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
  });
  return { child, stdout: () => out };
}

function certFiles(engine: Engine): { cert: string; key: string; ca: string } {
  const { leaf, ca } = testCerts();
  const dir = tempDir(engine);
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: join(dir, 'ca.pem') };
  writeFileSync(files.cert, leaf.cert);
  writeFileSync(files.key, leaf.key);
  writeFileSync(files.ca, ca);
  return files;
}

forEachImpl(
  'engine client of openssl s_server -rev: lines go through TLS both ways',
  async (t, engine) => {
    const files = certFiles(engine);
    const server = openssl(engine, [
      's_server',
      '-accept',
      '127.0.0.1:0',
      '-cert',
      files.cert,
      '-key',
      files.key,
      '-rev',
      '-naccept',
      '1',
    ]);
    const port = await withDeadline(
      new Promise<number>((resolve) => {
        const poll = setInterval(() => {
          const m = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(server.stdout());
          if (m) {
            clearInterval(poll);
            resolve(Number(m[1]));
          }
        }, 20);
      }),
      10_000,
      's_server to listen',
    );
    const conn = once<Socket>();
    engine.connect({ host: '127.0.0.1', port, tls: { ca: testCerts().ca } }, conn.cb);
    const sock = await expectOk(t, conn);
    for (const word of ['hello', 'engine', 'over TLS']) {
      const w = once<number>();
      const back = once<string>();
      engine.writeThenExpectLine(sock, `${word}\n`, null, [w.cb, back.cb]);
      t.is(await expectOk(t, back), [...word].reverse().join(''));
    }
    engine.close(sock);
  },
);

forEachImpl(
  'engine server of openssl s_client: it verifies the chain and exchanges lines',
  async (t, engine) => {
    const files = certFiles(engine);
    const { leaf } = testCerts();
    const listener = engine.listen({ port: 0, tls: leaf });
    const acc = once<Socket>();
    engine.accept(listener, acc.cb);
    const client = openssl(engine, [
      's_client',
      '-connect',
      `127.0.0.1:${portOf(listener)}`,
      '-CAfile',
      files.ca,
      '-servername',
      'localhost',
      '-verify_return_error',
      '-quiet',
    ]);
    const sock = await expectOk(t, acc);
    engine.close(listener);
    client.child.stdin!.write('ping\n');
    const l = once<string>();
    engine.expectLine(sock, 'ping', l.cb);
    await expectOk(t, l);
    const w = once<number>();
    engine.write(sock, 'pong\n', w.cb);
    await expectOk(t, w);
    const seen = deferred<void>();
    const poll = setInterval(() => {
      if (client.stdout().includes('pong\n')) seen.resolve();
    }, 20);
    try {
      await withDeadline(seen.promise, 10_000, 's_client to print the reply');
    } finally {
      clearInterval(poll);
    }
    t.pass();
    engine.close(sock);
  },
);
