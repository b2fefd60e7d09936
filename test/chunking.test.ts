// Any chunking of the input gives the same results: lines and delimited frames written by a
// node:net client cut at random points (property tests) and in chunks of 1..16 bytes; a \r\n
// terminator split between writes.
import fc from 'fast-check';
import type { RegexResult } from 'async-engine';
import {
  type Engine,
  expectOk,
  forEachImpl,
  once,
  type Pair,
  tcpPair,
  tick,
  waitUntil,
  withDeadline,
  noFdLeaks,
} from './helpers/harness.js';

noFdLeaks();

/** Writes data cut before each index in cuts (sorted, deduplicated), one write per piece. */
async function writeCut(p: Pair, data: Buffer, cuts: number[]): Promise<void> {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < data.length))].sort((a, b) => a - b);
  let at = 0;
  for (const c of [...points, data.length]) {
    await p.write(data.subarray(at, c));
    at = c;
    await tick();
  }
}

async function writeChunks(p: Pair, data: Buffer, size: number): Promise<void> {
  const cuts: number[] = [];
  for (let i = size; i < data.length; i += size) cuts.push(i);
  await writeCut(p, data, cuts);
}

/** Submits count expectLine ops at once; resolves with their results in order. */
function linesQueued(engine: Engine, p: Pair, count: number): Promise<string[]> {
  const trs = Array.from({ length: count }, () => once<string>());
  for (const tr of trs) engine.expectLine(p.sock, null, tr.cb);
  return Promise.all(
    trs.map(async (tr, i) => {
      const o = await tr.result(20_000);
      if (!o.ok) throw new Error(`line ${i}: ${o.err?.code}`);
      return o.value as string;
    }),
  );
}

/** Submits one op at a time, the next from the previous one's callback. */
function framesSequential(
  engine: Engine,
  p: Pair,
  delim: string,
  count: number,
): Promise<string[]> {
  const out: string[] = [];
  return withDeadline(
    new Promise<string[]>((resolve, reject) => {
      const next = (): void => {
        if (out.length === count) return resolve(out);
        const tr = once<Buffer>({
          success: (v) => {
            out.push(v.toString());
            next();
          },
          failure: (e) => reject(e),
        });
        engine.readUntil(p.sock, delim, tr.cb);
      };
      next();
    }),
    20_000,
    () => `frames (have ${out.length} of ${count})`,
  );
}

// A line: printable characters, possibly with a lone \r inside, never at its end.
const lineArb = fc
  .array(fc.constantFrom('a', 'b', 'Z', ' ', '9', 'é', '\r', '-'), { maxLength: 20 })
  .map((cs) => cs.join(''))
  .filter((s) => !s.endsWith('\r'));
const terminatedArb = fc.tuple(lineArb, fc.constantFrom('\n', '\r\n'));
const linesCaseArb = fc.record({
  lines: fc.array(terminatedArb, { minLength: 1, maxLength: 40 }),
  cuts: fc.array(fc.nat({ max: 1000 }), { maxLength: 30 }),
});

forEachImpl(
  'property: lines cut at random points give the same lines',
  async (t, engine) => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(linesCaseArb, async ({ lines, cuts }) => {
        const p = await tcpPair(engine);
        const data = Buffer.from(lines.map(([l, term]) => l + term).join(''));
        const got = linesQueued(engine, p, lines.length);
        await writeCut(p, data, cuts);
        const result = await got;
        engine.close(p.sock);
        p.client.destroy();
        runs++;
        if (JSON.stringify(result) !== JSON.stringify(lines.map(([l]) => l)))
          throw new Error(`got ${JSON.stringify(result)}`);
      }),
      { numRuns: 30, endOnFailure: true },
    );
    t.is(runs, 30);
  },
  { timeout: 120_000 },
);

const frameArb = fc
  .array(fc.constantFrom('x', 'y', '<', '>', '\n', '\r'), { maxLength: 15 })
  .map((cs) => cs.join(''))
  .filter((s) => !s.includes('<END>'));
const framesCaseArb = fc.record({
  frames: fc.array(frameArb, { minLength: 1, maxLength: 30 }),
  cuts: fc.array(fc.nat({ max: 600 }), { maxLength: 30 }),
});

forEachImpl(
  'property: delimited frames cut at random points give the same frames',
  async (t, engine) => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(framesCaseArb, async ({ frames, cuts }) => {
        const p = await tcpPair(engine);
        const data = Buffer.from(frames.map((f) => f + '<END>').join(''));
        const got = framesSequential(engine, p, '<END>', frames.length);
        await writeCut(p, data, cuts);
        const result = await got;
        engine.close(p.sock);
        p.client.destroy();
        runs++;
        const want = frames.map((f) => f + '<END>');
        if (JSON.stringify(result) !== JSON.stringify(want))
          throw new Error(`got ${JSON.stringify(result)}`);
      }),
      { numRuns: 30, endOnFailure: true },
    );
    t.is(runs, 30);
  },
  { timeout: 120_000 },
);

const fixtureLines = [
  'EHLO client.example',
  '',
  'MAIL FROM:<a@example.org>',
  'x\ry',
  'RCPT TO:<b@example.org>',
  'DATA',
  'Subject: chunking',
  'ünïcödé ✓',
  '.',
  'QUIT',
];
const fixture = Buffer.from(fixtureLines.map((l, i) => l + (i % 3 === 0 ? '\n' : '\r\n')).join(''));

forEachImpl(
  'the same fixture in chunks of 1..16 bytes gives identical lines',
  async (t, engine) => {
    const results: string[][] = [];
    for (let size = 1; size <= 16; size++) {
      const p = await tcpPair(engine);
      const got = linesQueued(engine, p, fixtureLines.length);
      await writeChunks(p, fixture, size);
      results.push(await got);
      engine.close(p.sock);
      p.client.destroy();
    }
    for (let size = 1; size <= 16; size++)
      t.deepEqual(results[size - 1], fixtureLines, `chunks of ${size}`);
  },
  { timeout: 120_000 },
);

forEachImpl(
  'the same frames in chunks of 1..16 bytes: readUntil and readUntilRegex agree',
  async (t, engine) => {
    const frames = ['alpha', 'b', '', 'gamma<EN', 'D', 'omega'];
    const data = Buffer.from(frames.map((f) => f + '<END>').join(''));
    for (let size = 1; size <= 16; size++) {
      const p = await tcpPair(engine);
      const got = framesSequential(engine, p, '<END>', frames.length);
      await writeChunks(p, data, size);
      t.deepEqual(
        await got,
        frames.map((f) => f + '<END>'),
        `readUntil, chunks of ${size}`,
      );
      engine.close(p.sock);
      p.client.destroy();

      const q = await tcpPair(engine);
      const trs = frames.map(() => once<RegexResult>());
      for (const tr of trs) engine.readUntilRegex(q.sock, /([^]*?)<END>/, tr.cb);
      await writeChunks(q, data, size);
      const viaRegex = [];
      for (const tr of trs) viaRegex.push((await expectOk(t, tr)).match[1]);
      t.deepEqual(viaRegex, frames, `readUntilRegex, chunks of ${size}`);
      engine.close(q.sock);
      q.client.destroy();
    }
  },
  { timeout: 120_000 },
);

forEachImpl('\\r at the end of one write and \\n at the start of the next', async (t, engine) => {
  const p = await tcpPair(engine);
  const a = once<string>();
  const b = once<string>();
  const c = once<Buffer>();
  engine.expectLine(p.sock, null, a.cb);
  engine.expectLine(p.sock, null, b.cb);
  engine.readUntil(p.sock, '\r\n', c.cb);
  for (const part of ['abc\r', '\ndef\r', '\n', 'ghi\r', '\n']) {
    const before = engine.stats().bytesRead;
    await p.write(part);
    await waitUntil(() => engine.stats().bytesRead >= before + part.length, 1_000);
  }
  t.is(await expectOk(t, a), 'abc');
  t.is(await expectOk(t, b), 'def');
  t.is((await expectOk(t, c)).toString(), 'ghi\r\n');
});
