// Runs the HTTP/1.1 `Hello, World!` server until SIGINT/SIGTERM.
// Try it with `curl -i http://127.0.0.1:8080/` or `wrk -t1 -c50 -d5s http://127.0.0.1:8080/`.
import { parseArgs } from 'node:util';
import { createEngine } from 'async-engine';
import { startHttpServer } from './server.js';

const USAGE = `usage: node examples/http-hello/main.js [options]
  --impl auto|completion|readiness|threadpool   engine implementation (default auto)
  --host HOST   address to bind (default 127.0.0.1)
  --port PORT   TCP port (default 8080; 0 picks one)
  -h, --help`;

let values;
try {
  ({ values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'auto' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
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
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

let engine;
try {
  engine = createEngine({ impl: values.impl });
} catch (err) {
  console.error(`cannot start the engine: ${err.message}`);
  process.exit(1);
}
let server;
try {
  server = startHttpServer({ engine, host: values.host, port: Number(values.port) });
} catch (err) {
  console.error(`cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`);
  await engine.shutdown();
  process.exit(1);
}

const { address, port } = server.address;
const shown = server.address.family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
console.log(`async-engine http-hello: impl=${engine.impl} listening on ${shown}`);

let stopping = false;
async function stop(signal) {
  if (stopping) process.exit(1);
  stopping = true;
  server.close();
  await engine.shutdown();
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
