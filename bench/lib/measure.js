// One measurement against a server child: its CPU time (utime+stime from /proc/<pid>/stat)
// read just before and just after the client runs.
import { cpuSeconds } from './proc.js';

/**
 * Runs `client()` and returns its result with `serverCpuS`, the server's CPU seconds used
 * meanwhile.
 */
export async function withServerCpu(server, client) {
  const before = cpuSeconds(server.pid);
  const result = await client();
  const after = cpuSeconds(server.pid);
  return { ...result, serverCpuS: after - before };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
