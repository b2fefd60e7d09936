// TLS handshakes per second: N sequential node:tls client handshakes against an engine TLS
// listener (one per implementation) and against a node:tls server, interleaved round by round.
// Each server runs in its own child process, which reports its CPU time; the figures printed are
// handshakes/s and server CPU per handshake. Run by hand: node bench/tls-handshakes.js [N] [rounds]
// The tls case of `npm run bench` runs the same servers as standalone processes:
//   node bench/tls-handshakes.js --listen KIND --port P --tls-cert FILE --tls-key FILE
// (KIND an engine impl or `node`), and makes the handshakes itself.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { makeCertPair } from './lib/certs.js';

const self = fileURLToPath(import.meta.url);

async function serve(kind, key, cert) {
  let port;
  if (kind === 'node') {
    const server = tls.createServer({ key, cert }, (s) => {
      s.on('error', () => {});
      s.end();
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
  } else {
    const { createEngine } = await import('../dist/index.js');
    const engine = createEngine({ impl: kind });
    const listener = engine.listen({ host: '127.0.0.1', port: 0, tls: { key, cert } });
    const next = () =>
      engine.accept(listener, {
        success: (sock) => {
          engine.close(sock);
          next();
        },
        failure: () => next(),
      });
    next();
    port = listener.address().port;
  }
  const start = process.cpuUsage();
  process.send({ port });
  process.on('message', () => {
    const c = process.cpuUsage(start);
    process.send({ cpuUs: c.user + c.system }, () => process.exit(0));
  });
}

function handshake(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
}

async function measure(kind, n, pair) {
  const child = fork(self, ['--serve', kind], {
    env: { ...process.env, TLS_KEY: pair.key, TLS_CERT: pair.cert },
  });
  const msg = () => new Promise((r) => child.once('message', r));
  const { port } = await msg();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await handshake(port, pair.cert);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const done = msg();
  child.send('stop');
  const { cpuUs } = await done;
  return { rate: n / secs, cpuUs: cpuUs / n };
}

/** Serves handshakes on a fixed port until SIGINT/SIGTERM, for bench/cases/tls.js. */
async function listen(kind, port, key, cert) {
  if (kind === 'node') {
    const server = tls.createServer({ key, cert }, (s) => {
      s.on('error', () => {});
      s.end();
    });
    server.on('tlsClientError', () => {});
    await new Promise((r) => server.listen(port, '127.0.0.1', r));
  } else {
    const { createEngine } = await import('../dist/index.js');
    const engine = createEngine({ impl: kind });
    const listener = engine.listen({ host: '127.0.0.1', port, tls: { key, cert } });
    const next = () =>
      engine.accept(listener, {
        success: (sock) => {
          engine.close(sock);
          next();
        },
        failure: () => next(),
      });
    next();
  }
  console.log(`tls-handshakes ${kind} listening on 127.0.0.1:${port}`);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3], process.env.TLS_KEY, process.env.TLS_CERT);
} else if (process.argv[2] === '--listen') {
  const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
  await listen(
    process.argv[3],
    Number(arg('--port')),
    readFileSync(arg('--tls-key'), 'utf8'),
    readFileSync(arg('--tls-cert'), 'utf8'),
  );
} else {
  const n = Number(process.argv[2] ?? 300);
  const rounds = Number(process.argv[3] ?? 3);
  const made = makeCertPair();
  made.remove();
  const pair = { key: made.key, cert: made.cert };
  const kinds = ['completion', 'readiness', 'poll', 'threadpool'];
  const results = new Map();
  for (let r = 0; r < rounds; r++) {
    for (const kind of kinds) {
      for (const k of [kind, 'node']) {
        const m = await measure(k, n, pair);
        const list = results.get(k) ?? [];
        list.push(m);
        results.set(k, list);
      }
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`${n} sequential node:tls client handshakes, ${rounds} rounds interleaved (median)`);
  for (const [k, list] of results) {
    const rate = median(list.map((m) => m.rate));
    const cpu = median(list.map((m) => m.cpuUs));
    console.log(
      `${(k === 'node' ? 'node:tls' : `engine ${k}`).padEnd(20)} ${rate.toFixed(0).padStart(6)} handshakes/s  ${cpu.toFixed(0).padStart(6)} us server CPU/handshake`,
    );
  }
}
