// The real clients: redis-benchmark and wrk, run with a bounded request count or duration
// and a deadline, their output parsed into numbers.
import { HOST } from './servers.js';
import { run } from './exec.js';

/**
 * The redis-benchmark command line for one workload; with `cacert`, over TLS (`--tls`, the
 * server's certificate checked against that file).
 */
export function redisBenchmarkArgs({ port, test, clients, pipeline, requests, cacert }) {
  return [
    ...(cacert ? ['--tls', '--cacert', cacert] : []),
    '-h',
    HOST,
    '-p',
    String(port),
    '-t',
    test,
    '-n',
    String(requests),
    '-c',
    String(clients),
    '-P',
    String(pipeline),
    '--csv',
  ];
}

/**
 * Runs one redis-benchmark workload: `{ rps, avgMs, p50Ms, p99Ms, maxMs, seconds }`.
 * Throws when it fails or overruns `timeoutMs`.
 */
export async function redisBenchmark(params, { timeoutMs = 60_000 } = {}) {
  const r = await run('redis-benchmark', redisBenchmarkArgs(params), { timeoutMs });
  if (r.timedOut) throw new Error(`redis-benchmark overran ${timeoutMs / 1000} s`);
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  // A test may print more than one line (the LRANGE tests fill the list with LPUSH first): take
  // the one named after the test, else the first.
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('"') && !l.startsWith('"test"'));
  const named = `"${String(params.test).toUpperCase()}`;
  const line =
    lines.find((l) => l.startsWith(`${named}"`) || l.startsWith(`${named} (`)) ?? lines[0];
  if (r.code !== 0 || !line) {
    throw new Error(
      `redis-benchmark failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`,
    );
  }
  const f = line.split(',').map((s) => s.replaceAll('"', ''));
  return {
    rps: Number(f[1]),
    avgMs: Number(f[2]),
    p50Ms: Number(f[4]),
    p99Ms: Number(f[6]),
    maxMs: Number(f[7]),
    seconds: r.seconds,
  };
}

/** The wrk command line. */
export function wrkArgs({ port, threads, connections, seconds, path = '/', scheme = 'http' }) {
  return [
    '-t',
    String(threads),
    '-c',
    String(connections),
    '-d',
    `${seconds}s`,
    '--latency',
    `${scheme}://${HOST}:${port}${path}`,
  ];
}

const UNIT_MS = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** Runs wrk once: `{ requests, rps, p50Ms, p99Ms, errors, non2xx, seconds }`. */
export async function wrk(params) {
  const timeoutMs = (params.seconds + 20) * 1000;
  const r = await run('wrk', wrkArgs(params), { timeoutMs });
  if (r.timedOut) throw new Error(`wrk overran ${timeoutMs / 1000} s`);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(r.stdout);
  if (r.code !== 0 || total === null) {
    throw new Error(`wrk failed (${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
  const pct = (p) => toMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(r.stdout)?.[1] ?? '');
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    r.stdout,
  );
  const errors = socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  return {
    requests: Number(total[1]),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]),
    p50Ms: pct(50),
    p99Ms: pct(99),
    errors,
    non2xx,
    seconds: r.seconds,
  };
}

/**
 * The measure/finish/describe steps of an interleaved redis-benchmark case: each run's request
 * count is sized from the one before it (`sizing`: seconds of wall time and of server CPU to
 * aim for, and the most wall time allowed), and every run reports server CPU per request, req/s
 * and latency. `before(server, contender)` runs ahead of each measurement, when given; `cacert`
 * makes every run a TLS one.
 */
export function redisBenchmarkSteps({ sizing, full, before, cacert }) {
  const sizes = new Map(); // `${workload}|${contender}` → requests for the next run
  return {
    async measure(server, c, w) {
      if (before) await before(server, c);
      const requests = sizes.get(`${w.id}|${c.name}`) ?? w.first;
      const r = await redisBenchmark(
        {
          port: server.port,
          test: w.test,
          clients: w.clients,
          pipeline: w.pipeline,
          requests,
          cacert,
        },
        { timeoutMs: full ? 120_000 : 30_000 },
      );
      return { ...r, requests };
    },
    finish(r, w, c) {
      const cpuPerReq = r.serverCpuS / r.requests;
      // No tick counted: the run was far too short to tell, so take the longest allowed.
      let next = cpuPerReq > 0 ? Math.max(sizing.wall * r.rps, sizing.cpu / cpuPerReq) : Infinity;
      next = Math.min(next, sizing.maxWall * r.rps, 5_000_000);
      sizes.set(`${w.id}|${c.name}`, Math.max(1000, Math.round(next / 1000) * 1000));
      return {
        cpuUsPerReq: cpuPerReq * 1e6,
        rps: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        requests: r.requests,
        serverCpuS: r.serverCpuS,
      };
    },
    describe: (m) =>
      `${Math.round(m.rps).toLocaleString('en-US').padStart(9)} req/s ` +
      `${m.cpuUsPerReq.toFixed(2).padStart(7)} µs/req  p50 ${m.p50Ms} p99 ${m.p99Ms} ms`,
  };
}

/**
 * The interleave hooks of a wrk workload (`load`: threads and connections): a one-second warm-up,
 * the measured run, CPU per request from the server's CPU time, and the line logged per run.
 */
export function wrkHooks(load) {
  return {
    async warmup(server) {
      await wrk({ port: server.port, ...load, seconds: 1 });
    },
    measure: (server, c, w) => wrk({ port: server.port, ...w }),
    finish: (r) => ({
      cpuUsPerReq: (r.serverCpuS * 1e6) / r.requests,
      rps: r.rps,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      requests: r.requests,
      serverCpuS: r.serverCpuS,
      errors: r.errors + r.non2xx,
    }),
    describe: (m) =>
      `${Math.round(m.rps).toLocaleString('en-US').padStart(9)} req/s ` +
      `${m.cpuUsPerReq.toFixed(2).padStart(7)} µs/req  p50 ${m.p50Ms} p99 ${m.p99Ms} ms` +
      (m.errors ? `  ${m.errors} errors` : ''),
  };
}
