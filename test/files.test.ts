// Files: open and close, sequential and positioned reads (readChunk, readExactly, readAll,
// readInto, the framing reads), writes at the cursor, at positions and appending, fsync, stat,
// offsets over 4 GiB, O_DIRECT, errors, bad arguments, cancel, timeouts, stats and fds.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Callback, EngineError, File, type FileStat, type OpenOptions } from 'async-engine';
import {
  type Ctx,
  type Engine,
  type Tracked,
  expectErr,
  expectOk,
  fdCount,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  prng,
  settleCounter,
  sleep,
  waitUntil,
} from './helpers/harness.js';

noFdLeaks();

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

// ---------------------------------------------------------------------------------------------
// Helpers

/** A fresh directory under os.tmpdir() (ext4 here), removed after the engine shut down. */
function filesDir(engine: Engine, base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, 'ae-files-'));
  onCleanup(engine, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `data` to a new file in `dir` with node:fs and returns its path. */
function fileWith(dir: string, name: string, data: string | Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

/** Submits one op through a tracked Callback and returns its success value (asserted). */
function ok<V>(t: Ctx, label: string, submit: (cb: Callback<V>) => void, ms?: number): Promise<V> {
  const tr = once<V>({}, label);
  submit(tr.cb);
  return expectOk(t, tr, ms);
}

/** Submits one op and asserts it fails with `code`; returns the error. */
function fails<V>(
  t: Ctx,
  label: string,
  code: string | string[],
  submit: (cb: Callback<V>) => void,
): Promise<EngineError> {
  const tr = once<V>({}, label);
  submit(tr.cb);
  return expectErr(t, tr, code);
}

function openFile(t: Ctx, engine: Engine, p: string, options?: OpenOptions): Promise<File> {
  return ok<File>(t, `open ${path.basename(p)} ${JSON.stringify(options ?? {})}`, (cb) =>
    options === undefined ? engine.open(p, cb) : engine.open(p, options, cb),
  );
}

/**
 * A file of `size` random bytes written with O_DIRECT through the engine, so none of it is in
 * the page cache: reads of it cannot all be served inline (RWF_NOWAIT fails with EAGAIN) and
 * stay pending for a while on every implementation. The page cache is the kernel's to manage,
 * and a busy machine has been seen to hold such a file's pages anyway: its last page is read
 * back as a probe, and a file whose probe was served inline (stats().fileFastPath moved;
 * readiness, threadpool and poll) is written again under another name, four times at most.
 */
async function coldFile(
  t: Ctx,
  engine: Engine,
  dir: string,
  name: string,
  size: number,
): Promise<{ path: string; data: Buffer }> {
  for (let attempt = 0; ; attempt++) {
    const p = path.join(dir, attempt === 0 ? name : `${name}.${attempt}`);
    const data = crypto.randomBytes(size);
    const w = await openFile(t, engine, p, { flags: 'w', direct: true });
    const step = 4 * MiB;
    for (let at = 0; at < size; at += step) {
      await ok<number>(t, `cold write @${at}`, (cb) =>
        engine.write(w, data.subarray(at, at + step), { position: at }, cb),
      );
    }
    engine.close(w);
    const r = await openFile(t, engine, p);
    const fastBefore = engine.stats().fileFastPath;
    const probe = await ok<Buffer>(t, 'cold probe', (cb) =>
      engine.readExactly(r, 4 * KiB, { position: size - 4 * KiB }, cb),
    );
    const warm = engine.stats().fileFastPath > fastBefore;
    engine.close(r);
    t.true(probe.equals(data.subarray(size - 4 * KiB)), 'the cold file holds its bytes');
    if (!warm || attempt === 3) return { path: p, data };
    t.log(`${path.basename(p)}: its pages stayed in the page cache; writing another`);
  }
}

/** Reads the whole file with readChunk(size) until the empty Buffer; checks every chunk size. */
async function drainChunks(t: Ctx, engine: Engine, f: File, size: number): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for (let i = 0; ; i++) {
    const v = await ok<Buffer>(t, `readChunk #${i}`, (cb) => engine.readChunk(f, size, cb));
    t.true(Buffer.isBuffer(v), 'readChunk gives a Buffer');
    if (v.length === 0) return parts;
    if (v.length > size) t.fail(`chunk #${i} has ${v.length} bytes, more than ${size}`);
    parts.push(v);
  }
}

type Expect = { instanceOf?: new (...a: never[]) => Error; code: string | string[] };
const typeErr: Expect = { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
const rangeErr: Expect = { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' };
const valueErr: Expect = { code: 'ERR_INVALID_ARG_VALUE' };

/**
 * Asserts that submit() throws synchronously as expected, makes no system call and queues
 * nothing (opsInFlight and syscalls unchanged); the callback must never run. Returns the error.
 */
function throwsSync(
  t: Ctx,
  engine: Engine,
  what: string,
  submit: (cb: Callback<never>) => void,
  expect: Expect,
  pending: Array<Tracked<never>>,
): Error | undefined {
  const before = engine.stats();
  const tr = once<never>({}, what);
  pending.push(tr);
  const err = t.throws(
    () => submit(tr.cb),
    expect.instanceOf ? { instanceOf: expect.instanceOf } : undefined,
    what,
  );
  const after = engine.stats();
  const codes = Array.isArray(expect.code) ? expect.code : [expect.code];
  const code = (err as (Error & { code?: string }) | undefined)?.code;
  t.true(codes.includes(code ?? ''), `${what}: code ${code}, expected ${codes.join('|')}`);
  t.is(after.opsInFlight, before.opsInFlight, `${what}: nothing queued`);
  t.is(after.syscalls, before.syscalls, `${what}: no system call`);
  return err;
}

/**
 * Waits until the engine makes no more system calls of its own accord: `stats().syscalls` also
 * counts the worker threads of `threadpool`, and a worker that has just started counts its first
 * wait a moment later, on its own thread. After this, a change of the counter across a
 * synchronous call is that call's.
 */
async function syscallsAtRest(engine: Engine): Promise<void> {
  let last = engine.stats().syscalls;
  for (let i = 0; i < 100; i++) {
    await sleep(20);
    const now = engine.stats().syscalls;
    if (now === last) return;
    last = now;
  }
}

async function assertNeverSettled(t: Ctx, pending: Array<Tracked<never>>): Promise<void> {
  await sleep(50);
  for (const tr of pending) t.is(tr.calls.length, 0, `${tr.label}: the callback never ran`);
}

function umask(): number {
  const m = process.umask(0);
  process.umask(m);
  return m;
}

// ---------------------------------------------------------------------------------------------
// open / close

forEachImpl(
  'open: success(File) with path, direct, alignment, fileno and closed; close()',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = fileWith(dir, 'basic.txt', 'abc');
    const f = await openFile(t, engine, p);
    t.true(f instanceof File, 'a File');
    t.is(f.path, p);
    t.false(f.direct);
    t.is(f.alignment, 1);
    t.false(f.closed);
    const fd = f.fileno();
    t.true(Number.isInteger(fd) && fd >= 0, `fileno() = ${fd}`);
    t.is(fs.fstatSync(fd).ino, fs.statSync(p).ino, 'fileno() is an fd of that file');
    t.is(await ok<Buffer>(t, 'read', (cb) => engine.readAll(f, cb)).then(String), 'abc');
    engine.close(f);
    t.true(f.closed);
    t.is(f.fileno(), -1);
    t.true(
      await waitUntil(() => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) !== p;
        } catch {
          return true;
        }
      }, 2_000),
      'the fd no longer refers to the file',
    );
    // A relative path is kept as given.
    const rel = path.relative(process.cwd(), p);
    const g = await openFile(t, engine, rel);
    t.is(g.path, rel);
    t.is(fs.fstatSync(g.fileno()).ino, fs.statSync(p).ino);
    engine.close(g);
  },
);

forEachImpl(
  "open flags: 'w' truncates, 'wx' creates with mode less the umask, numeric O_* bits",
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = fileWith(dir, 'old.txt', 'old contents');
    const w = await openFile(t, engine, p, { flags: 'w' });
    t.is(fs.statSync(p).size, 0, "'w' truncated the file");
    engine.close(w);

    const q = path.join(dir, 'new.txt');
    const x = await openFile(t, engine, q, { flags: 'wx', mode: 0o640 });
    t.true(fs.existsSync(q), "'wx' created the file");
    t.is(fs.statSync(q).mode & 0o777, 0o640 & ~umask(), 'mode, less the umask');
    t.is(await ok<number>(t, 'write', (cb) => engine.write(x, 'created', cb)), 7);
    t.is(fs.readFileSync(q, 'utf8'), 'created');

    const r = path.join(dir, 'numeric.txt');
    const { O_RDWR, O_CREAT, O_TRUNC } = fs.constants;
    const n = await openFile(t, engine, r, { flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600 });
    t.is(fs.statSync(r).mode & 0o777, 0o600 & ~umask());
    await ok<number>(t, 'write numeric', (cb) => engine.write(n, 'xyz', cb));
    const back = await ok<Buffer>(t, 'read numeric', (cb) =>
      engine.readExactly(n, 3, { position: 0 }, cb),
    );
    t.is(back.toString(), 'xyz', 'O_RDWR: readable and writable');

    const plus = await openFile(t, engine, path.join(dir, 'wplus.txt'), { flags: 'w+' });
    await ok<number>(t, 'write w+', (cb) => engine.write(plus, 'both ways', cb));
    t.is(
      (await ok<Buffer>(t, 'read w+', (cb) => engine.readChunk(plus, 100, cb))).toString(),
      'both ways',
      "'w+' reads from offset 0 (read cursor separate from the write cursor)",
    );
  },
);

forEachImpl("'a+': reads start at offset 0, writes go to the end", async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'aplus.txt', 'first line\n');
  const f = await openFile(t, engine, p, { flags: 'a+' });
  t.is(await ok<string>(t, 'line', (cb) => engine.expectLine(f, null, cb)), 'first line');
  await ok<number>(t, 'append', (cb) => engine.write(f, 'second line\n', cb));
  // A positioned write on an O_APPEND file still appends (Linux pwrite semantics), so only
  // sequential appends are checked here.
  t.is(fs.readFileSync(p, 'utf8'), 'first line\nsecond line\n');
  t.is(await ok<string>(t, 'line 2', (cb) => engine.expectLine(f, null, cb)), 'second line');
});

// ---------------------------------------------------------------------------------------------
// readChunk

forEachImpl(
  'readChunk walks the file: 1..size bytes each, chunks rebuild it, empty at EOF every time',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(100_003);
    const f = await openFile(t, engine, fileWith(dir, 'chunks.bin', data));
    const parts = await drainChunks(t, engine, f, 4096);
    t.true(
      parts.every((p) => p.length >= 1),
      'no empty chunk before EOF',
    );
    t.true(Buffer.concat(parts).equals(data), 'chunks rebuild the file');
    for (let i = 0; i < 3; i++) {
      const v = await ok<Buffer>(t, `EOF again #${i}`, (cb) => engine.readChunk(f, 4096, cb));
      t.true(Buffer.isBuffer(v));
      t.is(v.length, 0, 'EOF again: an empty Buffer');
    }
  },
);

forEachImpl(
  'readChunk short reads: a size past the end gives what is left; an empty file is EOF',
  async (t, engine) => {
    const dir = filesDir(engine);
    const f = await openFile(t, engine, fileWith(dir, 'short.txt', 'short'));
    const first = await ok<Buffer>(t, 'big chunk', (cb) => engine.readChunk(f, 1000, cb));
    t.true(first.length >= 1 && first.length <= 5, `${first.length} bytes`);
    t.true('short'.startsWith(first.toString()), JSON.stringify(first.toString()));
    const rest = await drainChunks(t, engine, f, 1000);
    t.is(Buffer.concat([first, ...rest]).toString(), 'short');

    const mid = await ok<Buffer>(t, 'positioned past the end', (cb) =>
      engine.readChunk(f, 1000, { position: 3 }, cb),
    );
    t.true(mid.length >= 1 && 'rt'.startsWith(mid.toString()), JSON.stringify(mid.toString()));
    const beyond = await ok<Buffer>(t, 'positioned beyond EOF', (cb) =>
      engine.readChunk(f, 10, { position: 1000 }, cb),
    );
    t.is(beyond.length, 0, 'a position beyond EOF is an empty Buffer');

    const e = await openFile(t, engine, fileWith(dir, 'empty.txt', ''));
    const v = await ok<Buffer>(t, 'empty file', (cb) => engine.readChunk(e, 10, cb));
    t.is(v.length, 0);
  },
);

// ---------------------------------------------------------------------------------------------
// readExactly, readAll

forEachImpl(
  'readExactly: exactly n bytes in turn; past EOF ERR_INCOMPLETE with err.partial',
  async (t, engine) => {
    const dir = filesDir(engine);
    const f = await openFile(t, engine, fileWith(dir, 'exact.txt', '1234567890abc'));
    t.is((await ok<Buffer>(t, 'n=4', (cb) => engine.readExactly(f, 4, cb))).toString(), '1234');
    t.is((await ok<Buffer>(t, 'n=6', (cb) => engine.readExactly(f, 6, cb))).toString(), '567890');
    const err = await fails<Buffer>(t, 'past EOF', 'ERR_INCOMPLETE', (cb) =>
      engine.readExactly(f, 10, cb),
    );
    t.true(Buffer.isBuffer(err.partial), 'err.partial is a Buffer');
    t.is(err.partial?.toString(), 'abc', 'partial: what there was');
    const eof = await ok<Buffer>(t, 'then EOF', (cb) => engine.readChunk(f, 10, cb));
    t.is(eof.length, 0, 'the partial bytes were consumed');

    const perr = await fails<Buffer>(t, 'positioned past EOF', 'ERR_INCOMPLETE', (cb) =>
      engine.readExactly(f, 10, { position: 8 }, cb),
    );
    t.is(perr.partial?.toString(), '90abc');
  },
);

forEachImpl('readExactly of 1 MiB + 7 from a 2 MiB file is byte-exact', async (t, engine) => {
  const dir = filesDir(engine);
  const data = crypto.randomBytes(2 * MiB);
  const f = await openFile(t, engine, fileWith(dir, 'big.bin', data));
  const n = MiB + 7;
  const a = await ok<Buffer>(t, 'first', (cb) => engine.readExactly(f, n, cb));
  t.is(a.length, n);
  t.true(a.equals(data.subarray(0, n)));
  const b = await ok<Buffer>(t, 'second', (cb) => engine.readExactly(f, 1000, cb));
  t.true(b.equals(data.subarray(n, n + 1000)), 'the cursor moved by exactly n');
});

forEachImpl(
  'readAll: the whole file; after a partial read the rest; an empty file is empty',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(50_000);
    const p = fileWith(dir, 'all.bin', data);
    const f = await openFile(t, engine, p);
    const all = await ok<Buffer>(t, 'readAll', (cb) => engine.readAll(f, cb));
    t.true(all.equals(data), `readAll gave ${all.length} bytes`);
    const again = await ok<Buffer>(t, 'readAll at EOF', (cb) => engine.readAll(f, cb));
    t.is(again.length, 0, 'readAll at EOF is empty');

    const g = await openFile(t, engine, p);
    await ok<Buffer>(t, 'head', (cb) => engine.readExactly(g, 1234, cb));
    const rest = await ok<Buffer>(t, 'rest', (cb) => engine.readAll(g, cb));
    t.true(rest.equals(data.subarray(1234)), 'readAll continues at the cursor');

    const e = await openFile(t, engine, fileWith(dir, 'empty.bin', ''));
    t.is((await ok<Buffer>(t, 'empty', (cb) => engine.readAll(e, cb))).length, 0);
  },
);

forEachImpl(
  'readAll: more than maxBytes is ERR_LIMIT; maxBytes Infinity reads 3 MiB',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(3 * MiB);
    const p = fileWith(dir, 'limit.bin', data);
    const f = await openFile(t, engine, p);
    await fails<Buffer>(t, 'maxBytes 1000', 'ERR_LIMIT', (cb) =>
      engine.readAll(f, { maxBytes: 1000 }, cb),
    );
    const g = await openFile(t, engine, p);
    await fails<Buffer>(t, 'default maxBytes (64 KiB)', 'ERR_LIMIT', (cb) => engine.readAll(g, cb));
    const h = await openFile(t, engine, p);
    const all = await ok<Buffer>(
      t,
      'maxBytes Infinity',
      (cb) => engine.readAll(h, { maxBytes: Infinity }, cb),
      30_000,
    );
    t.is(all.length, data.length);
    t.true(all.equals(data));
    const exact = await openFile(t, engine, fileWith(dir, 'exact.bin', data.subarray(0, 5000)));
    const v = await ok<Buffer>(t, 'maxBytes = size', (cb) =>
      engine.readAll(exact, { maxBytes: 5000 }, cb),
    );
    t.true(v.equals(data.subarray(0, 5000)), 'exactly maxBytes is allowed');
  },
);

forEachImpl('readAll at a position: from there to EOF, cursor untouched', async (t, engine) => {
  const dir = filesDir(engine);
  const data = crypto.randomBytes(20_000);
  const f = await openFile(t, engine, fileWith(dir, 'posall.bin', data));
  const tail = await ok<Buffer>(t, 'readAll @7000', (cb) =>
    engine.readAll(f, { position: 7000 }, cb),
  );
  t.true(tail.equals(data.subarray(7000)), `got ${tail.length} bytes`);
  const limited = await fails<Buffer>(t, 'readAll @0 maxBytes', 'ERR_LIMIT', (cb) =>
    engine.readAll(f, { position: 0, maxBytes: 100 }, cb),
  );
  t.true(limited instanceof EngineError);
  const beyond = await ok<Buffer>(t, 'readAll beyond EOF', (cb) =>
    engine.readAll(f, { position: 30_000 }, cb),
  );
  t.is(beyond.length, 0);
  const head = await ok<Buffer>(t, 'sequential', (cb) => engine.readExactly(f, 10, cb));
  t.true(head.equals(data.subarray(0, 10)), 'the cursor is still at 0');
});

// ---------------------------------------------------------------------------------------------
// Framing reads: expectLine, readUntil, lineglob, regex

forEachImpl(
  'expectLine reads back ~200 KiB of lines of varying length across read boundaries',
  async (t, engine) => {
    const dir = filesDir(engine);
    const rnd = prng(6);
    const lines: string[] = [];
    const raw: string[] = [];
    let size = 0;
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 -_.,;:!?ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    while (size < 200 * KiB) {
      const r = rnd();
      // Mostly short lines, some empty ones, some of several KiB (longer than a small read).
      const len = r < 0.1 ? 0 : r < 0.8 ? Math.floor(rnd() * 120) : Math.floor(rnd() * 9000);
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const term = rnd() < 0.25 ? '\r\n' : '\n';
      lines.push(s);
      raw.push(s + term);
      size += s.length + term.length;
    }
    const f = await openFile(t, engine, fileWith(dir, 'lines.txt', raw.join('')));
    const got: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const tr = once<string>({}, `line #${i}`);
      engine.expectLine(f, lines[i]!, tr.cb);
      const o = await tr.result();
      if (!o.ok) {
        t.fail(`line #${i} (${lines[i]!.length} chars): ${o.err?.code} ${o.err?.message}`);
        break;
      }
      got.push(o.value as string);
    }
    t.is(got.length, lines.length, `${lines.length} lines`);
    t.deepEqual(got, lines, 'every line, terminators stripped');
    const eof = await fails<string>(t, 'line at EOF', 'ERR_INCOMPLETE', (cb) =>
      engine.expectLine(f, null, cb),
    );
    t.is(eof.partial?.length ?? 0, 0, 'nothing left at EOF');
  },
);

forEachImpl(
  'readUntil: a multi-byte delimiter straddling 4, 16, 64 and 128 KiB; EOF gives the tail',
  async (t, engine) => {
    const dir = filesDir(engine);
    const delim = Buffer.from('\r\n--\r\n');
    const ends = [4 * KiB, 16 * KiB, 64 * KiB, 128 * KiB];
    const parts: Buffer[] = [];
    const records: Buffer[] = [];
    let at = 0;
    for (const end of ends) {
      // The delimiter starts 3 bytes before the boundary and ends 3 bytes after it.
      const body = Buffer.from(
        crypto.randomBytes(end - 3 - at).map((b) => (b === 0x0d ? 0x20 : b)),
      );
      parts.push(body, delim);
      records.push(Buffer.concat([body, delim]));
      at += body.length + delim.length;
    }
    const tail = Buffer.from('tail without delimiter');
    parts.push(tail);
    const f = await openFile(t, engine, fileWith(dir, 'delims.bin', Buffer.concat(parts)));
    for (let i = 0; i < records.length; i++) {
      const v = await ok<Buffer>(t, `record #${i}`, (cb) =>
        engine.readUntil(f, delim, { maxBytes: Infinity }, cb),
      );
      t.is(v.length, records[i]!.length, `record #${i} length`);
      t.true(v.equals(records[i]!), `record #${i} bytes`);
    }
    const err = await fails<Buffer>(t, 'tail', 'ERR_INCOMPLETE', (cb) =>
      engine.readUntil(f, '\n', cb),
    );
    t.is(err.partial?.toString(), tail.toString(), 'partial: the tail');
  },
);

forEachImpl(
  'readUntil: 100 ops queued at once on one File complete in order',
  async (t, engine) => {
    const dir = filesDir(engine);
    const recs = Array.from({ length: 100 }, (_, i) => `record ${i} ${'x'.repeat(i * 37)};`);
    const f = await openFile(t, engine, fileWith(dir, 'queued.txt', recs.join('')));
    const trs = recs.map((_, i) => once<Buffer>({}, `readUntil #${i}`));
    for (const tr of trs) engine.readUntil(f, ';', tr.cb);
    const got: string[] = [];
    for (const tr of trs) got.push((await expectOk(t, tr)).toString());
    t.deepEqual(got, recs);
  },
);

forEachImpl('readUntilLineglob and readUntilRegex on a File', async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'glob.txt', 'alpha\r\nbeta\nEND of header\nvalue 42; more\n');
  const f = await openFile(t, engine, p);
  const lines = await ok<string[]>(t, 'lineglob', (cb) => engine.readUntilLineglob(f, 'END*', cb));
  t.deepEqual(lines, ['alpha', 'beta', 'END of header']);
  const m = await ok<{ data: Buffer; match: RegExpExecArray }>(t, 'regex', (cb) =>
    engine.readUntilRegex(f, /(\d+);/, cb),
  );
  t.is(m.data.toString(), 'value 42;');
  t.is(m.match[1], '42');
  t.is(
    (await ok<Buffer>(t, 'rest', (cb) => engine.readAll(f, cb))).toString(),
    ' more\n',
    'the bytes after the match stay for the next read',
  );
});

forEachImpl(
  'framing and byte reads share one cursor: expectLine then readExactly then readInto',
  async (t, engine) => {
    const dir = filesDir(engine);
    const f = await openFile(t, engine, fileWith(dir, 'mixed.txt', 'head\nBODYtail-bytes'));
    t.is(await ok<string>(t, 'line', (cb) => engine.expectLine(f, 'head', cb)), 'head');
    t.is((await ok<Buffer>(t, 'body', (cb) => engine.readExactly(f, 4, cb))).toString(), 'BODY');
    const buf = Buffer.alloc(64);
    const n = await ok<number>(t, 'readInto', (cb) => engine.readInto(f, buf, cb));
    t.true(n >= 1 && n <= 10, `n = ${n}`);
    t.true('tail-bytes'.startsWith(buf.subarray(0, n).toString()));
  },
);

// ---------------------------------------------------------------------------------------------
// Positioned reads, readInto

forEachImpl('positioned reads leave the read cursor alone', async (t, engine) => {
  const dir = filesDir(engine);
  const f = await openFile(t, engine, fileWith(dir, 'pos.txt', '0123456789abcdefghij'));
  const seq = async (n: number) =>
    (await ok<Buffer>(t, `seq ${n}`, (cb) => engine.readExactly(f, n, cb))).toString();
  t.is(await seq(3), '012');
  const c = await ok<Buffer>(t, 'chunk @10', (cb) => engine.readChunk(f, 4, { position: 10 }, cb));
  t.true(c.length >= 1 && 'abcd'.startsWith(c.toString()), JSON.stringify(c.toString()));
  t.is(await seq(2), '34');
  const e = await ok<Buffer>(t, 'exact @15', (cb) =>
    engine.readExactly(f, 5, { position: 15 }, cb),
  );
  t.is(e.toString(), 'fghij');
  t.is(await seq(2), '56');
  const a = await ok<Buffer>(t, 'all @12', (cb) => engine.readAll(f, { position: 12 }, cb));
  t.is(a.toString(), 'cdefghij');
  t.is(await seq(1), '7');
  const buf = Buffer.alloc(3);
  const n = await ok<number>(t, 'into @0', (cb) => engine.readInto(f, buf, { position: 0 }, cb));
  t.true(n >= 1 && '012'.startsWith(buf.subarray(0, n).toString()));
  t.is(await seq(2), '89');
  const z = await ok<Buffer>(t, 'chunk @0', (cb) => engine.readChunk(f, 2, { position: 0 }, cb));
  t.true(z.length >= 1 && '01'.startsWith(z.toString()));
  t.is(await seq(3), 'abc');
});

forEachImpl(
  '64 concurrent positioned readChunk / readExactly / readInto of one File all correct',
  async (t, engine) => {
    const dir = filesDir(engine);
    const block = 4096;
    const data = crypto.randomBytes(64 * block + 1000);
    const f = await openFile(t, engine, fileWith(dir, 'concurrent.bin', data));
    const rnd = prng(64);
    const order = Array.from({ length: 64 }, (_, i) => i).sort(() => rnd() - 0.5);
    const sc = settleCounter();
    const checks: Array<Promise<void>> = [];
    for (const i of order) {
      // Mostly aligned blocks, some straddling two pages.
      const pos = i * block + (i % 3 === 0 ? 777 : 0);
      const want = data.subarray(pos, pos + block);
      if (i % 3 === 0) {
        const tr = sc.wrap<Buffer>({}, `readChunk @${pos}`);
        engine.readChunk(f, block, { position: pos }, tr.cb);
        checks.push(
          expectOk(t, tr).then((v) => {
            if (!(v.length >= 1 && v.equals(want.subarray(0, v.length))))
              t.fail(`${tr.label}: wrong bytes (${v.length})`);
          }),
        );
      } else if (i % 3 === 1) {
        const tr = sc.wrap<Buffer>({}, `readExactly @${pos}`);
        engine.readExactly(f, block, { position: pos }, tr.cb);
        checks.push(
          expectOk(t, tr).then((v) => {
            if (!v.equals(want)) t.fail(`${tr.label}: wrong bytes (${v.length})`);
          }),
        );
      } else {
        const buf = Buffer.alloc(block, 0xee);
        const tr = sc.wrap<number>({}, `readInto @${pos}`);
        engine.readInto(f, buf, { position: pos }, tr.cb);
        checks.push(
          expectOk(t, tr).then((n) => {
            if (!(n >= 1 && n <= block && buf.subarray(0, n).equals(want.subarray(0, n))))
              t.fail(`${tr.label}: wrong bytes (n = ${n})`);
          }),
        );
      }
    }
    await Promise.all(checks);
    await sc.allSettled();
    sc.assertExactlyOnce(t);
    t.deepEqual(sc.tally(), { ok: 64 });
    const head = await ok<Buffer>(t, 'sequential', (cb) => engine.readExactly(f, 16, cb));
    t.true(head.equals(data.subarray(0, 16)), 'the cursor is still at 0');
  },
);

forEachImpl(
  'readInto sequentially: fills the caller buffer, rebuilds the file, 0 at EOF',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(10_000);
    const f = await openFile(t, engine, fileWith(dir, 'into.bin', data));
    const parts: Buffer[] = [];
    const buf = Buffer.alloc(4096);
    for (let i = 0; i < 100; i++) {
      buf.fill(0xee);
      const n = await ok<number>(t, `readInto #${i}`, (cb) => engine.readInto(f, buf, cb));
      t.true(Number.isInteger(n) && n >= 0 && n <= buf.length, `n = ${n}`);
      if (n === 0) break;
      parts.push(Buffer.from(buf.subarray(0, n)));
      if (n < buf.length)
        t.true(
          buf.subarray(n).every((b) => b === 0xee),
          'nothing past n',
        );
    }
    t.true(Buffer.concat(parts).equals(data), 'readInto rebuilds the file');
    t.is(await ok<number>(t, 'EOF again', (cb) => engine.readInto(f, buf, cb)), 0);

    // A Uint8Array works as well.
    const g = await openFile(t, engine, fileWith(dir, 'u8.bin', 'uint8 array'));
    const u8 = new Uint8Array(5);
    const n = await ok<number>(t, 'Uint8Array', (cb) => engine.readInto(g, u8, cb));
    t.true(n >= 1 && 'uint8'.startsWith(Buffer.from(u8.subarray(0, n)).toString()));
  },
);

forEachImpl(
  'readInto at a position: bytes land at the start of the buffer, 0 past EOF, cursor untouched',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(10_000);
    const f = await openFile(t, engine, fileWith(dir, 'posinto.bin', data));
    const buf = Buffer.alloc(100, 0xee);
    const n = await ok<number>(t, 'readInto @5000', (cb) =>
      engine.readInto(f, buf, { position: 5000 }, cb),
    );
    t.true(n >= 1 && n <= 100, `n = ${n}`);
    t.true(buf.subarray(0, n).equals(data.subarray(5000, 5000 + n)));
    buf.fill(0xee);
    const m = await ok<number>(t, 'readInto @9990', (cb) =>
      engine.readInto(f, buf, { position: 9990 }, cb),
    );
    t.true(m >= 1 && m <= 10, `at most the 10 bytes left, got ${m}`);
    t.true(buf.subarray(0, m).equals(data.subarray(9990, 9990 + m)));
    t.true(
      buf.subarray(m).every((b) => b === 0xee),
      'nothing written past bytesRead',
    );
    t.is(
      await ok<number>(t, 'readInto @EOF', (cb) =>
        engine.readInto(f, buf, { position: 10_000 }, cb),
      ),
      0,
    );
    t.is(
      await ok<number>(t, 'readInto past EOF', (cb) =>
        engine.readInto(f, buf, { position: 50_000 }, cb),
      ),
      0,
    );
    const head = await ok<Buffer>(t, 'sequential', (cb) => engine.readExactly(f, 8, cb));
    t.true(head.equals(data.subarray(0, 8)), 'the cursor is still at 0');
  },
);

// ---------------------------------------------------------------------------------------------
// readInto's buffer changed by JavaScript while the op waits: never a write into freed memory

/** Runs a full garbage collection (a detached buffer's memory is freed). */
const collect: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

/**
 * Moves `u8`'s memory to a new ArrayBuffer and collects garbage: `u8` is left detached. Returns
 * a copy of what the memory held (the moved buffer itself is dropped, so its memory is freed).
 */
function detach(u8: Uint8Array): Buffer {
  const moved = structuredClone(u8.buffer, { transfer: [u8.buffer as ArrayBuffer] });
  const held = Buffer.from(new Uint8Array(moved));
  collect();
  return held;
}

forEachImpl(
  'readInto queued behind a sequential read, buffer detached meanwhile: ERR_INVALID_STATE, bytes kept',
  async (t, engine) => {
    const dir = filesDir(engine);
    const { path: p, data } = await coldFile(t, engine, dir, 'detach-seq.bin', MiB);
    const f = await openFile(t, engine, p);
    const head = once<Buffer>({}, 'readExactly 100');
    const fastBefore = engine.stats().fileFastPath;
    engine.readExactly(f, 100, head.cb);
    // readiness and threadpool try the page cache inline (RWF_NOWAIT): if the eviction of the
    // file did not hold, the read-ahead is buffered during the call and the readInto below takes
    // its bytes as it is submitted, before the buffer goes away.
    const copiedAtSubmit = engine.stats().fileFastPath > fastBefore;
    const u8 = new Uint8Array(4096).fill(0xee);
    const into = once<number>({}, 'readInto (detached)');
    engine.readInto(f, u8, into.cb);
    const held = detach(u8);
    t.true((await expectOk(t, head)).equals(data.subarray(0, 100)));
    let from = 100;
    if (copiedAtSubmit) {
      t.is(await expectOk(t, into), 4096);
      t.true(
        held.equals(data.subarray(100, 4196)),
        'the bytes went into the buffer before it moved',
      );
      from = 4196;
    } else {
      const err = await expectErr(t, into, 'ERR_INVALID_STATE');
      t.regex(err.message, /detached|shrunk/);
      t.true(
        held.every((b) => b === 0xee),
        'nothing was written into the buffer',
      );
    }
    // The bytes the readInto would have taken stay for the File's next read.
    const next = await ok<Buffer>(t, 'readExactly after', (cb) => engine.readExactly(f, 4096, cb));
    t.true(next.equals(data.subarray(from, from + 4096)), 'no byte lost');
    engine.close(f);
  },
);

forEachImpl(
  'readInto reading for itself (nothing buffered), buffer detached meanwhile: ERR_INVALID_STATE, bytes kept',
  async (t, engine) => {
    const dir = filesDir(engine);
    const { path: p, data } = await coldFile(t, engine, dir, 'detach-own.bin', MiB);
    const f = await openFile(t, engine, p);
    const u8 = new Uint8Array(8192);
    const into = once<number>({}, 'readInto (detached)');
    const fastBefore = engine.stats().fileFastPath;
    engine.readInto(f, u8, into.cb);
    // readiness and threadpool try the page cache inline (RWF_NOWAIT): if the eviction of the
    // file did not hold, the bytes were copied during the call, before the buffer went away.
    const copiedAtSubmit = engine.stats().fileFastPath > fastBefore;
    detach(u8);
    let from = 0;
    if (copiedAtSubmit) {
      t.is(await expectOk(t, into), 8192);
      from = 8192;
    } else {
      await expectErr(t, into, 'ERR_INVALID_STATE');
    }
    const next = await ok<Buffer>(t, 'readExactly after', (cb) => engine.readExactly(f, 8192, cb));
    t.true(next.equals(data.subarray(from, from + 8192)), 'the file is read from where it was');
    engine.close(f);
  },
);

forEachImpl(
  'positioned readInto, buffer detached while the request runs: ERR_INVALID_STATE, the File works on',
  async (t, engine) => {
    const dir = filesDir(engine);
    // Reads 1 MiB apart, beyond the kernel's read-ahead of the first, of a file just written
    // with O_DIRECT: normally none is in the page cache, so each is still running when its
    // buffer is detached, right after its call. readiness, threadpool and poll try the page
    // cache inline (RWF_NOWAIT), and the kernel may keep or read ahead pages on a busy machine:
    // a read served during its call (stats().fileFastPath moved) copied its bytes before the
    // buffer went away and succeeds. Each read is checked for the case it was in; a round where
    // every read was served inline gets a fresh cold file (four rounds at most), so that the
    // detached path is exercised.
    const tallies: string[] = [];
    let detachedWhileRunning = 0;
    for (let round = 0; round < 4 && detachedWhileRunning === 0; round++) {
      const { path: p, data } = await coldFile(t, engine, dir, `detach-pos-${round}.bin`, 8 * MiB);
      const f = await openFile(t, engine, p);
      const sc = settleCounter();
      const reads = Array.from({ length: 8 }, (_, i) => {
        const u8 = new Uint8Array(16 * KiB);
        const tr = sc.wrap<number>({}, `round ${round}: readInto @${i} MiB`);
        const fastBefore = engine.stats().fileFastPath;
        engine.readInto(f, u8, { position: i * MiB }, tr.cb);
        const inline = engine.stats().fileFastPath > fastBefore;
        return { tr, inline, held: detach(u8), at: i * MiB };
      });
      await sc.allSettled();
      sc.assertExactlyOnce(t);
      tallies.push(JSON.stringify(sc.tally()));
      for (const r of reads) {
        const o = r.tr.calls[0];
        if (r.inline) {
          t.true(o?.ok === true, `${r.tr.label}: served inline, so success; got ${o?.err?.code}`);
          t.is(o?.value, 16 * KiB);
          t.true(r.held.equals(data.subarray(r.at, r.at + 16 * KiB)), 'its bytes, copied in time');
        } else {
          t.is(o?.err?.code, 'ERR_INVALID_STATE', `${r.tr.label}: running when detached`);
          t.true(
            r.held.every((b) => b === 0),
            `${r.tr.label}: nothing written into the buffer`,
          );
          detachedWhileRunning++;
        }
      }
      const again = new Uint8Array(16);
      const n = await ok<number>(t, 'readInto after', (cb) =>
        engine.readInto(f, again, { position: MiB }, cb),
      );
      t.true(Buffer.from(again.subarray(0, n)).equals(data.subarray(MiB, MiB + n)));
      engine.close(f);
    }
    t.true(
      detachedWhileRunning >= 1,
      `a read ran while its buffer went away: ${tallies.join(' ')}`,
    );
  },
);

forEachImpl(
  'readInto refuses resizable and growable buffers: ERR_INVALID_ARG_VALUE, nothing queued',
  async (t, engine) => {
    const dir = filesDir(engine);
    const f = await openFile(t, engine, fileWith(dir, 'resizable.bin', 'some bytes'));
    const before = engine.stats().opsInFlight;
    type Growable = new (n: number, o: { maxByteLength: number }) => ArrayBufferLike;
    const resizable = new (ArrayBuffer as unknown as Growable)(16, { maxByteLength: 64 });
    const growable = new (SharedArrayBuffer as unknown as Growable)(16, { maxByteLength: 64 });
    for (const [name, u8] of [
      ['resizable ArrayBuffer', new Uint8Array(resizable)],
      ['resizable ArrayBuffer, fixed-length view', new Uint8Array(resizable, 0, 8)],
      ['growable SharedArrayBuffer', new Uint8Array(growable)],
    ] as const) {
      t.throws(
        () => engine.readInto(f, u8, new Callback({})),
        {
          instanceOf: TypeError,
          code: 'ERR_INVALID_ARG_VALUE',
          message: /resizable|growable/,
        },
        name,
      );
      t.throws(
        () => engine.readInto(f, u8, { position: 0 }, new Callback({})),
        {
          code: 'ERR_INVALID_ARG_VALUE',
        },
        `${name}, positioned`,
      );
    }
    t.is(engine.stats().opsInFlight, before, 'nothing queued');
    // A fixed SharedArrayBuffer cannot shrink or be detached: it is accepted.
    const shared = new Uint8Array(new SharedArrayBuffer(4));
    t.is(await ok<number>(t, 'readInto shared', (cb) => engine.readInto(f, shared, cb)), 4);
    t.is(Buffer.from(shared).toString(), 'some');
    engine.close(f);
  },
);

// ---------------------------------------------------------------------------------------------
// Writes, fsync

forEachImpl(
  'write at positions: bytes land there, the gap reads as zeros, bytesWritten is the length',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'poswrite.bin');
    const f = await openFile(t, engine, p, { flags: 'w+' });
    t.is(
      await ok<number>(t, 'hello @10', (cb) => engine.write(f, 'hello', { position: 10 }, cb)),
      5,
    );
    t.is(
      await ok<number>(t, 'AB @0', (cb) => engine.write(f, Buffer.from('AB'), { position: 0 }, cb)),
      2,
    );
    t.is(
      await ok<number>(t, 'utf8 @15', (cb) => engine.write(f, 'héllo', { position: 15 }, cb)),
      6,
    );
    const want = Buffer.concat([
      Buffer.from('AB'),
      Buffer.alloc(8),
      Buffer.from('hello'),
      Buffer.from('héllo'),
    ]);
    t.true(fs.readFileSync(p).equals(want), JSON.stringify(fs.readFileSync(p).toString('latin1')));
    const back = await ok<Buffer>(t, 'read back', (cb) =>
      engine.readExactly(f, want.length, { position: 0 }, cb),
    );
    t.true(back.equals(want), 'the engine reads back what it wrote');
    // Overwrite in the middle.
    await ok<number>(t, 'overwrite', (cb) => engine.write(f, 'XY', { position: 11 }, cb));
    t.is(fs.readFileSync(p).subarray(10, 15).toString(), 'hXYlo');
  },
);

forEachImpl(
  'sequential writes follow the write cursor; positioned writes do not move it',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'seqwrite.txt');
    const f = await openFile(t, engine, p, { flags: 'w+' });
    await ok<number>(t, 'abc', (cb) => engine.write(f, 'abc', cb));
    await ok<number>(t, 'def', (cb) => engine.write(f, Buffer.from('def'), cb));
    await ok<number>(t, 'ZZ @20', (cb) => engine.write(f, 'ZZ', { position: 20 }, cb));
    await ok<number>(t, 'ghi', (cb) => engine.write(f, 'ghi', cb));
    const disk = fs.readFileSync(p);
    t.is(disk.length, 22);
    t.is(disk.subarray(0, 9).toString(), 'abcdefghi', 'sequential writes back to back');
    t.true(
      disk.subarray(9, 20).every((b) => b === 0),
      'the gap is zeros',
    );
    t.is(disk.subarray(20).toString(), 'ZZ');
    // The read cursor is separate from the write cursor: it is still at 0.
    t.is((await ok<Buffer>(t, 'read', (cb) => engine.readExactly(f, 3, cb))).toString(), 'abc');
    await ok<number>(t, 'jkl', (cb) => engine.write(f, 'jkl', cb));
    t.is(fs.readFileSync(p).subarray(0, 12).toString(), 'abcdefghijkl', 'reading did not move it');
  },
);

forEachImpl(
  "appends with 'a': each write lands at the end, also after another writer grew the file",
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = fileWith(dir, 'append.txt', 'start\n');
    const f = await openFile(t, engine, p, { flags: 'a' });
    t.is(await ok<number>(t, 'one', (cb) => engine.write(f, 'one\n', cb)), 4);
    t.is(fs.readFileSync(p, 'utf8'), 'start\none\n');
    fs.appendFileSync(p, 'ext\n');
    await ok<number>(t, 'two', (cb) => engine.write(f, 'two\n', cb));
    t.is(fs.readFileSync(p, 'utf8'), 'start\none\next\ntwo\n');
    // Two appends in flight at once: both land at the end, whole, one after the other.
    const x = 'x'.repeat(3000);
    const y = 'y'.repeat(3000);
    const a = once<number>({}, 'append x');
    const b = once<number>({}, 'append y');
    engine.write(f, x, a.cb);
    engine.write(f, y, b.cb);
    t.is(await expectOk(t, a), 3000);
    t.is(await expectOk(t, b), 3000);
    const end = fs.readFileSync(p, 'utf8').slice('start\none\next\ntwo\n'.length);
    t.true(end === x + y || end === y + x, `the end of the file: ${end.length} chars`);
    // A second File appending to the same path also lands at the end.
    const g = await openFile(t, engine, p, { flags: 'a' });
    await ok<number>(t, 'other File', (cb) => engine.write(g, 'last\n', cb));
    t.true(fs.readFileSync(p, 'utf8').endsWith(end + 'last\n'));
  },
);

forEachImpl('a 4 MiB write: all written, byte-exact on disk', async (t, engine) => {
  const dir = filesDir(engine);
  const p = path.join(dir, 'bigwrite.bin');
  const data = crypto.randomBytes(4 * MiB);
  const f = await openFile(t, engine, p, { flags: 'w' });
  t.is(await ok<number>(t, 'write 4 MiB', (cb) => engine.write(f, data, cb), 30_000), data.length);
  t.true(fs.readFileSync(p).equals(data));
  t.is(await ok<number>(t, 'and 1 byte more', (cb) => engine.write(f, '!', cb)), 1);
  t.is(fs.statSync(p).size, data.length + 1);
});

forEachImpl('fsync and fsync({ dataOnly: true }) succeed with undefined', async (t, engine) => {
  const dir = filesDir(engine);
  const p = path.join(dir, 'sync.txt');
  const f = await openFile(t, engine, p, { flags: 'w' });
  await ok<number>(t, 'write', (cb) => engine.write(f, 'durable', cb));
  const tr = once<void>({}, 'fsync');
  engine.fsync(f, tr.cb);
  t.is(await expectOk(t, tr), undefined);
  await ok<number>(t, 'write 2', (cb) => engine.write(f, ' data', cb));
  const tr2 = once<void>({}, 'fdatasync');
  engine.fsync(f, { dataOnly: true }, tr2.cb);
  t.is(await expectOk(t, tr2), undefined);
  t.is(fs.readFileSync(p, 'utf8'), 'durable data');
  const r = await openFile(t, engine, p);
  t.is(await ok<void>(t, 'fsync read-only', (cb) => engine.fsync(r, cb)), undefined);
});

// ---------------------------------------------------------------------------------------------
// Offsets over 4 GiB

forEachImpl(
  'offsets over 4 GiB: a sparse write at 5 GiB + 3, stat size, read back; the hole is zeros',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'sparse.bin');
    const f = await openFile(t, engine, p, { flags: 'w+' });
    const pos = 5 * GiB + 3;
    t.is(
      await ok<number>(t, 'write @5GiB+3', (cb) => engine.write(f, 'hello', { position: pos }, cb)),
      5,
    );
    const st = await ok<FileStat>(t, 'stat', (cb) => engine.stat(f, cb));
    t.is(st.size, pos + 5);
    t.is(fs.statSync(p).size, pos + 5, 'node:fs agrees');
    const fd = fs.openSync(p, 'r');
    const check = Buffer.alloc(5);
    fs.readSync(fd, check, 0, 5, pos);
    fs.closeSync(fd);
    t.is(check.toString(), 'hello', 'the bytes are at 5 GiB + 3 on disk');
    const back = await ok<Buffer>(t, 'readExactly @5GiB+3', (cb) =>
      engine.readExactly(f, 5, { position: pos }, cb),
    );
    t.is(back.toString(), 'hello');
    const buf = Buffer.alloc(16, 0xee);
    const n = await ok<number>(t, 'readInto @5GiB+1', (cb) =>
      engine.readInto(f, buf, { position: pos - 2 }, cb),
    );
    t.true(n >= 1 && n <= 7, `n = ${n}`);
    t.true(buf.subarray(0, n).equals(Buffer.from('\0\0hello').subarray(0, n)));
    const hole = await ok<Buffer>(t, 'readChunk @4GiB', (cb) =>
      engine.readChunk(f, 4096, { position: 4 * GiB }, cb),
    );
    t.true(hole.length >= 1 && hole.length <= 4096, `${hole.length} bytes`);
    t.true(
      hole.every((b) => b === 0),
      'the hole reads as zeros',
    );
    const incomplete = await fails<Buffer>(t, 'past the end', 'ERR_INCOMPLETE', (cb) =>
      engine.readExactly(f, 10, { position: pos + 2 }, cb),
    );
    t.is(incomplete.partial?.toString(), 'llo');
    // Exactly 4 GiB (2**32) as a write position.
    await ok<number>(t, 'write @4GiB', (cb) => engine.write(f, 'four', { position: 4 * GiB }, cb));
    const four = await ok<Buffer>(t, 'read @4GiB', (cb) =>
      engine.readExactly(f, 4, { position: 4 * GiB }, cb),
    );
    t.is(four.toString(), 'four');
    const low = await ok<Buffer>(t, 'read @0', (cb) =>
      engine.readExactly(f, 4, { position: 0 }, cb),
    );
    t.true(low.equals(Buffer.alloc(4)), 'nothing wrapped around to offset 0');
  },
);

// ---------------------------------------------------------------------------------------------
// stat

forEachImpl('stat(File) and stat(path) agree with node:fs', async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'stat.txt', 'twelve bytes');
  const f = await openFile(t, engine, p);
  const want = fs.statSync(p);
  for (const [what, target] of [
    ['File', f],
    ['path', p],
  ] as const) {
    const st = await ok<FileStat>(t, `stat ${what}`, (cb) => engine.stat(target, cb));
    t.is(st.size, 12, `${what}: size`);
    t.true(st.isFile, `${what}: isFile`);
    t.false(st.isDirectory, `${what}: isDirectory`);
    t.is(st.ino, want.ino, `${what}: ino`);
    t.is(st.mode, want.mode, `${what}: mode`);
    t.is(st.nlink, want.nlink, `${what}: nlink`);
    t.is(st.uid, want.uid, `${what}: uid`);
    t.is(st.gid, want.gid, `${what}: gid`);
    t.is(st.blksize, want.blksize, `${what}: blksize`);
    t.is(st.blocks, want.blocks, `${what}: blocks`);
    t.true(Math.abs(st.mtimeMs - want.mtimeMs) < 1, `${what}: mtimeMs ${st.mtimeMs}`);
    t.true(Math.abs(st.ctimeMs - want.ctimeMs) < 1, `${what}: ctimeMs ${st.ctimeMs}`);
    for (const k of ['dev', 'atimeMs', 'birthtimeMs'] as const)
      t.is(typeof st[k], 'number', `${what}: ${k} is a number`);
  }
  // stat sees a size change made through the engine.
  const w = await openFile(t, engine, p, { flags: 'a' });
  await ok<number>(t, 'append', (cb) => engine.write(w, '+8 bytes', cb));
  t.is((await ok<FileStat>(t, 'stat after', (cb) => engine.stat(f, cb))).size, 20);
});

forEachImpl('stat of a directory is isDirectory; a missing path is ENOENT', async (t, engine) => {
  const dir = filesDir(engine);
  const st = await ok<FileStat>(t, 'stat dir', (cb) => engine.stat(dir, cb));
  t.true(st.isDirectory);
  t.false(st.isFile);
  t.is(st.ino, fs.statSync(dir).ino);
  await fails<FileStat>(t, 'stat missing', 'ENOENT', (cb) =>
    engine.stat(path.join(dir, 'missing'), cb),
  );
});

// ---------------------------------------------------------------------------------------------
// O_DIRECT

forEachImpl(
  'direct: aligned positioned write of 2 × alignment, read back, also sequentially',
  async (t, engine) => {
    const dir = filesDir(engine); // ext4 under os.tmpdir()
    const p = path.join(dir, 'direct.bin');
    const f = await openFile(t, engine, p, { flags: 'w+', direct: true });
    t.true(f.direct);
    const a = f.alignment;
    t.true(Number.isInteger(a) && a >= 512 && (a & (a - 1)) === 0, `alignment ${a}`);
    const flags = fs.readFileSync(`/proc/self/fdinfo/${f.fileno()}`, 'utf8');
    const octal = /flags:\s*([0-7]+)/.exec(flags)?.[1];
    t.truthy(octal, 'fdinfo flags');
    t.true((parseInt(octal ?? '0', 8) & fs.constants.O_DIRECT) !== 0, 'the fd has O_DIRECT');

    const data = crypto.randomBytes(2 * a);
    t.is(
      await ok<number>(t, 'write @a', (cb) => engine.write(f, data, { position: a }, cb)),
      2 * a,
    );
    t.is(fs.statSync(p).size, 3 * a);
    t.true(fs.readFileSync(p).subarray(a).equals(data), 'on disk');
    const back = await ok<Buffer>(t, 'readExactly @a', (cb) =>
      engine.readExactly(f, 2 * a, { position: a }, cb),
    );
    t.true(back.equals(data), 'read back');
    const chunk = await ok<Buffer>(t, 'readChunk @2a', (cb) =>
      engine.readChunk(f, a, { position: 2 * a }, cb),
    );
    t.true(chunk.length >= 1 && chunk.equals(data.subarray(a, a + chunk.length)));
    const buf = Buffer.alloc(a, 0xee);
    t.is(
      await ok<number>(t, 'readInto @0', (cb) => engine.readInto(f, buf, { position: 0 }, cb)),
      a,
    );
    t.true(
      buf.every((b) => b === 0),
      'the hole before is zeros',
    );
    // Sequential: the write cursor is at 0, the read cursor too.
    const seq = crypto.randomBytes(a);
    await ok<number>(t, 'sequential write', (cb) => engine.write(f, seq, cb));
    const r1 = await ok<Buffer>(t, 'sequential read 1', (cb) => engine.readExactly(f, a, cb));
    t.true(r1.equals(seq));
    const r2 = await ok<Buffer>(t, 'sequential read 2', (cb) => engine.readExactly(f, a, cb));
    t.true(r2.equals(data.subarray(0, a)));
  },
);

forEachImpl(
  'direct: a misaligned position or size throws RangeError ERR_OUT_OF_RANGE before any syscall',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'misaligned.bin');
    fs.writeFileSync(p, Buffer.alloc(16 * KiB, 'd'));
    const f = await openFile(t, engine, p, { flags: 'r+', direct: true });
    const a = f.alignment;
    const pending: Array<Tracked<never>> = [];
    await syscallsAtRest(engine);
    const cases: Array<[string, (cb: Callback<never>) => void]> = [
      [
        'write at a + 1',
        (cb) => engine.write(f, Buffer.alloc(a), { position: a + 1 }, cb as never),
      ],
      [
        'write of a - 1 bytes',
        (cb) => engine.write(f, Buffer.alloc(a - 1), { position: 0 }, cb as never),
      ],
      ['sequential write of 100 bytes', (cb) => engine.write(f, 'x'.repeat(100), cb as never)],
      ['readChunk size 100', (cb) => engine.readChunk(f, 100, { position: 0 }, cb as never)],
      ['readChunk at 1', (cb) => engine.readChunk(f, a, { position: 1 }, cb as never)],
      ['sequential readChunk size a + 1', (cb) => engine.readChunk(f, a + 1, cb as never)],
      ['readExactly n = a + 1', (cb) => engine.readExactly(f, a + 1, { position: 0 }, cb as never)],
      ['readExactly at a / 2', (cb) => engine.readExactly(f, a, { position: a / 2 }, cb as never)],
      [
        'readInto of 10 bytes',
        (cb) => engine.readInto(f, Buffer.alloc(10), { position: 0 }, cb as never),
      ],
      ['readInto at 3', (cb) => engine.readInto(f, Buffer.alloc(a), { position: 3 }, cb as never)],
    ];
    for (const [what, submit] of cases) {
      const err = throwsSync(t, engine, what, submit, rangeErr, pending);
      const msg = err?.message ?? '';
      t.true(
        /align/i.test(msg) || msg.includes(String(a)),
        `${what}: the message mentions the alignment: ${msg}`,
      );
    }
    await assertNeverSettled(t, pending);
    t.true(fs.readFileSync(p).equals(Buffer.alloc(16 * KiB, 'd')), 'the file is untouched');
    // The File still works with aligned ops afterwards.
    const v = await ok<Buffer>(t, 'aligned read', (cb) =>
      engine.readExactly(f, a, { position: a }, cb),
    );
    t.true(v.equals(Buffer.alloc(a, 'd')));
  },
);

forEachImpl(
  'direct: readAll and expectLine work on a File of unaligned length',
  async (t, engine) => {
    const dir = filesDir(engine);
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i} ${'z'.repeat(i % 50)}`);
    const text = lines.join('\n') + '\ntrailer';
    const p = fileWith(dir, 'direct-lines.txt', text);
    const f = await openFile(t, engine, p, { direct: true });
    t.true(f.direct);
    for (let i = 0; i < 10; i++) {
      t.is(await ok<string>(t, `line ${i}`, (cb) => engine.expectLine(f, lines[i]!, cb)), lines[i]);
    }
    const rest = await ok<Buffer>(t, 'readAll rest', (cb) => engine.readAll(f, cb));
    const consumed = lines.slice(0, 10).join('\n').length + 1;
    t.is(rest.toString(), text.slice(consumed), 'readAll gives the rest, not padded to a block');
    const g = await openFile(t, engine, p, { direct: true });
    const all = await ok<Buffer>(t, 'readAll', (cb) => engine.readAll(g, cb));
    t.is(all.length, Buffer.byteLength(text));
    t.is(all.toString(), text);
  },
);

forEachImpl(
  'direct: true where the file system refuses O_DIRECT fails EINVAL with a message saying so',
  async (t, engine) => {
    // procfs refuses O_DIRECT (tmpfs accepts it since Linux 6.6).
    const p = '/proc/self/status';
    const err = await fails<File>(t, 'open direct on procfs', 'EINVAL', (cb) =>
      engine.open(p, { flags: 'r', direct: true }, cb),
    );
    t.regex(err.message, /O_DIRECT/);
    // Without direct, the same file opens and reads fine.
    const f = await openFile(t, engine, p);
    t.regex((await ok<Buffer>(t, 'read', (cb) => engine.readAll(f, cb))).toString(), /^Name:/);
  },
);

// ---------------------------------------------------------------------------------------------
// Errors

forEachImpl('open a missing path: ENOENT (r and r+)', async (t, engine) => {
  const dir = filesDir(engine);
  const p = path.join(dir, 'nope', 'missing.txt');
  const err = await fails<File>(t, 'open r', 'ENOENT', (cb) => engine.open(p, cb));
  t.true(err instanceof EngineError);
  await fails<File>(t, 'open r+', 'ENOENT', (cb) => engine.open(p, { flags: 'r+' }, cb));
  await fails<File>(t, 'open w in a missing dir', 'ENOENT', (cb) =>
    engine.open(p, { flags: 'w' }, cb),
  );
  t.false(fs.existsSync(path.join(dir, 'nope')));
});

forEachImpl("open a directory with 'r+' or 'w': EISDIR", async (t, engine) => {
  const dir = filesDir(engine);
  await fails<File>(t, 'open dir r+', 'EISDIR', (cb) => engine.open(dir, { flags: 'r+' }, cb));
  await fails<File>(t, 'open dir w', 'EISDIR', (cb) => engine.open(dir, { flags: 'w' }, cb));
});

forEachImpl(
  'a chmod 000 file: EACCES for a normal user; root opens it (CAP_DAC_OVERRIDE)',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = fileWith(dir, 'secret.txt', 'secret');
    fs.chmodSync(p, 0o000);
    if (process.getuid?.() !== 0) {
      await fails<File>(t, 'open 000 r', 'EACCES', (cb) => engine.open(p, cb));
      await fails<File>(t, 'open 000 r+', 'EACCES', (cb) => engine.open(p, { flags: 'r+' }, cb));
    } else {
      t.log('running as root: checking that root can open a mode-000 file instead of EACCES');
      const f = await openFile(t, engine, p);
      t.is((await ok<Buffer>(t, 'read', (cb) => engine.readAll(f, cb))).toString(), 'secret');
      const g = await openFile(t, engine, p, { flags: 'r+' });
      t.false(g.closed);
    }
  },
);

forEachImpl("'wx' on an existing file: EEXIST, the file untouched", async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'exists.txt', 'keep me');
  await fails<File>(t, 'open wx', 'EEXIST', (cb) => engine.open(p, { flags: 'wx' }, cb));
  await fails<File>(t, 'open ax+', 'EEXIST', (cb) => engine.open(p, { flags: 'ax+' }, cb));
  t.is(fs.readFileSync(p, 'utf8'), 'keep me');
});

forEachImpl('ops submitted after close(file) fail EBADF', async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'closed.txt', 'data\n');
  const f = await openFile(t, engine, p, { flags: 'r+' });
  engine.close(f);
  await fails<Buffer>(t, 'readChunk', 'EBADF', (cb) => engine.readChunk(f, 10, cb));
  await fails<Buffer>(t, 'readChunk @0', 'EBADF', (cb) =>
    engine.readChunk(f, 10, { position: 0 }, cb),
  );
  await fails<Buffer>(t, 'readExactly', 'EBADF', (cb) => engine.readExactly(f, 2, cb));
  await fails<Buffer>(t, 'readAll', 'EBADF', (cb) => engine.readAll(f, cb));
  await fails<string>(t, 'expectLine', 'EBADF', (cb) => engine.expectLine(f, null, cb));
  await fails<number>(t, 'readInto', 'EBADF', (cb) => engine.readInto(f, Buffer.alloc(4), cb));
  await fails<number>(t, 'write', 'EBADF', (cb) => engine.write(f, 'x', cb));
  await fails<void>(t, 'fsync', 'EBADF', (cb) => engine.fsync(f, cb));
  await fails<FileStat>(t, 'stat', 'EBADF', (cb) => engine.stat(f, cb));
  t.is(fs.readFileSync(p, 'utf8'), 'data\n', 'nothing written');
});

forEachImpl(
  'close(file) with ops pending: they fail ECANCELED, exactly once, after close() returned',
  async (t, engine) => {
    const dir = filesDir(engine);
    // Not in the page cache: the first read goes to the kernel (or the file worker pool), the
    // others wait behind it on the read cursor.
    const cold = await coldFile(t, engine, dir, 'pending.bin', 24 * MiB);
    const f = await openFile(t, engine, cold.path);
    let closeReturned = false;
    const inClose: string[] = [];
    const sc = settleCounter();
    const trs = Array.from({ length: 24 }, (_, i) =>
      sc.wrap<Buffer>(
        {
          success: () => {
            if (!closeReturned) inClose.push(`#${i}`);
          },
          failure: () => {
            if (!closeReturned) inClose.push(`#${i}`);
          },
        },
        `readExactly 1 MiB #${i}`,
      ),
    );
    for (const tr of trs) engine.readExactly(f, MiB, tr.cb);
    const last = trs[trs.length - 1]!;
    engine.close(f);
    closeReturned = true;
    t.true(f.closed);
    await sc.allSettled();
    sc.assertExactlyOnce(t);
    t.deepEqual(inClose, [], 'no callback ran inside close()');
    const tally = sc.tally();
    t.deepEqual(
      Object.keys(tally).filter((k) => k !== 'ok' && k !== 'ECANCELED'),
      [],
      JSON.stringify(tally),
    );
    t.is(last.calls[0]?.err?.code, 'ECANCELED', 'the last queued read was still pending');
    t.false(last.cancel(), 'cancel() after it settled is false');
    // The reads that did succeed got the file's bytes in order, and came before the cancelled.
    const firstCancelled = trs.findIndex((tr) => !tr.calls[0]?.ok);
    trs.forEach((tr, i) => {
      const o = tr.calls[0];
      if (i < firstCancelled) {
        t.true(o?.ok && (o.value as Buffer).equals(cold.data.subarray(i * MiB, (i + 1) * MiB)));
      } else t.is(o?.err?.code, 'ECANCELED', `${tr.label} after a cancelled one`);
    });
  },
);

forEachImpl(
  "reads on a write-only File ('w', 'a') fail EBADF; a write on a read-only File fails EBADF",
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = fileWith(dir, 'wonly.txt', 'contents\n');
    for (const flags of ['w', 'a'] as const) {
      const f = await openFile(t, engine, p, { flags });
      await ok<number>(t, `${flags}: write`, (cb) => engine.write(f, 'written\n', cb));
      await fails<Buffer>(t, `${flags}: readChunk`, 'EBADF', (cb) => engine.readChunk(f, 10, cb));
      await fails<Buffer>(t, `${flags}: readChunk @0`, 'EBADF', (cb) =>
        engine.readChunk(f, 10, { position: 0 }, cb),
      );
      await fails<Buffer>(t, `${flags}: readExactly`, 'EBADF', (cb) =>
        engine.readExactly(f, 2, cb),
      );
      await fails<Buffer>(t, `${flags}: readAll`, 'EBADF', (cb) => engine.readAll(f, cb));
      await fails<string>(t, `${flags}: expectLine`, 'EBADF', (cb) =>
        engine.expectLine(f, null, cb),
      );
      await fails<number>(t, `${flags}: readInto`, 'EBADF', (cb) =>
        engine.readInto(f, Buffer.alloc(8), { position: 0 }, cb),
      );
    }
    t.is(fs.readFileSync(p, 'utf8'), 'written\nwritten\n', "'w' truncated, 'a' appended");
    const r = await openFile(t, engine, p);
    await fails<number>(t, 'r: write', 'EBADF', (cb) => engine.write(r, 'nope', cb));
    t.is(fs.readFileSync(p, 'utf8'), 'written\nwritten\n');
  },
);

// ---------------------------------------------------------------------------------------------
// Bad arguments

forEachImpl('bad arguments throw synchronously with the right codes', async (t, engine) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'args.txt', 'line\n');
  const f = await openFile(t, engine, p, { flags: 'r+' });
  const pending: Array<Tracked<never>> = [];
  await syscallsAtRest(engine);
  const bad = (what: string, submit: (cb: Callback<never>) => void, expect: Expect) =>
    throwsSync(t, engine, what, submit, expect, pending);
  const c = <V>(cb: Callback<never>) => cb as unknown as Callback<V>;

  // position on framing reads
  bad('readUntil position', (cb) => engine.readUntil(f, '\n', { position: 0 }, c(cb)), valueErr);
  bad('expectLine position', (cb) => engine.expectLine(f, null, { position: 0 }, c(cb)), valueErr);
  bad(
    'lineglob position',
    (cb) => engine.readUntilLineglob(f, '*', { position: 0 }, c(cb)),
    valueErr,
  );
  bad('regex position', (cb) => engine.readUntilRegex(f, /x/, { position: 0 }, c(cb)), valueErr);
  // positions out of range
  bad('readChunk position -1', (cb) => engine.readChunk(f, 1, { position: -1 }, c(cb)), rangeErr);
  bad(
    'readExactly position -1',
    (cb) => engine.readExactly(f, 1, { position: -1 }, c(cb)),
    rangeErr,
  );
  bad('readAll position -5', (cb) => engine.readAll(f, { position: -5 }, c(cb)), rangeErr);
  bad(
    'readInto position -1',
    (cb) => engine.readInto(f, Buffer.alloc(1), { position: -1 }, c(cb)),
    rangeErr,
  );
  bad('write position -1', (cb) => engine.write(f, 'x', { position: -1 }, c(cb)), rangeErr);
  bad('write position 2**53', (cb) => engine.write(f, 'x', { position: 2 ** 53 }, c(cb)), rangeErr);
  bad('readChunk position 1.5', (cb) => engine.readChunk(f, 1, { position: 1.5 }, c(cb)), {
    code: ['ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE'],
  });
  // open
  bad('flags "rw"', (cb) => engine.open(p, { flags: 'rw' }, c(cb)), valueErr);
  bad('flags "x"', (cb) => engine.open(p, { flags: 'x' }, c(cb)), valueErr);
  bad('path a number', (cb) => engine.open(42 as unknown as string, c(cb)), typeErr);
  bad('path with NUL', (cb) => engine.open(p + '\0x', c(cb)), {
    code: ['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'],
  });
  bad('mode 1.5', (cb) => engine.open(p, { flags: 'r', mode: 1.5 }, c(cb)), {
    code: ['ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE'],
  });
  bad('stat a number', (cb) => engine.stat(7 as unknown as string, c(cb)), typeErr);
  await assertNeverSettled(t, pending);
  t.deepEqual(fs.readdirSync(dir), ['args.txt'], 'nothing created');
  // The File is unharmed and its cursor still at 0.
  t.is(await ok<string>(t, 'line', (cb) => engine.expectLine(f, 'line', cb)), 'line');
});

// ---------------------------------------------------------------------------------------------
// Cancellation and timeouts

forEachImpl(
  'cancel() of a positioned read: wins (true, ECANCELED) or loses (false, success), exactly once',
  async (t, engine) => {
    const dir = filesDir(engine);
    const data = crypto.randomBytes(4 * MiB);
    const f = await openFile(t, engine, fileWith(dir, 'cancel.bin', data));
    const sc = settleCounter();
    const rows: Array<{ tr: Tracked<Buffer>; won: boolean; pos: number }> = [];
    for (let i = 0; i < 40; i++) {
      const pos = (i * 97 * KiB) % (3 * MiB);
      const tr = sc.wrap<Buffer>({}, `read @${pos}`);
      engine.readExactly(f, MiB, { position: pos }, tr.cb);
      if (i % 4 === 3) await sleep(0); // let some of them run first
      rows.push({ tr, won: tr.cancel(), pos });
    }
    await sc.allSettled();
    sc.assertExactlyOnce(t);
    for (const { tr, won, pos } of rows) {
      const o = tr.calls[0];
      if (won) {
        t.is(o?.err?.code, 'ECANCELED', `${tr.label}: cancel() was true`);
      } else {
        t.true(o?.ok === true, `${tr.label}: cancel() was false, so success; got ${o?.err?.code}`);
        if (o?.ok) t.true((o.value as Buffer).equals(data.subarray(pos, pos + MiB)));
      }
      t.false(tr.cancel(), `${tr.label}: cancel() after settling is false`);
    }
    t.log(JSON.stringify(sc.tally()));
    // A read queued behind others on the cursor of a file not in the page cache has certainly
    // not completed: cancel() wins.
    const cold = await coldFile(t, engine, dir, 'cancel-cold.bin', 8 * MiB);
    const g = await openFile(t, engine, cold.path);
    const queued = Array.from({ length: 8 }, (_, i) => once<Buffer>({}, `queued read #${i}`));
    for (const tr of queued) engine.readExactly(g, MiB, tr.cb);
    const last = queued[7]!;
    t.true(last.cancel(), 'cancel() of the last queued read is true');
    await expectErr(t, last, 'ECANCELED');
    const first = await expectOk(t, queued[0]!);
    t.true(first.equals(cold.data.subarray(0, MiB)), 'the first read is unaffected');
    for (const tr of queued.slice(1, 7)) await tr.result();
    await sleep(30);
    t.true(
      queued.every((tr) => tr.calls.length === 1),
      'each queued read settled exactly once',
    );
    // The File is still usable.
    const v = await ok<Buffer>(t, 'after', (cb) => engine.readExactly(f, 10, { position: 5 }, cb));
    t.true(v.equals(data.subarray(5, 15)));
  },
);

forEachImpl(
  'a completed write is never reported as cancelled; a raced write settles exactly once',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'cancel-write.bin');
    const f = await openFile(t, engine, p, { flags: 'w+' });
    const tr = once<number>({}, 'write');
    engine.write(f, 'completed', { position: 0 }, tr.cb);
    t.is(await expectOk(t, tr), 9);
    t.false(tr.cancel(), 'cancel() of a completed write is false');
    await sleep(30);
    t.is(tr.calls.length, 1, 'no ECANCELED after the success');
    t.is(fs.readFileSync(p, 'utf8'), 'completed');

    const sc = settleCounter();
    const rows: Array<{ tr: Tracked<number>; won: boolean; pos: number }> = [];
    const block = Buffer.alloc(256 * KiB, 'w');
    for (let i = 0; i < 20; i++) {
      const pos = MiB + i * block.length;
      const w = sc.wrap<number>({}, `write @${pos}`);
      engine.write(f, block, { position: pos }, w.cb);
      if (i % 2 === 1) await sleep(0);
      rows.push({ tr: w, won: w.cancel(), pos });
    }
    await sc.allSettled();
    sc.assertExactlyOnce(t);
    const disk = fs.readFileSync(p);
    for (const { tr: w, won, pos } of rows) {
      const o = w.calls[0];
      if (won) t.is(o?.err?.code, 'ECANCELED', `${w.label}: cancel() was true`);
      else {
        t.true(o?.ok === true, `${w.label}: cancel() false, so success; got ${o?.err?.code}`);
        t.is(o?.value, block.length);
        t.true(disk.subarray(pos, pos + block.length).equals(block), `${w.label}: on disk`);
      }
    }
  },
);

forEachImpl('a timeout on a file op settles it exactly once', async (t, engine) => {
  const dir = filesDir(engine);
  const { path: p, data } = await coldFile(t, engine, dir, 'timeout.bin', 32 * MiB);
  const f = await openFile(t, engine, p);
  // A generous timeout on a small read: success, and no ETIMEDOUT afterwards.
  const quick = once<Buffer>({ timeout: 300 }, 'small read, timeout 300');
  engine.readExactly(f, 100, { position: 0 }, quick.cb);
  t.true((await expectOk(t, quick)).equals(data.subarray(0, 100)));
  await sleep(450);
  t.is(quick.calls.length, 1, 'the timer did not fire after the success');

  // A 1 ms timeout on reads of a file not in the page cache, queued behind each other, 32 MiB
  // in all: ETIMEDOUT or success, exactly once each. Which ones time out depends on the kernel's
  // read-ahead, the disk and the machine's load; a disk fast enough to serve every 1 MiB read
  // within 1 ms gets a fresh cold file and another round (four at most), so that the timeout
  // path is exercised and not only the success path.
  let timedOut = 0;
  const tallies: string[] = [];
  for (let round = 0; round < 4 && timedOut === 0; round++) {
    const g =
      round === 0
        ? f
        : await openFile(
            t,
            engine,
            (await coldFile(t, engine, dir, `timeout-${round}.bin`, 32 * MiB)).path,
          );
    const sc = settleCounter();
    const trs = Array.from({ length: 32 }, (_, i) =>
      sc.wrap<Buffer>({ timeout: 1 }, `round ${round}: readExactly 1 MiB #${i}, timeout 1`),
    );
    for (const tr of trs) engine.readExactly(g, MiB, tr.cb);
    await sc.allSettled();
    await sleep(50);
    sc.assertExactlyOnce(t);
    const tally = sc.tally();
    t.deepEqual(
      Object.keys(tally).filter((k) => k !== 'ok' && k !== 'ETIMEDOUT'),
      [],
      JSON.stringify(tally),
    );
    tallies.push(JSON.stringify(tally));
    timedOut += tally.ETIMEDOUT ?? 0;
  }
  t.true(timedOut >= 1, `at least one timed out: ${tallies.join(' ')}`);
});

// ---------------------------------------------------------------------------------------------
// stats()

forEachImpl('stats(): file counters per implementation', async (t, engine, impl) => {
  const dir = filesDir(engine);
  const p = fileWith(dir, 'hot.bin', crypto.randomBytes(64 * KiB)); // just written: page cache hot
  const s0 = engine.stats();
  for (const k of ['fileFastPath', 'fileFallbacks', 'fileOps'] as const)
    t.true(Number.isInteger(s0[k]) && s0[k] >= 0, `${k} = ${s0[k]}`);
  const f = await openFile(t, engine, p);
  const s1 = engine.stats();
  const v = await ok<Buffer>(t, 'read', (cb) => engine.readExactly(f, 4096, { position: 0 }, cb));
  t.is(v.length, 4096);
  await ok<Buffer>(t, 'read 2', (cb) => engine.readChunk(f, 4096, cb));
  const s2 = engine.stats();
  await ok<void>(t, 'fsync', (cb) => engine.fsync(f, cb));
  await ok<FileStat>(t, 'stat', (cb) => engine.stat(f, cb));
  const s3 = engine.stats();
  if (impl === 'completion') {
    t.true(s1.fileOps > s0.fileOps, `open counted in fileOps: ${s0.fileOps} → ${s1.fileOps}`);
    t.true(s2.fileOps >= s1.fileOps + 2, `reads counted in fileOps: ${s1.fileOps} → ${s2.fileOps}`);
    t.true(s3.fileOps >= s2.fileOps + 2, `fsync and stat: ${s2.fileOps} → ${s3.fileOps}`);
    t.is(s3.fileFastPath, 0, 'fileFastPath stays 0 on completion');
    t.is(s3.fileFallbacks, 0, 'fileFallbacks stays 0 on completion');
  } else {
    t.true(
      s2.fileFastPath >= s1.fileFastPath + 2,
      `hot reads served inline: fileFastPath ${s1.fileFastPath} → ${s2.fileFastPath}`,
    );
    t.true(
      s1.fileFallbacks > s0.fileFallbacks,
      `open goes to the pool: ${s0.fileFallbacks} → ${s1.fileFallbacks}`,
    );
    t.true(
      s3.fileFallbacks >= s2.fileFallbacks + 2,
      `fsync and stat go to the pool: ${s2.fileFallbacks} → ${s3.fileFallbacks}`,
    );
    // A write goes inline or, when it would block (block allocation), to the pool.
    const w = await openFile(t, engine, path.join(dir, 'w.bin'), { flags: 'w' });
    const s4 = engine.stats();
    await ok<number>(t, 'write', (cb) => engine.write(w, 'fast', cb));
    const s5 = engine.stats();
    t.true(
      s5.fileFastPath + s5.fileFallbacks > s4.fileFastPath + s4.fileFallbacks,
      'the write is counted on one of the two paths',
    );
    t.is(s5.fileOps, 0, 'fileOps stays 0 off completion');
    // A read of bytes not in the page cache would block: RWF_NOWAIT fails, the pool reads. The
    // page cache is the kernel's to manage (a busy machine may read ahead or keep pages), so a
    // read that still came from it gets a fresh cold file, three at most.
    const seen: string[] = [];
    let pooled = false;
    for (let i = 0; i < 3 && !pooled; i++) {
      const cold = await coldFile(t, engine, dir, `cold-${i}.bin`, MiB);
      const c = await openFile(t, engine, cold.path);
      const before = engine.stats().fileFallbacks;
      const cv = await ok<Buffer>(t, 'cold read', (cb) =>
        engine.readExactly(c, 64 * KiB, { position: 512 * KiB }, cb),
      );
      t.true(cv.equals(cold.data.subarray(512 * KiB, 576 * KiB)));
      const after = engine.stats().fileFallbacks;
      seen.push(`${before} → ${after}`);
      pooled = after > before;
    }
    t.true(pooled, `an uncached read goes to the pool: ${seen.join(', ')}`);
  }
});

// ---------------------------------------------------------------------------------------------
// fds

forEachImpl('opening and closing 200 files leaves no fd behind', async (t, engine) => {
  const dir = filesDir(engine);
  const before = fdCount();
  const paths = Array.from({ length: 200 }, (_, i) => fileWith(dir, `f${i}.txt`, `file ${i}`));
  const sc = settleCounter();
  const trs = paths.map((p, i) => {
    const tr = sc.wrap<File>({}, `open #${i}`);
    engine.open(p, tr.cb);
    return tr;
  });
  await sc.allSettled();
  sc.assertExactlyOnce(t);
  t.deepEqual(sc.tally(), { ok: 200 });
  const files = trs.map((tr) => tr.calls[0]?.value as File);
  const fds = new Set(files.map((f) => f.fileno()));
  t.is(fds.size, 200, '200 distinct fds');
  t.true(fdCount() >= before + 200, `fd count ${before} → ${fdCount()}`);
  // Each fd is the right file.
  const sample = await ok<Buffer>(t, 'read #123', (cb) => engine.readAll(files[123]!, cb));
  t.is(sample.toString(), 'file 123');
  for (const f of files) engine.close(f);
  t.true(files.every((f) => f.closed && f.fileno() === -1));
  t.true(await waitUntil(() => fdCount() === before, 5_000), `fd count ${before} → ${fdCount()}`);
});

forEachImpl(
  'a running readInto settles with its result: cancel, a deadline and close never leave the buffer to be written later',
  async (t, engine) => {
    const dir = filesDir(engine);
    const { path: p, data } = await coldFile(t, engine, dir, 'cold-into.bin', 8 * MiB);
    const f = await openFile(t, engine, p);
    const n = 32;
    const bufs = Array.from({ length: n }, () => Buffer.alloc(256 * 1024));
    const outcomes = await Promise.all(
      bufs.map((buf, i) => {
        const tr = once<number>({ timeout: i % 3 === 0 ? 1 : 0 }, `into #${i}`);
        engine.readInto(f, buf, { position: i * 256 * 1024 }, tr.cb);
        if (i % 3 === 1) tr.cancel();
        if (i === n - 1) engine.close(f);
        return tr.result(20_000);
      }),
    );
    const snapshot = bufs.map((b) => Buffer.from(b));
    await new Promise((r) => setTimeout(r, 100));
    for (const [i, o] of outcomes.entries()) {
      t.true(o.ok || ['ECANCELED', 'ETIMEDOUT'].includes(o.err!.code), `#${i}: ${o.err?.code}`);
      if (o.ok) {
        t.is(o.value, 256 * 1024);
        t.true(
          bufs[i]!.equals(data.subarray(i * 256 * 1024, (i + 1) * 256 * 1024)),
          `#${i} holds its bytes`,
        );
      } else {
        t.true(
          bufs[i]!.equals(Buffer.alloc(256 * 1024)),
          `#${i} failed and its buffer was not written`,
        );
      }
      t.true(
        bufs[i]!.equals(snapshot[i]!),
        `#${i}: nothing wrote into the buffer after the op settled`,
      );
    }
  },
);

forEachImpl(
  'a positioned readExactly larger than 64 MiB (memory the request cache does not keep)',
  async (t, engine) => {
    const dir = filesDir(engine);
    const p = path.join(dir, 'big-sparse.bin');
    const size = 80 * MiB;
    const fd = fs.openSync(p, 'w');
    fs.ftruncateSync(fd, size);
    fs.writeSync(fd, 'tail', size - 4);
    fs.closeSync(fd);
    const f = await openFile(t, engine, p);
    for (let round = 0; round < 2; round++) {
      const b = await ok<Buffer>(t, `readExactly #${round}`, (cb) =>
        engine.readExactly(f, size, { position: 0 }, cb),
      );
      t.is(b.length, size);
      t.is(b.subarray(size - 4).toString(), 'tail');
    }
    const chunk = await ok<Buffer>(t, 'readChunk', (cb) =>
      engine.readChunk(f, size, { position: 0 }, cb),
    );
    t.true(chunk.length >= 1 && chunk.length <= size, 'a chunk of 1 to size bytes');
  },
);
