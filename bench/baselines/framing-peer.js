// The peer of the framing case: a node:net server that, on each connection, reads one request
// line `<kind> <count> <seed>\n` and answers with that many records in a single write, then ends
// the stream. Streams are made once and kept (see bench/lib/framing-records.js), so a run costs
// the peer only the sending.
// usage: node bench/baselines/framing-peer.js --port P
import net from 'node:net';
import { parseArgs } from 'node:util';
import { KINDS, makeStream } from '../lib/framing-records.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

const MAX_COUNT = 10_000_000;
const streams = new Map(); // `${kind} ${count} ${seed}` → Buffer

function streamFor(request) {
  const m = /^(\w+) (\d+) (\d+)$/.exec(request);
  if (!m || !KINDS.includes(m[1]) || !(Number(m[2]) <= MAX_COUNT)) return null;
  const key = `${m[1]} ${Number(m[2])} ${Number(m[3])}`;
  let stream = streams.get(key);
  if (!stream) {
    // One stream per kind is enough: a case asks for the same count and seed every round.
    for (const k of streams.keys()) if (k.startsWith(`${m[1]} `)) streams.delete(k);
    stream = makeStream(m[1], Number(m[2]), Number(m[3]));
    streams.set(key, stream);
  }
  return stream;
}

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => {}); // a consumer that stops early resets the connection
  let head = '';
  const onData = (chunk) => {
    head += chunk;
    const eol = head.indexOf('\n');
    if (eol < 0) {
      if (head.length > 200) sock.destroy();
      return;
    }
    sock.off('data', onData);
    const stream = streamFor(head.slice(0, eol).trim());
    if (stream === null) {
      sock.end(`-ERR bad request\r\n`);
      return;
    }
    sock.end(stream);
  };
  sock.setEncoding('latin1');
  sock.on('data', onData);
});
server.listen(Number(values.port), values.host);
process.on('SIGTERM', () => process.exit(0));
