// System calls per request: `redis-benchmark -c 1 -P 1` against each Redis server, with
// `strace -c` attached to every thread of the server for the measured requests only. Counts, not
// time: strace slows the server, so this pass is separate from the timed ones. It shows what a
// request costs the kernel boundary on each implementation (completion: io_uring_enter, shared
// by everything a batch did; readiness: epoll_wait + recv + sendmsg; net: libuv's epoll and
// read/write).
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { redisServers, shown } from '../lib/contenders.js';
import { redisBenchmark } from '../lib/loadgen.js';
import { startServer } from '../lib/servers.js';

export const name = 'syscalls';
export const title = 'System calls per request: redis-benchmark -c 1';
export const order = 15;
export const needs = ['redis-benchmark', 'strace'];
export const wants = ['redis-server'];

export const TESTS = ['ping_inline', 'set', 'get'];

// The lines of `strace -c` output: "% time seconds usecs/call calls errors syscall".
function parseSummary(text) {
  const calls = {};
  let total = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d/.test(f[0]) || line.includes('total')) continue;
    const name = f.at(-1);
    const n = Number(f[3]);
    if (!Number.isFinite(n)) continue;
    calls[name] = (calls[name] ?? 0) + n;
    total += n;
  }
  return { calls, total };
}

// Attaches strace to every thread `pid` has now; resolves to a stop() giving the counts.
async function attach(pid) {
  const out = path.join(os.tmpdir(), `ae-strace-${pid}-${Date.now()}.txt`);
  const tids = readdirSync(`/proc/${pid}/task`);
  const child = spawn('strace', ['-c', '-f', '-o', out, ...tids.flatMap((t) => ['-p', t])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
  // strace says "Process N attached" per thread on stderr once it holds them.
  const deadline = Date.now() + 5000;
  while ((err.match(/attached/g) ?? []).length < tids.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return async () => {
    child.kill('SIGINT');
    await once(child, 'exit');
    const text = readFileSync(out, 'utf8');
    rmSync(out, { force: true });
    return parseSummary(text);
  };
}

export async function run(ctx) {
  const requests = ctx.mode === 'full' ? 10_000 : 2_000;
  const contenders = redisServers(ctx.impls, { redisServer: Boolean(ctx.tools['redis-server']) });
  const rows = [];
  for (const c of contenders) {
    const server = await startServer(c);
    try {
      for (const test of TESTS) {
        const params = { port: server.port, test, clients: 1, pipeline: 1 };
        await redisBenchmark({ ...params, requests: 500 }); // warm-up, not counted
        const stop = await attach(server.pid);
        await redisBenchmark({ ...params, requests });
        const { calls, total } = await stop();
        const perReq = Object.fromEntries(
          Object.entries(calls)
            .map(([k, v]) => [k, v / requests])
            .filter(([, v]) => v >= 0.05)
            .sort((a, b) => b[1] - a[1]),
        );
        rows.push({
          contender: c.name,
          label: c.label,
          test,
          perRequest: total / requests,
          calls: perReq,
        });
        ctx.log(
          `  ${test.padEnd(12)} ${c.name.padEnd(13)} ${(total / requests).toFixed(2)} syscalls/request  ` +
            Object.entries(perReq)
              .slice(0, 4)
              .map(([k, v]) => `${k} ${v.toFixed(2)}`)
              .join(', '),
        );
      }
    } finally {
      await server.stop();
    }
  }
  return {
    requests,
    rows,
    commands: [
      'strace -c -f -p <each thread of the server>',
      `redis-benchmark -c 1 -P 1 -n ${requests} -t TEST`,
    ],
    contenders: contenders.map(shown),
  };
}

export function render(r, kit) {
  const names = [...new Set(r.rows.map((x) => x.contender))];
  const cell = (name, test) => {
    const row = r.rows.find((x) => x.contender === name && x.test === test);
    if (!row) return '–';
    const top = Object.entries(row.calls)
      .slice(0, 3)
      .map(([k, v]) => `${k} ${kit.fmt(v)}`)
      .join(', ');
    return `${kit.fmt(row.perRequest)} (${top})`;
  };
  const md = [
    'One connection, one request at a time (`redis-benchmark -c 1 -P 1`), against each Redis',
    'server; `strace -c` attached to every thread of the server counts its system calls over',
    `${kit.fmt(r.requests)} requests, after 500 unmeasured ones. Counts only: strace slows the`,
    'server, so no time is taken from this pass. Each cell: calls per request, then the three',
    'most frequent.',
    '',
    '```sh',
    ...r.commands,
    '```',
    '',
    kit.table(
      ['Server', ...TESTS],
      names.map((n) => [n, ...TESTS.map((t) => cell(n, t))]),
    ),
  ];
  return { markdown: md.join('\n'), charts: {} };
}
