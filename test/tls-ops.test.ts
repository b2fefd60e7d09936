// The op matrix over TLS: every read and write op, the chains, timeouts, cancel, AbortSignal,
// socket timeouts, toDuplex, the iterators and the counters run over a TLS socket exactly as
// over a plain one. Each case runs on every implementation with two peers: a node:tls client of
// an engine TLS listener (the engine side is the server), and the engine itself (the engine
// side is a TLS client of its own TLS listener).
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { type Socket, toDuplex } from 'async-engine';
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
  sleep,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';
import type { ExecutionContext } from 'ava';

noFdLeaks();

/** The other end of the engine's TLS socket. */
interface Peer {
  write(data: string | Buffer): Promise<void>;
  /** The next `n` bytes it received. */
  read(n: number): Promise<Buffer>;
  /** Everything it receives until the end of the stream. */
  readToEnd(): Promise<Buffer>;
  /** Ends its sending side (close_notify, then FIN). */
  end(): Promise<void>;
  /** Stops reading from the kernel (so the engine's writes back up). */
  stopReading(): void;
}

type PeerKind = 'node:tls' | 'engine';

const PEERS: PeerKind[] = ['node:tls', 'engine'];

/** The engine's TLS socket `sock` and its peer. */
async function tlsPair(engine: Engine, kind: PeerKind): Promise<{ sock: Socket; peer: Peer }> {
  const { self } = testCerts();
  const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
  const port = portOf(listener);
  const p = engine.promises;
  try {
    if (kind === 'engine') {
      const accepted = p.accept(listener, { timeout: 10_000 });
      const sock = await p.connect(
        { host: '127.0.0.1', port, tls: { ca: self.cert, servername: 'localhost' } },
        { timeout: 10_000 },
      );
      const other = await accepted;
      onCleanup(engine, () => {});
      const peer: Peer = {
        write: async (d) => void (await p.write(other, d)),
        read: (n) => p.readExactly(other, n, { timeout: 15_000 }),
        readToEnd: () => p.readAll(other, { timeout: 15_000 }),
        end: () => p.end(other),
        stopReading: () => {},
      };
      return { sock, peer };
    }
    const accepted = p.accept(listener, { timeout: 10_000 });
    // allowHalfOpen: its side stays open after the engine's end, as a plain half-close allows.
    const client = tls.connect({
      host: '127.0.0.1',
      port,
      ca: self.cert,
      servername: 'localhost',
      ...({ allowHalfOpen: true } as tls.ConnectionOptions),
    });
    client.on('error', () => {});
    onCleanup(engine, () => void client.destroy());
    const chunks: Buffer[] = [];
    let have = 0;
    let ended = false;
    const wake: Array<() => void> = [];
    const notify = (): void => {
      for (const w of wake.splice(0)) w();
    };
    client.on('data', (b: Buffer) => {
      chunks.push(b);
      have += b.length;
      notify();
    });
    client.on('end', () => {
      ended = true;
      notify();
    });
    client.on('close', () => {
      ended = true;
      notify();
    });
    const take = (n: number): Buffer => {
      const all = Buffer.concat(chunks);
      chunks.length = 0;
      if (all.length > n) chunks.push(all.subarray(n));
      have = all.length - n;
      return all.subarray(0, n);
    };
    const until = (pred: () => boolean, what: string): Promise<void> =>
      withDeadline(
        new Promise<void>((resolve) => {
          const check = (): void => (pred() ? resolve() : void wake.push(check));
          check();
        }),
        15_000,
        what,
      );
    const peer: Peer = {
      write: (d) =>
        new Promise((resolve, reject) => client.write(d, (e) => (e ? reject(e) : resolve()))),
      read: async (n) => {
        await until(() => have >= n || ended, `${n} bytes at node:tls`);
        return take(Math.min(n, have));
      },
      readToEnd: async () => {
        await until(() => ended, 'the end at node:tls');
        return take(have);
      },
      end: () => new Promise<void>((resolve) => client.end(resolve)),
      stopReading: () => void client.pause(),
    };
    return { sock: await accepted, peer };
  } finally {
    engine.close(listener);
  }
}

type Case = (t: ExecutionContext, engine: Engine, sock: Socket, peer: Peer) => Promise<void>;

const CASES: Array<[string, Case]> = [
  [
    'expectLine with a string, a RegExp and null',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      await peer.write('+OK ready\r\n250-one\r\n250 two\nany line\r\n');
      t.is(await p.expectLine(sock, '+OK ready'), '+OK ready');
      t.is(await p.expectLine(sock, /^250-/), '250-one');
      t.is(await p.expectLine(sock, /^250 /), '250 two');
      t.is(await p.expectLine(sock, null), 'any line');
      await peer.write('-ERR no\r\n');
      const err = await t.throwsAsync(p.expectLine(sock, /^\+OK/));
      t.is((err as { code?: string }).code, 'ERR_MISMATCH');
    },
  ],
  [
    'readUntil with one delimiter and with several',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      await peer.write('abc||def||ghi\r\njkl\nmno');
      t.is((await p.readUntil(sock, '||')).toString(), 'abc||');
      t.is((await p.readUntil(sock, Buffer.from('||'))).toString(), 'def||');
      const r = await p.readUntil(sock, ['\r\n', '\n']);
      t.is(r.data.toString(), 'ghi\r\n');
      t.is(r.index, 0);
      const r2 = await p.readUntil(sock, ['\r\n', '\n']);
      t.is(r2.data.toString(), 'jkl\n');
      t.is(r2.delimiter, '\n');
      t.is((await p.readExactly(sock, 3)).toString(), 'mno');
    },
  ],
  [
    'readUntilRegex and readUntilLineglob',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      await peer.write('HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody');
      const m = await p.readUntilRegex(sock, /\r\n\r\n/);
      t.is(m.data.toString(), 'HTTP/1.1 200 OK\r\nA: b\r\n\r\n');
      t.is(m.match[0], '\r\n\r\n');
      t.is((await p.readExactly(sock, 4)).toString(), 'body');
      await peer.write('* 1 FETCH\r\n* 2 FETCH\r\nA1 OK done\r\n');
      const lines = await p.readUntilLineglob(sock, 'A1 *');
      t.deepEqual(lines, ['* 1 FETCH', '* 2 FETCH', 'A1 OK done']);
    },
  ],
  [
    'readExactly (0 included), readChunk, peek, readAll after the peer ends',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      t.is((await p.readExactly(sock, 0)).length, 0);
      await peer.write('PINGxyz');
      t.is((await p.peek(sock, 4)).toString(), 'PING');
      t.is((await p.readExactly(sock, 4)).toString(), 'PING', 'peek left the bytes');
      let got = '';
      for (let i = 0; i < 3 && got.length < 3; i++)
        got += (await p.readChunk(sock, 100)).toString();
      t.is(got, 'xyz');
      await peer.write('the rest');
      await peer.end();
      t.is((await p.readAll(sock)).toString(), 'the rest');
      const err = await t.throwsAsync(p.readExactly(sock, 1));
      t.is((err as { code?: string }).code, 'ERR_INCOMPLETE');
    },
  ],
  [
    'readLengthPrefixed',
    async (t, engine, sock, peer) => {
      await peer.write('$5\r\nhello\r\n');
      const rec = await engine.promises.readLengthPrefixed(sock, {
        length: (h) => Number(h.slice(1)),
        trailer: '\r\n',
      });
      t.is(rec.header, '$5');
      t.is(rec.body?.toString(), 'hello');
    },
  ],
  [
    'write: a string, a Buffer, a Uint8Array, an array (writev); results in plaintext bytes',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      t.is(await p.write(sock, 'héllo '), 7);
      t.is(await p.write(sock, Buffer.from('buf ')), 4);
      t.is(await p.write(sock, new Uint8Array([0x75, 0x38, 0x20])), 3);
      t.is(await p.write(sock, [Buffer.from('a'), new Uint8Array([0x62]), Buffer.from('c')]), 3);
      t.is((await peer.read(17)).toString(), 'héllo buf u8 abc');
    },
  ],
  [
    'a 2 MiB write and a 2 MiB read, compared by hash',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      const big = randomBytes(2 << 20);
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      const [n, got] = await Promise.all([p.write(sock, big), peer.read(big.length)]);
      t.is(n, big.length);
      t.is(sha(got), sha(big));
      const back = randomBytes(2 << 20);
      const [, mine] = await Promise.all([peer.write(back), p.readExactly(sock, back.length)]);
      t.is(sha(mine), sha(back));
    },
  ],
  [
    'end: the peer sees the data then the end, and can still send back (half-close)',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      await p.write(sock, 'last words');
      await p.end(sock);
      t.is((await peer.readToEnd()).toString(), 'last words');
      // After close_notify the peer may still send: its bytes reach the engine.
      await peer.write('answer\n');
      t.is(await p.expectLine(sock, null), 'answer');
    },
  ],
  [
    'writeThenExpectLine',
    async (t, engine, sock, peer) => {
      const r = engine.promises.writeThenExpectLine(sock, 'PING\r\n', /^\+PONG/);
      t.is((await peer.read(6)).toString(), 'PING\r\n');
      await peer.write('+PONG\r\n');
      const { value, socket } = await r;
      t.is(value, '+PONG');
      t.is(socket, sock);
    },
  ],
  [
    'a per-op timeout: ETIMEDOUT, and nothing that came is lost',
    async (t, engine, sock, peer) => {
      const c = once<string>({ timeout: 100 }, 'expectLine');
      engine.expectLine(sock, null, c.cb);
      await peer.write('par');
      await expectErr(t, c, 'ETIMEDOUT');
      await peer.write('tial\n');
      t.is(await engine.promises.expectLine(sock, null), 'partial');
    },
  ],
  [
    'cancel mid-read: ECANCELED, and nothing that came is lost',
    async (t, engine, sock, peer) => {
      const c = once<Buffer>({}, 'readUntil');
      engine.readUntil(sock, '\n', c.cb);
      await peer.write('part');
      // Give the bytes time to reach the pending read (a later peek would queue behind it).
      await sleep(50);
      t.true(c.cancel());
      await expectErr(t, c, 'ECANCELED');
      await peer.write('rest\n');
      t.is((await engine.promises.readUntil(sock, '\n')).toString(), 'partrest\n');
    },
  ],
  [
    'an AbortSignal: AbortError, and nothing that came is lost',
    async (t, engine, sock, peer) => {
      const ac = new AbortController();
      const r = engine.promises.expectLine(sock, null, { signal: ac.signal });
      await peer.write('half');
      setTimeout(() => ac.abort(), 50);
      const err = await t.throwsAsync(r);
      t.is(err?.name, 'AbortError');
      await peer.write(' line\n');
      t.is(await engine.promises.expectLine(sock, null), 'half line');
    },
  ],
  [
    'setTimeouts idle: the waiting read fails with ETIMEDOUT, the socket goes on',
    async (t, engine, sock, peer) => {
      engine.setTimeouts(sock, { idle: 100 });
      const c = once<Buffer>({}, 'readChunk');
      engine.readChunk(sock, 10, c.cb);
      const err = await expectErr(t, c, 'ETIMEDOUT');
      t.is(err.syscall, 'read');
      engine.setTimeouts(sock, { idle: 0 });
      await peer.write('still here');
      t.is((await engine.promises.readExactly(sock, 10)).toString(), 'still here');
    },
  ],
  [
    'setTimeouts write: writes the peer does not take fail with ETIMEDOUT',
    async (t, engine, sock, peer) => {
      peer.stopReading();
      engine.setTimeouts(sock, { write: 150 });
      // More than the kernel's buffers on both sides take.
      const c = once<number>({}, 'write');
      engine.write(sock, Buffer.alloc(32 << 20, 0x61), c.cb);
      const err = await expectErr(t, c, 'ETIMEDOUT', 30_000);
      t.is(err.syscall, 'write');
    },
  ],
  [
    'toDuplex over TLS',
    async (t, engine, sock, peer) => {
      const d = toDuplex(engine, sock);
      const got = deferred<string>();
      let text = '';
      d.on('data', (b: Buffer) => {
        text += b.toString();
        if (text.length >= 5) got.resolve(text);
      });
      await peer.write('hello');
      t.is(await withDeadline(got.promise, 15_000, 'data from the duplex'), 'hello');
      await new Promise<void>((resolve, reject) =>
        d.write('back', (e) => (e ? reject(e) : resolve())),
      );
      t.is((await peer.read(4)).toString(), 'back');
      d.destroy();
    },
  ],
  [
    'promises.lines and promises.chunks',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      await peer.write('a\nb\r\nc\n');
      const lines: string[] = [];
      for await (const l of p.lines(sock)) {
        lines.push(l);
        if (lines.length === 3) break;
      }
      t.deepEqual(lines, ['a', 'b', 'c']);
      const body = randomBytes(100_000);
      await peer.write(body);
      await peer.end();
      const parts: Buffer[] = [];
      for await (const c of p.chunks(sock)) parts.push(c);
      t.true(Buffer.concat(parts).equals(body));
    },
  ],
  [
    'startTls on a socket already running TLS: EISCONN',
    async (t, engine, sock) => {
      const c = once<Socket>({}, 'startTls');
      engine.startTls(sock, { servername: 'localhost' }, c.cb);
      await expectErr(t, c, 'EISCONN');
      t.true(sock.encrypted);
    },
  ],
  [
    'byte counters count plaintext',
    async (t, engine, sock, peer) => {
      const p = engine.promises;
      const read0 = sock.bytesRead;
      const written0 = sock.bytesWritten;
      await p.write(sock, 'x'.repeat(1000));
      await peer.read(1000);
      await peer.write('y'.repeat(300) + '\n');
      await p.expectLine(sock, null);
      t.is(sock.bytesWritten - written0, 1000);
      t.is(sock.bytesRead - read0, 301);
      t.is(sock.pendingWriteBytes, 0);
    },
  ],
  [
    'readInto takes a File, not a Socket, the same over TLS',
    async (t, engine, sock) => {
      t.throws(() => engine.readInto(sock as never, Buffer.alloc(4), once<number>().cb), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    },
  ],
];

for (const [title, fn] of CASES) {
  for (const kind of PEERS) {
    forEachImpl(`over TLS (${kind} peer): ${title}`, async (t, engine) => {
      const { sock, peer } = await tlsPair(engine, kind);
      t.true(sock.encrypted);
      await fn(t, engine, sock, peer);
      engine.close(sock);
    });
  }
}

forEachImpl('engine.serve and promises.serve on a TLS listener', async (t, engine) => {
  const { self } = testCerts();
  const p = engine.promises;
  const connectClient = (port: number): tls.TLSSocket => {
    const c = tls.connect({ host: '127.0.0.1', port, ca: self.cert, servername: 'localhost' });
    c.on('error', () => {});
    onCleanup(engine, () => void c.destroy());
    return c;
  };
  const echoOnce = (c: tls.TLSSocket, line: string): Promise<string> =>
    withDeadline(
      new Promise<string>((resolve) => {
        let s = '';
        c.on('data', (b: Buffer) => {
          s += b.toString();
          if (s.endsWith('\n')) resolve(s);
        });
        c.write(line);
      }),
      15_000,
      'the echo',
    );
  // engine.serve: each connection gets its socket once the handshake is done.
  const l1 = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
  const served: Socket[] = [];
  const h = engine.serve(l1, (sock) => {
    served.push(sock);
    void p.expectLine(sock, null).then(async (line) => {
      await p.write(sock, `${sock.encrypted ? 'tls' : 'plain'}:${line}\n`);
      engine.close(sock);
    });
  });
  const answers = await Promise.all(
    [0, 1, 2].map((i) => echoOnce(connectClient(portOf(l1)), `hello ${i}\n`)),
  );
  t.deepEqual(answers.sort(), ['tls:hello 0\n', 'tls:hello 1\n', 'tls:hello 2\n']);
  t.is(served.length, 3);
  h.stop();
  engine.close(l1);
  // promises.serve.
  const l2 = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
  const ac = new AbortController();
  const done = p.serve(
    l2,
    async (sock) => {
      const line = await p.expectLine(sock, null);
      await p.write(sock, `${sock.encrypted ? 'tls' : 'plain'}:${line}\n`);
    },
    { signal: ac.signal },
  );
  t.is(await echoOnce(connectClient(portOf(l2)), 'again\n'), 'tls:again\n');
  ac.abort();
  await withDeadline(
    done.catch(() => {}),
    15_000,
    'promises.serve to stop',
  );
  engine.close(l2);
});

forEachImpl(
  'serve on a TLS listener: a peer that never sends its ClientHello holds up no other connection',
  async (t, engine) => {
    const { self } = testCerts();
    const p = engine.promises;
    const listener = engine.listen({ port: 0, tls: { key: self.key, cert: self.cert } });
    const errors: string[] = [];
    const h = engine.serve(
      listener,
      (sock) => {
        void p.expectLine(sock, null).then(async (line) => {
          await p.write(sock, `${line}!\n`);
          engine.close(sock);
        });
      },
      { onError: (e) => errors.push((e as { code?: string }).code ?? '?') },
    );
    // First a silent peer, then a plaintext one, then a real client.
    const silent = net.connect(portOf(listener), '127.0.0.1');
    silent.on('error', () => {});
    onCleanup(engine, () => void silent.destroy());
    await new Promise((r) => silent.once('connect', r));
    const plain = net.connect(portOf(listener), '127.0.0.1');
    plain.on('error', () => {});
    onCleanup(engine, () => void plain.destroy());
    plain.end('GET / HTTP/1.1\r\n\r\n');
    const c = tls.connect({
      host: '127.0.0.1',
      port: portOf(listener),
      ca: self.cert,
      servername: 'localhost',
    });
    c.on('error', () => {});
    onCleanup(engine, () => void c.destroy());
    const answer = new Promise<string>((resolve) => {
      let s = '';
      c.on('data', (b: Buffer) => {
        s += b.toString();
        if (s.endsWith('\n')) resolve(s);
      });
    });
    c.write('served\n');
    t.is(await withDeadline(answer, 10_000, 'the real client to be served'), 'served!\n');
    t.true(await waitUntil(() => errors.includes('EPROTO')), 'the plaintext peer is reported');
    // The silent peer's connection is live (mid-handshake) until the loop's engine closes it.
    t.true(h.connections >= 1);
    h.stop();
    engine.close(listener);
  },
);

forEachImpl(
  'serve on a TLS listener with handshakeTimeout: a silent peer is reported with ETIMEDOUT and closed',
  async (t, engine) => {
    const { self } = testCerts();
    const listener = engine.listen({
      port: 0,
      tls: { key: self.key, cert: self.cert, handshakeTimeout: 150 },
    });
    const errors: string[] = [];
    let served = 0;
    const h = engine.serve(listener, () => served++, {
      onError: (e) => errors.push((e as { code?: string }).code ?? '?'),
    });
    const silent = net.connect(portOf(listener), '127.0.0.1');
    silent.on('error', () => {});
    silent.resume();
    onCleanup(engine, () => void silent.destroy());
    const closed = new Promise<void>((r) => silent.on('close', () => r()));
    await withDeadline(closed, 10_000, 'the silent peer to see the connection closed');
    t.true(await waitUntil(() => errors.length > 0));
    t.deepEqual(errors, ['ETIMEDOUT']);
    t.true(await waitUntil(() => h.connections === 0), 'the connection is no longer counted');
    t.is(served, 0);
    h.stop();
    engine.close(listener);
  },
);
