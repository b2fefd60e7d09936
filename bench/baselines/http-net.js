// Baseline for the HTTP benchmark: examples/http-hello's behaviour on plain node:net, framing
// request heads by hand (find `\r\n\r\n` in the buffered bytes). Replies to the requests of
// one 'data' event go out in one write. With --tls-cert and --tls-key it serves HTTPS on
// node:tls (tls.createServer), the same framing over the decrypted stream.
// usage: node bench/baselines/http-net.js [--port 8082] [--host 127.0.0.1]
//          [--tls-cert FILE --tls-key FILE]
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import {
  MAX_HEAD,
  errorResponse as failure,
  helloResponse as hello,
  parseHead,
} from '../../examples/http-hello/http.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8082' },
    host: { type: 'string', default: '127.0.0.1' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});
const secure = Boolean(values['tls-cert'] && values['tls-key']);

function serve(sock) {
  let buf = Buffer.alloc(0);
  let skip = 0; // body bytes still to discard
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const out = [];
    let pos = 0;
    for (;;) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length - pos);
        skip -= n;
        pos += n;
        if (skip > 0) break;
      }
      const end = buf.indexOf('\r\n\r\n', pos, 'latin1');
      if (end < 0) {
        if (buf.length - pos > MAX_HEAD) {
          out.push(failure(431, 'Request Header Fields Too Large'));
          return sock.end(Buffer.concat(out));
        }
        break;
      }
      if (end - pos > MAX_HEAD) {
        out.push(failure(431, 'Request Header Fields Too Large'));
        return sock.end(Buffer.concat(out));
      }
      const req = parseHead(buf.toString('latin1', pos, end + 4));
      pos = end + 4;
      if (req.status !== undefined) {
        out.push(failure(req.status, req.reason));
        return sock.end(Buffer.concat(out));
      }
      skip = req.bodyLength;
      out.push(hello(req.head, req.connection));
      if (!req.keepAlive) return sock.end(out.length === 1 ? out[0] : Buffer.concat(out));
    }
    buf = pos === buf.length ? Buffer.alloc(0) : buf.subarray(pos);
    if (out.length === 1) sock.write(out[0]);
    else if (out.length > 1) sock.write(Buffer.concat(out));
  });
}

const server = secure
  ? tls.createServer(
      { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
      serve,
    )
  : net.createServer(serve);
// A client that fails its handshake (or a readiness probe that connects and leaves) is dropped.
server.on('tlsClientError', () => {});
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  console.log(`node:${secure ? 'tls' : 'net'} http baseline listening on ${address}:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
