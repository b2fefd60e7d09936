// The real clients: redis-benchmark and wrk, run with a bounded request count or duration
// and a deadline, their output parsed into numbers.
import { HOST } from './servers.js';
import { run } from './exec.js';

/** The redis-benchmark command line for one workload. */
export function redisBenchmarkArgs({ port, test, clients, pipeline, requests }) {
  return [
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
  const line = r.stdout.split('\n').find((l) => l.startsWith('"') && !l.startsWith('"test"'));
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
export function wrkArgs({ port, threads, connections, seconds, path = '/' }) {
  return [
    '-t',
    String(threads),
    '-c',
    String(connections),
    '-d',
    `${seconds}s`,
    '--latency',
    `http://${HOST}:${port}${path}`,
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
