// What /proc says about a child process: CPU time (utime+stime of every thread, from
// /proc/<pid>/stat), resident memory and its open-files limit.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on Linux). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds used so far by every thread of `pid`, at 1/CLK_TCK resolution. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name (which may hold spaces) start at field 3, `state`.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]); // field 14
  const stime = Number(fields[12]); // field 15
  return (utime + stime) / CLK_TCK;
}

/** Resident set size of `pid`, in bytes. */
export function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The soft RLIMIT_NOFILE of `pid`. */
export function openFilesLimit(pid) {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(
    readFileSync(`/proc/${pid}/limits`, 'latin1'),
  );
  return m === null ? NaN : m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** User and system CPU seconds used so far by every thread of `pid`, separately. */
export function cpuTimes(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK };
}
