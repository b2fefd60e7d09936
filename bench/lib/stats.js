// Medians with min–max, and ratios to a baseline computed pair by pair within each round.

/** The median of the finite numbers in `values` (NaN when none). */
export function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** `{ median, min, max, n, values }` of the finite numbers in `values`. */
export function summarize(values) {
  const v = values.filter(Number.isFinite);
  return {
    median: median(v),
    min: v.length ? Math.min(...v) : NaN,
    max: v.length ? Math.max(...v) : NaN,
    n: v.length,
    values,
  };
}

/**
 * Collects one measurement per contender per round for one workload, then summarizes each
 * metric and its ratio to the baseline's measurement of the same round.
 */
export class Series {
  /**
   * @param {string} baseline the contender the ratios divide by
   * @param {Array<{ key: string, ratio?: boolean }>} metrics
   */
  constructor(baseline, metrics) {
    this.baseline = baseline;
    this.metrics = metrics;
    this.rounds = new Map(); // contender → Array<measurement | undefined>, by round
    this.failures = new Map(); // contender → messages
  }

  add(contender, round, measurement) {
    if (!this.rounds.has(contender)) this.rounds.set(contender, []);
    this.rounds.get(contender)[round] = measurement;
  }

  fail(contender, round, message) {
    if (!this.failures.has(contender)) this.failures.set(contender, []);
    this.failures.get(contender).push(`round ${round + 1}: ${message}`);
    this.add(contender, round, undefined);
  }

  /**
   * `{ [contender]: { metrics: { key: summary }, ratios: { key: summary }, vs: { ref: { key:
   * summary } }, failures } }`: ratios divide by the baseline's measurement of the same round;
   * `vs` does the same for each contender named in `refs`.
   */
  summary(refs = []) {
    const ratioTo = (rounds, ref, key) => {
      const other = this.rounds.get(ref) ?? [];
      return summarize(rounds.map((m, r) => (m?.[key] ?? NaN) / (other[r]?.[key] ?? NaN)));
    };
    const out = {};
    for (const [name, rounds] of this.rounds) {
      const metrics = {};
      const ratios = {};
      const vs = Object.fromEntries(refs.map((ref) => [ref, {}]));
      for (const { key, ratio } of this.metrics) {
        metrics[key] = summarize(rounds.map((m) => m?.[key] ?? NaN));
        if (!ratio) continue;
        ratios[key] = ratioTo(rounds, this.baseline, key);
        for (const ref of refs) vs[ref][key] = ratioTo(rounds, ref, key);
      }
      out[name] = { metrics, ratios, vs, failures: this.failures.get(name) ?? [] };
    }
    return out;
  }
}
