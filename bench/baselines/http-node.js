// Baseline for the HTTP benchmark: `Hello, World!` on node:http, keep-alive, the same headers
// as examples/http-hello (node:http adds its own Connection/Keep-Alive headers).
// usage: node bench/baselines/http-node.js [--port 8081] [--host 127.0.0.1]
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8081' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const BODY = Buffer.from('Hello, World!');
const server = http.createServer((req, res) => {
  // Drain any request body, as the other servers do, then answer.
  req.resume();
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(req.method === 'HEAD' ? undefined : BODY);
});
server.keepAliveTimeout = 0; // never close an idle keep-alive connection (like the others)
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  console.log(`node:http hello listening on ${address}:${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
