// Cost-per-op client on node:net, the baseline of lineclient-engine.js: the same
// `PING\r\n` → `+PONG` loop on `conns` connections, lines split by hand from 'data' events.
// usage: node bench/baselines/lineclient-net.js --port P [--ops 100000] [--conns 1] [--seconds 10]
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
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

const sockets = [];
let started = 0;
let done = 0;
let failure = null;
let finished = false;
let t0;
let cpu0;

function finish() {
  if (finished) return;
  finished = true;
  const measured = t0 !== undefined;
  const seconds = measured ? Number(process.hrtime.bigint() - t0) / 1e9 : 0;
  const cpu = measured ? process.cpuUsage(cpu0) : { user: 0, system: 0 };
  const ops = measured ? done - warmup : 0;
  for (const s of sockets) s.destroy();
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({ impl: 'net', ops, seconds, cpuS, error: failure }));
}

function next(sock) {
  if (started >= total + warmup || Date.now() > deadline || failure) return false;
  started++;
  sock.write(REQUEST);
  return true;
}

function onLine(sock, line) {
  if (line !== '+PONG') {
    failure = `unexpected reply: ${line.slice(0, 40)}`;
    return finish();
  }
  done++;
  if (done === warmup) {
    t0 = process.hrtime.bigint();
    cpu0 = process.cpuUsage();
  }
  if (!next(sock) && done === started) finish();
}

function loop(sock) {
  let pending = '';
  sock.setEncoding('latin1');
  sock.on('data', (chunk) => {
    pending += chunk;
    let eol;
    while ((eol = pending.indexOf('\n')) >= 0) {
      const end = eol > 0 && pending.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
      const line = pending.slice(0, end);
      pending = pending.slice(eol + 1);
      onLine(sock, line);
    }
  });
  next(sock);
}

let connected = 0;
for (let i = 0; i < conns; i++) {
  const sock = net.connect({ host: values.host, port: Number(values.port), noDelay: true });
  sock.on('error', (err) => {
    failure = `${err.code ?? err.message}`;
    if (connected < conns) {
      console.log(JSON.stringify({ error: `connect: ${failure}` }));
      process.exit(1);
    }
    finish();
  });
  sock.once('connect', () => {
    sockets.push(sock);
    if (++connected === conns) sockets.forEach(loop);
  });
}
