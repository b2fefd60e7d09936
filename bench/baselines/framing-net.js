// Framing consumer on node:net, the baseline of framing-engine.js: the same request to the peer,
// the same records, framed by hand from 'data' events the way a careful Node program does it,
// each value handed over as the engine's read hands it (a string line, a Buffer). Prints the
// same JSON line as framing-engine.js.
// Reads (`--read`, named after the engine read each one stands for):
//   expectLine            lines as strings: the socket decodes UTF-8 (`setEncoding`), lines are
//                         found with `indexOf('\n')` and cut with `slice` (`\r` stripped)
//   readUntil             lines as Buffers, `\r\n` included: `indexOf(0x0a)` on the Buffer,
//                         `subarray`
//   readExactly           32-byte Buffers: `subarray`
//   expectLine+readExactly  RESP bulk strings: the `$<n>\r\n` header parsed byte by byte, the
//                         payload a `subarray`
//   readLengthPrefixed    the same as expectLine+readExactly (the same records, the same values)
// A record split across two chunks is completed by concatenating the tail with the next chunk.
// Lines are bounded as the engine bounds them (64 KiB without a terminator is an error).
// usage: node bench/baselines/framing-net.js --port P --read expectLine [--records 200000]
//          [--warmup 20000] [--seed 1]
import net from 'node:net';
import { checkRecords, consumerArgs } from '../lib/framing-records.js';

const args = consumerArgs();
const { values, kind, warmup, seed, total } = args;
const MAX_LINE = 65536;

let sock;
let done = 0;
let valueBytes = 0;
let last;
let t0;
let cpu0;
let failure = null;
let finished = false;

function mark() {
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
  sock.destroy();
  const n = measured ? done - warmup : 0;
  console.log(
    JSON.stringify({
      impl: 'net',
      read: values.read,
      records: n,
      ops: n,
      seconds,
      cpuS: (cpu.user + cpu.system) / 1e6,
      error: failure,
    }),
  );
}

function check() {
  return checkRecords({ ...args, read: values.read }, { done, valueBytes, last });
}

function fail(message) {
  failure = message;
  finish();
}

/** Counts one record; false when it was the last. */
function counted() {
  if (++done === warmup) mark();
  return done < total;
}

// Lines as strings.
let text = '';
function onText(chunk) {
  const s = text.length === 0 ? chunk : text + chunk;
  let pos = 0;
  let eol;
  while ((eol = s.indexOf('\n', pos)) >= 0) {
    const end = eol > pos && s.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
    const line = s.slice(pos, end);
    pos = eol + 1;
    valueBytes += line.length;
    if (!counted()) {
      last = line;
      return finish();
    }
  }
  text = pos === 0 ? s : s.slice(pos);
  if (text.length > MAX_LINE) fail('line longer than 64 KiB');
}

// Buffers: the unread part of the stream is `buf` from `at`.
let buf = Buffer.alloc(0);
let at = 0;
function take(chunk) {
  buf = at === buf.length ? chunk : Buffer.concat([buf.subarray(at), chunk]);
  at = 0;
}

function onLineBuffers(chunk) {
  take(chunk);
  let from = at;
  let eol;
  while ((eol = buf.indexOf(0x0a, from)) >= 0) {
    if (eol === at || buf[eol - 1] !== 0x0d) {
      from = eol + 1; // a bare '\n' is part of the line
      continue;
    }
    const data = buf.subarray(at, eol + 1);
    at = from = eol + 1;
    valueBytes += data.length;
    if (!counted()) {
      last = data.toString('latin1');
      return finish();
    }
  }
  if (buf.length - at > MAX_LINE) fail('line longer than 64 KiB');
}

function onFixed(chunk) {
  take(chunk);
  while (buf.length - at >= 32) {
    const data = buf.subarray(at, at + 32);
    at += 32;
    valueBytes += data.length;
    if (!counted()) {
      last = data;
      return finish();
    }
  }
}

function onBulk(chunk) {
  take(chunk);
  const len = buf.length;
  while (at < len) {
    if (buf[at] !== 0x24) return fail(`bad bulk header at record ${done}`); // '$'
    let i = at + 1;
    let n = 0;
    let c;
    while (i < len && (c = buf[i]) >= 0x30 && c <= 0x39) {
      n = n * 10 + c - 0x30;
      i++;
    }
    if (i + 1 >= len) return; // the header is not all here yet
    if (i === at + 1 || buf[i] !== 0x0d || buf[i + 1] !== 0x0a) {
      return fail(`bad bulk header at record ${done}`);
    }
    const start = i + 2;
    if (len - start < n + 2) return; // nor the payload
    if (buf[start + n] !== 0x0d || buf[start + n + 1] !== 0x0a) {
      return fail(`bulk string ${done} not terminated by CRLF`);
    }
    const data = buf.subarray(start, start + n);
    at = start + n + 2;
    valueBytes += data.length;
    if (!counted()) return finish();
  }
}

sock = net.connect({ host: values.host, port: Number(values.port), noDelay: true });
sock.on('error', (err) => {
  if (t0 === undefined && done === 0) {
    console.log(JSON.stringify({ error: `connect: ${err.code ?? err.message}` }));
    process.exit(1);
  }
  fail(`${err.code ?? err.message}`);
});
sock.on('end', () => finish());
sock.once('connect', () => {
  sock.write(`${kind} ${total} ${seed}\n`);
  if (warmup === 0) mark();
  if (values.read === 'expectLine') {
    sock.setEncoding('utf8');
    sock.on('data', onText);
  } else {
    const on = {
      readUntil: onLineBuffers,
      readExactly: onFixed,
      'expectLine+readExactly': onBulk,
      readLengthPrefixed: onBulk,
    }[values.read];
    sock.on('data', on);
  }
});
