// Pre-registered replies (`onMismatch`) on the line ops that take an `expect`: a mismatched line
// gets the reply written by the engine and is consumed, and the op reads on without calling
// JavaScript, up to `max` times; the next mismatch fails with ERR_MISMATCH and the line.
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import type { File, Socket } from 'async-engine';
import {
  deferred,
  expectErr,
  expectOk,
  forEachImpl,
  netServer,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  tcpPair,
  tempDir,
  withDeadline,
} from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

const REPLY = '500 bad\r\n';

forEachImpl('mismatch replies are sent in order and consume nothing else', async (t, engine) => {
  const p = await tcpPair(engine);
  let calls = 0;
  const r = once<string>({ success: () => calls++, failure: () => calls++ });
  // A write queued first goes out first: the replies join the write queue behind it.
  const w = once<number>();
  engine.write(p.sock, '220 ready\r\n', w.cb);
  engine.expectLine(p.sock, 'HELO x', { onMismatch: { reply: REPLY } }, r.cb);
  await p.write('a\nb\r\nHELO x\r\nNEXT\n');
  t.is(await expectOk(t, r), 'HELO x');
  t.is(calls, 1, 'the callback ran once, for the match only');
  await expectOk(t, w);
  const want = '220 ready\r\n' + REPLY + REPLY;
  t.is((await p.waitForBytes(want.length)).toString(), want);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  t.is(await expectOk(t, next), 'NEXT', 'the line after the match is still there');
});

forEachImpl('max is honoured: a, b, c give two replies, then c fails', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY, max: 2 } }, r.cb);
  await p.write('a\nb\nc\nd\n');
  const err = await expectErr(t, r, 'ERR_MISMATCH');
  t.is(err.line, 'c');
  // Written after the failure: every reply the op queued is before it, so the peer's bytes up
  // to this mark are exactly the replies sent.
  const w = once<number>();
  engine.write(p.sock, 'end\n', w.cb);
  await expectOk(t, w);
  const want = REPLY + REPLY + 'end\n';
  t.is((await p.waitForBytes(want.length)).toString(), want);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  t.is(await expectOk(t, next), 'd', 'no line after the failing one was consumed');
});

forEachImpl('max: 0 replies to nothing: the first mismatch fails', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY, max: 0 } }, r.cb);
  await p.write('bad\n');
  t.is((await expectErr(t, r, 'ERR_MISMATCH')).line, 'bad');
  const w = once<number>();
  engine.write(p.sock, 'end\n', w.cb);
  await expectOk(t, w);
  t.is((await p.waitForBytes(4)).toString(), 'end\n');
});

forEachImpl(
  'the reply is written while the op waits: a lock-step peer gets it before its next line',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<string>();
    engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
    for (let i = 1; i <= 3; i++) {
      await p.write(`bad ${i}\r\n`);
      await p.waitForBytes(REPLY.length * i);
    }
    await p.write('GOOD\r\n');
    t.is(await expectOk(t, r), 'GOOD');
    t.is(p.received().toString(), REPLY.repeat(3));
  },
);

forEachImpl('the reply is written when the peer pipelines the next line', async (t, engine) => {
  const p = await tcpPair(engine);
  // Both in one segment, the bad line first, before the op is even submitted.
  await p.write('bad\r\nGOOD\r\nafter\r\n');
  const r = once<string>();
  engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
  t.is(await expectOk(t, r), 'GOOD');
  t.is((await p.waitForBytes(REPLY.length)).toString(), REPLY);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  t.is(await expectOk(t, next), 'after');
});

forEachImpl(
  'lines already handed to JavaScript still get the reply (held bytes go back to the native side)',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('first\nbad\nGOOD\n');
    // The first op settles with the rest buffered: the next ops may find them held in JS.
    const first = once<string>();
    engine.expectLine(p.sock, null, first.cb);
    t.is(await expectOk(t, first), 'first');
    const r = once<string>();
    engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
    t.is(await expectOk(t, r), 'GOOD');
    t.is((await p.waitForBytes(REPLY.length)).toString(), REPLY);
  },
);

forEachImpl('a RegExp expect with onMismatch: replies, then the match', async (t, engine) => {
  const p = await tcpPair(engine);
  let calls = 0;
  const r = once<string>({ success: () => calls++, failure: () => calls++ });
  engine.expectLine(p.sock, /^(HELO|EHLO) \S+$/i, { onMismatch: { reply: REPLY } }, r.cb);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  await p.write('GET / HTTP/1.0\r\n\r\nehlo client.example\r\nMAIL FROM:<a@b>\r\n');
  t.is(await expectOk(t, r), 'ehlo client.example');
  t.is(calls, 1);
  t.is(await expectOk(t, next), 'MAIL FROM:<a@b>', 'a read queued behind it keeps its place');
  t.is((await p.waitForBytes(REPLY.length * 2)).toString(), REPLY + REPLY);
});

forEachImpl('a RegExp expect honours max', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, /^OK/, { onMismatch: { reply: REPLY, max: 2 } }, r.cb);
  await p.write('a\nb\nc\nOK\n');
  t.is((await expectErr(t, r, 'ERR_MISMATCH')).line, 'c');
  const w = once<number>();
  engine.write(p.sock, 'end\n', w.cb);
  await expectOk(t, w);
  const want = REPLY + REPLY + 'end\n';
  t.is((await p.waitForBytes(want.length)).toString(), want);
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  t.is(await expectOk(t, next), 'OK');
});

forEachImpl('a reply that cannot be written fails the op with its error', async (t, engine) => {
  // The engine's sending side is shut down; the peer (half-open) still sends.
  const l = engine.listen({ host: '127.0.0.1', port: 0 });
  const acc = once<Socket>();
  engine.accept(l, acc.cb);
  const c = net.connect({ host: '127.0.0.1', port: portOf(l), allowHalfOpen: true });
  onCleanup(engine, () => void c.destroy());
  c.on('error', () => {});
  const sock = await expectOk(t, acc);
  engine.close(l);
  const e = once<void>();
  engine.end(sock, e.cb);
  await expectOk(t, e);
  const r = once<string>();
  engine.expectLine(sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
  c.write('bad\n');
  const err = await expectErr(t, r, 'EPIPE');
  t.is(err.syscall, 'send');
});

forEachImpl('an empty reply consumes mismatched lines silently', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: '' } }, r.cb);
  await p.write('x\ny\nGOOD\n');
  t.is(await expectOk(t, r), 'GOOD');
  const w = once<number>();
  engine.write(p.sock, 'end\n', w.cb);
  await expectOk(t, w);
  t.is((await p.waitForBytes(4)).toString(), 'end\n');
});

forEachImpl('cancel while replying: the op ends once, the socket reads on', async (t, engine) => {
  const p = await tcpPair(engine);
  const r = once<string>();
  engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
  await p.write('bad\n');
  await p.waitForBytes(REPLY.length);
  t.true(r.cb.cancel());
  await expectErr(t, r, 'ECANCELED');
  const next = once<string>();
  engine.expectLine(p.sock, null, next.cb);
  await p.write('later\n');
  t.is(await expectOk(t, next), 'later');
});

forEachImpl('acceptThenExpectLine takes onMismatch', async (t, engine) => {
  const l = engine.listen({ host: '127.0.0.1', port: 0 });
  const s = once<Socket>();
  const line = once<string>();
  engine.acceptThenExpectLine(l, /^HELO /, { onMismatch: { reply: REPLY, max: 5 } }, [
    s.cb,
    line.cb,
  ]);
  const c = net.connect(portOf(l), '127.0.0.1');
  onCleanup(engine, () => void c.destroy());
  c.on('error', () => {});
  const got: Buffer[] = [];
  c.on('data', (b: Buffer) => got.push(b));
  c.write('junk\r\nHELO me\r\n');
  await expectOk(t, s);
  t.is(await expectOk(t, line), 'HELO me');
  engine.close(l);
  await withDeadline(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (Buffer.concat(got).length >= REPLY.length) resolve();
      };
      c.on('data', check);
      check();
    }),
    10_000,
    'the reply at the client',
  );
  t.is(Buffer.concat(got).toString(), REPLY);
});

forEachImpl('connectThenExpectLine takes onMismatch', async (t, engine) => {
  const srv = await netServer(engine);
  srv.server.on('connection', (c) => c.write('noise\r\n'));
  const s = once<Socket>();
  const line = once<string>();
  engine.connectThenExpectLine(
    { host: '127.0.0.1', port: srv.port },
    '220 hello',
    { onMismatch: { reply: 'QUIT\r\n' } },
    [s.cb, line.cb],
  );
  await expectOk(t, s);
  const peer = await srv.nextConnection();
  t.is((await peer.waitForBytes(6)).toString(), 'QUIT\r\n');
  peer.client.write('220 hello\r\n');
  t.is(await expectOk(t, line), '220 hello');
});

forEachImpl('writeThenExpectLine takes onMismatch', async (t, engine) => {
  const p = await tcpPair(engine);
  const w = once<number>();
  const line = once<string>();
  engine.writeThenExpectLine(p.sock, 'PING\r\n', 'PONG', { onMismatch: { reply: '?\r\n' } }, [
    w.cb,
    line.cb,
  ]);
  t.is(await expectOk(t, w), 6);
  await p.write('pong\r\nPONG\r\n');
  t.is(await expectOk(t, line), 'PONG');
  t.is((await p.waitForBytes(9)).toString(), 'PING\r\n?\r\n');
});

forEachImpl('the promise forms take onMismatch', async (t, engine) => {
  const p = await tcpPair(engine);
  await p.write('x\nGOOD\ny\nz\n');
  t.is(await engine.promises.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }), 'GOOD');
  const err = await t.throwsAsync(
    engine.promises.expectLine(p.sock, /^GOOD$/, { onMismatch: { reply: REPLY, max: 1 } }),
  );
  t.is((err as { code?: string }).code, 'ERR_MISMATCH');
  t.is((err as { line?: string }).line, 'z');
  t.is((await p.waitForBytes(REPLY.length * 2)).toString(), REPLY + REPLY);
});

forEachImpl('on a TLS socket the reply goes through TLS, in order', async (t, engine) => {
  const { self } = testCerts();
  const l = engine.listen({ host: '127.0.0.1', port: 0, tls: { key: self.key, cert: self.cert } });
  const s = once<Socket>();
  const line = once<string>();
  engine.acceptThenExpectLine(l, 'GOOD', { onMismatch: { reply: REPLY } }, [s.cb, line.cb]);
  const c = tls.connect({
    host: '127.0.0.1',
    port: portOf(l),
    ca: self.cert,
    servername: 'localhost',
  });
  onCleanup(engine, () => void c.destroy());
  c.on('error', () => {});
  const got: Buffer[] = [];
  const enough = deferred<void>();
  c.on('data', (b: Buffer) => {
    got.push(b);
    if (Buffer.concat(got).length >= REPLY.length * 2) enough.resolve();
  });
  c.write('one\r\ntwo\r\nGOOD\r\n');
  await expectOk(t, s);
  t.is(await expectOk(t, line), 'GOOD');
  engine.close(l);
  await withDeadline(enough.promise, 10_000, 'the replies at the TLS client');
  t.is(Buffer.concat(got).toString(), REPLY + REPLY);
});

forEachImpl('bad onMismatch is a synchronous error, and registers nothing', (t, engine) => {
  const l = engine.listen({ host: '127.0.0.1', port: 0 });
  const cb = { success: () => {}, failure: () => {} };
  const bad: Array<[unknown, string]> = [
    [42, 'ERR_INVALID_ARG_TYPE'],
    [{}, 'ERR_INVALID_ARG_TYPE'],
    [{ reply: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ reply: 'x', max: -1 }, 'ERR_OUT_OF_RANGE'],
    [{ reply: 'x', max: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ reply: 'x', max: '2' }, 'ERR_INVALID_ARG_TYPE'],
    [{ reply: 'x', other: 1 }, 'ERR_INVALID_ARG_VALUE'],
  ];
  for (const [v, code] of bad) {
    t.throws(
      () => engine.acceptThenExpectLine(l, 'x', { onMismatch: v as never }, [{ ...cb }, { ...cb }]),
      { code },
      JSON.stringify(v),
    );
  }
  t.is(engine.stats().opsInFlight, 0);
  engine.close(l);
});

forEachImpl('onMismatch is for sockets: a File refuses it', async (t, engine) => {
  const path = join(tempDir(engine), 'lines');
  writeFileSync(path, 'x\n');
  const o = once<File>();
  engine.open(path, {}, o.cb);
  const f = await expectOk(t, o);
  const cb = { success: () => {}, failure: () => {} };
  t.throws(() => engine.expectLine(f, 'x', { onMismatch: { reply: 'r' } }, cb), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  engine.close(f);
});

forEachImpl(
  'a string expect matches the decoded line, as without onMismatch: U+FFFD and other encodings',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // An invalid UTF-8 byte decodes to U+FFFD, so the line equals '\uFFFD'.
    await p.write(Buffer.from([0x62, 0x0a, 0xff, 0x0a, 0x41, 0x42, 0x0a, 0x61, 0x0a]));
    const r1 = once<string>();
    engine.expectLine(p.sock, '\uFFFD', { onMismatch: { reply: REPLY } }, r1.cb);
    t.is(await expectOk(t, r1), '\uFFFD');
    // Hex: the line 'AB' decodes to '4142'.
    const r2 = once<string>();
    engine.expectLine(p.sock, '4142', { encoding: 'hex', onMismatch: { reply: REPLY } }, r2.cb);
    t.is(await expectOk(t, r2), '4142');
    const r3 = once<string>();
    engine.expectLine(p.sock, 'a', { onMismatch: { reply: REPLY } }, r3.cb);
    t.is(await expectOk(t, r3), 'a');
    t.is((await p.waitForBytes(REPLY.length)).toString(), REPLY, 'one reply: for the line b');
  },
);

forEachImpl(
  'replies a peer does not read are bounded: past 1 MiB waiting the op fails with ERR_LIMIT',
  async (t, engine) => {
    const p = await tcpPair(engine);
    p.client.pause(); // reads nothing: the replies back up
    engine.setSocketOptions(p.sock, { sendBufferSize: 4096 });
    const big = Buffer.alloc(64 * 1024, 'r');
    const r = once<string>();
    engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: big } }, r.cb);
    await p.write('x\n'.repeat(200));
    await expectErr(t, r, 'ERR_LIMIT');
    t.true(p.sock.pendingWriteBytes <= 1024 * 1024, `${p.sock.pendingWriteBytes} bytes waiting`);
  },
);

forEachImpl(
  'with a string expect, mismatched lines never cross into JavaScript',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const before = engine.stats().completions;
    const r = once<string>();
    engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, r.cb);
    for (let i = 0; i < 10; i++) await p.write(`bad ${i}\r\n`.repeat(10));
    await p.write('GOOD\r\n');
    t.is(await expectOk(t, r), 'GOOD');
    const crossings = engine.stats().completions - before;
    t.log(`100 mismatched lines and the match: ${crossings} completion(s) delivered`);
    t.is(crossings, 1, 'one completion: the match');
    // Each reply exactly once: the peer has the 100 replies, then what is written after them.
    const w = once<number>();
    engine.write(p.sock, 'end\n', w.cb);
    await expectOk(t, w);
    const want = REPLY.repeat(100) + 'end\n';
    t.is((await p.waitForBytes(want.length)).toString(), want);
  },
);

forEachImpl(
  'a RegExp expect: a run of buffered mismatched lines crosses once, not once a line',
  async (t, engine) => {
    const p = await tcpPair(engine);
    // Each report of lines to JavaScript is answered by one verdict: count the answers.
    const native = (
      engine as unknown as { native: { regexVerdict(id: number, v: number): boolean } }
    ).native;
    const verdict = native.regexVerdict.bind(native);
    let reports = 0;
    Object.defineProperty(native, 'regexVerdict', {
      value: (id: number, v: number): boolean => {
        reports++;
        return verdict(id, v);
      },
    });
    const r = once<string>();
    engine.expectLine(p.sock, /^(HELO|EHLO) /, { onMismatch: { reply: REPLY } }, r.cb);
    await p.write('bad\r\n'.repeat(100));
    await p.waitForBytes(100 * REPLY.length);
    await p.write('x\r\ny\r\nHELO me\r\nlater\r\n');
    t.is(await expectOk(t, r), 'HELO me');
    t.log(`102 mismatched lines in two runs, then the match: ${reports} report(s)`);
    // A report per run of buffered lines (the 100 may arrive in a few segments).
    t.true(reports <= 8, `${reports} reports for 102 mismatched lines`);
    const want = REPLY.repeat(102);
    t.is((await p.waitForBytes(want.length)).toString(), want, 'each reply once, in order');
    // What follows the match is still buffered, for the next read.
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'later');
  },
);

forEachImpl(
  'a RegExp expect with max: the report stops at the line max decides, in one run',
  async (t, engine) => {
    const p = await tcpPair(engine);
    const r = once<string>();
    engine.expectLine(p.sock, /^GOOD$/, { onMismatch: { reply: REPLY, max: 3 } }, r.cb);
    await p.write('a\nb\nc\nd\ne\nGOOD\n');
    const err = await expectErr(t, r, 'ERR_MISMATCH');
    t.is(err.line, 'd');
    const want = REPLY.repeat(3);
    t.is((await p.waitForBytes(want.length)).toString(), want);
    const next = once<string>();
    engine.expectLine(p.sock, null, next.cb);
    t.is(await expectOk(t, next), 'e', 'the lines after the failing one stay buffered');
  },
);

forEachImpl(
  'stats().mismatchReplies counts the pre-registered replies written',
  async (t, engine) => {
    const p = await tcpPair(engine);
    t.is(engine.stats().mismatchReplies, 0);
    const a = once<string>();
    engine.expectLine(p.sock, 'GOOD', { onMismatch: { reply: REPLY } }, a.cb);
    await p.write('x\ny\nz\nGOOD\n');
    await expectOk(t, a);
    const b = once<string>();
    engine.expectLine(p.sock, /^OK$/, { onMismatch: { reply: REPLY } }, b.cb);
    await p.write('u\nv\nOK\n');
    await expectOk(t, b);
    t.is(engine.stats().mismatchReplies, 5, 'three for the string expect, two for the RegExp');
    await p.waitForBytes(5 * REPLY.length);
  },
);
