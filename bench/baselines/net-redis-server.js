// Baseline for the Redis benchmarks: the demo's RESP2 subset on plain node:net, with no engine.
// Inline and multibulk requests, pipelining; replies to one 'data' event go out in one write.
// With --tls-cert and --tls-key it serves over node:tls (tls.createServer), the same parsing.
// usage: node bench/baselines/net-redis-server.js [--port 6390] [--host 127.0.0.1]
//          [--tls-cert FILE --tls-key FILE]
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '6390' },
    host: { type: 'string', default: '127.0.0.1' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});
const secure = Boolean(values['tls-cert'] && values['tls-key']);
const store = new Map();
const CONFIG = { save: '', appendonly: 'no' };
const err = (m) => `-ERR ${m}\r\n`;
const bulk = (v) => (v === undefined ? '$-1\r\n' : `$${v.length}\r\n${v}\r\n`);
const arity = (name) => err(`wrong number of arguments for '${name}' command`);
const ARITY = {
  ping: -1,
  echo: 2,
  set: -3,
  get: 2,
  del: -2,
  exists: -2,
  incr: 2,
  command: -1,
  config: -2,
  quit: -1,
};

function run(a) {
  const name = a[0].toLowerCase();
  const n = ARITY[name];
  if (n === undefined) {
    const shown = a
      .slice(1)
      .map((x) => `'${x}' `)
      .join('')
      .replace(/[\r\n]/g, ' ');
    return err(`unknown command '${a[0]}', with args beginning with: ${shown}`);
  }
  if (n > 0 ? a.length !== n : a.length < -n) return arity(name);
  switch (name) {
    case 'ping':
      return a.length === 1 ? '+PONG\r\n' : a.length === 2 ? bulk(a[1]) : arity('ping');
    case 'echo':
      return bulk(a[1]);
    case 'set':
      return a.length === 3 ? (store.set(a[1], a[2]), '+OK\r\n') : err('syntax error');
    case 'get':
      return bulk(store.get(a[1]));
    case 'del':
      return `:${a.slice(1).filter((k) => store.delete(k)).length}\r\n`;
    case 'exists':
      return `:${a.slice(1).filter((k) => store.has(k)).length}\r\n`;
    case 'incr': {
      const v = store.get(a[1]) ?? '0';
      if (
        !/^(0|-?[1-9]\d{0,18})$/.test(v) ||
        BigInt(v) > 2n ** 63n - 1n ||
        BigInt(v) < -(2n ** 63n)
      )
        return err('value is not an integer or out of range');
      if (BigInt(v) === 2n ** 63n - 1n) return err('increment or decrement would overflow');
      const next = String(BigInt(v) + 1n);
      store.set(a[1], next);
      return `:${next}\r\n`;
    }
    case 'command':
      return '*0\r\n';
    case 'config': {
      const key = a[2]?.toLowerCase(); // redis-benchmark asks for save and appendonly
      return CONFIG[key] === undefined ? '*0\r\n' : `*2\r\n${bulk(key)}${bulk(CONFIG[key])}`;
    }
    default:
      return null; // quit
  }
}

const int = (s) => (/^-?\d+$/.test(s) ? Number(s) : NaN);

// Appends every complete request in buf (from pos) to out; returns the offset of the rest.
// Throws on a malformed frame.
function parse(buf, pos, out) {
  for (;;) {
    const eol = buf.indexOf(10, pos);
    if (eol < 0) return pos;
    if (buf[pos] !== 42) {
      // inline
      const words = buf.toString('latin1', pos, eol).trim().split(/\s+/).filter(Boolean);
      if (words.length) out.push(words);
      pos = eol + 1;
      continue;
    }
    const argc = int(buf.toString('latin1', pos + 1, eol).trim());
    if (!Number.isInteger(argc) || argc > 1024 * 1024) throw new Error('invalid multibulk length');
    const args = [];
    let p = eol + 1;
    for (let i = 0; i < argc; i++) {
      const e = buf.indexOf(10, p);
      if (e < 0) return pos;
      if (buf[p] !== 36) throw new Error(`expected '$', got '${String.fromCharCode(buf[p])}'`);
      const len = int(buf.toString('latin1', p + 1, e).trim());
      if (!Number.isInteger(len) || len < 0 || len > 512 * 1024 * 1024)
        throw new Error('invalid bulk length');
      if (e + 1 + len + 2 > buf.length) return pos;
      args.push(buf.toString('latin1', e + 1, e + 1 + len));
      p = e + 1 + len + 2;
    }
    if (argc > 0) out.push(args);
    pos = p;
  }
}

function serve(sock) {
  let buf = Buffer.alloc(0);
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const reqs = [];
    let reply = '';
    try {
      buf = buf.subarray(parse(buf, 0, reqs));
    } catch (e) {
      for (const r of reqs) reply += run(r) ?? '+OK\r\n';
      return sock.end(Buffer.from(reply + err(`Protocol error: ${e.message}`), 'latin1'));
    }
    for (const r of reqs) {
      const out = run(r);
      if (out === null) return sock.end(Buffer.from(reply + '+OK\r\n', 'latin1'));
      reply += out;
    }
    if (reply) sock.write(Buffer.from(reply, 'latin1'));
  });
}

const server = secure
  ? tls.createServer(
      { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
      serve,
    )
  : net.createServer(serve);
server.on('tlsClientError', () => {});
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  console.log(`node:${secure ? 'tls' : 'net'} redis baseline listening on ${address}:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
