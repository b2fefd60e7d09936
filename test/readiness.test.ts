// What is specific to the `readiness` implementation (epoll): writes made by one batch of
// callbacks leave in one gathered send.
import test from 'ava';
import { availableImpls, createEngine, Callback } from 'async-engine';
import { tcpPair } from './helpers/harness.js';

const readiness = availableImpls().find((i) => i.impl === 'readiness')!;

(readiness.available ? test : test.skip)(
  '100 writes made in one turn go out in a gathered send, in order',
  async (t) => {
    const engine = createEngine({ impl: 'readiness' });
    try {
      const p = await tcpPair(engine);
      const before = engine.stats().syscalls;
      let done = 0;
      const all = new Promise<void>((resolve) => {
        for (let i = 0; i < 100; i++) {
          engine.write(
            p.sock,
            `line ${i}\n`,
            new Callback<number>({ success: () => ++done === 100 && resolve() }),
          );
        }
      });
      await all;
      const used = engine.stats().syscalls - before;
      t.true(used < 20, `${used} system calls for 100 writes`);
      const expected = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join('');
      const got = await p.waitForBytes(Buffer.byteLength(expected));
      t.is(got.toString(), expected);
    } finally {
      await engine.shutdown();
    }
  },
);
