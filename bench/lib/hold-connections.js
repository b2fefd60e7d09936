// Child program for the scale case: opens idle TCP connections to a server and holds them.
// Reads commands on stdin, one a line, and answers each with one JSON line on stdout:
//   open N [STALL_MS [DEADLINE_MS]]  open connections until N are held (at most 256 connects
//       in flight); gives up when none completes for STALL_MS (default 5000) or after
//       DEADLINE_MS (default 60000)
//   count    how many are held
// Exits when stdin ends, closing everything.
// usage: node bench/lib/hold-connections.js PORT [HOST]
import net from 'node:net';
import readline from 'node:readline';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
const IN_FLIGHT = 256;

const held = new Set();
const connecting = new Set();
let failed = 0;
let lastError = '';

function openOne() {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    connecting.add(sock);
    sock.once('close', () => connecting.delete(sock));
    sock.on('error', (err) => {
      lastError = err.code ?? err.message;
      held.delete(sock);
    });
    sock.once('connect', () => {
      connecting.delete(sock);
      held.add(sock);
      sock.once('close', () => held.delete(sock));
      resolve(true);
    });
    sock.once('close', () => resolve(false));
  });
}

async function openUntil(target, stallMs, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  const started = Date.now();
  let lastProgress = Date.now();
  let inFlight = 0;
  let stalled = false;
  await new Promise((resolve) => {
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress > stallMs || Date.now() > deadline) {
        stalled = true;
        for (const s of connecting) s.destroy(); // their 'close' ends the wait
        clearInterval(watchdog);
        resolve();
      }
    }, 100);
    const pump = () => {
      while (
        !stalled &&
        held.size + inFlight < target &&
        inFlight < IN_FLIGHT &&
        Date.now() < deadline
      ) {
        inFlight++;
        openOne().then((ok) => {
          inFlight--;
          if (ok) lastProgress = Date.now();
          else failed++;
          if (failed > 100) stalled = true;
          pump();
        });
      }
      if (inFlight === 0) {
        clearInterval(watchdog);
        resolve();
      }
    };
    pump();
  });
  return { held: held.size, failed, lastError, stalled, seconds: (Date.now() - started) / 1000 };
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const [cmd, arg, stall, deadline] = line.trim().split(/\s+/);
  let answer;
  if (cmd === 'open') {
    answer = await openUntil(Number(arg), Number(stall ?? 5000), Number(deadline ?? 60_000));
  } else answer = { held: held.size, failed, lastError };
  process.stdout.write(`${JSON.stringify(answer)}\n`);
});
rl.on('close', () => {
  for (const s of held) s.destroy();
  process.exit(0);
});
