// `npm start`: runs the Redis-protocol demo server until SIGINT/SIGTERM.
// Try it with `redis-cli -p 6380 ping` or `redis-benchmark -p 6380 -t ping,set,get -q`.
// `npm start -- --workers 2`: two worker threads, one engine each, sharing the port with
// SO_REUSEPORT (each worker has its own keyspace; see README.md).
// `npm start -- --tls`: over TLS, with a self-signed pair made for localhost and 127.0.0.1;
// `--tls-cert cert.pem --tls-key key.pem` serve your own. Try `redis-cli --tls --insecure -p 6380`
// or `redis-cli --tls --cacert cert.pem -p 6380 ping`.
import net from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createEngine } from 'async-engine';
import { DEFAULT_MAX_BULK, DEFAULT_MAX_LINE, DEFAULT_MAX_REQUEST } from './protocol.js';
import { startRedisServer } from './server.js';
import { TLS_ARGS, TLS_USAGE, describeGenerated, tlsFromArgs } from '../tls-options.js';

const USAGE = `usage: node examples/redis-server/main.js [options]
  --impl auto|completion|readiness|threadpool   engine implementation (default auto)
  --host HOST          address to bind (default 127.0.0.1)
  --port PORT          TCP port (default 6380; 0 picks one)
  --drive auto|manual  dispatch from Node's loop, or pump the engine with runOnce()
  --workers N          worker threads, each with its own engine and keyspace, sharing the
                       port with SO_REUSEPORT (default 1: one engine on the main thread)
  --max-line BYTES     longest inline request or header line (default 64k)
  --max-bulk BYTES     largest bulk argument (default 32m)
  --max-request BYTES  largest request as sent, all lines and arguments; a client whose
                       request would grow past it is closed (default 64m)
${TLS_USAGE}
  -h, --help`;

/** Parses `123`, `64k`, `64m`, `1g` (binary units) into bytes. */
function parseSize(text, name) {
  const m = /^(\d+)([kmg]?)b?$/i.exec(text);
  if (!m) throw new Error(`--${name}: not a size: ${text}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()];
  const n = Number(m[1]) * unit;
  if (n <= 0) throw new Error(`--${name} must be positive`);
  if (!Number.isSafeInteger(n)) throw new Error(`--${name}: too large: ${text}`);
  return n;
}

let values;
let maxLine;
let maxBulk;
let maxRequest;
let tls;
try {
  ({ values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'auto' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '6380' },
      drive: { type: 'string', default: 'auto' },
      workers: { type: 'string', default: '1' },
      'max-line': { type: 'string', default: String(DEFAULT_MAX_LINE) },
      'max-bulk': { type: 'string', default: String(DEFAULT_MAX_BULK) },
      'max-request': { type: 'string', default: String(DEFAULT_MAX_REQUEST) },
      ...TLS_ARGS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
    throw new Error(`--port: not a port: ${values.port}`);
  }
  if (values.drive !== 'auto' && values.drive !== 'manual') {
    throw new Error(`--drive must be auto or manual, not ${values.drive}`);
  }
  if (!/^\d+$/.test(values.workers) || Number(values.workers) < 1 || Number(values.workers) > 256) {
    throw new Error(`--workers: not a number from 1 to 256: ${values.workers}`);
  }
  maxLine = parseSize(values['max-line'], 'max-line');
  maxBulk = parseSize(values['max-bulk'], 'max-bulk');
  maxRequest = parseSize(values['max-request'], 'max-request');
  tls = tlsFromArgs(values);
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

const generated = describeGenerated(tls?.generated);
if (generated !== undefined) console.log(generated);
// The generated pair's directory goes when the process ends, however it ends.
process.on('exit', () => tls?.remove());

const workerCount = Number(values.workers);
if (workerCount === 1) await runSingle();
else await runWorkers(workerCount);

function banner(impl, address, suffix = '') {
  const shown =
    address.family === 'IPv6'
      ? `[${address.address}]:${address.port}`
      : `${address.address}:${address.port}`;
  const over = tls === undefined ? '' : ' over TLS';
  console.log(`async-engine redis demo: impl=${impl} listening on ${shown}${suffix}${over}`);
}

/** One engine on the main thread: the default. */
async function runSingle() {
  let engine;
  try {
    engine = createEngine({ impl: values.impl, drive: values.drive });
  } catch (err) {
    console.error(`cannot start the engine: ${err.message}`);
    process.exit(1);
  }
  let server;
  try {
    server = startRedisServer({
      engine,
      host: values.host,
      port: Number(values.port),
      maxLine,
      maxBulk,
      maxRequest,
      tls: tls?.tls,
    });
  } catch (err) {
    console.error(
      `cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`,
    );
    await engine.shutdown();
    process.exit(1);
  }

  banner(engine.impl, server.address);

  let stopping = false;

  // Manual drive: nothing is dispatched unless we pump. Wait up to 50 ms in the engine, then
  // let Node's loop run (signals, timers) before the next round.
  if (values.drive === 'manual') {
    const pump = () => {
      if (stopping) return;
      engine.runOnce({ timeout: 50 });
      setImmediate(pump);
    };
    setImmediate(pump);
  }

  async function stop(signal) {
    if (stopping) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: shutting down`);
    server.close();
    await engine.shutdown();
    console.log('bye');
  }

  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * Fails with EADDRINUSE when something already listens on host:port. SO_REUSEPORT lets any
 * listener of the same user with the option set share the port, so without this check a second
 * `--workers` demo on the same port would silently take half of the first one's connections.
 * A listener without SO_REUSEPORT (node:net's) cannot bind a port that any socket listens on.
 */
async function checkPortFree(host, port) {
  const probe = net.createServer();
  const bare = host === 'localhost' ? '127.0.0.1' : host.replace(/^\[(.*)\]$/, '$1');
  probe.listen({ host: bare, port, exclusive: true });
  try {
    await Promise.race([
      once(probe, 'listening'),
      once(probe, 'error').then(([err]) => Promise.reject(err)),
    ]);
  } finally {
    probe.close();
  }
}

/**
 * `--workers N`: N worker threads (worker.js), one engine and one listener each, all bound to
 * the same host/port with SO_REUSEPORT. The first worker binds the port (so `--port 0` picks
 * one port for all), then the others join it; the banner is printed once every worker listens.
 */
async function runWorkers(count) {
  const workers = [];
  let stopping = false;
  let stopped;

  function spawnWorker(index, port) {
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: {
        impl: values.impl,
        drive: values.drive,
        host: values.host,
        port,
        maxLine,
        maxBulk,
        maxRequest,
        tls: tls?.tls,
        workerIndex: index,
        workerCount: count,
      },
    });
    const w = { index, worker, accepted: undefined, listening: false };
    w.exited = new Promise((resolve) => worker.once('exit', resolve));
    w.ready = new Promise((resolve, reject) => {
      worker.on('message', (msg) => {
        if (msg.type === 'listening') {
          w.listening = true;
          resolve(msg);
        } else if (msg.type === 'failed') {
          reject(Object.assign(new Error(msg.message), { code: msg.code }));
        } else if (msg.type === 'stopped') {
          w.accepted = msg.accepted;
        }
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`worker ${index} exited with code ${code}`)));
    });
    // After start-up, a worker that fails or ends on its own takes the whole server down.
    worker.on('error', (err) => {
      if (w.listening) {
        console.error(`worker ${index}: ${err.stack ?? err}`);
        void stop('worker error', 1);
      }
    });
    worker.on('exit', (code) => {
      if (w.listening && !stopping) {
        console.error(`worker ${index} exited with code ${code}`);
        void stop('worker exit', 1);
      }
    });
    workers.push(w);
    return w;
  }

  /** Asks every worker to shut its engine down, waits for the threads to end, reports. */
  function stop(reason, exitCode = 0) {
    if (stopping) return stopped;
    stopping = true;
    stopped = (async () => {
      if (exitCode === 0) console.log(`${reason}: shutting down`);
      for (const w of workers) w.worker.postMessage({ type: 'stop' });
      const timer = setTimeout(() => {
        console.error('workers did not stop within 5 s: exiting now');
        process.exit(1);
      }, 5000);
      timer.unref();
      await Promise.all(workers.map((w) => w.exited));
      clearTimeout(timer);
      for (const w of workers) {
        if (w.accepted !== undefined) {
          console.log(`worker ${w.index}/${count}: accepted ${w.accepted} connections`);
        }
      }
      if (exitCode !== 0) process.exit(exitCode);
      console.log('bye');
    })();
    return stopped;
  }

  const onSignal = (signal) => {
    if (stopping) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    void stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let first;
  try {
    const port = Number(values.port);
    if (port !== 0) await checkPortFree(values.host, port);
    first = await spawnWorker(1, port).ready;
    if (stopping) return; // a signal arrived meanwhile: the others are not needed
    const rest = [];
    for (let i = 2; i <= count; i++) rest.push(spawnWorker(i, first.address.port).ready);
    await Promise.all(rest);
  } catch (err) {
    console.error(
      `cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`,
    );
    stopping = true;
    for (const w of workers) w.worker.postMessage({ type: 'stop' });
    await Promise.race([
      Promise.all(workers.map((w) => w.exited)),
      new Promise((resolve) => setTimeout(resolve, 5000).unref()),
    ]);
    process.exit(1);
  }
  if (stopping) return; // a signal arrived during start-up
  banner(first.impl, first.address, ` with ${count} workers`);
}
