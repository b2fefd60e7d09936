// A promise chain's rejection carries the socket the chain ran on (`err.socket`), left open:
// a client whose greeting did not match can still say QUIT, then close it.
import { Socket } from 'async-engine';
import { forEachImpl, netServer, noFdLeaks, withDeadline } from './helpers/harness.js';
import type { EngineError } from 'async-engine';

forEachImpl(
  'connectThenExpectLine whose line mismatches rejects with err.socket, open and usable',
  async (t, engine) => {
    const srv = await netServer(engine);
    srv.server.on('connection', (s) => s.write('554 go away\r\n'));
    const err = (await t.throwsAsync(
      withDeadline(
        engine.promises.connectThenExpectLine({ host: '127.0.0.1', port: srv.port }, /^220 /),
        15_000,
        'the chain to reject',
      ),
    )) as EngineError;
    t.is(err.code, 'ERR_MISMATCH');
    t.is(err.line, '554 go away');
    t.true(err.socket instanceof Socket, 'the connected socket is on the error');
    const sock = err.socket as Socket;
    t.false(sock.closed, 'nothing the program did not ask to close is closed');
    t.is(sock.remotePort, srv.port);
    t.is(engine.stats().sockets, 1);
    // Still usable: the program says goodbye, then closes it.
    const peer = await srv.nextConnection();
    t.is(await engine.promises.write(sock, 'QUIT\r\n'), 6);
    t.is((await peer.waitForBytes(6)).toString(), 'QUIT\r\n');
    engine.close(sock);
    await withDeadline(peer.ended, 5_000, 'the server to see the close');
    t.is(engine.stats().sockets, 0);
  },
);

forEachImpl('writeThenExpectLine rejects with the socket it was given', async (t, engine) => {
  const srv = await netServer(engine);
  srv.server.on('connection', (s) => s.on('data', () => s.write('-ERR no\r\n')));
  const sock = await engine.promises.connect({ host: '127.0.0.1', port: srv.port });
  const err = (await t.throwsAsync(
    withDeadline(
      engine.promises.writeThenExpectLine(sock, 'PING\r\n', '+PONG'),
      15_000,
      'the chain to reject',
    ),
  )) as EngineError;
  t.is(err.code, 'ERR_MISMATCH');
  t.is(err.socket, sock);
  t.false(sock.closed);
  engine.close(sock);
});

noFdLeaks();
