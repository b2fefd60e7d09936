// Sockets whose unconsumed bytes are held in JavaScript. The peer sends a first line and the
// rest in one write; one expectLine, framed natively (nothing is held yet), leaves the rest
// buffered with no read queued behind it, so it is handed over in bulk, and the ops submitted
// next frame it in JavaScript while they find a whole frame in it.
import type { LengthPrefixedOptions, Socket } from 'async-engine';
import { type Ctx, type Engine, expectOk, once, type Pair, sleep, tcpPair } from './harness.js';

/** RESP bulk strings (`$<n>\r\n<n bytes>\r\n`) for readLengthPrefixed. */
export const RESP: LengthPrefixedOptions = { length: (h) => Number(h.slice(1)), trailer: '\r\n' };

/** The first line the peer sends: read natively before anything is held. */
export const PRIME = 'prime';

/**
 * A loopback pair whose engine side holds `rest` (kept small: one receive takes it all).
 * `inTurn` runs inside the success of the native read that hands `rest` over, i.e. in the
 * engine's dispatch turn, with `rest` held; what it throws fails the test.
 */
export async function heldPair(
  t: Ctx,
  engine: Engine,
  rest: string | Buffer,
  inTurn?: (sock: Socket) => void,
): Promise<Pair> {
  const p = await tcpPair(engine);
  const bytes = Buffer.concat([Buffer.from(`${PRIME}\n`), Buffer.from(rest)]);
  await p.write(bytes);
  // Loopback: the write is in the engine side's receive queue once the peer's write returned;
  // a short wait leaves room for a slow scheduler.
  await sleep(5);
  let thrown: unknown;
  let threw = false;
  const first = once<string>(
    {
      success: (_line, io) => {
        try {
          inTurn?.(io as Socket);
        } catch (e) {
          thrown = e;
          threw = true;
        }
      },
    },
    'the prime line',
  );
  engine.expectLine(p.sock, PRIME, first.cb);
  await expectOk(t, first);
  if (threw) throw thrown;
  return p;
}
