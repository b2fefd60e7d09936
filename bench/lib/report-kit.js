// Pieces for docs/benchmarks.md: number formatting, Markdown tables, verdicts on ratios, and
// small horizontal bar charts written as SVG text (no browser).

/** A number with about three significant digits; thousands separated. */
export function fmt(x, { digits } = {}) {
  if (!Number.isFinite(x)) return '–';
  if (digits !== undefined) return x.toFixed(digits);
  const a = Math.abs(Number(x.toPrecision(3))); // 9.996 counts as 10.0
  if (a >= 100) return Math.round(x).toLocaleString('en-US');
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

/** `median (min–max)` of a summary. */
export function cell(s, opts) {
  if (!s || s.n === 0) return '–';
  if (s.n === 1 || s.min === s.max) return fmt(s.median, opts);
  return `${fmt(s.median, opts)} (${fmt(s.min, opts)}–${fmt(s.max, opts)})`;
}

/** `0.85× (0.80–0.91)` of a ratio summary. */
export function ratioCell(s) {
  if (!s || s.n === 0) return '–';
  const r = (x) => `${x.toFixed(2)}`;
  if (s.n === 1 || s.min === s.max) return `${r(s.median)}×`;
  return `${r(s.median)}× (${r(s.min)}–${r(s.max)})`;
}

/** A Markdown table. */
export function table(headers, rows, align) {
  const a = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const sep = a.map((x) => (x === 'r' ? '---:' : '---'));
  const line = (cells) => `| ${cells.map((c) => String(c).replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(headers), `| ${sep.join(' | ')} |`, ...rows.map(line)].join('\n');
}

/**
 * Where a contender stands against a reference from its per-round ratios: `ahead` when every
 * round was better, `behind` when every round was worse, `mixed` when the rounds disagree.
 * @param {{ min: number, max: number, n: number }} s ratio summary (contender / reference)
 * @param {'lower'|'higher'} better which way is better for this metric
 */
export function verdict(s, better = 'lower') {
  if (!s || s.n === 0) return 'unmeasured';
  const good = better === 'lower' ? s.max < 1 : s.min > 1;
  const bad = better === 'lower' ? s.min > 1 : s.max < 1;
  return good ? 'ahead' : bad ? 'behind' : 'mixed';
}

const COLORS = {
  engine: ['#1f5fa8', '#3f88d0', '#8ab8e6', '#0b3a6e'],
  baseline: '#6b6b6b',
  other: '#d08a2c',
};

function esc(s) {
  return String(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * A horizontal bar chart with min–max whiskers, bars grouped (one group per workload).
 * @param {object} spec
 * @param {string} spec.title
 * @param {string} spec.unit   shown after each value
 * @param {Array<{ label: string, bars: Array<{ label: string, value: number, min?: number,
 *   max?: number, kind?: 'engine'|'baseline'|'other', shade?: number }> }>} spec.groups
 * @returns {string} SVG text
 */
export function barChart({ title, unit, groups, note }) {
  const W = 720;
  const labelW = 190;
  const valueW = 150;
  const plotW = W - labelW - valueW - 20;
  const barH = 14;
  const gap = 4;
  const groupGap = 12;
  const top = 34;
  const all = groups.flatMap((g) => g.bars).filter((b) => Number.isFinite(b.value));
  const vmax = Math.max(1e-9, ...all.map((b) => (Number.isFinite(b.max) ? b.max : b.value)));
  const x = (v) => labelW + (Math.max(0, v) / vmax) * plotW;
  const out = [];
  let y = top;
  for (const g of groups) {
    out.push(`<text x="8" y="${y + 11}" font-weight="bold" font-size="12">${esc(g.label)}</text>`);
    y += 18;
    for (const b of g.bars) {
      const color =
        b.kind === 'engine'
          ? COLORS.engine[(b.shade ?? 0) % COLORS.engine.length]
          : (COLORS[b.kind] ?? COLORS.other);
      out.push(
        `<text x="${labelW - 6}" y="${y + 11}" text-anchor="end" font-size="11">${esc(b.label)}</text>`,
      );
      if (Number.isFinite(b.value)) {
        const w = Math.max(1, x(b.value) - labelW);
        out.push(
          `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"/>`,
        );
        if (Number.isFinite(b.min) && Number.isFinite(b.max) && b.max > b.min) {
          const cy = y + barH / 2;
          const x1 = x(b.min).toFixed(1);
          const x2 = x(b.max).toFixed(1);
          out.push(
            `<path d="M${x1} ${cy}H${x2}M${x1} ${cy - 4}V${cy + 4}M${x2} ${cy - 4}V${cy + 4}" ` +
              `stroke="#222" stroke-width="1"/>`,
          );
        }
        const text = `${fmt(b.value)} ${unit}`;
        out.push(
          `<text x="${(x(Math.max(b.value, b.max ?? 0)) + 6).toFixed(1)}" y="${y + 11}" font-size="11">${esc(text)}</text>`,
        );
      } else {
        out.push(
          `<text x="${labelW + 4}" y="${y + 11}" font-size="11">no result (see failures)</text>`,
        );
      }
      y += barH + gap;
    }
    y += groupGap;
  }
  if (note) {
    out.push(`<text x="8" y="${y + 4}" font-size="10" fill="#555">${esc(note)}</text>`);
    y += 14;
  }
  const H = y + 6;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

/** Bars for one group: every contender's median and min–max of `metric`. */
export function barsFor(result, group, metric) {
  let shade = 0;
  return result.contenders.map((c) => {
    const s = group.summary[c.name]?.metrics[metric];
    const kind = c.name === result.baseline ? 'baseline' : c.engine ? 'engine' : 'other';
    return {
      label: c.name === result.baseline ? `${c.name} (baseline)` : c.name,
      value: s?.median,
      min: s?.min,
      max: s?.max,
      kind,
      shade: kind === 'engine' ? shade++ : 0,
    };
  });
}

/**
 * The table of a redis-benchmark pass: per test, each contender's CPU per request, its ratio to
 * `base` (and to `redis-server` when it ran), requests per second and latency.
 */
export function redisGroupsTable(result, groups, base) {
  const hasRedis = result.contenders.some((c) => c.name === 'redis-server');
  const rows = [];
  for (const g of groups) {
    result.contenders.forEach((c, i) => {
      const s = g.summary[c.name];
      if (!s) return;
      rows.push([
        i === 0 ? `**${g.test}**` : '',
        c.name === base ? `${c.name} (baseline)` : c.name,
        cell(s.metrics.cpuUsPerReq),
        ratioCell(s.ratios.cpuUsPerReq),
        ...(hasRedis ? [ratioCell(s.vs['redis-server']?.cpuUsPerReq)] : []),
        cell(s.metrics.rps),
        ratioCell(s.ratios.rps),
        cell(s.metrics.p50Ms),
        cell(s.metrics.p99Ms),
      ]);
    });
  }
  return table(
    [
      'Test',
      'Server',
      'CPU µs/req',
      `× ${base}`,
      ...(hasRedis ? ['× redis-server'] : []),
      'req/s',
      `× ${base}`,
      'p50 ms',
      'p99 ms',
    ],
    rows,
    ['l', 'l', 'r', 'r', ...(hasRedis ? ['r'] : []), 'r', 'r', 'r', 'r'],
  );
}
