// Framing consumer on async-engine: asks the peer (framing-peer.js) for `warmup + records`
// pipelined records, then reads them one op at a time, each success submitting the next op
// (callbacks made once and reused). Prints one JSON line: records and engine ops measured, wall
// seconds and CPU seconds of this process (all threads, `process.cpuUsage()`) over the records
// after the warm-up, connection setup excluded.
// Reads (`--read`):
//   expectLine            lines, `expectLine(sock, null, cb)`: the line as a string
//   readUntil             lines, `readUntil(sock, '\r\n', cb)`: a Buffer, terminator included
//   readExactly           32-byte records, `readExactly(sock, 32, cb)`
//   expectLine+readExactly  RESP bulk strings in two ops: `expectLine` for `$<n>`, then
//                         `readExactly(sock, n + 2, cb)` for the payload and its `\r\n`
//   readLengthPrefixed    the same RESP bulk strings in one op:
//                         `readLengthPrefixed(sock, { length, trailer: '\r\n' }, cb)`, `length`
//                         taking n from `$<n>`
// usage: node bench/baselines/framing-engine.js --port P --read expectLine [--impl readiness]
//          [--records 200000] [--warmup 20000] [--seed 1]
import { Callback, createEngine } from 'async-engine';
import { checkRecords, consumerArgs } from '../lib/framing-records.js';

const args = consumerArgs({ impl: { type: 'string', default: 'auto' } });
const { values, kind, warmup, seed, total } = args;

const engine = createEngine({ impl: values.impl });
let sock;
let done = 0; // records read, warm-up included
let ops = 0; // engine ops settled, warm-up included
let opsAtMark = 0;
let valueBytes = 0;
let last;
let t0;
let cpu0;
let failure = null;
let finished = false;

function mark() {
  opsAtMark = ops;
  cpu0 = process.cpuUsage();
  t0 = process.hrtime.bigint();
}

function finish() {
  if (finished) return;
  finished = true;
  const measured = t0 !== undefined;
  const seconds = measured ? Number(process.hrtime.bigint() - t0) / 1e9 : 0;
  const cpu = measured ? process.cpuUsage(cpu0) : { user: 0, system: 0 };
  if (failure === null) failure = check();
  if (sock) engine.close(sock);
  engine.shutdown().then(() => {
    console.log(
      JSON.stringify({
        impl: engine.impl,
        read: values.read,
        records: measured ? done - warmup : 0,
        ops: measured ? ops - opsAtMark : 0,
        seconds,
        cpuS: (cpu.user + cpu.system) / 1e6,
        error: failure,
      }),
    );
  });
}

function check() {
  return checkRecords({ ...args, read: values.read }, { done, valueBytes, last });
}

function failed(err) {
  failure = `${err.code}: ${err.message}`;
  finish();
}

/** Counts one record; false when it was the last. */
function counted() {
  if (++done === warmup) mark();
  return done < total;
}

// One reused Callback per read; each success submits the next op.
const lineCb = new Callback({
  success: (line) => {
    ops++;
    valueBytes += line.length;
    if (counted()) engine.expectLine(sock, null, lineCb);
    else {
      last = line;
      finish();
    }
  },
  failure: failed,
});

const untilCb = new Callback({
  success: (data) => {
    ops++;
    valueBytes += data.length;
    if (counted()) engine.readUntil(sock, '\r\n', untilCb);
    else {
      last = data.toString('latin1');
      finish();
    }
  },
  failure: failed,
});

const exactCb = new Callback({
  success: (data) => {
    ops++;
    valueBytes += data.length;
    if (counted()) engine.readExactly(sock, 32, exactCb);
    else {
      last = data;
      finish();
    }
  },
  failure: failed,
});

const bulkBodyCb = new Callback({
  success: (data) => {
    ops++;
    const n = data.length - 2;
    if (data[n] !== 0x0d || data[n + 1] !== 0x0a) {
      failure = `bulk string ${done} not terminated by CRLF`;
      return finish();
    }
    valueBytes += n;
    if (counted()) engine.expectLine(sock, null, bulkHeadCb);
    else finish();
  },
  failure: failed,
});

/** n from a `$<n>` header, or -1 when the line is not one. */
function bulkLength(line) {
  let n = 0;
  let digits = line.length > 1 && line.charCodeAt(0) === 0x24; // '$'
  for (let i = 1; i < line.length && digits; i++) {
    const d = line.charCodeAt(i) - 48;
    digits = d >= 0 && d <= 9;
    n = n * 10 + d;
  }
  return digits ? n : -1;
}

const bulkHeadCb = new Callback({
  success: (line) => {
    ops++;
    const n = bulkLength(line);
    if (n < 0) {
      failure = `bad bulk header ${JSON.stringify(line.slice(0, 20))} at record ${done}`;
      return finish();
    }
    engine.readExactly(sock, n + 2, bulkBodyCb);
  },
  failure: failed,
});

// A header that is not `$<n>` gives NaN: the op fails with ERR_INVALID_LENGTH.
const prefixedOptions = {
  length: (header) => {
    const n = bulkLength(header);
    return n < 0 ? NaN : n;
  },
  trailer: '\r\n',
};

const prefixedCb = new Callback({
  success: (record) => {
    ops++;
    valueBytes += record.body.length;
    if (counted()) engine.readLengthPrefixed(sock, prefixedOptions, prefixedCb);
    else finish();
  },
  failure: failed,
});

function begin() {
  if (warmup === 0) mark();
  switch (values.read) {
    case 'expectLine':
      return engine.expectLine(sock, null, lineCb);
    case 'readUntil':
      return engine.readUntil(sock, '\r\n', untilCb);
    case 'readExactly':
      return engine.readExactly(sock, 32, exactCb);
    case 'readLengthPrefixed':
      return engine.readLengthPrefixed(sock, prefixedOptions, prefixedCb);
    default:
      return engine.expectLine(sock, null, bulkHeadCb);
  }
}

engine.connect(
  { host: values.host, port: Number(values.port) },
  new Callback({
    success: (s) => {
      sock = s;
      engine.write(
        sock,
        `${kind} ${total} ${seed}\n`,
        new Callback({ success: begin, failure: failed }),
      );
    },
    failure: (err) => {
      console.log(JSON.stringify({ error: `connect: ${err.code}` }));
      process.exit(1);
    },
  }),
);
