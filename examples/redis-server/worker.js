// One worker thread of `main.js --workers N`: its own engine, running the same Redis-protocol
// server on the shared host/port with SO_REUSEPORT, so the kernel spreads new connections
// across the workers. Each worker has its own keyspace (see README.md).
//
// Messages to the parent: { type: 'listening', impl, address } once listening,
// { type: 'failed', message, code } if the engine or the listener could not be made,
// { type: 'stopped', accepted } after a { type: 'stop' } request has shut the engine down.
import { parentPort, workerData } from 'node:worker_threads';
import { createEngine } from 'async-engine';
import { startRedisServer } from './server.js';

const { impl, drive, host, port, maxLine, maxBulk, maxRequest, tls, workerIndex, workerCount } =
  workerData;

let engine;
let server;
try {
  engine = createEngine({ impl, drive });
  server = startRedisServer({
    engine,
    host,
    port,
    maxLine,
    maxBulk,
    maxRequest,
    reusePort: true,
    tls,
    workerIndex,
    workerCount,
  });
} catch (err) {
  parentPort.postMessage({ type: 'failed', message: err.message, code: err.code });
  await engine?.shutdown();
  parentPort.close();
}

if (server !== undefined) {
  let stopping = false;

  // Manual drive: as in main.js, pump the engine and let the thread's loop run in between.
  if (drive === 'manual') {
    const pump = () => {
      if (stopping) return;
      engine.runOnce({ timeout: 50 });
      setImmediate(pump);
    };
    setImmediate(pump);
  }

  parentPort.on('message', async (msg) => {
    if (msg?.type !== 'stop' || stopping) return;
    stopping = true;
    server.close();
    await engine.shutdown();
    parentPort.postMessage({ type: 'stopped', accepted: server.accepted });
    // Nothing else keeps this thread alive: closing the port lets it exit.
    parentPort.close();
  });

  parentPort.postMessage({ type: 'listening', impl: engine.impl, address: server.address });
}
