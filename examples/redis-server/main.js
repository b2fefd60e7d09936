// `npm start`: runs the Redis-protocol demo server until SIGINT/SIGTERM.
// Try it with `redis-cli -p 6380 ping` or `redis-benchmark -p 6380 -t ping,set,get -q`.
import { parseArgs } from 'node:util';
import { createEngine } from 'async-engine';
import { DEFAULT_MAX_BULK, DEFAULT_MAX_LINE } from './protocol.js';
import { startRedisServer } from './server.js';

const USAGE = `usage: node examples/redis-server/main.js [options]
  --impl auto|completion|readiness|threadpool   engine implementation (default auto)
  --host HOST          address to bind (default 127.0.0.1)
  --port PORT          TCP port (default 6380; 0 picks one)
  --drive auto|manual  dispatch from Node's loop, or pump the engine with runOnce()
  --max-line BYTES     longest inline request or header line (default 1m)
  --max-bulk BYTES     largest bulk argument (default 64m)
  -h, --help`;

/** Parses `123`, `64k`, `64m`, `1g` (binary units) into bytes. */
function parseSize(text, name) {
  const m = /^(\d+)([kmg]?)b?$/i.exec(text);
  if (!m) throw new Error(`--${name}: not a size: ${text}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()];
  const n = Number(m[1]) * unit;
  if (n <= 0) throw new Error(`--${name} must be positive`);
  return n;
}

let values;
let maxLine;
let maxBulk;
try {
  ({ values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'auto' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '6380' },
      drive: { type: 'string', default: 'auto' },
      'max-line': { type: 'string', default: String(DEFAULT_MAX_LINE) },
      'max-bulk': { type: 'string', default: String(DEFAULT_MAX_BULK) },
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
  maxLine = parseSize(values['max-line'], 'max-line');
  maxBulk = parseSize(values['max-bulk'], 'max-bulk');
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

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
  });
} catch (err) {
  console.error(`cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`);
  await engine.shutdown();
  process.exit(1);
}

const { address, port } = server.address;
const shown = server.address.family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
console.log(`async-engine redis demo: impl=${engine.impl} listening on ${shown}`);

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
