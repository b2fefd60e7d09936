// TLS contexts are made once per configuration, not per handshake: one per listener, shared by
// every socket it accepts, and one per client configuration (ca, rejectUnauthorized, alpn),
// kept per engine; the name checked stays per connection; a session ticket one accepted
// connection issues resumes on the next; stats().tlsContexts counts them and returns to 0.
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  sleep,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

const N = 100;

/** A node:tls client of `port`; resolves once its handshake is done, with its session if asked. */
function nodeClient(
  engine: Engine,
  port: number,
  ca: string,
  session?: Buffer,
): Promise<{ client: tls.TLSSocket; ticket: Promise<Buffer> }> {
  const client = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', session });
  onCleanup(engine, () => void client.destroy());
  client.on('error', () => {});
  const ticket = new Promise<Buffer>((r) => client.once('session', r));
  return withDeadline(
    new Promise<void>((r) => client.once('secureConnect', () => r())),
    10_000,
    'node:tls handshake',
  ).then(() => ({ client, ticket }));
}

/** A node:tls server with `pair` that keeps connections open; its port. */
async function nodeServer(engine: Engine, pair: { key: string; cert: string }): Promise<number> {
  const server = tls.createServer(pair, (s) => void s.on('error', () => {}));
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(engine, () => void server.close());
  return (server.address() as { port: number }).port;
}

forEachImpl(
  `${N} connections to one TLS listener share one context; it goes with the listener and its last socket`,
  async (t, engine) => {
    const { self } = testCerts();
    t.is(engine.stats().tlsContexts, 0);
    const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
    const socks: Socket[] = [];
    const clients: tls.TLSSocket[] = [];
    for (let i = 0; i < N; i++) {
      const acc = once<Socket>({}, `accept ${i}`);
      engine.accept(listener, acc.cb);
      clients.push((await nodeClient(engine, portOf(listener), self.cert)).client);
      socks.push(await expectOk(t, acc));
    }
    t.is(engine.stats().tlsContexts, 1);
    engine.close(listener);
    t.is(engine.stats().tlsContexts, 1, 'open sockets keep it');
    for (const s of socks) engine.close(s);
    for (const c of clients) c.destroy();
    // A closed socket is freed once its ops in flight are reported (a ring's cancellations).
    for (let i = 0; i < 500 && engine.stats().tlsContexts !== 0; i++) await sleep(10);
    t.is(engine.stats().tlsContexts, 0);
  },
);

forEachImpl(
  'a TLS 1.3 session ticket from one accepted connection resumes on the next',
  async (t, engine) => {
    const { self } = testCerts();
    const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
    const acc1 = once<Socket>({}, 'accept 1');
    engine.accept(listener, acc1.cb);
    const first = await nodeClient(engine, portOf(listener), self.cert);
    const s1 = await expectOk(t, acc1);
    const ticket = await withDeadline(first.ticket, 10_000, 'session ticket');
    t.false(first.client.isSessionReused());
    const acc2 = once<Socket>({}, 'accept 2');
    engine.accept(listener, acc2.cb);
    const second = await nodeClient(engine, portOf(listener), self.cert, ticket);
    const s2 = await expectOk(t, acc2);
    t.true(second.client.isSessionReused());
    // The resumed connection carries data as any other.
    const line = once<string>();
    engine.expectLine(s2, null, line.cb);
    second.client.write('resumed\n');
    t.is(await expectOk(t, line), 'resumed');
    engine.close(s1);
    engine.close(s2);
    engine.close(listener);
  },
);

forEachImpl(
  `${N} client connects with the same options share one context; another ca makes another`,
  async (t, engine) => {
    const { leaf, ca, self } = testCerts();
    const port = await nodeServer(engine, leaf);
    const socks: Socket[] = [];
    for (let i = 0; i < N; i++) {
      const conn = once<Socket>({}, `connect ${i}`);
      engine.connect({ host: '127.0.0.1', port, tls: { ca } }, conn.cb);
      socks.push(await expectOk(t, conn));
    }
    t.is(engine.stats().tlsContexts, 1);
    const other = once<Socket>({}, 'connect, another ca');
    engine.connect({ host: '127.0.0.1', port, tls: { ca: [ca, self.cert] } }, other.cb);
    socks.push(await expectOk(t, other));
    t.is(engine.stats().tlsContexts, 2);
    const lax = once<Socket>({}, 'connect, rejectUnauthorized false');
    engine.connect({ host: '127.0.0.1', port, tls: { ca, rejectUnauthorized: false } }, lax.cb);
    socks.push(await expectOk(t, lax));
    t.is(engine.stats().tlsContexts, 3);
    for (const s of socks) engine.close(s);
    t.is(engine.stats().tlsContexts, 3, 'client contexts are kept for the next connect');
  },
);

forEachImpl(
  'the name a certificate must match is per connection, not per shared context',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const port = await nodeServer(engine, leaf);
    const good = once<Socket>({}, 'connect as localhost');
    engine.connect({ host: '127.0.0.1', port, tls: { ca, servername: 'localhost' } }, good.cb);
    const sock = await expectOk(t, good);
    const bad = once<Socket>({}, 'connect as example.com');
    engine.connect({ host: '127.0.0.1', port, tls: { ca, servername: 'example.com' } }, bad.cb);
    await expectErr(t, bad, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const again = once<Socket>({}, 'connect as localhost again');
    engine.connect({ host: '127.0.0.1', port, tls: { ca, servername: 'localhost' } }, again.cb);
    const sock2 = await expectOk(t, again);
    t.is(engine.stats().tlsContexts, 1);
    engine.close(sock);
    engine.close(sock2);
  },
);
