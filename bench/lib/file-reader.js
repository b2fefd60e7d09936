// Child program for the files case: reads one file in one way and prints one JSON line with
// what it did and this process's CPU time (all threads, process.cpuUsage()) over the
// measured part.
//   random:   --impl completion|readiness|threadpool|poll|fs  DEPTH reads of BS bytes in flight at
//             random BS-aligned offsets, for SECONDS after a warm-up; each slot has its own
//             Buffer (engine.readInto with { position }, or fs.read with a position)
//   seq:      --impl IMPL --how readInto|readChunk  the whole file PASSES times, one 1 MiB
//             Buffer reused (readInto) or readChunk(file, 1 MiB) until the empty Buffer;
//             --impl fs --how stream|readFile  fs.createReadStream (1 MiB highWaterMark,
//             data discarded) or fs.promises.readFile
// Output: { mode, impl, how, ops, bytes, seconds, cpuS, userS, systemS, stats?, error }
// usage: node bench/lib/file-reader.js --file F --mode random|seq --impl I [--how H]
//          [--seconds 3] [--depth 32] [--bs 4096] [--passes 1] [--warmup-ms 300]
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    mode: { type: 'string', default: 'random' },
    impl: { type: 'string', default: 'fs' },
    how: { type: 'string', default: '' },
    seconds: { type: 'string', default: '3' },
    depth: { type: 'string', default: '32' },
    bs: { type: 'string', default: '4096' },
    passes: { type: 'string', default: '1' },
    'warmup-ms': { type: 'string', default: '300' },
  },
});
const FILE = values.file;
const MODE = values.mode;
const IMPL = values.impl;
const HOW = values.how;
const SECONDS = Number(values.seconds);
const DEPTH = Number(values.depth);
const BS = Number(values.bs);
const PASSES = Number(values.passes);
const WARMUP_MS = Number(values['warmup-ms']);
const CHUNK = 1 << 20;
const SIZE = fs.statSync(FILE).size;

let engine = null;
let Callback = null;

function print(out) {
  process.stdout.write(`${JSON.stringify({ mode: MODE, impl: IMPL, how: HOW, ...out })}\n`);
}

async function done(out) {
  if (engine) {
    try {
      out.stats = engine.stats();
    } catch {
      // stats are a nicety
    }
    await Promise.race([engine.shutdown(), new Promise((r) => setTimeout(r, 5000))]);
  }
  print(out);
  process.exit(0);
}

function fail(what, err) {
  const code = err?.code ? `${err.code}: ` : '';
  done({ error: `${what}: ${code}${err?.message ?? err}` });
}

/** A clock and CPU reading started now; `stop()` → { seconds, cpuS, userS, systemS }. */
function meter() {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  return {
    stop() {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      return {
        seconds,
        cpuS: (cpu.user + cpu.system) / 1e6,
        userS: cpu.user / 1e6,
        systemS: cpu.system / 1e6,
      };
    },
  };
}

/** Opens FILE for reading: an engine File, or an fd for node. */
function openFile() {
  return new Promise((resolve, reject) => {
    if (IMPL === 'fs') {
      fs.open(FILE, 'r', (err, fd) => (err ? reject(err) : resolve(fd)));
      return;
    }
    engine.open(FILE, new Callback({ success: resolve, failure: reject }));
  });
}

function closeFile(f) {
  if (IMPL === 'fs') fs.closeSync(f);
  else engine.close(f);
}

// ---- random ----

async function random() {
  const file = await openFile();
  const blocks = Math.floor(SIZE / BS);
  const pos = () => Math.floor(Math.random() * blocks) * BS;
  const warmupEnd = Date.now() + WARMUP_MS;
  let deadline = Infinity;
  let m = null;
  let ops = 0; // completions after the warm-up
  let inFlight = 0;
  let error = null;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    const t = m ? m.stop() : { seconds: 0, cpuS: 0, userS: 0, systemS: 0 };
    closeFile(file);
    done({ ops, bytes: ops * BS, ...t, depth: DEPTH, bs: BS, error });
  };
  const completed = (n) => {
    inFlight--;
    if (n !== BS && error === null) error = `short read: ${n} bytes`;
    const now = Date.now();
    if (m === null && now >= warmupEnd) {
      m = meter();
      deadline = now + SECONDS * 1000;
    } else if (m !== null) ops++;
    return error === null && now < deadline;
  };
  const failed = (err) => {
    inFlight--;
    if (error === null) error = `${err.code ?? 'error'}: ${err.message}`;
    if (inFlight === 0) finish();
  };

  if (IMPL === 'fs') {
    const slot = (buf) => {
      const again = (err, n) => {
        if (err) return failed(err);
        if (completed(n)) {
          inFlight++;
          fs.read(file, buf, 0, BS, pos(), again);
        } else if (inFlight === 0) finish();
      };
      inFlight++;
      fs.read(file, buf, 0, BS, pos(), again);
    };
    for (let i = 0; i < DEPTH; i++) slot(Buffer.alloc(BS));
  } else {
    const slot = (buf) => {
      const opts = { position: 0 };
      const cb = new Callback({
        success: (n) => {
          if (completed(n)) {
            inFlight++;
            opts.position = pos();
            engine.readInto(file, buf, opts, cb);
          } else if (inFlight === 0) finish();
        },
        failure: failed,
      });
      inFlight++;
      opts.position = pos();
      engine.readInto(file, buf, opts, cb);
    };
    for (let i = 0; i < DEPTH; i++) slot(Buffer.alloc(BS));
  }
}

// ---- sequential ----

function enginePass(buf) {
  return openFile().then(
    (file) =>
      new Promise((resolve, reject) => {
        let bytes = 0;
        let ops = 0;
        const end = (err) => {
          closeFile(file);
          if (err) reject(err);
          else resolve({ bytes, ops });
        };
        let cb;
        const next = () =>
          HOW === 'readInto' ? engine.readInto(file, buf, cb) : engine.readChunk(file, CHUNK, cb);
        cb = new Callback({
          success: (r) => {
            const n = typeof r === 'number' ? r : r.length;
            if (n === 0) return end();
            bytes += n;
            ops++;
            next();
          },
          failure: end,
        });
        next();
      }),
  );
}

function streamPass() {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let ops = 0;
    fs.createReadStream(FILE, { highWaterMark: CHUNK })
      .on('data', (chunk) => {
        bytes += chunk.length;
        ops++;
      })
      .on('error', reject)
      .on('end', () => resolve({ bytes, ops }));
  });
}

async function readFilePass() {
  const b = await fs.promises.readFile(FILE);
  return { bytes: b.length, ops: 1 };
}

async function seq() {
  const buf = Buffer.alloc(CHUNK);
  const pass = IMPL !== 'fs' ? () => enginePass(buf) : HOW === 'stream' ? streamPass : readFilePass;
  if (!['readInto', 'readChunk', 'stream', 'readFile'].includes(HOW)) {
    throw new Error(`unknown --how ${HOW}`);
  }
  const m = meter();
  let bytes = 0;
  let ops = 0;
  for (let i = 0; i < PASSES; i++) {
    const r = await pass();
    if (r.bytes !== SIZE) throw new Error(`pass ${i + 1} read ${r.bytes} of ${SIZE} bytes`);
    bytes += r.bytes;
    ops += r.ops;
  }
  await done({ ops, bytes, passes: PASSES, ...m.stop(), error: null });
}

// ---- main ----

try {
  if (IMPL !== 'fs') {
    const mod = await import('async-engine');
    Callback = mod.Callback;
    engine = mod.createEngine({ impl: IMPL });
    for (const method of ['open', 'readInto', 'readChunk']) {
      if (typeof engine[method] !== 'function') {
        throw new Error(`this build of async-engine has no engine.${method}()`);
      }
    }
  }
  if (MODE === 'random') await random();
  else if (MODE === 'seq') await seq();
  else throw new Error(`unknown --mode ${MODE}`);
} catch (err) {
  fail(MODE, err);
}
