// Client certificates (mutual TLS): a listener with `ca` requires a client certificate that
// verifies against it. A client without one, or with one from another CA, is refused with a
// clear error on both sides; a client with one from the CA gets through and the server reads it
// with peerCertificate(). Engine and node:tls on either side; client key/cert checked up front.
import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import type { Socket } from 'async-engine';
import {
  type Ctx,
  type Engine,
  expectErr,
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

/** A listener with the localhost leaf that requires client certificates from the SNI test CA. */
function mutualListener(engine: Engine): ReturnType<Engine['listen']> {
  const { leaf } = testCerts();
  return engine.listen({ port: 0, tls: { ...leaf, ca: extraCerts().sniCa } });
}

/**
 * An engine client of `port` with `own` (or no) client certificate: either its connect fails,
 * or (TLS 1.3, where the server judges the client's certificate after the client's handshake is
 * done) its first read does. Returns the error the client saw.
 */
async function refusedClient(
  t: Ctx,
  engine: Engine,
  port: number,
  own: { key: string; cert: string } | undefined,
): Promise<{ code: string; message: string }> {
  const { ca } = testCerts();
  const conn = once<Socket>({}, 'connect');
  engine.connect(
    { host: '127.0.0.1', port, tls: { ca, servername: 'localhost', ...own } },
    conn.cb,
  );
  const o = await conn.result();
  if (!o.ok) return { code: o.err!.code, message: o.err!.message };
  const sock = o.value as Socket;
  t.is(sock.tlsVersion, 'TLSv1.3', 'only TLS 1.3 finishes the client handshake before the verdict');
  const read = once<Buffer>({}, 'first read');
  engine.readChunk(sock, 100, read.cb);
  const err = await expectErr(t, read, 'EPROTO');
  engine.close(sock);
  return { code: err.code, message: err.message };
}

forEachImpl(
  'mutual TLS, engine to engine: no certificate or one from another CA is refused on both sides',
  async (t, engine) => {
    const { client, otherClient } = extraCerts();
    const listener = mutualListener(engine);
    const port = portOf(listener);

    // A certificate from the CA first: its client context must not serve the next client.
    const acc = once<Socket>({}, 'accept with a certificate');
    engine.accept(listener, acc.cb);
    const { ca } = testCerts();
    const conn = once<Socket>({}, 'connect with a certificate');
    engine.connect(
      { host: '127.0.0.1', port, tls: { ca, servername: 'localhost', ...client } },
      conn.cb,
    );
    const c = await expectOk(t, conn);
    const s = await expectOk(t, acc);
    t.is(s.peerCertificate()?.subject, 'CN=client');
    t.true(s.peerCertificate()?.checkIssued(new X509Certificate(extraCerts().sniCa)));
    t.is(c.peerCertificate()?.subject, 'CN=localhost');
    const line = once<string>({}, 'line');
    engine.expectLine(s, null, line.cb);
    engine.write(c, 'mutual\n', () => {});
    t.is(await expectOk(t, line), 'mutual');
    engine.close(c);
    engine.close(s);

    const none = once<Socket>({}, 'accept without a certificate');
    engine.accept(listener, none.cb);
    const seen = await refusedClient(t, engine, port, undefined);
    t.is(seen.code, 'EPROTO');
    t.regex(seen.message, /certificate required|handshake failure/);
    const serverErr = await expectErr(t, none, 'EPROTO');
    t.regex(serverErr.message, /peer did not return a certificate/);

    const other = once<Socket>({}, 'accept with another CA');
    engine.accept(listener, other.cb);
    const seen2 = await refusedClient(t, engine, port, otherClient);
    t.is(seen2.code, 'EPROTO');
    t.regex(seen2.message, /unknown ca/);
    await expectErr(t, other, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
    engine.close(listener);
  },
);

forEachImpl(
  'mutual TLS: node:tls clients against an engine listener with ca',
  async (t, engine) => {
    const { ca } = testCerts();
    const { client } = extraCerts();
    const listener = mutualListener(engine);
    const port = portOf(listener);
    const acc = once<Socket>({}, 'accept node client with a certificate');
    engine.accept(listener, acc.cb);
    const good = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...client });
    onCleanup(engine, () => void good.destroy());
    good.on('error', () => {});
    const s = await expectOk(t, acc);
    t.is(s.peerCertificate()?.subject, 'CN=client');
    engine.close(s);
    good.destroy();

    const acc2 = once<Socket>({}, 'accept node client without a certificate');
    engine.accept(listener, acc2.cb);
    const bad = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    onCleanup(engine, () => void bad.destroy());
    const clientErr = withDeadline(
      new Promise<Error>((r) => bad.once('error', r)),
      10_000,
      'node:tls client error',
    );
    await expectErr(t, acc2, 'EPROTO');
    t.regex((await clientErr).message, /certificate required/);
    engine.close(listener);
  },
);

forEachImpl(
  'mutual TLS: an engine client with a certificate to a node:tls server',
  async (t, engine) => {
    const { leaf, ca } = testCerts();
    const { client, sniCa } = extraCerts();
    const authorized: boolean[] = [];
    const server = tls.createServer(
      { ...leaf, ca: sniCa, requestCert: true, rejectUnauthorized: true },
      (s) => {
        authorized.push(s.authorized);
        s.on('error', () => {});
        s.write(`${String((s.getPeerCertificate() as tls.PeerCertificate).subject.CN)}\n`);
      },
    );
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(engine, () => void server.close());
    const port = (server.address() as { port: number }).port;
    const conn = once<Socket>({}, 'connect');
    engine.connect(
      { host: '127.0.0.1', port, tls: { ca, servername: 'localhost', ...client } },
      conn.cb,
    );
    const sock = await expectOk(t, conn);
    const line = once<string>({}, 'the CN the server saw');
    engine.expectLine(sock, null, line.cb);
    t.is(await expectOk(t, line), 'client');
    t.deepEqual(authorized, [true]);
    engine.close(sock);
    const seen = await refusedClient(t, engine, port, undefined);
    t.regex(seen.message, /certificate required/);
  },
);

forEachImpl('mutual TLS: bad client key/cert options are refused synchronously', (t, engine) => {
  const { client, otherClient } = extraCerts();
  const connect = (tlsOpts: object): void =>
    engine.connect({ host: '127.0.0.1', port: 1, tls: tlsOpts }, () => {});
  t.throws(() => connect({ key: client.key }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /address\.tls\.cert/,
  });
  t.throws(() => connect({ cert: client.cert }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /address\.tls\.key/,
  });
  t.throws(() => connect({ key: 1, cert: client.cert }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => connect({ key: otherClient.key, cert: client.cert }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /cannot be used/,
  });
  t.is(engine.stats().sockets, 0);
});
