// A short TLS soak on every implementation: 300 handshakes mixing clean ones, clients that
// close mid-handshake, send nothing (the listener's handshake timeout) or send plaintext, a
// server closing right after accept, engine clients aborted or timed out against node:tls, and
// STARTTLS upgrades (scripts/soak-tls.mjs, the scenarios of `npm run soak:tls`). After it,
// descriptors, sockets and pending ops are back where they were after the warm-up, and every
// scenario ended as allowed.
import type { ImplName } from 'async-engine';
import { forEachImpl, noFdLeaks } from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

noFdLeaks();

interface Snapshot {
  fds: number;
  sockets: number;
  clientSockets: number;
  opsInFlight: number;
  clientOpsInFlight: number;
}

interface SoakResult {
  base: Snapshot;
  end: Snapshot;
  tally: Record<string, { runs: number; failed: number }>;
  failures: string[];
}

type Soak = (options: {
  impl: ImplName;
  engine: unknown;
  count: number;
  seed: number;
  certs: { key: string; cert: string };
}) => Promise<SoakResult>;

const soakUrl = new URL('../../scripts/soak-tls.mjs', import.meta.url).href;

forEachImpl(
  'TLS soak: 300 handshakes with random closes, timeouts, garbage and upgrades leave no fd, socket or op behind',
  async (t, engine, impl) => {
    const { soak } = (await import(soakUrl)) as { soak: Soak };
    const { self } = testCerts();
    const r = await soak({ impl, engine, count: 300, seed: 15, certs: self });
    t.log(
      Object.entries(r.tally)
        .map(([k, v]) => `${k}: ${v.runs}`)
        .join(', '),
    );
    t.deepEqual(r.failures, [], 'every scenario ended as allowed and nothing was left behind');
    for (const k of [
      'fds',
      'sockets',
      'clientSockets',
      'opsInFlight',
      'clientOpsInFlight',
    ] as const) {
      t.is(r.end[k], r.base[k], `${k} back to the figure after the warm-up`);
    }
    t.is(r.end.sockets, 0);
    t.is(r.end.clientSockets, 0);
    t.true(
      Object.values(r.tally).every((v) => v.runs > 0),
      'every scenario ran',
    );
  },
  { timeout: 60_000 },
);
