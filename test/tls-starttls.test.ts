// startTls (STARTTLS): a plaintext dialog, then the upgrade, then ops over TLS, with the engine
// as the client (against a node:tls TLSSocket made from the plain socket, as SMTP servers do)
// and as the server; plaintext left buffered ahead of the handshake is refused.
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  onCleanup,
  tcpPair,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

forEachImpl(
  'startTls as the client: an SMTP-like dialog upgrades and goes on over TLS',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const server = net.createServer((plain) => {
      plain.on('error', () => {});
      plain.write('220 ready\r\n');
      plain.once('data', (d) => {
        t.is(d.toString(), 'STARTTLS\r\n');
        plain.write('220 go ahead\r\n', () => {
          const secure = new tls.TLSSocket(plain, {
            isServer: true,
            key: leaf.key,
            cert: leaf.cert,
          });
          secure.on('error', () => {});
          secure.setEncoding('utf8');
          secure.on('data', (line: string) => secure.write(`250 ${line.trim()}\r\n`));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(engine, () => void server.close());
    const conn = once<Socket>();
    engine.connect(
      { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
      conn.cb,
    );
    const sock = await expectOk(t, conn);
    const greet = once<string>();
    engine.expectLine(sock, /^220 /, greet.cb);
    await expectOk(t, greet);
    const w = once<number>();
    const go = once<string>();
    engine.writeThenExpectLine(sock, 'STARTTLS\r\n', /^220 go/, [w.cb, go.cb]);
    await expectOk(t, go);
    t.false(sock.encrypted);
    const up = once<Socket>();
    engine.startTls(sock, { ca }, up.cb);
    t.is(await expectOk(t, up), sock, 'success gives the same socket');
    t.true(sock.encrypted);
    const w2 = once<number>();
    const reply = once<string>();
    engine.writeThenExpectLine(sock, 'EHLO secure\r\n', '250 EHLO secure', [w2.cb, reply.cb]);
    t.is(await expectOk(t, w2), 13, 'the write settles with its plaintext length');
    await expectOk(t, reply);
    engine.close(sock);
  },
);

forEachImpl(
  'startTls as the server: the client upgrades with node:tls after a plaintext line',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const pair = await tcpPair(engine);
    const sock = pair.sock;
    await pair.write('STARTTLS\n');
    const l = once<string>();
    engine.expectLine(sock, 'STARTTLS', l.cb);
    await expectOk(t, l);
    const w = once<number>();
    engine.write(sock, 'OK\n', w.cb);
    await expectOk(t, w);
    await pair.waitForBytes(3);
    const up = once<Socket>();
    engine.startTls(sock, { isServer: true, key: leaf.key, cert: leaf.cert }, up.cb);
    const secure = tls.connect({ socket: pair.client, ca, servername: 'localhost' });
    secure.on('error', () => {});
    onCleanup(engine, () => void secure.destroy());
    await withDeadline(
      new Promise((r) => secure.once('secureConnect', r)),
      10_000,
      'client handshake',
    );
    await expectOk(t, up);
    secure.write('secret line\n');
    const s = once<string>();
    engine.expectLine(sock, 'secret line', s.cb);
    await expectOk(t, s);
    engine.close(sock);
  },
);

forEachImpl(
  'startTls refuses plaintext still buffered ahead of the handshake',
  async (t, engine) => {
    const { ca } = testCerts();
    const pair = await tcpPair(engine);
    const sock = pair.sock;
    await pair.write('STARTTLS\nearly bytes');
    const l = once<string>();
    engine.expectLine(sock, 'STARTTLS', l.cb);
    await expectOk(t, l);
    // 'early bytes' are buffered (natively or in JavaScript): they cannot be TLS records.
    const peek = once<Buffer>();
    engine.peek(sock, 5, peek.cb);
    await expectOk(t, peek);
    const up = once<Socket>();
    engine.startTls(sock, { ca }, up.cb);
    const err = await expectErr(t, up, 'ERR_TLS_PLAINTEXT_BUFFERED');
    t.regex(err.message, /plaintext/);
    t.false(sock.encrypted);
    engine.close(sock);
  },
);

forEachImpl('listen and startTls check their TLS options synchronously', async (t, engine) => {
  t.throws(() => engine.listen({ port: 0, tls: { key: 'not a key', cert: 'x' } as never }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => engine.listen({ port: 0, tls: { cert: 'x' } as never }), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.listen({ port: 0, tls: { key: 'k', cert: 'c', sni: {} } as never }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  const pair = await tcpPair(engine);
  t.throws(() => engine.startTls(pair.sock, { isServer: 'yes' } as never, once<Socket>().cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(
    () => engine.startTls(pair.sock, { isServer: true, key: 'k' } as never, once<Socket>().cb),
    {
      code: 'ERR_INVALID_ARG_TYPE',
    },
  );
  engine.close(pair.sock);
});
