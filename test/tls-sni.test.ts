// Server name indication on a TLS listener: the name a client asks for picks the certificate
// (exact names, then a one-label wildcard, in any case), the listener's own without a match or
// a name; the server side reads the name as socket.servername. Checked with node:tls clients
// and with the engine's own connect; bad `sni` options are refused synchronously.
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Engine,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  portOf,
  withDeadline,
} from './helpers/harness.js';
import { extraCerts, testCerts } from './helpers/tls-certs.js';

noFdLeaks();

function sniListener(engine: Engine): ReturnType<Engine['listen']> {
  const { self } = testCerts();
  const { example, wild } = extraCerts();
  return engine.listen({
    port: 0,
    tls: { key: self.key, cert: self.cert, sni: { 'Example.Test': example, '*.wild.test': wild } },
  });
}

/** The certificate's CN a node:tls client gets when it asks for `servername`, and the server's view. */
async function nodeAsks(
  engine: Engine,
  listener: ReturnType<Engine['listen']>,
  servername: string | undefined,
): Promise<{ cn: string; served: Socket }> {
  const acc = once<Socket>({}, `accept for ${servername}`);
  engine.accept(listener, acc.cb);
  const client = tls.connect({
    host: '127.0.0.1',
    port: portOf(listener),
    rejectUnauthorized: false,
    ...(servername === undefined ? {} : { servername }),
  });
  onCleanup(engine, () => void client.destroy());
  client.on('error', () => {});
  await withDeadline(
    new Promise((r) => client.once('secureConnect', r)),
    10_000,
    'node:tls handshake',
  );
  const cn = String(client.getPeerCertificate().subject.CN);
  const o = await acc.result();
  if (!o.ok) throw new Error(`accept failed: ${o.err?.code} ${o.err?.message}`);
  client.destroy();
  return { cn, served: o.value as Socket };
}

forEachImpl(
  'SNI: a node:tls client gets the certificate of the name it asks for',
  async (t, engine) => {
    const listener = sniListener(engine);
    const cases: Array<[string | undefined, string, string | undefined]> = [
      ['example.test', 'example.test', 'example.test'],
      ['EXAMPLE.test', 'example.test', 'EXAMPLE.test'],
      ['a.wild.test', 'wild', 'a.wild.test'],
      ['B.Wild.Test', 'wild', 'B.Wild.Test'],
      ['a.b.wild.test', 'localhost', 'a.b.wild.test'],
      ['wild.test', 'localhost', 'wild.test'],
      ['other.test', 'localhost', 'other.test'],
      [undefined, 'localhost', undefined],
    ];
    for (const [asked, cn, seen] of cases) {
      const { cn: got, served } = await nodeAsks(engine, listener, asked);
      t.is(got, cn, `asked for ${asked}`);
      t.is(served.servername, seen, `server side of ${asked}`);
      engine.close(served);
    }
    // The listener's context and one per SNI name, made once and shared by every handshake.
    t.is(engine.stats().tlsContexts, 3);
    engine.close(listener);
  },
);

forEachImpl(
  "SNI: the engine's connect with servername gets that name's certificate, verified",
  async (t, engine) => {
    const { self } = testCerts();
    const { sniCa } = extraCerts();
    const listener = sniListener(engine);
    const port = portOf(listener);
    const cases: Array<[string, string, string]> = [
      ['example.test', 'CN=example.test', sniCa],
      ['x.wild.test', 'CN=wild', sniCa],
      ['localhost', 'CN=localhost', self.cert],
    ];
    for (const [servername, subject, ca] of cases) {
      const acc = once<Socket>({}, `accept ${servername}`);
      engine.accept(listener, acc.cb);
      const conn = once<Socket>({}, `connect ${servername}`);
      engine.connect({ host: '127.0.0.1', port, tls: { servername, ca } }, conn.cb);
      const client = await expectOk(t, conn);
      const server = await expectOk(t, acc);
      t.is(client.peerCertificate()?.subject, subject, servername);
      t.is(server.servername, servername);
      t.is(client.servername, servername);
      engine.close(client);
      engine.close(server);
    }
    engine.close(listener);
  },
);

forEachImpl(
  'SNI: a listener without sni serves its own certificate to any name',
  async (t, engine) => {
    const { self } = testCerts();
    const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
    const { cn, served } = await nodeAsks(engine, listener, 'example.test');
    t.is(cn, 'localhost');
    t.is(served.servername, 'example.test');
    engine.close(served);
    engine.close(listener);
  },
);

forEachImpl('SNI: bad sni options are refused synchronously', (t, engine) => {
  const { self, leaf } = testCerts();
  const { example } = extraCerts();
  const listen = (sni: unknown): unknown =>
    engine.listen({ port: 0, tls: { key: self.key, cert: self.cert, sni } as never });
  t.throws(() => listen('example.test'), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => listen([example]), { code: 'ERR_INVALID_ARG_TYPE' });
  for (const name of [
    '',
    'bad name',
    '*.*.test',
    'a.*.test',
    '*',
    '-a.test',
    'a..test',
    '127.0.0.1',
    '::1',
    'a'.repeat(64) + '.test',
  ]) {
    t.throws(
      () => listen({ [name]: example }),
      { code: 'ERR_INVALID_ARG_VALUE' },
      JSON.stringify(name),
    );
  }
  t.throws(() => listen({ 'example.test': example, 'EXAMPLE.TEST': example }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /twice/,
  });
  t.throws(() => listen({ 'example.test': { key: example.key } }), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /sni\["example\.test"\]\.cert/,
  });
  t.throws(() => listen({ 'example.test': { ...example, ca: 'x' } }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => listen({ 'example.test': null }), { code: 'ERR_INVALID_ARG_TYPE' });
  // A key that is not the certificate's.
  t.throws(() => listen({ 'example.test': { key: leaf.key, cert: example.cert } }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /sni\["example\.test"\]" cannot be used/,
  });
  t.throws(() => listen({ 'example.test': { key: 'x', cert: 'y' } }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.is(engine.stats().tlsContexts, 0);
});

forEachImpl('SNI: startTls on the server side takes sni too', async (t, engine) => {
  const { self } = testCerts();
  const { example, sniCa } = extraCerts();
  const listener = engine.listen({ port: 0 });
  const acc = once<Socket>({}, 'plain accept');
  engine.accept(listener, acc.cb);
  const conn = once<Socket>({}, 'plain connect');
  engine.connect({ host: '127.0.0.1', port: portOf(listener) }, conn.cb);
  const plainServer = await expectOk(t, acc);
  const plainClient = await expectOk(t, conn);
  engine.close(listener);
  const up = once<Socket>({}, 'server startTls');
  engine.startTls(
    plainServer,
    { isServer: true, ...self, sni: { 'example.test': example } },
    up.cb,
  );
  const down = once<Socket>({}, 'client startTls');
  engine.startTls(plainClient, { servername: 'example.test', ca: sniCa }, down.cb);
  const server = await expectOk(t, up);
  const client = await expectOk(t, down);
  t.is(client.peerCertificate()?.subject, 'CN=example.test');
  t.is(server.servername, 'example.test');
  engine.close(client);
  engine.close(server);
});
