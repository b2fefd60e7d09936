// Connection and server commands: PING ECHO QUIT AUTH HELLO CLIENT INFO CONFIG COMMAND.
// COMMAND COUNT counts the whole table, so index.js fills `count` in.
import os from 'node:os';
import {
  EMPTY_ARRAY,
  NULL_BULK,
  OK,
  PONG,
  arrayReply,
  bulkReply,
  errorReply,
  integerReply,
  nestedReply,
} from '../protocol.js';
import { DATABASES, EXPIRE_PERIOD_MS, globMatch, parseInt64 } from '../db.js';
import { QUIT, SYNTAX, arityError, unknownSubcommand } from './replies.js';

/** The redis-server release whose replies the demo follows (HELLO, INFO). */
export const REDIS_VERSION = '7.0.15';

const NOPROTO = errorReply('NOPROTO unsupported protocol version');
const PROTO_NOT_INTEGER = errorReply('ERR Protocol version is not an integer or out of range');
const BAD_NAME = errorReply(
  'ERR Client names cannot contain spaces, newlines or special characters.',
);
const NO_PASSWORD = errorReply(
  'ERR AUTH <password> called without any password configured for the default user. ' +
    'Are you sure your configuration is correct?',
);
const WRONGPASS = errorReply('WRONGPASS invalid username-password pair or user is disabled.');
const MULTIPLEXING = {
  completion: 'io_uring',
  readiness: 'epoll',
  poll: 'poll',
  threadpool: 'threads',
};

/**
 * What CONFIG GET answers: a Redis without persistence or memory limit. redis-benchmark asks
 * `save` and `appendonly`; redis-cli and client libraries ask `databases`, `maxmemory` and
 * the like. Patterns are globs, as in Redis 7.
 */
function configTable(server) {
  return {
    appendonly: 'no',
    bind: server.address.address,
    databases: String(DATABASES),
    hz: String(1000 / EXPIRE_PERIOD_MS),
    maxclients: '10000',
    maxmemory: '0',
    'maxmemory-policy': 'noeviction',
    port: String(server.address.port),
    'proto-max-bulk-len': String(server.limits.maxBulk),
    save: '',
    timeout: '0',
    'tcp-keepalive': '0',
  };
}

/** `ERR wrong number of arguments for 'config|get' command` and the like. */
function subArity(command, sub) {
  return arityError(`${command}|${sub.toLowerCase()}`);
}

function validName(name) {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 33 || c > 126) return false;
  }
  return true;
}

/** CLIENT INFO's line for one client, with the fields a demo knows. */
function clientLine(client, now) {
  const sock = client.sock;
  const addr = sock?.remoteAddress === undefined ? '' : `${sock.remoteAddress}:${sock.remotePort}`;
  const laddr = sock?.localAddress === undefined ? '' : `${sock.localAddress}:${sock.localPort}`;
  const age = Math.floor((now - client.createdAt) / 1000);
  return (
    `id=${client.id} addr=${addr} laddr=${laddr} name=${client.name ?? ''} age=${age} ` +
    `flags=N db=${client.dbIndex} resp=2\n`
  );
}

function humanBytes(n) {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(2)}K`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(2)}M`;
  return `${(n / 1024 ** 3).toFixed(2)}G`;
}

/** INFO's sections, each a list of `field:value` lines. */
const SECTIONS = {
  server(server) {
    const uptime = Math.floor((Date.now() - server.startedAt) / 1000);
    return [
      `redis_version:${REDIS_VERSION}`,
      'redis_mode:standalone',
      `os:${os.type()} ${os.release()} ${os.arch()}`,
      'arch_bits:64',
      `multiplexing_api:${MULTIPLEXING[server.engine.impl] ?? server.engine.impl}`,
      `process_id:${process.pid}`,
      `tcp_port:${server.address.port}`,
      `uptime_in_seconds:${uptime}`,
      `uptime_in_days:${Math.floor(uptime / 86400)}`,
      `hz:${1000 / EXPIRE_PERIOD_MS}`,
      `executable:${process.argv[1] ?? ''}`,
      `async_engine_impl:${server.engine.impl}`,
      `async_engine_worker:${server.workerIndex}`,
      `async_engine_workers:${server.workerCount}`,
      // With --workers N each worker serves its own keyspace: say so where clients look.
      `async_engine_keyspace:${server.workerCount > 1 ? 'per-worker' : 'single'}`,
    ];
  },
  clients(server) {
    return [
      `connected_clients:${server.connections.size}`,
      'blocked_clients:0',
      'maxclients:10000',
    ];
  },
  memory() {
    const m = process.memoryUsage();
    return [
      `used_memory:${m.heapUsed}`,
      `used_memory_human:${humanBytes(m.heapUsed)}`,
      `used_memory_rss:${m.rss}`,
      `used_memory_rss_human:${humanBytes(m.rss)}`,
      'maxmemory:0',
      'maxmemory_human:0B',
      'maxmemory_policy:noeviction',
    ];
  },
  stats(server) {
    return [
      `total_connections_received:${server.accepted}`,
      `total_commands_processed:${server.commandsProcessed}`,
      `expired_keys:${server.keyspace.expiredKeys}`,
    ];
  },
  keyspace(server) {
    const lines = [];
    for (const db of server.keyspace.dbs) {
      if (db.size > 0) {
        lines.push(`db${db.id}:keys=${db.size},expires=${db.expires.size},avg_ttl=0`);
      }
    }
    return lines;
  },
};
const SECTION_TITLES = {
  server: 'Server',
  clients: 'Clients',
  memory: 'Memory',
  stats: 'Stats',
  keyspace: 'Keyspace',
};

function info(args, client) {
  let names = Object.keys(SECTIONS);
  if (args.length > 1) {
    const asked = args.slice(1).map((a) => a.toLowerCase());
    if (!asked.some((a) => a === 'all' || a === 'everything' || a === 'default')) {
      names = names.filter((name) => asked.includes(name));
    }
  }
  const text = names
    .map((name) => {
      const lines = SECTIONS[name](client.server);
      return `# ${SECTION_TITLES[name]}\r\n${lines.map((l) => `${l}\r\n`).join('')}`;
    })
    .join('\r\n');
  return bulkReply(text);
}

function config(args, client) {
  const sub = args[1].toLowerCase();
  if (sub === 'get') {
    if (args.length < 3) return subArity('config', 'get');
    const table = configTable(client.server);
    const pairs = [];
    const seen = new Set();
    for (let i = 2; i < args.length; i++) {
      const pattern = args[i].toLowerCase();
      for (const [name, value] of Object.entries(table)) {
        if (!seen.has(name) && globMatch(pattern, name)) {
          seen.add(name);
          pairs.push(name, value);
        }
      }
    }
    return arrayReply(pairs);
  }
  if (sub === 'resetstat') return OK;
  if (sub === 'set') {
    // Nothing here can be changed at run time.
    if (args.length < 4) return subArity('config', 'set');
    return errorReply(
      `ERR Unknown option or number of arguments for CONFIG SET - '${args[2].slice(0, 128)}'`,
    );
  }
  return unknownSubcommand('config', args[1]);
}

function clientCommand(args, client) {
  const sub = args[1].toLowerCase();
  switch (sub) {
    case 'id':
      return args.length === 2 ? integerReply(client.id) : subArity('client', sub);
    case 'getname':
      return args.length === 2 ? bulkReply(client.name) : subArity('client', sub);
    case 'setname':
      if (args.length !== 3) return subArity('client', sub);
      if (!validName(args[2])) return BAD_NAME;
      client.name = args[2] === '' ? undefined : args[2];
      return OK;
    case 'info':
      return args.length === 2
        ? bulkReply(clientLine(client, Date.now()))
        : subArity('client', sub);
    case 'list': {
      if (args.length !== 2) return SYNTAX;
      const now = Date.now();
      let text = '';
      for (const conn of client.server.connections) text += clientLine(conn.client, now);
      return bulkReply(text);
    }
    case 'setinfo':
      return args.length === 4 ? OK : subArity('client', sub);
    default:
      return unknownSubcommand('client', args[1]);
  }
}

/** HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only. */
function hello(args, client) {
  if (args.length > 1) {
    const ver = parseInt64(args[1]);
    if (ver === undefined) return PROTO_NOT_INTEGER;
    if (ver !== 2) return NOPROTO;
    for (let i = 2; i < args.length; i++) {
      const opt = args[i].toUpperCase();
      if (opt === 'AUTH' && i + 2 < args.length) return WRONGPASS;
      if (opt === 'SETNAME' && i + 1 < args.length) {
        if (!validName(args[i + 1])) return BAD_NAME;
        client.name = args[++i];
      } else {
        return errorReply(`ERR Syntax error in HELLO option '${args[i]}'`);
      }
    }
  }
  return nestedReply([
    bulkReply('server'),
    bulkReply('redis'),
    bulkReply('version'),
    bulkReply(REDIS_VERSION),
    bulkReply('proto'),
    integerReply(2),
    bulkReply('id'),
    integerReply(client.id),
    bulkReply('mode'),
    bulkReply('standalone'),
    bulkReply('role'),
    bulkReply('master'),
    bulkReply('modules'),
    EMPTY_ARRAY,
  ]);
}

export const commands = {
  ping: {
    arity: -1,
    run(args) {
      if (args.length === 1) return PONG;
      if (args.length === 2) return bulkReply(args[1]);
      return arityError('ping');
    },
  },
  echo: { arity: 2, run: (args) => bulkReply(args[1]) },
  quit: { arity: -1, run: () => QUIT },
  auth: {
    arity: -2,
    run(args) {
      if (args.length > 3) return arityError('auth');
      return args.length === 2 ? NO_PASSWORD : WRONGPASS; // no users, no passwords
    },
  },
  hello: { arity: -1, run: hello },
  client: { arity: -2, run: clientCommand },
  info: { arity: -1, run: info },
  config: { arity: -2, run: config },
  command: {
    // redis-cli 7 sends COMMAND DOCS when it starts interactively, for its hints: an empty
    // answer makes it go without them. Plain COMMAND and COMMAND INFO answer as Redis does for
    // commands it does not know (an empty list, one nil per name).
    arity: -1,
    count: 0,
    run(args) {
      if (args.length === 1) return EMPTY_ARRAY;
      const sub = args[1].toLowerCase();
      if (sub === 'docs' || sub === 'list') return EMPTY_ARRAY;
      if (sub === 'info') return nestedReply(args.slice(2).map(() => NULL_BULK));
      if (sub === 'count') return integerReply(commands.command.count);
      return unknownSubcommand('command', args[1]);
    },
  },
};
