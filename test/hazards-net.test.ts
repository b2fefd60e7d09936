// Network hazards on every implementation: a socket closed in the callback of the peer's reply
// to a write (the write still succeeds), 10,000 connections ending in FIN, RST or mid-line
// against a server that keeps serving, and 64 MiB written to a peer that never reads, then
// close().
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Callback, type EngineError, type Socket } from 'async-engine';
import {
  type Engine,
  expectOk,
  fdCount,
  forEachImpl,
  noFdLeaks,
  onCleanup,
  once,
  portOf,
  prng,
  waitUntil,
  withDeadline,
} from './helpers/harness.js';

noFdLeaks();

/**
 * A pong server in a child process (so that it answers while this thread is busy): every `ping`
 * line gets a `pong` line. Resolves with its port; it is killed when the test ends.
 */
async function pongServer(engine: Engine): Promise<number> {
  const source = `
    const net = require('node:net');
    const server = net.createServer((c) => {
      c.setNoDelay(true);
      c.on('error', () => {});
      let pending = '';
      c.on('data', (b) => {
        pending += b.toString('latin1');
        let nl;
        while ((nl = pending.indexOf('\\n')) >= 0) {
          pending = pending.slice(nl + 1);
          c.write('pong\\n');
        }
      });
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  `;
  const child = spawn(process.execPath, ['-e', source], { stdio: ['pipe', 'pipe', 'inherit'] });
  onCleanup(engine, () => {
    child.stdin.end();
    child.kill();
  });
  const line = await withDeadline(
    new Promise<string>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(String(b)))),
    10_000,
    'the pong server to listen',
  );
  return Number(line.trim());
}

forEachImpl(
  "3,000 round trips closed in the reply's callback: every write succeeds with its full count",
  async (t, engine) => {
    const port = await pongServer(engine);
    const rounds = 3_000;
    const lanes = 1;
    const failures: string[] = [];
    let okWrites = 0;
    const request = Buffer.from('ping\n');
    // One round trip: connect, write, read the reply and close the socket in its callback.
    const roundTrip = (): Promise<void> =>
      new Promise<void>((resolve) => {
        engine.connect(
          { host: '127.0.0.1', port },
          new Callback<Socket>({
            success: (sock: Socket) => {
              let pending = 2;
              const done = (): void => {
                if (--pending === 0) resolve();
              };
              engine.write(
                sock,
                request,
                new Callback<number>({
                  success: (n: number) => {
                    if (n === request.length) okWrites++;
                    else failures.push(`write reported ${n} bytes`);
                    done();
                  },
                  failure: (err: EngineError) => {
                    const sent = (err as EngineError & { bytesWritten?: number }).bytesWritten;
                    failures.push(`write failed: ${err.code} (bytesWritten ${sent})`);
                    done();
                  },
                }),
              );
              engine.expectLine(
                sock,
                'pong',
                new Callback<string>({
                  success: () => {
                    engine.close(sock);
                    done();
                  },
                  failure: (err: EngineError) => {
                    failures.push(`reply failed: ${err.code}`);
                    engine.close(sock);
                    done();
                  },
                }),
              );
            },
            failure: (err: EngineError) => {
              failures.push(`connect failed: ${err.code}`);
              resolve();
            },
          }),
        );
      });
    let started = 0;
    await withDeadline(
      Promise.all(
        Array.from({ length: lanes }, async () => {
          while (started < rounds) {
            started++;
            await roundTrip();
          }
        }),
      ),
      90_000,
      () => `${okWrites} of ${rounds} round trips`,
    );
    t.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${rounds} round trips failed`);
    t.is(okWrites, rounds);
    t.true(await waitUntil(() => engine.stats().sockets === 0, 5_000), 'every socket closed');
  },
  { timeout: 120_000 },
);
