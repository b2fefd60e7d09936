// cancel() through a chain stage that finished natively but whose callback has not run yet
// (it is later in the same batch) still cancels the stages after it.
import test from 'ava';
import net from 'node:net';
import { createEngine, Callback, type Socket } from 'async-engine';
import { implsUnderTest } from './helpers/harness.js';

for (const impl of implsUnderTest()) {
  test(`[${impl}] cancel via a just-finished stage cancels the rest of the chain`, async (t) => {
    const engine = createEngine({ impl, drive: 'manual' });
    const l1 = engine.listen({ port: 0 });
    const l2 = engine.listen({ port: 0 });
    const clients: net.Socket[] = [];
    for (let round = 0; round < 20; round++) {
      const outcomes: string[] = [];
      const accepted: Socket[] = [];
      const c1 = new Callback<Socket>({ success: (s) => accepted.push(s) });
      const c2 = new Callback<string>({ failure: (e) => outcomes.push(e.code) });
      let won: boolean | undefined;
      // Whichever of the two accepts is dispatched first, the line stage is still pending
      // when the plain accept's callback cancels the chain through its first stage.
      engine.accept(
        l1,
        new Callback<Socket>({
          success: (s) => {
            accepted.push(s);
            won = c1.cancel();
          },
        }),
      );
      engine.acceptThenExpectLine(l2, null, [c1, c2]);
      for (const l of [l1, l2]) {
        const c = net.connect((l.address() as { port: number }).port, '127.0.0.1');
        c.on('error', () => {});
        clients.push(c);
      }
      for (let i = 0; i < 200 && outcomes.length === 0; i++) {
        engine.runOnce({ timeout: 10 });
        await new Promise((r) => setImmediate(r));
      }
      t.true(won, `round ${round}: the cancel won`);
      t.deepEqual(outcomes, ['ECANCELED'], `round ${round}`);
      for (const s of accepted) engine.close(s);
    }
    for (const c of clients) c.destroy();
    await engine.shutdown();
  });
}
