// Who runs in each case: async-engine on every available impl, the node baselines, and
// redis-server as the native ceiling. Commands take `{port}`, filled in when a server starts.
import os from 'node:os';

const node = process.execPath;

/** Redis-protocol servers: the demo on each impl, the `net` baseline, redis-server. */
export function redisServers(impls, { redisServer = true } = {}) {
  const list = impls.map((impl) => ({
    name: impl,
    label: `async-engine ${impl}`,
    engine: true,
    command: node,
    args: ['examples/redis-server/main.js', '--impl', impl, '--port', '{port}'],
  }));
  list.push({
    name: 'net',
    label: 'node:net baseline',
    baseline: true,
    command: node,
    args: ['bench/baselines/net-redis-server.js', '--port', '{port}'],
  });
  if (redisServer) {
    list.push({
      name: 'redis-server',
      label: 'redis-server (C, native ceiling)',
      command: 'redis-server',
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        '{port}',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxclients',
        '20000',
        '--dir',
        os.tmpdir(),
        '--loglevel',
        'warning',
      ],
    });
  }
  return list;
}

/** HTTP servers: examples/http-hello on each impl, the node:net baseline, node:http. */
export function httpServers(impls) {
  const list = impls.map((impl) => ({
    name: impl,
    label: `async-engine ${impl}`,
    engine: true,
    command: node,
    args: ['examples/http-hello/main.js', '--impl', impl, '--port', '{port}'],
  }));
  list.push({
    name: 'net',
    label: 'node:net baseline',
    baseline: true,
    command: node,
    args: ['bench/baselines/http-net.js', '--port', '{port}'],
  });
  list.push({
    name: 'node:http',
    label: 'node:http',
    command: node,
    args: ['bench/baselines/http-node.js', '--port', '{port}'],
  });
  return list;
}

/** A command line as a reader would type it (`{port}` left as PORT). */
export function shown({ command, args }) {
  const cmd = command === node ? 'node' : command;
  return [cmd, ...args.map((a) => (a === '' ? "''" : a.replaceAll('{port}', 'PORT')))].join(' ');
}
