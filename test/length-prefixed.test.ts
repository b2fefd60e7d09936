// readLengthPrefixed: a header (a line, or through a delimiter), then a body whose length the
// header gives, then a trailer, in one op: RESP bulk strings, HTTP/1 messages with
// Content-Length, records in a file. Each behaviour is checked with the record arriving while
// the op waits natively and with the record already held in JavaScript.
import fs from 'node:fs';
import path from 'node:path';
import {
  Callback,
  EngineError,
  type File,
  type LengthPrefixedOptions,
  type LengthPrefixedRecord,
  type Socket,
} from 'async-engine';
import {
  type Ctx,
  deferred,
  type Engine,
  expectErr,
  expectOk,
  forEachImpl,
  noFdLeaks,
  once,
  type Pair,
  prng,
  sleep,
  tcpPair,
  tempDir,
  type Tracked,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';
import { heldPair, RESP } from './helpers/held.js';

noFdLeaks();

type Mode = 'native' | 'held';
const modes: Mode[] = ['native', 'held'];

/**
 * Puts `data` on a fresh socket and submits one op there: `native`, the op waits before the
 * bytes arrive (nothing is held); `held`, the bytes are held in JavaScript when it is submitted.
 */
async function inMode(
  t: Ctx,
  engine: Engine,
  mode: Mode,
  data: string | Buffer,
  submit: (sock: Socket) => void,
): Promise<Pair> {
  if (mode === 'held') {
    const p = await heldPair(t, engine, data);
    t.is(p.sock.bufferedBytes, Buffer.byteLength(data), 'the bytes are all there');
    submit(p.sock);
    return p;
  }
  const p = await tcpPair(engine);
  submit(p.sock);
  await sleep(5);
  if (Buffer.byteLength(data) > 0) await p.write(data);
  return p;
}

function lp(
  engine: Engine,
  sock: Socket | File,
  options: LengthPrefixedOptions,
  label?: string,
): Tracked<LengthPrefixedRecord> {
  const tr = once<LengthPrefixedRecord>({}, label);
  engine.readLengthPrefixed(sock, options, tr.cb);
  return tr;
}

async function readExactly(t: Ctx, engine: Engine, sock: Socket, n: number): Promise<string> {
  const tr = once<Buffer>({}, `readExactly ${n}`);
  engine.readExactly(sock, n, tr.cb);
  return (await expectOk(t, tr)).toString('latin1');
}

const framed = (engine: Engine): number => engine.stats().framedInJs;

function resp(body: Buffer | null): Buffer {
  if (body === null) return Buffer.from('$-1\r\n');
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`), body, Buffer.from('\r\n')]);
}

// ---------------------------------------------------------------------------------------------
// Records

forEachImpl(
  'trailer as a count of unchecked bytes, and bodies as strings: the same held or native',
  async (t, engine) => {
    // RESP as Redis reads it: the two bytes after a payload are skipped, whatever they are.
    const data = Buffer.concat([
      Buffer.from('$5\r\nhello\r\n'),
      Buffer.from('$2\r\nhi??'),
      Buffer.from('$3\r\n'),
      Buffer.from([0xe9, 0x00, 0xff]),
      Buffer.from('\r\n$4\r\n\u00e9\u00e9\r\n'), // two 2-byte UTF-8 chars
      Buffer.from('$-1\r\n$1\r\nz\r\n'),
    ]);
    const length = (h: string): number => Number(h.slice(1));
    const redis = { length, trailer: 2 };
    for (const mode of modes) {
      const bufs: Tracked<LengthPrefixedRecord>[] = [];
      const strs: Array<Tracked<LengthPrefixedRecord<string>>> = [];
      const str = (s: Socket, bodyEncoding: BufferEncoding): void => {
        const tr = once<LengthPrefixedRecord<string>>({}, bodyEncoding);
        engine.readLengthPrefixed(s, { ...redis, bodyEncoding }, tr.cb);
        strs.push(tr);
      };
      const p = await inMode(t, engine, mode, data, (s) => {
        bufs.push(lp(engine, s, redis));
        str(s, 'latin1');
        str(s, 'latin1');
        str(s, 'utf8');
        str(s, 'latin1');
        str(s, 'hex');
      });
      t.deepEqual(await expectOk(t, bufs[0]!), { header: '$5', body: Buffer.from('hello') });
      t.deepEqual(await expectOk(t, strs[0]!), { header: '$2', body: 'hi' }, mode);
      t.deepEqual(await expectOk(t, strs[1]!), { header: '$3', body: '\u00e9\u0000\u00ff' });
      t.deepEqual(await expectOk(t, strs[2]!), { header: '$4', body: '\u00e9\u00e9' });
      t.deepEqual(await expectOk(t, strs[3]!), { header: '$-1', body: null });
      t.deepEqual(await expectOk(t, strs[4]!), { header: '$1', body: '7a' });
      t.is(p.sock.bufferedBytes, 0, mode);
    }
  },
);

forEachImpl(
  'RESP bulk strings pipelined many at once: every record, in order, exact',
  async (t, engine) => {
    const rnd = prng(42);
    const N = 3000;
    const bodies: Array<Buffer | null> = [];
    for (let i = 0; i < N; i++) {
      if (i % 97 === 5) {
        bodies.push(null);
        continue;
      }
      const b = Buffer.alloc(Math.floor(rnd() * (i % 10 === 0 ? 3000 : 120)));
      for (let k = 0; k < b.length; k++) b[k] = rnd() < 0.1 ? 13 : Math.floor(rnd() * 256);
      if (b.length > 3) b.write('\r\n', 1, 'latin1'); // a terminator inside a body means nothing
      bodies.push(b);
    }
    const p = await tcpPair(engine);
    const before = framed(engine);
    const done = deferred<void>();
    let got = 0;
    let wrong: string | undefined;
    const cb: Callback<LengthPrefixedRecord> = new Callback<LengthPrefixedRecord>({
      success: (rec) => {
        const want = bodies[got]!;
        const ok =
          want === null
            ? rec.body === null && rec.header === '$-1'
            : rec.body !== null && rec.header === `$${want.length}` && rec.body.equals(want);
        if (!ok && wrong === undefined) wrong = `record ${got}: header ${rec.header}`;
        if (++got === N) done.resolve();
        else engine.readLengthPrefixed(p.sock, RESP, cb);
      },
      failure: (err) => done.reject(err),
    });
    engine.readLengthPrefixed(p.sock, RESP, cb);
    p.client.write(Buffer.concat(bodies.map(resp)));
    await withDeadline(done.promise, 40_000, () => `all ${N} records (have ${got})`);
    t.is(wrong, undefined);
    t.is(got, N);
    const local = framed(engine) - before;
    t.true(local >= N / 2, `${local} of ${N} records framed in JavaScript`);
    t.is(p.sock.bufferedBytes, 0);
  },
);

forEachImpl('length 0: an empty body, the trailer consumed', async (t, engine) => {
  for (const mode of modes) {
    let x!: Tracked<LengthPrefixedRecord>;
    const p = await inMode(t, engine, mode, '$0\r\n\r\n$0\r\n\r\nnext\n', (s) => {
      x = lp(engine, s, RESP);
    });
    const r = await expectOk(t, x);
    t.is(r.header, '$0');
    t.true(Buffer.isBuffer(r.body));
    t.is(r.body!.length, 0);
    t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
      header: '$0',
      body: Buffer.alloc(0),
    });
    t.is(await readExactly(t, engine, p.sock, 5), 'next\n', mode);
  }
});

forEachImpl('length -1: body null, the trailer not read', async (t, engine) => {
  for (const mode of modes) {
    let x!: Tracked<LengthPrefixedRecord>;
    const p = await inMode(t, engine, mode, '$-1\r\n$-1\r\n$1\r\nz\r\nnext\n', (s) => {
      x = lp(engine, s, RESP);
    });
    t.deepEqual(await expectOk(t, x), { header: '$-1', body: null });
    t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), { header: '$-1', body: null });
    t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
      header: '$1',
      body: Buffer.from('z'),
    });
    t.is(await readExactly(t, engine, p.sock, 5), 'next\n', mode);
  }
});

forEachImpl('a body arriving byte by byte over many receives', async (t, engine) => {
  const p = await tcpPair(engine);
  const body = Buffer.from('0123456789\r\nabcdefghij');
  const x = lp(engine, p.sock, RESP);
  await p.write(`$${body.length}\r\n`);
  for (let i = 0; i < body.length; i++) {
    await p.write(body.subarray(i, i + 1));
    await sleep(2);
  }
  await p.write('\r');
  await sleep(20);
  t.is(x.calls.length, 0, 'not before the whole trailer');
  await p.write('\nafter\n');
  t.deepEqual(await expectOk(t, x), { header: `$${body.length}`, body });
  t.is(await readExactly(t, engine, p.sock, 6), 'after\n');
});

forEachImpl('a header split across receives', async (t, engine) => {
  for (const mode of modes) {
    // held: the first part of the header is held when the op is submitted
    let x!: Tracked<LengthPrefixedRecord>;
    const p = await inMode(t, engine, mode, '$1', (s) => {
      x = lp(engine, s, RESP);
    });
    await sleep(10);
    await p.write('2\r');
    await sleep(10);
    t.is(x.calls.length, 0);
    await p.write('\n0123456789ab\r\n');
    t.deepEqual(await expectOk(t, x), { header: '$12', body: Buffer.from('0123456789ab') });
    t.is(p.sock.bufferedBytes, 0, mode);
  }
});

forEachImpl(
  'a body half held, the rest arriving later: the whole record, once',
  async (t, engine) => {
    const p = await heldPair(t, engine, '$10\r\n01234');
    const x = lp(engine, p.sock, RESP);
    await sleep(10);
    t.is(x.calls.length, 0);
    await p.write('56789\r\n$1\r\n');
    t.deepEqual(await expectOk(t, x), { header: '$10', body: Buffer.from('0123456789') });
    const y = lp(engine, p.sock, RESP);
    await p.write('!\r\n');
    t.deepEqual(await expectOk(t, y), { header: '$1', body: Buffer.from('!') });
  },
);

forEachImpl(
  'each record framed in JavaScript when all of it is held, without a native op',
  async (t, engine) => {
    const before = framed(engine);
    const x = once<LengthPrefixedRecord>();
    const y = once<LengthPrefixedRecord>();
    await heldPair(t, engine, '$3\r\nabc\r\n$-1\r\n', (sock) => {
      engine.readLengthPrefixed(sock, RESP, x.cb);
      engine.readLengthPrefixed(sock, RESP, y.cb);
    });
    t.deepEqual(await expectOk(t, x), { header: '$3', body: Buffer.from('abc') });
    t.deepEqual(await expectOk(t, y), { header: '$-1', body: null });
    t.is(framed(engine) - before, 2);
  },
);

forEachImpl(
  'no trailer, a Buffer trailer, and a non-ASCII header in another encoding: the same held or native',
  async (t, engine) => {
    const data = Buffer.concat([
      Buffer.from('5\nhello'),
      Buffer.from('2\r\nab\0\0'),
      Buffer.from([0x4c, 0xe9, 0x33, 0x0a]), // "Lé3" in latin1
      Buffer.from('xyz'),
      Buffer.from('§1\n!', 'utf8'),
    ]);
    const digits = (h: string): number => Number(/\d+$/.exec(h)?.[0]);
    for (const mode of modes) {
      const trs: Tracked<LengthPrefixedRecord>[] = [];
      const p = await inMode(t, engine, mode, data, (s) => {
        trs.push(lp(engine, s, { length: digits }));
        trs.push(lp(engine, s, { length: digits, trailer: Buffer.from([0, 0]) }));
        trs.push(lp(engine, s, { length: digits, encoding: 'latin1' }));
        trs.push(lp(engine, s, { length: digits }));
      });
      t.deepEqual(await expectOk(t, trs[0]!), { header: '5', body: Buffer.from('hello') });
      t.deepEqual(await expectOk(t, trs[1]!), { header: '2', body: Buffer.from('ab') });
      t.deepEqual(await expectOk(t, trs[2]!), { header: 'Lé3', body: Buffer.from('xyz') });
      t.deepEqual(await expectOk(t, trs[3]!), { header: '§1', body: Buffer.from('!') });
      t.is(p.sock.bufferedBytes, 0, mode);
    }
  },
);

forEachImpl(
  'queued behind other reads, and other reads queued behind it: submission order',
  async (t, engine) => {
    for (const mode of modes) {
      const order: string[] = [];
      const mk = <V>(name: string): Tracked<V> =>
        once<V>({ success: () => order.push(name) }, `${mode} ${name}`);
      const a = mk<string>('line');
      const b = mk<LengthPrefixedRecord>('record');
      const c = mk<Buffer>('exactly');
      const d = mk<LengthPrefixedRecord>('record 2');
      const p = await inMode(t, engine, mode, 'head', (s) => {
        engine.expectLine(s, null, a.cb); // not held whole: native, the rest queue behind it
        engine.readLengthPrefixed(s, RESP, b.cb);
        engine.readExactly(s, 2, c.cb);
        engine.readLengthPrefixed(s, RESP, d.cb);
      });
      await p.write('er\n$3\r\nab');
      await sleep(10);
      await p.write('c\r\nXY$-1\r\n');
      t.is(await expectOk(t, a), 'header');
      t.deepEqual(await expectOk(t, b), { header: '$3', body: Buffer.from('abc') });
      t.is((await expectOk(t, c)).toString(), 'XY');
      t.deepEqual(await expectOk(t, d), { header: '$-1', body: null });
      t.deepEqual(order, ['line', 'record', 'exactly', 'record 2'], mode);
    }
  },
);

forEachImpl(
  'a 40 KiB header and a 1 MiB body on a socket: exact, held or native',
  async (t, engine) => {
    const cookie = 'c'.repeat(40 * 1024);
    const body = Buffer.alloc(1024 * 1024);
    const rnd = prng(9);
    for (let i = 0; i < body.length; i += 7) body[i] = Math.floor(rnd() * 256);
    const head = `PUT /big HTTP/1.1\r\nCookie: ${cookie}\r\nContent-Length: ${body.length}`;
    const msg = Buffer.concat([Buffer.from(`${head}\r\n\r\n`), body, Buffer.from('$1\r\n!\r\n')]);
    const opts: LengthPrefixedOptions = {
      length: contentLength,
      delimiter: '\r\n\r\n',
      maxBody: Infinity,
    };
    for (const mode of modes) {
      const p = await tcpPair(engine);
      const x = once<LengthPrefixedRecord>();
      if (mode === 'native') engine.readLengthPrefixed(p.sock, opts, x.cb);
      p.client.write(msg);
      if (mode === 'held') {
        // a native read first: what it leaves is held when the op comes
        const first = once<Buffer>();
        engine.readExactly(p.sock, 4, first.cb); // 'PUT '
        t.is((await expectOk(t, first)).toString(), 'PUT ');
        engine.readLengthPrefixed(p.sock, opts, x.cb);
      }
      const r = await expectOk(t, x);
      t.is(r.header, mode === 'native' ? head : head.slice(4));
      t.true(r.body !== null && r.body.equals(body), mode);
      t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
        header: '$1',
        body: Buffer.from('!'),
      });
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Errors

forEachImpl(
  'a body over maxBody: ERR_LIMIT with err.line, the record still buffered',
  async (t, engine) => {
    for (const mode of modes) {
      let x!: Tracked<LengthPrefixedRecord>;
      const record = '$10\r\n0123456789\r\n';
      const p = await inMode(t, engine, mode, record, (s) => {
        x = lp(engine, s, { ...RESP, maxBody: 9 });
      });
      const err = await expectErr(t, x, 'ERR_LIMIT');
      t.is(err.line, '$10', mode);
      t.is(await readExactly(t, engine, p.sock, record.length), record, mode);
    }
    // at the bound: fine; the default bound is maxBytes, and Infinity lifts it
    const big = Buffer.alloc(300, 'q');
    const p = await tcpPair(engine);
    await p.write(Buffer.concat([resp(Buffer.from('123456789')), resp(big), resp(big)]));
    const a = lp(engine, p.sock, { ...RESP, maxBody: 9 });
    t.is((await expectOk(t, a)).body?.toString(), '123456789');
    const b = lp(engine, p.sock, { ...RESP, maxBytes: 100 });
    t.is((await expectErr(t, b, 'ERR_LIMIT')).line, '$300');
    const c = lp(engine, p.sock, { ...RESP, maxBytes: 100, maxBody: Infinity });
    t.deepEqual((await expectOk(t, c)).body, big);
    const d = lp(engine, p.sock, { ...RESP, maxBytes: 100, maxBody: 300 });
    t.deepEqual((await expectOk(t, d)).body, big);
  },
);

forEachImpl(
  'a length rule giving no valid length: ERR_INVALID_LENGTH with err.line, the header still buffered',
  async (t, engine) => {
    const bad: Array<[string, (h: string) => number]> = [
      ['$x', RESP.length],
      ['$3', () => 1.5],
      ['$3', () => -2],
      ['$3', () => '3' as unknown as number],
      ['$3', () => undefined as unknown as number],
      ['$3', () => NaN],
      ['$3', () => Infinity],
      ['$3', () => 2 ** 53],
    ];
    for (const mode of modes) {
      for (const [header, length] of bad) {
        let x!: Tracked<LengthPrefixedRecord>;
        const p = await inMode(t, engine, mode, `${header}\r\nabc\r\n`, (s) => {
          x = lp(engine, s, { length, trailer: '\r\n' }, `${mode} ${header} ${String(length)}`);
        });
        const err = await expectErr(t, x, 'ERR_INVALID_LENGTH');
        t.is(err.line, header);
        const line = once<string>();
        engine.expectLine(p.sock, header, line.cb);
        t.is(await expectOk(t, line), header, 'the header is still there');
        t.is(await readExactly(t, engine, p.sock, 5), 'abc\r\n');
      }
    }
  },
);

forEachImpl(
  'a length rule that throws: ERR_USER_CODE with the thrown error, the header still buffered',
  async (t, engine) => {
    for (const mode of modes) {
      const boom = new Error('no length here');
      let x!: Tracked<LengthPrefixedRecord>;
      const p = await inMode(t, engine, mode, '$5\r\nhello\r\n', (s) => {
        x = lp(engine, s, {
          length: () => {
            throw boom;
          },
          trailer: '\r\n',
        });
      });
      const err = await expectErr(t, x, 'ERR_USER_CODE');
      t.is(err.cause, boom);
      t.is(err.line, '$5');
      t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
        header: '$5',
        body: Buffer.from('hello'),
      });
    }
  },
);

forEachImpl(
  'a wrong trailer: ERR_MISMATCH with err.line, the record consumed',
  async (t, engine) => {
    for (const mode of modes) {
      let x!: Tracked<LengthPrefixedRecord>;
      const p = await inMode(t, engine, mode, '$3\r\nabcXY$1\r\nz\r\n', (s) => {
        x = lp(engine, s, RESP);
      });
      const err = await expectErr(t, x, 'ERR_MISMATCH');
      t.is(err.line, '$3');
      t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
        header: '$1',
        body: Buffer.from('z'),
      });
      t.is(p.sock.bufferedBytes, 0, mode);
    }
  },
);

forEachImpl(
  'EOF inside the body or trailer: ERR_INCOMPLETE with every byte the op read',
  async (t, engine) => {
    for (const mode of modes) {
      for (const data of ['$10\r\n01234', '$10\r\n', '$3\r\nabc\r', '$3\nab']) {
        let x!: Tracked<LengthPrefixedRecord>;
        const p = await inMode(t, engine, mode, data, (s) => {
          x = lp(engine, s, RESP, `${mode} ${JSON.stringify(data)}`);
        });
        await sleep(10);
        t.is(x.calls.length, 0);
        p.client.end();
        const err = await expectErr(t, x, 'ERR_INCOMPLETE');
        t.true(Buffer.isBuffer(err.partial));
        t.is(err.partial?.toString('latin1'), data, `${mode} ${JSON.stringify(data)}`);
      }
    }
  },
);

forEachImpl('EOF before a whole header: ERR_INCOMPLETE', async (t, engine) => {
  for (const mode of modes) {
    for (const data of ['$12', '']) {
      if (mode === 'held' && data === '') continue; // nothing to hold
      let x!: Tracked<LengthPrefixedRecord>;
      const p = await inMode(t, engine, mode, data, (s) => {
        x = lp(engine, s, RESP);
      });
      p.client.end();
      const err = await expectErr(t, x, 'ERR_INCOMPLETE');
      t.is(err.partial?.toString(), data, mode);
    }
  }
});

forEachImpl(
  'a header over maxBytes: ERR_LIMIT, and the bytes are still there',
  async (t, engine) => {
    for (const mode of modes) {
      let x!: Tracked<LengthPrefixedRecord>;
      const record = '$123456\r\n';
      const p = await inMode(t, engine, mode, record, (s) => {
        x = lp(engine, s, { ...RESP, maxBytes: 6 });
      });
      await expectErr(t, x, 'ERR_LIMIT');
      t.is(await readExactly(t, engine, p.sock, record.length), record, mode);
      // delimiter mode
      let y!: Tracked<LengthPrefixedRecord>;
      const head = 'A: 1\r\nB: 2\r\n\r\n';
      const q = await inMode(t, engine, mode, head, (s) => {
        y = lp(engine, s, { length: () => 0, delimiter: '\r\n\r\n', maxBytes: 9 });
      });
      await expectErr(t, y, 'ERR_LIMIT');
      t.is(await readExactly(t, engine, q.sock, head.length), head, mode);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// A delimiter instead of a line

function contentLength(head: string): number {
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  return m ? Number(m[1]) : 0;
}

forEachImpl(
  "delimiter '\\r\\n\\r\\n': HTTP/1 messages with Content-Length, pipelined",
  async (t, engine) => {
    const msgs = [
      'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world',
      'GET /b HTTP/1.1\r\nHost: x\r\n\r\n',
      'PUT /c HTTP/1.1\r\ncontent-length: 4\r\nX: y\r\n\r\n\r\n\r\n',
    ];
    const opts: LengthPrefixedOptions = { length: contentLength, delimiter: '\r\n\r\n' };
    for (const mode of modes) {
      let x!: Tracked<LengthPrefixedRecord>;
      const p = await inMode(t, engine, mode, msgs.join(''), (s) => {
        x = lp(engine, s, opts);
      });
      t.deepEqual(await expectOk(t, x), {
        header: 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11',
        body: Buffer.from('hello world'),
      });
      t.deepEqual(await expectOk(t, lp(engine, p.sock, opts)), {
        header: 'GET /b HTTP/1.1\r\nHost: x',
        body: Buffer.alloc(0),
      });
      t.deepEqual(
        await expectOk(t, lp(engine, p.sock, { ...opts, delimiter: Buffer.from('\r\n\r\n') })),
        {
          header: 'PUT /c HTTP/1.1\r\ncontent-length: 4\r\nX: y',
          body: Buffer.from('\r\n\r\n'),
        },
      );
      t.is(p.sock.bufferedBytes, 0, mode);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Waiting: timeout, cancel, abort

forEachImpl(
  'a timeout while waiting for the body: ETIMEDOUT, then every byte still readable',
  async (t, engine) => {
    for (const mode of modes) {
      const x = once<LengthPrefixedRecord>({ timeout: 40 }, `${mode} with a deadline`);
      const p = await inMode(t, engine, mode, '$10\r\n01234', (s) => {
        engine.readLengthPrefixed(s, RESP, x.cb);
      });
      await expectErr(t, x, 'ETIMEDOUT');
      t.is(p.sock.bufferedBytes, 10);
      await p.write('56789\r\n');
      t.deepEqual(await expectOk(t, lp(engine, p.sock, RESP)), {
        header: '$10',
        body: Buffer.from('0123456789'),
      });
    }
  },
);

forEachImpl(
  'cancel while waiting for the header or the body: ECANCELED, the bytes kept',
  async (t, engine) => {
    for (const mode of modes) {
      for (const data of ['$1', '$10\r\n01234']) {
        let x!: Tracked<LengthPrefixedRecord>;
        const p = await inMode(t, engine, mode, data, (s) => {
          x = lp(engine, s, RESP);
        });
        t.true(await waitUntil(() => p.sock.bufferedBytes === data.length));
        t.true(x.cancel(), `${mode} ${data}`);
        await expectErr(t, x, 'ECANCELED');
        t.false(x.cancel(), 'nothing left to cancel');
        const y = lp(engine, p.sock, RESP);
        await p.write(data === '$1' ? '0\r\n0123456789\r\n' : '56789\r\n');
        t.deepEqual(await expectOk(t, y), {
          header: '$10',
          body: Buffer.from('0123456789'),
        });
      }
    }
  },
);

forEachImpl(
  'the promise form: a record; an abort while waiting rejects and keeps the bytes',
  async (t, engine) => {
    const p = await tcpPair(engine);
    await p.write('$3\r\nabc\r\n$10\r\n01234');
    t.deepEqual(await engine.promises.readLengthPrefixed(p.sock, { ...RESP }), {
      header: '$3',
      body: Buffer.from('abc'),
    });
    const ctl = new AbortController();
    const waiting = engine.promises.readLengthPrefixed(p.sock, { ...RESP, signal: ctl.signal });
    t.true(await waitUntil(() => p.sock.bufferedBytes === 10));
    ctl.abort('leaving');
    const err = (await t.throwsAsync(withDeadline(waiting, 10_000, 'the abort'))) as
      (Error & { code?: string; cause?: unknown }) | undefined;
    t.is(err?.name, 'AbortError');
    t.is(err?.cause, 'leaving');
    t.is(engine.stats().opsInFlight, 0);
    await p.write('56789\r\n');
    t.deepEqual(await engine.promises.readLengthPrefixed(p.sock, { ...RESP, timeout: 5_000 }), {
      header: '$10',
      body: Buffer.from('0123456789'),
    });
    // errors reject with the EngineError
    await p.write('$zz\r\n');
    const bad = (await t.throwsAsync(engine.promises.readLengthPrefixed(p.sock, RESP))) as
      EngineError | undefined;
    t.true(bad instanceof EngineError);
    t.is(bad?.code, 'ERR_INVALID_LENGTH');
  },
);

// ---------------------------------------------------------------------------------------------
// Files

forEachImpl('records read from a File, through to its end', async (t, engine) => {
  const dir = tempDir(engine);
  const file = path.join(dir, 'records.resp');
  const rnd = prng(5);
  const bodies: Array<Buffer | null> = [];
  for (let i = 0; i < 200; i++) {
    if (i % 50 === 7) {
      bodies.push(null);
      continue;
    }
    const b = Buffer.alloc(i === 100 ? 200_000 : Math.floor(rnd() * 500));
    for (let k = 0; k < b.length; k++) b[k] = Math.floor(rnd() * 256);
    bodies.push(b);
  }
  fs.writeFileSync(file, Buffer.concat(bodies.map(resp)));
  const opened = once<File>();
  engine.open(file, opened.cb);
  const f = await expectOk(t, opened);
  const opts = { ...RESP, maxBody: Infinity };
  for (let i = 0; i < bodies.length; i++) {
    const r = await expectOk(t, lp(engine, f, opts, `record ${i}`));
    const want = bodies[i]!;
    if (want === null) t.is(r.body, null);
    else t.true(r.body !== null && r.body.equals(want), `record ${i}`);
  }
  const end = lp(engine, f, opts, 'at the end');
  const err = await expectErr(t, end, 'ERR_INCOMPLETE');
  t.is(err.partial?.length, 0);
  engine.close(f);
});

// ---------------------------------------------------------------------------------------------
// Arguments

forEachImpl('bad arguments throw synchronously and submit nothing', async (t, engine) => {
  const p = await heldPair(t, engine, '$2\r\nok\r\n');
  const cb = new Callback<LengthPrefixedRecord>({});
  const length = (h: string): number => Number(h.slice(1));
  const submit =
    (options: unknown, c: unknown = cb) =>
    () =>
      engine.readLengthPrefixed(
        p.sock,
        options as LengthPrefixedOptions,
        c as Callback<LengthPrefixedRecord>,
      );
  const type = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
  const value = { code: 'ERR_INVALID_ARG_VALUE' };
  const range = { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' };
  t.throws(submit(undefined), type, 'no options');
  t.throws(submit(null), type, 'null options');
  t.throws(submit('$'), type, 'options a string');
  t.throws(
    submit(() => 1),
    type,
    'options a function',
  );
  t.throws(submit({}), type, 'no length');
  t.throws(submit({ length: 5 }), type, 'length not a function');
  t.throws(submit({ length: 'Number' }), type, 'length a string');
  t.throws(submit({ length, trailer: -1 }), range, 'trailer a negative number');
  t.throws(submit({ length, trailer: 1.5 }), range, 'trailer not an integer');
  t.throws(submit({ length, trailer: true }), type, 'trailer a boolean');
  t.throws(submit({ length, bodyEncoding: 'klingon' }), value, 'unknown body encoding');
  t.throws(submit({ length, trailer: ['\r\n'] }), type, 'trailer an array');
  t.throws(submit({ length, delimiter: '' }), value, 'empty delimiter');
  t.throws(submit({ length, delimiter: Buffer.alloc(0) }), value, 'empty Buffer delimiter');
  t.throws(submit({ length, delimiter: 13 }), type, 'delimiter a number');
  t.throws(submit({ length, maxBody: 0 }), range, 'maxBody 0');
  t.throws(submit({ length, maxBody: -1 }), range, 'maxBody negative');
  t.throws(submit({ length, maxBody: NaN }), range, 'maxBody NaN');
  t.throws(submit({ length, maxBody: 1.5 }), range, 'maxBody not an integer');
  t.throws(submit({ length, maxBody: '9' }), type, 'maxBody a string');
  t.throws(submit({ length, maxBytes: 0 }), range, 'maxBytes 0');
  t.throws(submit({ length, encoding: 'klingon' }), value, 'unknown encoding');
  t.throws(submit({ length, position: 0 }), value, 'position on a socket');
  t.throws(submit({ length }, null), type, 'no callback');
  t.throws(submit({ length }, { succes() {} }), type, 'callback neither a Callback nor its slots');
  t.throws(
    () => engine.readLengthPrefixed({} as Socket, { length }, cb),
    type,
    'not a socket or file',
  );
  t.is(engine.stats().opsInFlight, 0, 'nothing submitted');
  t.is(p.sock.bufferedBytes, 8, 'nothing consumed');
  // the Callback is free: it takes the record
  const x = once<LengthPrefixedRecord>();
  engine.readLengthPrefixed(p.sock, { length, trailer: '\r\n' }, x.cb);
  t.deepEqual(await expectOk(t, x), { header: '$2', body: Buffer.from('ok') });
  const again = deferred<LengthPrefixedRecord>();
  await p.write('$1\r\n!\r\n');
  engine.readLengthPrefixed(
    p.sock,
    RESP,
    new Callback<LengthPrefixedRecord>({ success: again.resolve, failure: again.reject }),
  );
  t.deepEqual(await withDeadline(again.promise, 10_000, 'a record'), {
    header: '$1',
    body: Buffer.from('!'),
  });
});

// ---------------------------------------------------------------------------------------------
// Random streams of good and bad records

type Rec =
  | { kind: 'ok'; body: Buffer | null }
  | { kind: 'invalid'; header: string }
  | { kind: 'over'; body: Buffer }
  | { kind: 'trailer'; body: Buffer };

function recBytes(r: Rec): Buffer {
  switch (r.kind) {
    case 'ok':
      return resp(r.body);
    case 'invalid':
      return Buffer.from(`${r.header}\r\n`);
    case 'over':
      return resp(r.body);
    case 'trailer':
      return Buffer.concat([Buffer.from(`$${r.body.length}\r\n`), r.body, Buffer.from('XY')]);
  }
}

forEachImpl(
  'random streams of good and bad records, sent in random pieces: every outcome as documented',
  async (t, engine) => {
    const MAX_BODY = 200;
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = prng(seed * 7919);
      const bytes = (n: number): Buffer => {
        const b = Buffer.alloc(n);
        for (let i = 0; i < n; i++) b[i] = rnd() < 0.2 ? 0x0d : Math.floor(rnd() * 256);
        return b;
      };
      const recs: Rec[] = [];
      for (let i = 0; i < 60; i++) {
        const x = rnd();
        if (x < 0.6)
          recs.push({
            kind: 'ok',
            body: rnd() < 0.05 ? null : bytes(Math.floor(rnd() * MAX_BODY)),
          });
        else if (x < 0.75) recs.push({ kind: 'invalid', header: rnd() < 0.5 ? '$x' : '$-7' });
        else if (x < 0.9)
          recs.push({ kind: 'over', body: bytes(MAX_BODY + 1 + Math.floor(rnd() * 100)) });
        else recs.push({ kind: 'trailer', body: bytes(Math.floor(rnd() * 20)) });
      }
      const stream = Buffer.concat(recs.map(recBytes));
      const p = await tcpPair(engine);
      const opts: LengthPrefixedOptions = { ...RESP, maxBody: MAX_BODY };
      // Submits fn from the callback (held bytes framed in this turn) or from a later macrotask.
      const later = (fn: () => void): void => {
        if (rnd() < 0.5) fn();
        else setImmediate(fn);
      };
      const done = deferred<void>();
      const fail = (i: number, what: string): void =>
        done.reject(new Error(`seed ${seed}, record ${i} (${recs[i]!.kind}): ${what}`));
      const step = (i: number): void => {
        if (i === recs.length) {
          done.resolve();
          return;
        }
        const r = recs[i]!;
        engine.readLengthPrefixed(
          p.sock,
          opts,
          new Callback<LengthPrefixedRecord>({
            success: (v) => {
              const want = r.kind === 'ok' ? r.body : undefined;
              if (r.kind !== 'ok') return fail(i, `success ${v.header}`);
              const same =
                want === null ? v.body === null : v.body !== null && v.body.equals(want!);
              if (!same) return fail(i, `wrong body under ${v.header}`);
              later(() => step(i + 1));
            },
            failure: (err) => {
              const code = {
                ok: '-',
                invalid: 'ERR_INVALID_LENGTH',
                over: 'ERR_LIMIT',
                trailer: 'ERR_MISMATCH',
              }[r.kind];
              if (err.code !== code) return fail(i, `${err.code} instead of ${code}`);
              if (r.kind === 'trailer') {
                later(() => step(i + 1));
                return;
              }
              // The header (invalid) or the record (over) is still there: take it and go on.
              const size = recBytes(r).length;
              later(() =>
                engine.readExactly(
                  p.sock,
                  size,
                  new Callback<Buffer>({
                    success: (b) => {
                      if (!b.equals(recBytes(r))) return fail(i, 'the kept bytes differ');
                      later(() => step(i + 1));
                    },
                    failure: (e) => fail(i, `readExactly: ${e.code}`),
                  }),
                ),
              );
            },
          }),
        );
      };
      step(0);
      for (let at = 0; at < stream.length;) {
        const n = 1 + Math.floor(rnd() * (rnd() < 0.2 ? 2000 : 120));
        await p.write(stream.subarray(at, at + n));
        at += n;
        if (rnd() < 0.2) await sleep(1);
      }
      await withDeadline(done.promise, 20_000, `seed ${seed}`);
      t.is(p.sock.bufferedBytes, 0, `seed ${seed}`);
      engine.close(p.sock);
    }
  },
);
