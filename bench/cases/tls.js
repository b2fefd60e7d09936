// TLS with real clients: wrk over HTTPS (keep-alive) against examples/http-hello --tls on every
// impl, node:https and the node:net-over-node:tls baseline; redis-benchmark --tls against the
// Redis demo --tls on every impl, the node:tls baseline of the same protocol and redis-server's
// TLS port; and sequential handshakes (bench/tls-handshakes.js's servers). The server's CPU time
// per request (or per handshake) is the headline. The certificate is made with openssl when the
// case starts and removed when it ends.
import * as tls from 'node:tls';
import os from 'node:os';
import { makeCertPair } from '../lib/certs.js';
import { shown } from '../lib/contenders.js';
import { interleaved } from '../lib/interleave.js';
import { redisBenchmarkArgs, redisBenchmarkSteps, wrkArgs, wrkHooks } from '../lib/loadgen.js';
import { HOST } from '../lib/servers.js';

export const name = 'tls';
export const title = 'TLS: wrk over HTTPS, redis-benchmark --tls, handshakes';
export const order = 25;
export const needs = ['wrk', 'redis-benchmark', 'openssl'];
/** Used when present (Debian's build has TLS): the native ceiling. */
export const wants = ['redis-server'];

/** Server CPU per HTTPS request the engine aims for, as a multiple of node:https's. */
export const TARGET = 0.6;

const node = process.execPath;

export const HTTP_METRICS = [
  { key: 'cpuUsPerReq', ratio: true },
  { key: 'rps', ratio: true },
  { key: 'p50Ms', ratio: true },
  { key: 'p99Ms', ratio: true },
  { key: 'requests' },
  { key: 'serverCpuS' },
  { key: 'errors' },
];

export const REDIS_METRICS = [
  { key: 'cpuUsPerReq', ratio: true },
  { key: 'rps', ratio: true },
  { key: 'p50Ms', ratio: true },
  { key: 'p99Ms', ratio: true },
  { key: 'requests' },
  { key: 'serverCpuS' },
];

export const HANDSHAKE_METRICS = [
  { key: 'cpuUsPerHandshake', ratio: true },
  { key: 'rate', ratio: true },
  { key: 'handshakes' },
  { key: 'serverCpuS' },
];

export const REDIS_TESTS = ['ping_mbulk', 'set', 'get'];
const REDIS_CONFIGS = [
  { clients: 50, pipeline: 1, quick: 4_000, full: 20_000 },
  { clients: 50, pipeline: 16, quick: 16_000, full: 80_000 },
];

/** The server flags every TLS contender takes. */
const tlsFlags = (pair) => ['--tls-cert', pair.certFile, '--tls-key', pair.keyFile];

/** HTTPS servers: the HTTP example --tls on each impl, node:https (the baseline), net over tls. */
export function httpsServers(impls, pair) {
  const list = impls.map((impl) => ({
    name: impl,
    label: `async-engine ${impl}`,
    engine: true,
    command: node,
    args: ['examples/http-hello/main.js', '--impl', impl, '--port', '{port}', '--tls'].concat(
      tlsFlags(pair),
    ),
  }));
  list.push({
    name: 'node:https',
    label: 'node:https',
    baseline: true,
    command: node,
    args: ['bench/baselines/http-node.js', '--port', '{port}', ...tlsFlags(pair)],
  });
  list.push({
    name: 'tls',
    label: 'node:net framing over node:tls',
    command: node,
    args: ['bench/baselines/http-net.js', '--port', '{port}', ...tlsFlags(pair)],
  });
  return list;
}

/** Redis-protocol servers over TLS: the demo on each impl, the node:tls baseline, redis-server. */
export function redisTlsServers(impls, pair, { redisServer }) {
  const list = impls.map((impl) => ({
    name: impl,
    label: `async-engine ${impl}`,
    engine: true,
    command: node,
    args: ['examples/redis-server/main.js', '--impl', impl, '--port', '{port}', '--tls'].concat(
      tlsFlags(pair),
    ),
  }));
  list.push({
    name: 'tls',
    label: 'node:tls baseline',
    baseline: true,
    command: node,
    args: ['bench/baselines/net-redis-server.js', '--port', '{port}', ...tlsFlags(pair)],
  });
  if (redisServer) {
    list.push({
      name: 'redis-server',
      label: 'redis-server --tls-port (C, native ceiling)',
      command: 'redis-server',
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        '0',
        '--tls-port',
        '{port}',
        '--tls-cert-file',
        pair.certFile,
        '--tls-key-file',
        pair.keyFile,
        '--tls-auth-clients',
        'no',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxclients',
        '20000',
        '--dir',
        os.tmpdir(),
        '--loglevel',
        'warning',
      ],
    });
  }
  return list;
}

/** Handshake servers (bench/tls-handshakes.js --listen): an engine listener per impl, node:tls. */
export function handshakeServers(impls, pair) {
  const server = (kind) => [
    'bench/tls-handshakes.js',
    '--listen',
    kind,
    '--port',
    '{port}',
    ...tlsFlags(pair),
  ];
  return [
    ...impls.map((impl) => ({
      name: impl,
      label: `async-engine ${impl}`,
      engine: true,
      command: node,
      args: server(impl),
    })),
    { name: 'node:tls', label: 'node:tls', baseline: true, command: node, args: server('node') },
  ];
}

/** One node:tls client handshake, the certificate checked against `ca`; closes at once. */
function handshake(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: HOST, port, ca, servername: 'localhost' }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
}

async function handshakes(port, ca, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await handshake(port, ca);
  return { handshakes: n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Contenders as the report shows them, the certificate's temporary directory as $TLSDIR. */
function describeContenders(list) {
  return list.map((c) => ({
    name: c.name,
    label: c.label,
    engine: Boolean(c.engine),
    command: shown(c).replaceAll(/\S*async-engine-bench-tls-\w+\//g, '$TLSDIR/'),
  }));
}

export async function run(ctx) {
  const full = ctx.mode === 'full';
  const pair = makeCertPair();
  try {
    // -- HTTPS: wrk keep-alive
    // wrk opens its connections (and makes their handshakes) at the start of every run: runs
    // a few seconds long keep that a small share of the CPU measured.
    const seconds = full ? 8 : 3;
    const load = { threads: 1, connections: 50, scheme: 'https' };
    const https = httpsServers(ctx.impls, pair);
    ctx.log('-- HTTPS, wrk');
    const httpsResult = await interleaved({
      ctx,
      contenders: https,
      workloads: [{ id: `wrk -t1 -c${load.connections} https`, ...load, seconds }],
      metrics: HTTP_METRICS,
      refs: ['tls'],
      ...wrkHooks(load),
    });

    // -- Redis protocol: redis-benchmark --tls
    // Sized as in the Redis case, but longer: each redis-benchmark run makes 50 handshakes.
    const sizing = full ? { wall: 3, cpu: 1.5, maxWall: 8 } : { wall: 1, cpu: 0.6, maxWall: 2 };
    const redis = redisTlsServers(ctx.impls, pair, {
      redisServer: Boolean(ctx.tools['redis-server']),
    });
    const workloads = [];
    for (const cfg of REDIS_CONFIGS) {
      for (const test of REDIS_TESTS) {
        workloads.push({
          id: `${test} -c ${cfg.clients} -P ${cfg.pipeline}`,
          test,
          clients: cfg.clients,
          pipeline: cfg.pipeline,
          first: full ? cfg.full : cfg.quick,
        });
      }
    }
    ctx.log('-- Redis protocol, redis-benchmark --tls');
    const redisResult = await interleaved({
      ctx,
      contenders: redis,
      workloads,
      metrics: REDIS_METRICS,
      refs: redis.some((c) => c.name === 'redis-server') ? ['redis-server'] : [],
      calibrate: true,
      ...redisBenchmarkSteps({ sizing, full, cacert: pair.certFile }),
    });

    // -- Handshakes: sequential node:tls clients, one connection at a time
    const n = full ? 1000 : 300;
    const hs = handshakeServers(ctx.impls, pair);
    ctx.log('-- TLS handshakes');
    const handshakeResult = await interleaved({
      ctx,
      contenders: hs,
      workloads: [{ id: `${n} sequential handshakes`, n }],
      metrics: HANDSHAKE_METRICS,
      async warmup(server) {
        await handshakes(server.port, pair.cert, 50);
      },
      measure: (server, c, w) => handshakes(server.port, pair.cert, w.n),
      finish: (r) => ({
        cpuUsPerHandshake: (r.serverCpuS * 1e6) / r.handshakes,
        rate: r.handshakes / r.seconds,
        handshakes: r.handshakes,
        serverCpuS: r.serverCpuS,
      }),
      describe: (m) =>
        `${Math.round(m.rate).toLocaleString('en-US').padStart(9)} handshakes/s ` +
        `${m.cpuUsPerHandshake.toFixed(0).padStart(6)} µs/handshake`,
    });

    return {
      https: {
        ...httpsResult,
        contenders: describeContenders(https),
        commands: [`wrk ${wrkArgs({ port: 'PORT', ...load, seconds }).join(' ')}`],
      },
      redis: {
        ...redisResult,
        contenders: describeContenders(redis),
        commands: [
          `redis-benchmark ${redisBenchmarkArgs({ port: 'PORT', test: 'TEST', clients: 'C', pipeline: 'P', requests: 'N', cacert: '$TLSDIR/cert.pem' }).join(' ')}`,
          `TEST in ${REDIS_TESTS.join(', ')}; (C, P) in ${REDIS_CONFIGS.map((c) => `(${c.clients}, ${c.pipeline})`).join(', ')}`,
        ],
        sizing,
      },
      handshakes: {
        ...handshakeResult,
        contenders: describeContenders(hs),
        commands: [
          `${n} node:tls connects in a row from the runner (ca: the certificate, servername localhost), each closed once the handshake completes`,
        ],
      },
      certificate: 'EC P-256, self-signed, made by openssl req at the start of the case',
      // The report lists `contenders`; here they are every part's, without repeats.
      contenders: [
        ...describeContenders(https).map((c) => ({ ...c, label: `HTTPS: ${c.label}` })),
        ...describeContenders(redis).map((c) => ({ ...c, label: `Redis: ${c.label}` })),
        ...describeContenders(hs).map((c) => ({ ...c, label: `handshakes: ${c.label}` })),
      ],
    };
  } finally {
    pair.remove();
  }
}

// ---- Report ----

function failuresOf(part, tag) {
  return part.groups.flatMap((g) =>
    Object.entries(g.summary).flatMap(([who, s]) =>
      s.failures.map((f) => `${tag}, ${who}, ${g.id}, ${f}`),
    ),
  );
}

function httpsSection(p, kit, r) {
  const base = p.baseline;
  const g = p.groups[0];
  const file = 'tls-https-cpu.svg';
  const chart = kit.barChart({
    title: 'Server CPU µs per request, wrk HTTPS keep-alive (lower is better)',
    unit: 'µs',
    groups: [{ label: g.id, bars: kit.barsFor(p, g, 'cpuUsPerReq') }],
    note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
  });
  const rows = p.contenders.map((c) => {
    const s = g.summary[c.name];
    if (!s) return [c.name, '–', '–', '–', '–', '–', '–', '–', '–'];
    return [
      c.name === base ? `${c.name} (baseline)` : c.name,
      kit.cell(s.metrics.cpuUsPerReq),
      kit.ratioCell(s.ratios.cpuUsPerReq),
      kit.ratioCell(s.vs.tls?.cpuUsPerReq),
      kit.cell(s.metrics.rps),
      kit.ratioCell(s.ratios.rps),
      kit.cell(s.metrics.p50Ms),
      kit.cell(s.metrics.p99Ms),
      kit.fmt(s.metrics.errors.max, { digits: 0 }),
    ];
  });
  const md = [
    '### HTTPS: wrk, keep-alive',
    '',
    '`wrk` (one thread, 50 keep-alive connections, TLS 1.3) against `examples/http-hello --tls` on',
    'each impl, `node:https` (`bench/baselines/http-node.js` with a certificate, the baseline) and',
    'the `node:net` baseline of the HTTP case served by `tls.createServer`',
    '(`bench/baselines/http-net.js` with a certificate: the same hand framing over node:tls). The',
    'wrk opens its 50 connections at the start of every run, so each measured run includes 50',
    'full handshakes besides its requests (their share of the CPU is estimated at the end of this',
    'section, from the handshake figures). Client command:',
    '',
    '```sh',
    ...p.commands,
    '```',
    '',
    `![Server CPU per HTTPS request, wrk](benchmarks/${file})`,
    '',
    kit.table(
      [
        'Server',
        'CPU µs/req',
        `× ${base}`,
        '× tls',
        'req/s',
        `× ${base}`,
        'p50 ms',
        'p99 ms',
        'errors (max)',
      ],
      rows,
    ),
  ];
  const verdicts = p.contenders
    .filter((c) => c.engine && g.summary[c.name]?.ratios.cpuUsPerReq.n)
    .map((c) => {
      const ratio = g.summary[c.name].ratios.cpuUsPerReq.median;
      return `\`${c.name}\` ${ratio.toFixed(2)}× (${ratio <= TARGET ? 'met' : 'not met'})`;
    });
  if (verdicts.length) {
    md.push(
      '',
      `**Target:** server CPU per request at most ${TARGET}× \`${base}\`'s: ${verdicts.join('; ')} in this run.`,
    );
  } else {
    md.push('', `**Target** (at most ${TARGET}× \`${base}\`'s CPU per request): not measured.`);
  }
  return { md, charts: { [file]: chart } };
}

function redisSection(p, kit, r) {
  const base = p.baseline;
  const md = [
    '### Redis protocol: redis-benchmark --tls',
    '',
    '`redis-benchmark --tls` against `examples/redis-server --tls` on each impl, the `node:net`',
    'Redis baseline served by `tls.createServer` (`bench/baselines/net-redis-server.js` with a',
    'certificate, the baseline) and, when installed, `redis-server` on its `--tls-port` (Debian’s',
    'build links OpenSSL), persistence off. Request counts are sized as in the Redis case, for',
    `about ${p.sizing?.wall ?? '?'} s and ${p.sizing?.cpu ?? '?'} s of server CPU a run: each run opens 50 connections`,
    'and so includes 50 full handshakes. Client command:',
    '',
    '```sh',
    ...p.commands,
    '```',
  ];
  const charts = {};
  const configs = new Map();
  for (const g of p.groups) {
    const key = `${g.clients}/${g.pipeline}`;
    if (!configs.has(key)) configs.set(key, []);
    configs.get(key).push(g);
  }
  for (const [key, groups] of configs) {
    const [clients, pipeline] = key.split('/');
    const file = `tls-redis-c${clients}-p${pipeline}-cpu.svg`;
    charts[file] = kit.barChart({
      title: `Server CPU µs per request, redis-benchmark --tls -c ${clients} -P ${pipeline} (lower is better)`,
      unit: 'µs',
      groups: groups.map((g) => ({ label: g.test, bars: kit.barsFor(p, g, 'cpuUsPerReq') })),
      note: `median and min–max of ${r.rounds} rounds, ${r.mode} pass, ${r.machine.date.slice(0, 10)}`,
    });
    md.push(
      '',
      `#### \`-c ${clients} -P ${pipeline}\``,
      '',
      `![Server CPU per request, redis-benchmark --tls -c ${clients} -P ${pipeline}](benchmarks/${file})`,
      '',
      kit.redisGroupsTable(p, groups, base),
    );
  }
  return { md, charts };
}

function handshakeSection(p, kit) {
  const base = p.baseline;
  const g = p.groups[0];
  const rows = p.contenders.map((c) => {
    const s = g.summary[c.name];
    if (!s) return [c.name, '–', '–', '–', '–'];
    return [
      c.name === base ? `${c.name} (baseline)` : c.name,
      kit.cell(s.metrics.cpuUsPerHandshake),
      kit.ratioCell(s.ratios.cpuUsPerHandshake),
      kit.cell(s.metrics.rate),
      kit.ratioCell(s.ratios.rate),
    ];
  });
  const md = [
    '### Handshakes',
    '',
    'Full TLS 1.3 handshakes one after another (no resumption), each connection closed once its',
    'handshake completes, against an engine TLS listener per impl and a `node:tls` server (the',
    'servers of `bench/tls-handshakes.js`, run with `--listen`). The client is `node:tls` in the',
    'runner, and on one connection at a time it is the client, not the server, that sets the',
    'pace: handshakes/s measures the pair; server CPU per handshake measures the server.',
    '`node bench/tls-handshakes.js [N] [rounds]` makes the same comparison on its own, each',
    'server in a child process that reports its `process.cpuUsage()`.',
    '',
    ...p.commands.map((c) => `Client: ${c}.`),
    '',
    kit.table(['Server', 'CPU µs/handshake', `× ${base}`, 'handshakes/s', `× ${base}`], rows),
  ];
  return { md, charts: {} };
}

/** The headline: the HTTPS target (server CPU per request against node:https) and the handshake comparison, from this run. */
export function headline(r) {
  const g = r.https?.groups[0];
  if (!g) return '';
  const base = r.https.baseline;
  const cells = r.https.contenders
    .filter((c) => c.engine && g.summary[c.name]?.ratios.cpuUsPerReq.n)
    .map((c) => `\`${c.name}\` ${g.summary[c.name].ratios.cpuUsPerReq.median.toFixed(2)}×`);
  const lines = [
    '',
    '## Headline: HTTPS server CPU per request, `wrk -c 50` keep-alive',
    '',
    `Server CPU per request ÷ \`${base}\`'s, median of ${r.rounds} interleaved rounds (${r.mode}`,
    `pass, ${r.machine.date.slice(0, 10)}); the target is at most ${TARGET}×: ${cells.join(', ') || 'not measured'}.`,
  ];
  const hg = r.handshakes?.groups[0];
  if (hg) {
    const hs = r.handshakes.contenders
      .filter((c) => c.engine && hg.summary[c.name]?.ratios.cpuUsPerHandshake.n)
      .map(
        (c) => `\`${c.name}\` ${hg.summary[c.name].ratios.cpuUsPerHandshake.median.toFixed(2)}×`,
      );
    if (hs.length) {
      lines.push(
        '',
        `Server CPU per full TLS handshake ÷ \`${r.handshakes.baseline}\`'s: ${hs.join(', ')}.`,
        `Measured on ${r.machine.cores} cores shared with other work (load average ${r.machine.loadAverage[0]}`,
        'at the start): details, the Redis protocol over TLS and the caveats in the TLS section.',
      );
    }
  }
  return lines.join('\n');
}

/** The handshake server that stands for a contender of the HTTPS or Redis parts. */
function handshakeTwin(name) {
  return ['completion', 'readiness', 'threadpool', 'poll'].includes(name) ? name : 'node:tls';
}

/**
 * Per contender, the share of a measured run's server CPU that its connections' handshakes
 * account for: `connections` handshakes at the handshake part's median cost, over the run's
 * median requests at its median CPU per request.
 */
function handshakeShares(part, group, hs, connections) {
  const hg = hs?.groups[0];
  if (!hg) return [];
  return part.contenders.flatMap((c) => {
    const m = group.summary[c.name]?.metrics;
    const h = hg.summary[handshakeTwin(c.name)]?.metrics.cpuUsPerHandshake.median;
    if (!m?.requests.n || !Number.isFinite(h)) return [];
    const share = (connections * h) / (m.requests.median * m.cpuUsPerReq.median);
    return Number.isFinite(share) ? [`${c.name} ${(share * 100).toFixed(1)} %`] : [];
  });
}

function meaning(r) {
  const lines = [
    '### What these figures mean',
    '',
    `**Machine caveat.** ${r.machine.cores} cores shared with other work (load average`,
    `${r.machine.loadAverage.join(' ')} at the start of this case), the load generator on the same`,
    'cores as the server: absolute figures move a lot from run to run, and only the ratios taken',
    'round by round (contender next to baseline) mean much. A ratio range that straddles 1 is no',
    'difference this run can show.',
    '',
    'Every server here does its cryptography in the same OpenSSL (the engine resolves its symbols',
    'from the `node` binary), with the same TLS 1.3 cipher, so the record work per byte is the',
    'same; what the CPU per request compares is what surrounds it. `node:https` decrypts in',
    'node:tls (its TLSWrap), hands each chunk of plaintext to JavaScript as a stream event, and',
    'parses it with node:http; the `tls` rows keep node:tls but frame by hand, which shows how much',
    'of `node:https` is the HTTP layer and how much the TLS stream. The engine decrypts into the',
    'socket’s input buffer in native code, frames there (`readLengthPrefixed` for HTTP, the RESP',
    'reads of the Redis demo), and only finished requests cross into JavaScript; its replies are',
    'encrypted on the write path and sent with the same gathered sends as plain bytes.',
    '`redis-server --tls-port` is the native ceiling: C, with no JavaScript at all.',
  ];
  const g = r.https?.groups[0];
  const shares = g ? handshakeShares(r.https, g, r.handshakes, 50) : [];
  if (shares.length) {
    lines.push(
      '',
      'Handshakes inside the measured runs: wrk opens 50 connections per run, so by the handshake',
      `part’s figures they account for about ${shares.join(', ')} of each HTTPS run’s server`,
      'CPU (node:tls’s handshake cost stands for both node baselines). The CPU per request above',
      'overstates the steady-state cost of a request by that much; the shares being of one order for',
      'every server, the ratios move less. `npm run bench:full` runs wrk longer, which shrinks them.',
    );
  }
  return lines;
}

export function render(r, kit) {
  const md = [
    `Certificate: ${r.certificate}. Each part runs its contenders interleaved, as the other`,
    'cases do, with server CPU per request (or per handshake) as the headline.',
  ];
  const charts = {};
  const failures = [];
  const parts = [
    ['HTTPS', r.https, httpsSection],
    ['Redis', r.redis, redisSection],
    ['handshakes', r.handshakes, handshakeSection],
  ];
  for (const [tag, part, section] of parts) {
    if (!part) continue;
    const out = section(part, kit, r);
    md.push('', ...out.md);
    Object.assign(charts, out.charts);
    failures.push(...failuresOf(part, tag));
    for (const note of part.notes ?? []) {
      if (note.includes('did not start')) failures.push(`${tag}: ${note.slice(0, 300)}`);
    }
  }
  md.push('', ...meaning(r));
  if (failures.length) md.push('', 'Failed runs:', '', ...failures.map((f) => `- ${f}`));
  return { markdown: md.join('\n'), charts };
}

export function reading(r, kit) {
  const v = (s, better) => (s?.n ? `${kit.ratioCell(s)} ${kit.verdict(s, better)}` : 'failed');
  const out = [];
  if (r.https) {
    const g = r.https.groups[0];
    const rows = r.https.contenders
      .filter((c) => c.name !== r.https.baseline)
      .map((c) => {
        const s = g.summary[c.name];
        return [
          c.engine ? `**${c.name}**` : c.name,
          v(s?.ratios.cpuUsPerReq, 'lower'),
          v(s?.ratios.rps, 'higher'),
          v(s?.ratios.p99Ms, 'lower'),
        ];
      });
    out.push(
      `**HTTPS** (wrk): ratios to \`${r.https.baseline}\`.\n\n` +
        kit.table(['Server', 'CPU per request', 'req/s', 'p99 latency'], rows),
    );
  }
  if (r.redis) {
    const base = r.redis.baseline;
    const rows = [];
    for (const pipeline of [1, 16]) {
      for (const c of r.redis.contenders.filter((x) => x.name !== base)) {
        rows.push([
          `-c 50 -P ${pipeline}`,
          c.engine ? `**${c.name}**` : c.name,
          ...REDIS_TESTS.map((t) => {
            const g = r.redis.groups.find((x) => x.test === t && x.pipeline === pipeline);
            return v(g?.summary[c.name]?.ratios.cpuUsPerReq, 'lower');
          }),
        ]);
      }
    }
    out.push(
      `**Redis protocol over TLS** (redis-benchmark --tls): server CPU per request ÷ \`${base}\`'s.\n\n` +
        kit.table(['Clients', 'Server', ...REDIS_TESTS], rows, [
          'l',
          'l',
          ...REDIS_TESTS.map(() => 'r'),
        ]),
    );
  }
  return out;
}
