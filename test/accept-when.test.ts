// acceptWhen: connections judged natively by their first line (a refused one gets the reply and
// is closed without reaching JavaScript, counted in stats().filteredConnections), and listen's
// deferAccept (TCP_DEFER_ACCEPT); a refused client still sending is read to its end first.
import type { Socket } from 'async-engine';
import {
  type Engine,
  type NetPeer,
  expectErr,
  expectOk,
  forEachImpl,
  netClient,
  noFdLeaks,
  once,
  portOf,
  shutdownEngine,
  sleep,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

// A client that sends `data` and waits until the server closes its connection.
async function refusedClient(engine: Engine, port: number, data: string): Promise<Buffer> {
  const peer = await netClient(engine, { port });
  if (data !== '') await peer.write(data);
  await withDeadline(peer.ended, 10_000, 'the server to close a refused connection');
  return peer.received();
}

// The socket speaks to `peer`: a line written on it arrives there.
async function sameConnection(engine: Engine, sock: Socket, peer: NetPeer): Promise<boolean> {
  const w = once<number>();
  engine.write(sock, 'hi there\n', w.cb);
  await w.result();
  const got = await peer.waitForBytes(9);
  return got.toString().endsWith('hi there\n');
}

forEachImpl(
  'acceptWhen: a matching first line delivers the line and the socket',
  async (t, engine) => {
    const l = engine.listen();
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO me', acc.cb);
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('HELO me\r\nMAIL FROM:<a@b>\n');
    const o = await acc.result();
    t.true(o.ok);
    t.is(o.value, 'HELO me');
    const sock = o.sock as Socket;
    // The bytes after the first line are the socket's next ones.
    const next = once<string>();
    engine.expectLine(sock, null, next.cb);
    t.is(await expectOk(t, next), 'MAIL FROM:<a@b>');
    t.true(await sameConnection(engine, sock, peer));
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 0, timeout: 0, tooLong: 0 });
    engine.close(sock);
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: a mismatched connection gets the reply, is closed and never reaches JavaScript',
  async (t, engine) => {
    const l = engine.listen();
    const port = portOf(l);
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO', { reply: '500 say HELO\r\n' }, acc.cb);
    // The peer pipelines more lines behind the bad one: the reply still goes out, then the close.
    const got = await refusedClient(engine, port, 'GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    t.is(got.toString(), '500 say HELO\r\n');
    t.is(acc.calls.length, 0, 'the refused connection settled nothing');
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 1, timeout: 0, tooLong: 0 });
    const good = await netClient(engine, { port });
    await good.write('HELO\n');
    const o = await acc.result();
    t.true(o.ok);
    t.is(o.value, 'HELO');
    t.true(await sameConnection(engine, o.sock as Socket, good));
    t.is(engine.stats().sockets, 1, 'only the good connection is open');
    engine.close(o.sock as Socket);
    engine.close(l);
  },
);

forEachImpl('acceptWhen: a good connection after 100 bad ones is delivered', async (t, engine) => {
  const l = engine.listen();
  const port = portOf(l);
  const acc = once<Buffer>();
  engine.acceptWhen(l, Buffer.from('EHLO ok'), { reply: 'nope\n' }, acc.cb);
  for (let round = 0; round < 10; round++) {
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => refusedClient(engine, port, `junk ${round} ${i}\n`)),
    );
    for (const r of replies) t.is(r.toString(), 'nope\n');
  }
  t.is(acc.calls.length, 0);
  t.is(engine.stats().filteredConnections.mismatch, 100);
  const good = await netClient(engine, { port });
  await good.write('EHLO ok\r\n');
  const line = await expectOk(t, acc);
  t.true(Buffer.isBuffer(line), 'a Buffer expect delivers the line as bytes');
  t.is(line.toString(), 'EHLO ok');
  t.is(engine.stats().sockets, 1);
  engine.close(acc.calls[0]!.sock as Socket);
  engine.close(l);
});

forEachImpl(
  'acceptWhen: a silent connection is refused at its timeout, with the reply',
  async (t, engine) => {
    const l = engine.listen();
    const acc = once<string>();
    engine.acceptWhen(l, 'HI', { reply: '421 too slow\r\n', timeout: 50 }, acc.cb);
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('H'); // bytes but no line: the timeout counts from the accept
    await withDeadline(peer.ended, 10_000, 'the silent connection to be closed');
    t.is(peer.received().toString(), '421 too slow\r\n');
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 0, timeout: 1, tooLong: 0 });
    t.is(acc.calls.length, 0);
    t.true(acc.cancel());
    await expectErr(t, acc, 'ECANCELED');
    engine.close(l);
  },
);

forEachImpl('acceptWhen: a first line over maxBytes is refused', async (t, engine) => {
  const l = engine.listen();
  const port = portOf(l);
  const acc = once<string>();
  engine.acceptWhen(l, null, { maxBytes: 8, reply: 'too long\n' }, acc.cb);
  // No terminator at all, and a terminated line one byte too long.
  t.is((await refusedClient(engine, port, 'x'.repeat(100))).toString(), 'too long\n');
  t.is((await refusedClient(engine, port, '123456789\n')).toString(), 'too long\n');
  t.deepEqual(engine.stats().filteredConnections, { mismatch: 0, timeout: 0, tooLong: 2 });
  // A client that ends its side before a whole line is a mismatch.
  const quitter = await netClient(engine, { port });
  quitter.client.end('abc');
  await withDeadline(quitter.ended, 10_000, 'the half-closed connection to be closed');
  t.deepEqual(engine.stats().filteredConnections, { mismatch: 1, timeout: 0, tooLong: 2 });
  const good = await netClient(engine, { port });
  await good.write('12345678\n');
  t.is(await expectOk(t, acc), '12345678');
  engine.close(acc.calls[0]!.sock as Socket);
  engine.close(l);
});

forEachImpl(
  'acceptWhen: connections that pass together are each delivered once, in order',
  async (t, engine) => {
    const l = engine.listen();
    const port = portOf(l);
    const first = once<string>();
    engine.acceptWhen(l, null, first.cb);
    const peers: NetPeer[] = [];
    for (let i = 0; i < 3; i++) peers.push(await netClient(engine, { port }));
    // All three are being judged before any sends its line: those that pass after the first
    // are kept natively for the next acceptWhen.
    t.true(await waitUntil(() => engine.stats().sockets === 3), 'three connections judged');
    await Promise.all(peers.map((p, i) => p.write(`client ${i}\n`)));
    const lines = [await expectOk(t, first)];
    const socks = [first.calls[0]!.sock as Socket];
    for (let i = 1; i < 3; i++) {
      const acc = once<string>();
      engine.acceptWhen(l, null, acc.cb);
      lines.push(await expectOk(t, acc));
      socks.push(acc.calls[0]!.sock as Socket);
    }
    t.deepEqual([...lines].sort(), ['client 0', 'client 1', 'client 2']);
    for (let i = 0; i < 3; i++) {
      const k = Number(lines[i]!.slice(-1));
      t.true(await sameConnection(engine, socks[i]!, peers[k]!), `socket ${i} is client ${k}'s`);
      engine.close(socks[i]!);
    }
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: closing the listener closes the connections being judged',
  async (t, engine) => {
    const l = engine.listen();
    const acc = once<string>();
    engine.acceptWhen(l, 'X', acc.cb);
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('partial');
    t.true(await waitUntil(() => engine.stats().sockets === 1), 'the candidate is held natively');
    engine.close(l);
    await expectErr(t, acc, 'ECANCELED');
    await withDeadline(peer.ended, 10_000, 'the candidate to be closed');
    t.is(engine.stats().sockets, 0);
    t.is(peer.received().length, 0, 'no reply: the listener closed, nothing was refused');
  },
);

forEachImpl(
  'acceptWhen: the promise form resolves with the line and the socket',
  async (t, engine) => {
    const l = engine.listen();
    const pending = engine.promises.acceptWhen(l, 'PING', { reply: 'ERR\n' });
    await refusedClient(engine, portOf(l), 'PONG\n');
    const peer = await netClient(engine, { port: portOf(l) });
    await peer.write('PING\n');
    const { line, socket } = await withDeadline(pending, 10_000, 'acceptWhen');
    t.is(line, 'PING');
    t.true(await sameConnection(engine, socket, peer));
    engine.close(socket);
    const ac = new AbortController();
    const aborted = engine.promises.acceptWhen(l, null, { signal: ac.signal });
    ac.abort();
    await t.throwsAsync(aborted, { name: 'AbortError' });
    engine.close(l);
  },
);

forEachImpl('acceptWhen: bad arguments throw synchronously', (t, engine) => {
  const l = engine.listen();
  const cb = (): void => {};
  t.throws(() => engine.acceptWhen(l, 42 as never, cb), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.acceptWhen(l, /x/ as never, cb), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.acceptWhen(l, 'a\nb', cb), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => engine.acceptWhen(l, 'x', { reply: 5 as never }, cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.acceptWhen(l, 'x', { timeout: -1 }, cb), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => engine.acceptWhen(l, 'x', { maxBytes: 0 }, cb), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => engine.acceptWhen(l, 'toolong', { maxBytes: 3 }, cb), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => engine.acceptWhen(l, 'x', { encoding: 'hex' } as never, cb), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => engine.acceptWhen(l, 'x', { prefix: 'yes' as never }, cb), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => engine.acceptWhen(l, null, { prefix: true }, cb), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => engine.listen({ deferAccept: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => engine.listen({ deferAccept: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  t.is(engine.stats().opsInFlight, 0, 'nothing was submitted');
  engine.close(l);
});

forEachImpl('deferAccept sets TCP_DEFER_ACCEPT on the listener', (t, engine) => {
  const plain = engine.listen();
  t.is(engine.listenerOptions(plain).deferAccept, 0);
  const deferred = engine.listen({ deferAccept: true });
  t.true(engine.listenerOptions(deferred).deferAccept >= 30);
  const five = engine.listen({ deferAccept: 5 });
  t.true(engine.listenerOptions(five).deferAccept >= 5);
  engine.close(plain);
  engine.close(deferred);
  engine.close(five);
});

forEachImpl(
  'deferAccept: an accept stays pending until the client sends data',
  async (t, engine) => {
    const l = engine.listen({ deferAccept: true });
    const acc = once<Socket>();
    engine.accept(l, acc.cb);
    const peer = await netClient(engine, { port: portOf(l) });
    // The client's handshake is done; the server's accept must not be.
    await sleep(300);
    t.is(acc.calls.length, 0, 'no accept before the client sent data');
    await peer.write('first\n');
    const sock = await expectOk(t, acc);
    const line = once<string>();
    engine.expectLine(sock, 'first', line.cb);
    t.is(await expectOk(t, line), 'first');
    engine.close(sock);
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: connections kept for the next acceptWhen are closed with the listener',
  async (t, engine) => {
    const l = engine.listen();
    const port = portOf(l);
    const acc = once<string>();
    engine.acceptWhen(l, null, acc.cb);
    const peers: NetPeer[] = [];
    for (let i = 0; i < 3; i++) peers.push(await netClient(engine, { port }));
    // All three are being judged before any sends its line: those that pass after the first
    // are kept natively for the next acceptWhen.
    t.true(await waitUntil(() => engine.stats().sockets === 3), 'three connections judged');
    await Promise.all(peers.map((p, i) => p.write(`client ${i}\n`)));
    await expectOk(t, acc);
    await sleep(100);
    t.is(engine.stats().sockets, 3, 'the two others are held natively, unseen by JavaScript');
    engine.close(l);
    const delivered = acc.calls[0]!.sock as Socket;
    const k = Number((acc.calls[0]!.value as string).slice(-1));
    for (let i = 0; i < 3; i++) {
      if (i === k) continue;
      await withDeadline(peers[i]!.ended, 10_000, `client ${i} to be closed`);
    }
    t.is(engine.stats().sockets, 1, 'only the delivered connection is left');
    t.true(await sameConnection(engine, delivered, peers[k]!));
    engine.close(delivered);
  },
);

forEachImpl('acceptWhen: shutdown closes connections being judged and kept', async (t, engine) => {
  const l = engine.listen();
  const port = portOf(l);
  const acc = once<string>();
  engine.acceptWhen(l, 'GO', acc.cb);
  const slow = [await netClient(engine, { port }), await netClient(engine, { port })];
  t.true(await waitUntil(() => engine.stats().sockets === 2), 'two connections judged');
  await Promise.all(slow.map((p) => p.write('G')));
  const good = await netClient(engine, { port });
  await good.write('GO\n');
  await expectOk(t, acc);
  // No acceptWhen waits now: the first slow one passes and is kept, the second stays judged.
  await slow[0]!.write('O\n');
  await sleep(100);
  t.is(engine.stats().sockets, 3);
  t.is(acc.calls.length, 1);
  await shutdownEngine(engine);
  for (const p of slow) {
    await withDeadline(p.ended, 10_000, 'a held connection to be closed at shutdown');
    t.is(p.received().length, 0);
  }
});

forEachImpl(
  'acceptWhen: connections that sent before their accept are judged on what is there',
  async (t, engine) => {
    const l = engine.listen({ deferAccept: 1 });
    const port = portOf(l);
    // All of them connect and send before any acceptWhen is armed: each is judged on the bytes
    // already waiting when it is accepted.
    const bad = await netClient(engine, { port });
    await bad.write('GARBAGE\r\nmore\r\n');
    const long = await netClient(engine, { port });
    await long.write(`${'x'.repeat(100)}\n`);
    const cut = await netClient(engine, { port });
    await cut.write('HEL');
    cut.client.end();
    const big = await netClient(engine, { port });
    await big.write(`bad\n${'y'.repeat(200_000)}`);
    const good = await netClient(engine, { port });
    await good.write('HELO me\r\nMAIL FROM:<a@b>\r\nRCPT');
    await sleep(50);
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO me', { reply: 'NO\r\n', maxBytes: 64 }, acc.cb);
    const o = await acc.result();
    t.true(o.ok);
    t.is(o.value, 'HELO me');
    const sock = o.sock as Socket;
    // The bytes after the line, read with it before the accept finished, come next.
    const next = once<string>();
    engine.expectLine(sock, null, next.cb);
    t.is(await expectOk(t, next), 'MAIL FROM:<a@b>');
    await good.write(' TO:<c@d>\r\n');
    const after = once<string>();
    engine.expectLine(sock, null, after.cb);
    t.is(await expectOk(t, after), 'RCPT TO:<c@d>');
    for (const [peer, what] of [
      [bad, 'a mismatched line'],
      [long, 'a line over maxBytes'],
      [cut, 'a partial line, then EOF'],
      [big, 'a mismatched line followed by more than one read'],
    ] as const) {
      await withDeadline(peer.ended, 10_000, `the server to close ${what}`);
      t.is(peer.received().toString(), 'NO\r\n', what);
    }
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 3, timeout: 0, tooLong: 1 });
    t.true(await sameConnection(engine, sock, good));
    engine.close(sock);
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen with prefix: a first line that starts with expect passes, others are refused',
  async (t, engine) => {
    const l = engine.listen();
    const port = portOf(l);
    // Sent before acceptWhen is armed (judged on the bytes waiting at the accept) ...
    const other = await netClient(engine, { port });
    await other.write('HELX a\r\n');
    const short = await netClient(engine, { port });
    await short.write('HEL\r\n');
    const first = await netClient(engine, { port });
    await first.write('HELO a.example\r\n');
    await sleep(50);
    const acc1 = once<string>();
    engine.acceptWhen(l, 'HELO ', { prefix: true, reply: 'NO\r\n' }, acc1.cb);
    const o1 = await acc1.result();
    t.is(o1.value, 'HELO a.example');
    // ... and as it arrives, in pieces.
    const acc2 = once<string>();
    engine.acceptWhen(l, 'HELO ', { prefix: true, reply: 'NO\r\n' }, acc2.cb);
    const second = await netClient(engine, { port });
    await second.write('HEL');
    await sleep(20);
    await second.write('O b\r\n');
    const o2 = await acc2.result();
    t.is(o2.value, 'HELO b');
    for (const peer of [other, short]) {
      await withDeadline(peer.ended, 10_000, 'the server to close a refused connection');
      t.is(peer.received().toString(), 'NO\r\n');
    }
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 2, timeout: 0, tooLong: 0 });
    engine.close(o1.sock as Socket);
    engine.close(o2.sock as Socket);
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: a refused client still sending is read to its FIN: it gets the reply, no reset',
  async (t, engine) => {
    // Refused at the first look (deferAccept: the bytes are there at the accept), and refused
    // as a candidate (the line arrives after the accept).
    for (const deferAccept of [1, undefined]) {
      const l = engine.listen({ deferAccept });
      const acc = once<string>();
      engine.acceptWhen(l, 'HELO', { reply: '554 no\r\n' }, acc.cb);
      const before = engine.stats().filteredConnections.mismatch;
      const peer = await netClient(engine, { port: portOf(l), allowHalfOpen: true });
      if (!deferAccept) await sleep(50); // accepted and waiting for its line
      // More than the line: the client does not wait for an answer before it goes on.
      peer.client.write(`EHLO x\r\n${'a'.repeat(1000)}`);
      await withDeadline(
        waitUntil(() => peer.received().toString() === '554 no\r\n', 10_000),
        12_000,
        'the reply',
      );
      t.is(engine.stats().lingeringConnections, 1, 'read on after the reply');
      // It goes on sending after the reply: a close would have answered with a reset.
      for (let i = 0; i < 8; i++) {
        await sleep(20);
        peer.client.write(Buffer.alloc(32 * 1024, 'b'));
      }
      peer.client.end();
      await withDeadline(peer.closed, 10_000, 'the client to close');
      t.deepEqual(peer.errors, [], `no reset (deferAccept ${deferAccept})`);
      t.is(peer.received().toString(), '554 no\r\n');
      t.is(engine.stats().filteredConnections.mismatch, before + 1);
      t.true(await waitUntil(() => engine.stats().lingeringConnections === 0, 10_000));
      t.is(acc.calls.length, 0);
      t.is(engine.stats().sockets, 0, 'the lingering socket is closed at the FIN');
      engine.close(l);
    }
  },
);

forEachImpl(
  'acceptWhen: a refused client that keeps its side open is closed when the linger ends',
  async (t, engine) => {
    const l = engine.listen();
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO', { reply: '554 no\r\n', maxBytes: 16 }, acc.cb);
    const peer = await netClient(engine, { port: portOf(l), allowHalfOpen: true });
    peer.client.write('x'.repeat(40)); // over maxBytes, and no end to the line
    await withDeadline(
      waitUntil(() => peer.received().toString() === '554 no\r\n', 10_000),
      12_000,
      'the reply',
    );
    t.is(engine.stats().lingeringConnections, 1);
    t.is(engine.stats().sockets, 1);
    // The server's side is shut down at once; the client never ends its own.
    t.true(await waitUntil(() => engine.stats().lingeringConnections === 0, 10_000));
    t.is(engine.stats().sockets, 0, 'closed at the end of the linger');
    t.deepEqual(engine.stats().filteredConnections, { mismatch: 0, timeout: 0, tooLong: 1 });
    peer.client.destroy();
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: a refused client that floods past the linger bound is closed',
  async (t, engine) => {
    const l = engine.listen();
    const port = portOf(l);
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO', { reply: '554 no\r\n' }, acc.cb);
    const readBefore = engine.stats().bytesRead;
    const peer = await netClient(engine, { port, allowHalfOpen: true });
    peer.client.write(`EHLO x\r\n${'c'.repeat(1000)}`); // more than the line: it lingers
    // 8 MiB, more than a linger reads (1 MiB): it does not wait for the client's FIN.
    for (let i = 0; i < 128; i++) peer.client.write(Buffer.alloc(64 * 1024, 'c'));
    await withDeadline(peer.closed, 10_000, 'the flooding client to be cut off');
    t.true(await waitUntil(() => engine.stats().sockets === 0, 10_000));
    t.is(engine.stats().lingeringConnections, 0);
    t.true(engine.stats().bytesRead - readBefore > 1024 * 1024, 'read up to the bound');
    t.true(engine.stats().bytesRead - readBefore < 8 * 1024 * 1024, 'and stopped there');
    // The listener goes on.
    const good = await netClient(engine, { port });
    await good.write('HELO\n');
    t.is(await expectOk(t, acc), 'HELO');
    engine.close(acc.calls[0]!.sock as Socket);
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: a refused client whose bytes end with a line end is closed at once, no linger',
  async (t, engine) => {
    const l = engine.listen({ deferAccept: 1 });
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO', { reply: '554 no\r\n' }, acc.cb);
    const peer = await netClient(engine, { port: portOf(l), allowHalfOpen: true });
    peer.client.write('EHLO x\r\nMAIL FROM:<a@b>\r\n'); // whole lines: it waits for an answer
    await withDeadline(peer.ended, 10_000, 'the server to close');
    t.is(peer.received().toString(), '554 no\r\n');
    t.deepEqual(peer.errors, []);
    t.is(engine.stats().lingeringConnections, 0);
    t.is(engine.stats().sockets, 0);
    peer.client.destroy();
    engine.close(l);
  },
);

forEachImpl(
  'acceptWhen: at most 1024 refused connections linger at once; the rest are closed at once',
  async (t, engine) => {
    const l = engine.listen({ deferAccept: 1, backlog: 2048 });
    const port = portOf(l);
    const n = 1030;
    // Every client connects and sends before anything is accepted, then keeps its side open.
    const peers = await Promise.all(
      Array.from({ length: n }, () => netClient(engine, { port, allowHalfOpen: true })),
    );
    for (const p of peers) p.client.write(`EHLO x\r\n${'d'.repeat(100)}`);
    await sleep(100);
    const acc = once<string>();
    engine.acceptWhen(l, 'HELO', { reply: '554 no\r\n' }, acc.cb);
    t.true(
      await waitUntil(() => engine.stats().filteredConnections.mismatch === n, 20_000),
      'every one refused',
    );
    t.is(engine.stats().lingeringConnections, 1024);
    t.is(engine.stats().sockets, 1024, 'the others are closed');
    await withDeadline(
      Promise.all(peers.map((p) => p.ended)),
      20_000,
      'every client to see the FIN',
    );
    t.true(
      peers.every((p) => p.received().toString() === '554 no\r\n'),
      'every one got the reply',
    );
    t.true(await waitUntil(() => engine.stats().lingeringConnections === 0, 20_000));
    t.is(engine.stats().sockets, 0);
    t.true(acc.cancel());
    engine.close(l);
  },
);
