// A Callback may be submitted again as soon as its own op has settled, chain stage or not.
import test from 'ava';
import net from 'node:net';
import { createEngine, Callback, type Socket } from 'async-engine';
import { implsUnderTest } from './helpers/harness.js';

for (const impl of implsUnderTest()) {
  test(`[${impl}] a chain stage's Callback is reusable once its stage settled`, async (t) => {
    const engine = createEngine({ impl });
    const listener = engine.listen({ port: 0 });
    const port = (listener.address() as { port: number }).port;
    const lines: string[] = [];
    let reused = 0;
    let reuseError: unknown;
    const done = new Promise<void>((resolve) => {
      const line = new Callback<string>({
        success: (l) => {
          lines.push(l);
          if (lines.length === 2) resolve();
        },
      });
      const accepted = new Callback<Socket>({
        success: () => {
          if (reused > 0) return;
          try {
            // The accept stage is over while the line stage still waits: resubmit it.
            engine.acceptThenExpectLine(listener, null, [
              accepted,
              new Callback({ success: line.success }),
            ]);
            reused++;
          } catch (e) {
            reuseError = e;
          }
        },
      });
      engine.acceptThenExpectLine(listener, null, [accepted, line]);
    });
    const a = net.connect(port, '127.0.0.1', () => setTimeout(() => a.end('first\n'), 50));
    const b = net.connect(port, '127.0.0.1', () => setTimeout(() => b.end('second\n'), 100));
    await done;
    a.destroy();
    b.destroy();
    await engine.shutdown();
    t.is(reuseError, undefined);
    t.is(reused, 1);
    t.deepEqual(lines.sort(), ['first', 'second']);
  });
}
