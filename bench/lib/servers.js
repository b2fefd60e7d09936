// Servers under test, each in its own child process: a free loopback port, a raised fd limit
// (through a shell wrapper running `ulimit -n`, then exec, so the pid is the server's), a
// readiness check by TCP connect, and a bounded stop.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';

export const HOST = '127.0.0.1';

/** A TCP port free on the loopback right now. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawns `command args` (with `{port}` in args replaced) under `ulimit -n nofile` and waits
 * until its port accepts connections.
 * @returns {Promise<{ pid: number, port: number, output(): string, stop(): Promise<void> }>}
 */
export async function startServer({ command, args = [], nofile = 65536, env, readyMs = 15_000 }) {
  const port = await freePort();
  const argv = args.map((a) => String(a).replaceAll('{port}', String(port)));
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn('/bin/sh', ['-c', script, 'sh', command, ...argv], {
    cwd: process.cwd(),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (s) => {
    output = (output + s).slice(-4000);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  let exited = false;
  const exit = new Promise((resolve) =>
    child.on('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const server = {
    pid: child.pid,
    port,
    command: [command, ...argv].join(' '),
    output: () => output,
    get alive() {
      return !exited;
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + readyMs;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      await server.stop();
      throw new Error(`${command} did not start on port ${port}: ${output.trim() || 'no output'}`);
    }
    await sleep(25);
  }
  return server;
}

/** Stops every server given, in parallel, ignoring the ones already gone. */
export async function stopAll(servers) {
  await Promise.all(servers.filter(Boolean).map((s) => s.stop()));
}
