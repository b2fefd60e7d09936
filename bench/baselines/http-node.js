// Baseline for the HTTP benchmark: `Hello, World!` on node:http, keep-alive, the same headers
// as examples/http-hello (node:http adds its own Connection/Keep-Alive headers). With --tls-cert
// and --tls-key it is the same server on node:https.
// usage: node bench/baselines/http-node.js [--port 8081] [--host 127.0.0.1]
//          [--tls-cert FILE --tls-key FILE]
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8081' },
    host: { type: 'string', default: '127.0.0.1' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});
const secure = Boolean(values['tls-cert'] && values['tls-key']);
const BODY = Buffer.from('Hello, World!');
function hello(req, res) {
  // Drain any request body, as the other servers do, then answer.
  req.resume();
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(req.method === 'HEAD' ? undefined : BODY);
}
const server = secure
  ? https.createServer(
      { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
      hello,
    )
  : http.createServer(hello);
server.on('tlsClientError', () => {});
server.keepAliveTimeout = 0; // never close an idle keep-alive connection (like the others)
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  console.log(`node:${secure ? 'https' : 'http'} hello listening on ${address}:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
