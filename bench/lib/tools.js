// The load generators and the native peer: found on PATH, or installed from Debian's packages
// with apt-get when the runner is root (otherwise it says how and the cases that need them skip).
import { execFileSync, spawnSync } from 'node:child_process';

/** Tool → the Debian package that ships it. */
export const PACKAGES = {
  'redis-benchmark': 'redis-tools',
  'redis-cli': 'redis-tools',
  'redis-server': 'redis-server',
  wrk: 'wrk',
  fio: 'fio',
  strace: 'strace',
};

export function which(tool) {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Makes sure `tools` are installed. Returns `{ [tool]: path | null }`.
 * @param {string[]} tools
 * @param {{ install: boolean, log: (s: string) => void }} options
 */
export function ensureTools(tools, { install = true, log = console.log } = {}) {
  const found = Object.fromEntries(tools.map((t) => [t, which(t)]));
  const missing = tools.filter((t) => !found[t]);
  if (missing.length === 0) return found;
  const packages = [...new Set(missing.map((t) => PACKAGES[t] ?? t))];
  const command = `apt-get update && apt-get install -y ${packages.join(' ')}`;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!install || !root || !which('apt-get')) {
    log(`missing: ${missing.join(', ')}. Install them with:\n  sudo sh -c '${command}'`);
    log('the cases that need them are skipped.');
    return found;
  }
  log(`installing ${packages.join(' ')} (${missing.join(', ')} missing): ${command}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 300_000 };
  spawnSync('apt-get', ['update'], opts);
  spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], opts);
  for (const t of missing) found[t] = which(t);
  const still = missing.filter((t) => !found[t]);
  if (still.length)
    log(`still missing after apt-get: ${still.join(', ')}; their cases are skipped.`);
  return found;
}

/** The first line a tool prints for its version, or null. */
export function toolVersion(tool, args = ['--version']) {
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0];
  return text || null;
}
