// TLS on every implementation: an engine TLS server with a node:tls client, an engine TLS client
// with a node:tls server, engine to engine; every read op over TLS (lines, delimiters, exact
// counts, whole streams, chains), large transfers compared by hash, pipelined lines; write
// results and counters in plaintext terms.
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Engine,
  deferred,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A node:tls client of an engine TLS listener; resolves with the engine's accepted socket. */
async function engineServerPair(engine: Engine): Promise<{
  sock: Socket;
  client: tls.TLSSocket;
  received: () => Buffer;
  waitFor: (n: number) => Promise<Buffer>;
}> {
  const { self } = testCerts();
  const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
  const acc = once<Socket>({}, 'TLS accept');
  engine.accept(listener, acc.cb);
  const client = tls.connect({
    host: '127.0.0.1',
    port: portOf(listener),
    ca: self.cert,
    servername: 'localhost',
  });
  onCleanup(engine, () => void client.destroy());
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters: Array<[number, (b: Buffer) => void]> = [];
  client.on('data', (b: Buffer) => {
    chunks.push(b);
    total += b.length;
    for (const w of [...waiters]) {
      if (total >= w[0]) {
        waiters.splice(waiters.indexOf(w), 1);
        w[1](Buffer.concat(chunks));
      }
    }
  });
  client.on('error', () => {});
  await withDeadline(
    new Promise((r) => client.once('secureConnect', r)),
    10_000,
    'node:tls client handshake',
  );
  const o = await acc.result();
  engine.close(listener);
  if (!o.ok) throw new Error(`accept failed: ${o.err?.code} ${o.err?.message}`);
  return {
    sock: o.value as Socket,
    client,
    received: () => Buffer.concat(chunks),
    waitFor: (n) =>
      total >= n
        ? Promise.resolve(Buffer.concat(chunks))
        : withDeadline(
            new Promise<Buffer>((r) => waiters.push([n, r])),
            15_000,
            `${n} bytes at node:tls`,
          ),
  };
}

forEachImpl(
  'TLS listener with a node:tls client: lines, delimiters, exact reads, writes',
  async (t, engine) => {
    const { sock, client, waitFor } = await engineServerPair(engine);
    t.true(sock.encrypted);
    client.write('HELLO there\r\nfirst|second|');
    const line = once<string>();
    engine.expectLine(sock, 'HELLO there', line.cb);
    t.is(await expectOk(t, line), 'HELLO there');
    const until = once<Buffer>();
    engine.readUntil(sock, '|', until.cb);
    t.is((await expectOk(t, until)).toString(), 'first|');
    const exact = once<Buffer>();
    engine.readExactly(sock, 7, exact.cb);
    t.is((await expectOk(t, exact)).toString(), 'second|');
    const w = once<number>();
    engine.write(sock, Buffer.from('pong\n'), w.cb);
    t.is(await expectOk(t, w), 5, 'a write settles with its plaintext length');
    t.is((await waitFor(5)).toString(), 'pong\n');
    t.is(sock.bytesWritten, 5, 'bytesWritten counts plaintext');
    engine.close(sock);
  },
);

forEachImpl(
  'TLS listener: pipelined lines and a multi-megabyte transfer each way, hash-compared',
  async (t, engine) => {
    const { sock, client, waitFor } = await engineServerPair(engine);
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'x'.repeat(i % 37)}`);
    client.write(lines.join('\n') + '\n');
    for (const expected of lines) {
      const l = once<string>();
      engine.expectLine(sock, null, l.cb);
      t.is(await expectOk(t, l), expected);
    }
    const big = randomBytes(3 * 1024 * 1024 + 17);
    client.write(big);
    const got = once<Buffer>();
    engine.readExactly(sock, big.length, got.cb);
    t.is(sha(await expectOk(t, got)), sha(big), 'the engine read the client bytes intact');
    const out = randomBytes(2 * 1024 * 1024 + 5);
    const w = once<number>();
    engine.write(sock, out, w.cb);
    t.is(await expectOk(t, w), out.length);
    t.is(sha(await waitFor(out.length)), sha(out), 'node:tls read the engine bytes intact');
    // The client ends: readAll delivers what is left.
    client.end('tail');
    const all = once<Buffer>();
    engine.readAll(sock, all.cb);
    t.is((await expectOk(t, all)).toString(), 'tail');
    engine.close(sock);
  },
);

forEachImpl(
  'TLS client with a node:tls server: connect verifies the certificate, then ops run over TLS',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const server = tls.createServer({ key: leaf.key, cert: leaf.cert }, (s) => {
      s.on('error', () => {});
      s.setEncoding('utf8');
      let buf = '';
      s.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          s.write(line === 'QUIT' ? 'BYE\n' : `ECHO ${line}\n`);
          if (line === 'QUIT') s.end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(engine, () => void server.close());
    const port = (server.address() as { port: number }).port;
    const conn = once<Socket>();
    engine.connect({ host: '127.0.0.1', port, tls: { ca } }, conn.cb);
    const sock = await expectOk(t, conn);
    t.true(sock.encrypted);
    const wrote = once<number>();
    const reply = once<string>();
    engine.writeThenExpectLine(sock, 'one\n', 'ECHO one', [wrote.cb, reply.cb]);
    t.is(await expectOk(t, wrote), 4);
    t.is(await expectOk(t, reply), 'ECHO one');
    const w = once<number>();
    engine.write(sock, 'two\nQUIT\n', w.cb);
    await expectOk(t, w);
    const a = once<string>();
    engine.expectLine(sock, null, a.cb);
    t.is(await expectOk(t, a), 'ECHO two');
    const all = once<Buffer>();
    engine.readAll(sock, all.cb);
    t.is((await expectOk(t, all)).toString(), 'BYE\n', 'the stream ends at the close_notify');
    engine.close(sock);
  },
);

forEachImpl(
  'engine to engine over TLS: a request and reply, and a large echo',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const listener = engine.listen({ port: 0, tls: leaf });
    const acc = once<Socket>();
    engine.accept(listener, acc.cb);
    const conn = once<Socket>();
    engine.connect({ host: 'localhost', port: portOf(listener), tls: { ca } }, conn.cb);
    const server = await expectOk(t, acc);
    const client = await expectOk(t, conn);
    engine.close(listener);
    const big = randomBytes(1024 * 1024);
    const w = once<number>();
    engine.write(client, big, w.cb);
    const r = once<Buffer>();
    engine.readExactly(server, big.length, r.cb);
    t.is(sha(await expectOk(t, r)), sha(big));
    t.is(await expectOk(t, w), big.length);
    const done = deferred<void>();
    const back = once<Buffer>({ success: () => done.resolve() });
    engine.readChunk(client, 100, back.cb);
    const w2 = once<number>();
    engine.write(server, 'ok', w2.cb);
    t.is((await expectOk(t, back)).toString(), 'ok');
    engine.close(client);
    engine.close(server);
  },
);

// ---- verification ----

/** A node:tls server with `pair`, its port; closed when the test ends. */
async function nodeTlsServer(engine: Engine, pair: { key: string; cert: string }): Promise<number> {
  const server = tls.createServer(pair, (s) => {
    s.on('error', () => {});
    s.end('hi\n');
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(engine, () => void server.close());
  return (server.address() as { port: number }).port;
}

/** The code node:tls fails with for the same connection, for comparison. */
function nodeTlsCode(port: number, options: tls.ConnectionOptions): Promise<string | undefined> {
  return new Promise((resolve) => {
    const c = tls.connect({ host: '127.0.0.1', port, ...options }, () => {
      c.destroy();
      resolve(undefined);
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      c.destroy();
      resolve(e.code);
    });
  });
}

const verifyCases: Array<{
  title: string;
  pair: () => { key: string; cert: string };
  options: () => { servername?: string; ca?: string; rejectUnauthorized?: boolean };
  code: string | undefined;
}> = [
  {
    title: 'a self-signed certificate is refused by default',
    pair: () => testCerts().self,
    options: () => ({}),
    code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
  },
  {
    title: 'a self-signed certificate given as ca is accepted',
    pair: () => testCerts().self,
    options: () => ({ ca: testCerts().self.cert }),
    code: undefined,
  },
  {
    title: 'a leaf whose CA is not trusted is refused',
    pair: () => testCerts().leaf,
    options: () => ({}),
    code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  },
  {
    title: 'a certificate for another name is refused',
    pair: () => testCerts().otherName,
    options: () => ({ ca: testCerts().ca }),
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
  },
  {
    title: 'servername chooses the name the certificate must match',
    pair: () => testCerts().otherName,
    options: () => ({ ca: testCerts().ca, servername: 'example.com' }),
    code: undefined,
  },
  {
    title: 'an expired certificate is refused',
    pair: () => testCerts().expired,
    options: () => ({ ca: testCerts().ca }),
    code: 'CERT_HAS_EXPIRED',
  },
  {
    title: 'rejectUnauthorized: false accepts a certificate that does not verify',
    pair: () => testCerts().expired,
    options: () => ({ rejectUnauthorized: false }),
    code: undefined,
  },
];

for (const c of verifyCases) {
  forEachImpl(`verification: ${c.title}, with the code node:tls gives`, async (t, engine) => {
    const port = await nodeTlsServer(engine, c.pair());
    const opts = c.options();
    t.is(await nodeTlsCode(port, opts), c.code, 'node:tls agrees');
    const conn = once<Socket>();
    engine.connect({ host: '127.0.0.1', port, tls: opts }, conn.cb);
    if (c.code === undefined) {
      const sock = await expectOk(t, conn);
      t.true(sock.encrypted);
      const l = once<string>();
      engine.expectLine(sock, 'hi', l.cb);
      await expectOk(t, l);
      engine.close(sock);
    } else {
      const err = await expectErr(t, conn, c.code);
      t.regex(err.message, /^TLS: /);
    }
  });
}

forEachImpl(
  'over TLS, a read that times out or is cancelled loses no plaintext and settles once',
  async (t, engine) => {
    const { sock, client } = await engineServerPair(engine);
    const timed = once<string>({ timeout: 100 });
    engine.expectLine(sock, null, timed.cb);
    await expectErr(t, timed, 'ETIMEDOUT');
    client.write('partial ');
    const cancelled = once<string>();
    engine.expectLine(sock, null, cancelled.cb);
    await new Promise((r) => setTimeout(r, 50));
    cancelled.cancel();
    await expectErr(t, cancelled, 'ECANCELED');
    client.write('line\nnext\n');
    const l = once<string>();
    engine.expectLine(sock, null, l.cb);
    t.is(await expectOk(t, l), 'partial line', 'the bytes buffered when the read left are kept');
    const n = once<string>();
    engine.expectLine(sock, 'next', n.cb);
    await expectOk(t, n);
    t.is(timed.calls.length + cancelled.calls.length, 2);
    engine.close(sock);
  },
);

forEachImpl(
  'ALPN: the server chooses by its preference among what the client offers',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const listener = engine.listen({ port: 0, tls: { ...leaf, alpn: ['h2', 'http/1.1'] } });
    const acc = once<Socket>();
    engine.accept(listener, acc.cb);
    const client = tls.connect({
      host: '127.0.0.1',
      port: portOf(listener),
      ca,
      ALPNProtocols: ['http/1.1', 'h2'],
    });
    client.on('error', () => {});
    onCleanup(engine, () => void client.destroy());
    await withDeadline(new Promise((r) => client.once('secureConnect', r)), 10_000, 'handshake');
    const server = await expectOk(t, acc);
    t.is(server.alpnProtocol, 'h2');
    t.is(client.alpnProtocol, 'h2');
    // The engine as the client of an engine server without ALPN: none.
    const acc2 = once<Socket>();
    const plainAlpn = engine.listen({ port: 0, tls: leaf });
    engine.accept(plainAlpn, acc2.cb);
    const conn = once<Socket>();
    engine.connect(
      { host: '127.0.0.1', port: portOf(plainAlpn), tls: { ca, alpn: ['h2'] } },
      conn.cb,
    );
    const c2 = await expectOk(t, conn);
    const s2 = await expectOk(t, acc2);
    t.is(c2.alpnProtocol, false);
    t.is(s2.alpnProtocol, false);
    t.throws(
      () => engine.connect({ host: '127.0.0.1', port: 1, tls: { alpn: [''] } }, once<Socket>().cb),
      {
        code: 'ERR_INVALID_ARG_VALUE',
      },
    );
    for (const s of [server, c2, s2]) engine.close(s);
    engine.close(listener);
    engine.close(plainAlpn);
  },
);
