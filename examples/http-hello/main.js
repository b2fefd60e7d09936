// Runs the HTTP/1.1 `Hello, World!` server until SIGINT/SIGTERM.
// Try it with `curl -i http://127.0.0.1:8080/` or `wrk -t1 -c50 -d5s http://127.0.0.1:8080/`.
// HTTPS (ALPN http/1.1): `--tls` alone serves a self-signed pair made for localhost and
// 127.0.0.1 in a temporary directory (the path is printed; `curl --cacert DIR/cert.pem
// https://localhost:8080/`, or `curl -k`); `--tls --tls-cert cert.pem --tls-key key.pem` serves
// your own (make one with `openssl req`, see README.md).
import { parseArgs } from 'node:util';
import { createEngine } from 'async-engine';
import { startHttpServer } from './server.js';
import { TLS_ARGS, TLS_USAGE, describeGenerated, tlsFromArgs } from '../tls-options.js';

const USAGE = `usage: node examples/http-hello/main.js [options]
  --impl auto|completion|readiness|threadpool   engine implementation (default auto)
  --host HOST   address to bind (default 127.0.0.1)
  --port PORT   TCP port (default 8080; 0 picks one)
${TLS_USAGE}
  -h, --help`;

let values;
let tls;
try {
  ({ values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'auto' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
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
  tls = tlsFromArgs(values, ['http/1.1']);
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

const generated = describeGenerated(tls?.generated);
if (generated !== undefined) console.log(generated);
process.on('exit', () => tls?.remove());

let engine;
try {
  engine = createEngine({ impl: values.impl });
} catch (err) {
  console.error(`cannot start the engine: ${err.message}`);
  process.exit(1);
}
let server;
try {
  server = startHttpServer({
    engine,
    host: values.host,
    port: Number(values.port),
    tls: tls?.tls,
  });
} catch (err) {
  console.error(`cannot listen on ${values.host}:${values.port}: ${err.code ?? ''} ${err.message}`);
  await engine.shutdown();
  process.exit(1);
}

const { address, port } = server.address;
const shown = server.address.family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
const over = tls === undefined ? '' : ' over TLS (https)';
console.log(`async-engine http-hello: impl=${engine.impl} listening on ${shown}${over}`);

let stopping = false;
async function stop(signal) {
  if (stopping) process.exit(1);
  stopping = true;
  server.close();
  await engine.shutdown();
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
