// The loop every server case shares: start each contender's server once, warm it up, then
// for each round, for each workload, run the contenders one after another (A B C A B C ...),
// reading each server's CPU time around its measurement. A server that dies or hangs is
// restarted; a contender that keeps failing is dropped for the rest of the case.
import { Series } from './stats.js';
import { startServer } from './servers.js';
import { withServerCpu } from './measure.js';

const MAX_FAILURES = 3;

/**
 * @param {object} o
 * @param {object} o.ctx                runner context (`log`, `rounds`)
 * @param {object[]} o.contenders       from contenders.js; the one with `baseline: true` divides
 * @param {object[]} o.workloads        `{ id, ... }`, passed to `measure`
 * @param {object[]} o.metrics          `{ key, ratio? }` for Series
 * @param {string[]} [o.refs]           more contenders to compute ratios against
 * @param {(server, contender) => Promise<void>} [o.warmup]
 * @param {(server, contender, workload) => Promise<void>} [o.prepare]  runs before each
 *   measurement, outside the server CPU window (emptying the keyspace, say)
 * @param {boolean} [o.failuresPerWorkload]  count failures per contender and workload, so a
 *   contender that cannot run one workload (an unknown command, say) still runs the others
 * @param {boolean} [o.calibrate]      run one unrecorded round first (warm-up, and sizing for
 *   cases whose `finish` sizes the next run from the last one)
 * @param {(server, contender, workload, round) => Promise<object>} o.measure  a client run;
 *   its result gets `serverCpuS` added, then `finish(result, workload)` turns it into metrics
 * @param {(result, workload, contender) => object} o.finish
 * @param {(m: object) => string} o.describe  one log line's figures
 */
export async function interleaved(o) {
  const { ctx, contenders, workloads, metrics, refs = [] } = o;
  const baseline = contenders.find((c) => c.baseline)?.name;
  const series = new Map(workloads.map((w) => [w.id, new Series(baseline, metrics)]));
  const servers = new Map();
  const failures = new Map(contenders.map((c) => [c.name, 0]));
  const failureKey = (c, w) => (o.failuresPerWorkload && w ? `${c.name}|${w.id}` : c.name);
  const notes = [];

  async function start(c) {
    try {
      const server = await startServer(c);
      servers.set(c.name, server);
      return server;
    } catch (err) {
      notes.push(`${c.name}: ${err.message}`);
      ctx.log(`  ${c.name}: could not start: ${err.message}`);
      failures.set(c.name, MAX_FAILURES);
      return null;
    }
  }

  try {
    for (const c of contenders) {
      const server = await start(c);
      if (server && o.warmup) {
        await o.warmup(server, c).catch((err) => ctx.log(`  ${c.name}: warm-up: ${err.message}`));
      }
    }
    for (let round = o.calibrate ? -1 : 0; round < ctx.rounds; round++) {
      const tag = round < 0 ? 'c0' : `r${round + 1}`;
      for (const w of workloads) {
        for (const c of contenders) {
          const s = round < 0 ? new Series(baseline, metrics) : series.get(w.id);
          if (
            failures.get(c.name) >= MAX_FAILURES ||
            (failures.get(failureKey(c, w)) ?? 0) >= MAX_FAILURES
          ) {
            s.fail(c.name, round, 'skipped: failed before');
            continue;
          }
          let server = servers.get(c.name);
          if (!server?.alive) server = await start(c);
          if (!server) {
            s.fail(c.name, round, 'no server');
            continue;
          }
          try {
            if (o.prepare) await o.prepare(server, c, w);
            const result = await withServerCpu(server, () => o.measure(server, c, w, round));
            const m = o.finish(result, w, c);
            s.add(c.name, round, m);
            ctx.log(`  ${tag} ${w.id.padEnd(22)} ${c.name.padEnd(13)} ${o.describe(m)}`);
          } catch (err) {
            failures.set(failureKey(c, w), (failures.get(failureKey(c, w)) ?? 0) + 1);
            s.fail(c.name, round, err.message);
            notes.push(
              `${c.name}, ${w.id}, ${round < 0 ? 'calibration' : `round ${round + 1}`}: ${err.message}`,
            );
            ctx.log(
              `  r${round + 1} ${w.id.padEnd(22)} ${c.name.padEnd(13)} FAILED ${err.message}`,
            );
            // A wedged server would fail every later run too: start it afresh.
            await server.stop();
            servers.delete(c.name);
          }
        }
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((s) => s.stop()));
  }
  return {
    baseline,
    groups: workloads.map((w) => ({ ...w, summary: series.get(w.id).summary(refs) })),
    notes,
  };
}
