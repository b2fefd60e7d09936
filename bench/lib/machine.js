// Facts about the machine a run was made on, stored with every result.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { toolVersion, which } from './tools.js';

/** The commit measured, `+` when the work tree has changes: `5ebf892+`, or null outside git. */
function commit() {
  try {
    const git = (args) => execFileSync('git', args, { encoding: 'utf8', stdio: 'pipe' }).trim();
    return `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'src', 'native']) ? '+' : ''}`;
  } catch {
    return null;
  }
}

export function machineFacts({ impls = [] } = {}) {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    // keep os.cpus()'s answer
  }
  const tools = {};
  if (which('redis-benchmark')) tools['redis-benchmark'] = toolVersion('redis-benchmark');
  if (which('redis-server')) tools['redis-server'] = toolVersion('redis-server');
  if (which('wrk')) tools.wrk = toolVersion('wrk', ['-v']);
  if (which('fio')) tools.fio = toolVersion('fio');
  if (which('openssl')) tools.openssl = toolVersion('openssl', ['version']);
  return {
    date: new Date().toISOString(),
    kernel: `${os.type()} ${os.release()}`,
    kernelVersion: os.version(),
    arch: os.arch(),
    node: process.version,
    cpu,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    impls,
    commit: commit(),
    tools,
  };
}
