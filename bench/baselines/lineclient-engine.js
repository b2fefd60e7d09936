// Cost-per-op client on async-engine: `conns` connections, each running a request/response
// loop of `PING\r\n` → `+PONG` with writeThenExpectLine (one chain per op, callbacks reused).
// Prints one JSON line: ops, seconds, CPU seconds of this process (all threads) for the
// measured ops, after a warm-up.
// usage: node bench/baselines/lineclient-engine.js --port P [--impl readiness] [--ops 100000]
//          [--conns 1] [--seconds 10]
import { parseArgs } from 'node:util';
import { Callback, createEngine } from 'async-engine';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    impl: { type: 'string', default: 'auto' },
    ops: { type: 'string', default: '100000' },
    conns: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '10' },
  },
});
const total = Number(values.ops);
const conns = Number(values.conns);
const warmup = Math.min(2000, Math.floor(total / 10));
const deadline = Date.now() + Number(values.seconds) * 1000;
const REQUEST = Buffer.from('PING\r\n');

const engine = createEngine({ impl: values.impl });
const sockets = [];
let started = 0; // ops submitted, warm-up included
let done = 0;
let failure = null;
let t0;
let cpu0;

let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  const measured = t0 !== undefined;
  const seconds = measured ? Number(process.hrtime.bigint() - t0) / 1e9 : 0;
  const cpu = measured ? process.cpuUsage(cpu0) : { user: 0, system: 0 };
  const ops = measured ? done - warmup : 0;
  for (const s of sockets) engine.close(s);
  engine.shutdown().then(() => {
    const cpuS = (cpu.user + cpu.system) / 1e6;
    console.log(JSON.stringify({ impl: engine.impl, ops, seconds, cpuS, error: failure }));
  });
}

const stopped = () => started >= total + warmup || Date.now() > deadline || failure !== null;

function loop(sock) {
  const written = new Callback({ failure: () => {} }); // the chain's line stage reports it
  const answered = new Callback({
    success: () => {
      done++;
      if (done === warmup) {
        t0 = process.hrtime.bigint();
        cpu0 = process.cpuUsage();
      }
      if (!stopped()) {
        started++;
        engine.writeThenExpectLine(sock, REQUEST, '+PONG', [written, answered]);
      } else if (done === started) {
        finish(); // the last op in flight on any connection
      }
    },
    failure: (err) => {
      failure = `${err.code}: ${err.message}`;
      finish();
    },
  });
  started++;
  engine.writeThenExpectLine(sock, REQUEST, '+PONG', [written, answered]);
}

let connected = 0;
for (let i = 0; i < conns; i++) {
  engine.connect(
    { host: values.host, port: Number(values.port) },
    new Callback({
      success: (sock) => {
        sockets.push(sock);
        if (++connected === conns) sockets.forEach(loop);
      },
      failure: (err) => {
        console.log(JSON.stringify({ error: `connect: ${err.code}` }));
        process.exit(1);
      },
    }),
  );
}
