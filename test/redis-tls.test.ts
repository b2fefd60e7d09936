// The Redis demo over TLS (examples/redis-server with `tls`, and main.js with --tls,
// --tls-cert/--tls-key, --tls-ca-cert, --workers) on every available impl: redis-cli --tls and
// node:tls clients sending PING, SET/GET, pipelined requests and a large value; a client that
// connects and never starts its handshake does not keep the others out; the generated pair
// (openssl, or node:crypto when openssl is missing, with serials DER must shorten or pad) and
// bad flags.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createEngine } from 'async-engine';
import type { ImplName } from 'async-engine';
import { implsUnderTest, withDeadline } from './helpers/harness.js';
import { RespClient, inline, multibulk } from './helpers/resp.js';
import { testCerts } from './helpers/tls-certs.js';

type Engine = ReturnType<typeof createEngine>;

interface RedisDemoServer {
  address: { address: string; family: string; port: number };
  accepted: number;
  close(): void;
}
interface ServerModule {
  startRedisServer(options: {
    engine: Engine;
    port?: number;
    tls?: { key: string; cert: string; ca?: string };
    handshakeTimeout?: number;
  }): RedisDemoServer;
}

// The example is plain JavaScript outside test/; compiled tests live in dist-test/test/.
const { startRedisServer } = (await import(
  new URL('../../examples/redis-server/server.js', import.meta.url).href
)) as ServerModule;
const { selfSignedWithCrypto } = (await import(
  new URL('../../examples/tls-options.js', import.meta.url).href
)) as { selfSignedWithCrypto(serial?: Buffer): { key: string; cert: string } };
const MAIN_JS = fileURLToPath(new URL('../../examples/redis-server/main.js', import.meta.url));
const REDIS_CLI = '/usr/bin/redis-cli';
const haveCli = existsSync(REDIS_CLI);

// RespClient takes any net.Socket; a TLSSocket is one.
const RespOver = RespClient as unknown as new (socket: net.Socket) => RespClient;

/** A node:tls client speaking RESP, connected once the handshake is done. */
function tlsClient(
  port: number,
  options: tls.ConnectionOptions = {},
): Promise<{ client: RespClient; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    socket.once('secureConnect', () => {
      socket.removeListener('error', reject);
      resolve({ client: new RespOver(socket), socket });
    });
    socket.once('error', reject);
  });
}

/** A directory holding the test certificates as files, removed by `t.teardown`. */
function certFiles(t: ExecutionContext): Record<string, string> {
  const certs = testCerts();
  const dir = mkdtempSync(join(tmpdir(), 'ae-redis-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    ca: certs.ca,
    cert: certs.leaf.cert,
    key: certs.leaf.key,
    selfCert: certs.self.cert,
    selfKey: certs.self.key,
  };
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) {
    paths[name] = join(dir, `${name}.pem`);
    writeFileSync(paths[name], text);
  }
  return paths;
}

interface Demo {
  port: number;
  /** Where --tls alone made its pair (from the TLS line), or undefined. */
  dir: string | undefined;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts main.js with `args` and waits for its banner (the readiness line). */
async function startDemo(
  t: ExecutionContext,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Demo> {
  const child = spawn(process.execPath, [MAIN_JS, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // 'close', not 'exit': the child's last output may still be in the pipe when it exits.
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const demo: Demo = {
    port: 0,
    dir: undefined,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: (signal) => void child.kill(signal),
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner: ${stdout} ${stderr}`)), 30_000);
    child.stdout.on('data', () => {
      const m = /listening on 127\.0\.0\.1:(\d+)(?: with \d+ workers)? over TLS\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        demo.port = Number(m[1]);
        demo.dir = / in (\S+) \(cert\.pem, key\.pem/.exec(stdout)?.[1];
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`exited early (${code}): ${stdout} ${stderr}`)));
  });
  return demo;
}

/** Runs redis-cli with `args`, `input` on its stdin; resolves with its stdout. */
function redisCli(args: string[], input?: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      REDIS_CLI,
      ['-h', '127.0.0.1', ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: 20_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
    );
    child.stdin!.end(input);
  });
}

/** PING, SET/GET, 200 pipelined requests (redis-cli --pipe) and a 1 MiB value through redis-cli. */
async function cliRoundTrips(t: ExecutionContext, tlsArgs: string[]): Promise<void> {
  const cli = (args: string[], input?: string | Buffer) => redisCli([...tlsArgs, ...args], input);
  t.is(await cli(['ping']), 'PONG\n');
  t.is(await cli(['set', 'greeting', 'hello over tls']), 'OK\n');
  t.is(await cli(['get', 'greeting']), 'hello over tls\n');
  let pipe = '';
  for (let i = 0; i < 200; i++) pipe += multibulk('INCR', 'counter');
  t.regex(await cli(['--pipe'], pipe), /errors: 0, replies: 200/);
  t.is(await cli(['get', 'counter']), '200\n');
  const big = 'x'.repeat(1024 * 1024 - 7) + 'the end';
  t.is(await cli(['-x', 'set', 'big'], big), 'OK\n');
  t.is(await cli(['get', 'big']), big + '\n');
}

/** The same through a node:tls client: pipelined requests in one write, a 4 MiB value. */
async function nodeRoundTrips(t: ExecutionContext, client: RespClient): Promise<void> {
  t.is(await client.call(inline('PING')), 'PONG');
  let batch = '';
  for (let i = 0; i < 100; i++)
    batch += multibulk('SET', `k${i}`, `v${i}`) + inline('GET', `k${i}`);
  client.send(batch);
  const replies = await client.read(200);
  for (let i = 0; i < 100; i++) {
    t.is(replies[2 * i], 'OK');
    t.is(replies[2 * i + 1], `v${i}`);
  }
  const big = 'abcdefghij'.repeat(400 * 1024) + 'end';
  t.is(await client.call(multibulk('SET', 'big', big)), 'OK');
  t.is(await client.call(multibulk('GET', 'big')), big, 'the 4 MiB value, whole');
}

for (const impl of implsUnderTest()) {
  test.serial(
    `[${impl}] startRedisServer with tls: node:tls clients, pipelined and large, next to a silent connection`,
    async (t) => {
      const certs = testCerts();
      const engine = createEngine({ impl });
      try {
        const server = startRedisServer({ engine, port: 0, tls: certs.leaf });
        try {
          const port = server.address.port;
          // Connections that never send a ClientHello: the demo must go on accepting others.
          const silent: net.Socket[] = [];
          for (let i = 0; i < 3; i++) {
            const s = net.connect({ host: '127.0.0.1', port });
            s.on('error', () => {});
            silent.push(s);
          }
          try {
            const { client, socket } = await withDeadline(
              tlsClient(port, { ca: certs.ca }),
              // Under the 10 s the demo gives a handshake: the silent ones are never timed out.
              9_000,
              'a TLS client behind silent connections',
            );
            t.true(socket.authorized);
            await nodeRoundTrips(t, client);
            const second = (await tlsClient(port, { ca: certs.ca })).client;
            t.is(await second.call(multibulk('GET', 'k7')), 'v7', 'one keyspace for both');
            client.destroy();
            second.destroy();
          } finally {
            for (const s of silent) s.destroy();
          }
        } finally {
          server.close();
        }
      } finally {
        await engine.shutdown();
      }
    },
  );

  test.serial(
    `[${impl}] startRedisServer with tls: more silent connections than waiting accepts are closed at the handshake timeout`,
    async (t) => {
      const certs = testCerts();
      const engine = createEngine({ impl });
      try {
        const server = startRedisServer({
          engine,
          port: 0,
          tls: certs.leaf,
          handshakeTimeout: 300,
        });
        try {
          const port = server.address.port;
          // 12 > the 8 accepts waiting at once: every one of them holds a silent connection.
          const silent = Array.from({ length: 12 }, () => {
            const s = net.connect({ host: '127.0.0.1', port });
            s.on('error', () => {});
            return new Promise<void>((resolve) => s.on('close', () => resolve()));
          });
          await withDeadline(Promise.all(silent), 20_000, 'the server to close the silent ones');
          const { client } = await withDeadline(
            tlsClient(port, { ca: certs.ca }),
            20_000,
            'a TLS client after the silent ones',
          );
          t.is(await client.call(inline('PING')), 'PONG');
          client.destroy();
          t.is(server.accepted, 1, 'the silent ones never reached the server');
        } finally {
          server.close();
        }
      } finally {
        await engine.shutdown();
      }
    },
  );

  if (haveCli || process.env.CI) {
    test.serial(`[${impl}] main.js --tls-cert --tls-key: redis-cli --tls --cacert`, async (t) => {
      if (!haveCli) {
        t.fail(`${REDIS_CLI} not found: install redis-tools (apt-get install redis-tools)`);
        return;
      }
      const files = certFiles(t);
      const demo = await startDemo(t, [
        '--impl',
        impl,
        '--tls',
        '--tls-cert',
        files.cert,
        '--tls-key',
        files.key,
      ]);
      t.is(demo.dir, undefined, 'nothing generated');
      await cliRoundTrips(t, ['--tls', '--cacert', files.ca, '-p', String(demo.port)]);
      demo.kill('SIGTERM');
      t.is(await demo.exited, 0, demo.stderr());
    });

    test.serial(
      `[${impl}] main.js --tls alone: a self-signed pair, redis-cli --insecure and --cacert, node:tls, removed on exit`,
      async (t) => {
        if (!haveCli) {
          t.fail(`${REDIS_CLI} not found: install redis-tools (apt-get install redis-tools)`);
          return;
        }
        const demo = await startDemo(t, ['--impl', impl, '--tls']);
        t.regex(
          demo.stdout(),
          /self-signed certificate for localhost and 127\.0\.0\.1 made with openssl/,
        );
        const dir = demo.dir!;
        t.true(existsSync(join(dir, 'key.pem')));
        const cert = join(dir, 'cert.pem');
        await cliRoundTrips(t, ['--tls', '--insecure', '-p', String(demo.port)]);
        t.is(
          await redisCli(['--tls', '--cacert', cert, '-p', String(demo.port), 'get', 'counter']),
          '200\n',
        );
        const { client, socket } = await tlsClient(demo.port, { ca: readFileSync(cert) });
        t.true(socket.authorized, 'the generated certificate verifies for localhost');
        await nodeRoundTrips(t, client);
        client.destroy();
        demo.kill('SIGTERM');
        t.is(await demo.exited, 0, demo.stderr());
        t.false(existsSync(dir), 'the generated pair is removed on exit');
      },
    );

    test.serial(
      `[${impl}] main.js --tls --tls-ca-cert: clients must present a certificate the CA signed`,
      async (t) => {
        if (!haveCli) {
          t.fail(`${REDIS_CLI} not found: install redis-tools (apt-get install redis-tools)`);
          return;
        }
        const files = certFiles(t);
        const demo = await startDemo(t, [
          '--impl',
          impl,
          '--tls-cert',
          files.cert,
          '--tls-key',
          files.key,
          '--tls-ca-cert',
          files.ca,
        ]);
        const port = String(demo.port);
        const withCert = ['--tls', '--cacert', files.ca, '--cert', files.cert, '--key', files.key];
        t.is(await redisCli([...withCert, '-p', port, 'ping']), 'PONG\n');
        await t.throwsAsync(redisCli(['--tls', '--cacert', files.ca, '-p', port, 'ping']));
        // A certificate the CA did not sign is refused as well.
        await t.throwsAsync(
          redisCli([
            '--tls',
            '--cacert',
            files.ca,
            '--cert',
            files.selfCert,
            '--key',
            files.selfKey,
            '-p',
            port,
            'ping',
          ]),
        );
        const { client } = await tlsClient(demo.port, {
          ca: readFileSync(files.ca),
          cert: readFileSync(files.cert),
          key: readFileSync(files.key),
        });
        t.is(await client.call(inline('PING')), 'PONG');
        client.destroy();
        demo.kill('SIGTERM');
        t.is(await demo.exited, 0, demo.stderr());
      },
    );

    test.serial(
      `[${impl}] main.js --tls --workers 2: redis-cli --tls on many connections`,
      async (t) => {
        if (!haveCli) {
          t.fail(`${REDIS_CLI} not found: install redis-tools (apt-get install redis-tools)`);
          return;
        }
        const files = certFiles(t);
        const demo = await startDemo(t, [
          '--impl',
          impl,
          '--workers',
          '2',
          '--tls-cert',
          files.cert,
          '--tls-key',
          files.key,
        ]);
        t.regex(demo.stdout(), /with 2 workers over TLS\n/);
        const tlsArgs = ['--tls', '--cacert', files.ca, '-p', String(demo.port)];
        for (let i = 0; i < 6; i++) t.is(await redisCli([...tlsArgs, 'ping', `w${i}`]), `w${i}\n`);
        // Each worker has its own keyspace: SET then GET on one connection.
        let pipe = '';
        for (let i = 0; i < 50; i++)
          pipe += multibulk('SET', `k${i}`, 'v') + multibulk('GET', `k${i}`);
        t.regex(await redisCli([...tlsArgs, '--pipe'], pipe), /errors: 0, replies: 100/);
        demo.kill('SIGTERM');
        t.is(await demo.exited, 0, demo.stderr());
        t.regex(demo.stdout(), /bye\n/);
      },
    );
  }

  test.serial(
    `[${impl}] selfSignedWithCrypto: serials with leading zero bytes or the top bit set load and verify`,
    async (t) => {
      // DER allows one form of an integer: a serial whose first byte is 0 must lose it (OpenSSL
      // refuses it as "illegal padding"), one whose top bit is set must gain a 0 byte.
      const serials: [string, string][] = [
        ['0012' + '34'.repeat(14), '12' + '34'.repeat(14)],
        ['0000' + '7f'.repeat(14), '7f'.repeat(14)],
        ['0080' + '01'.repeat(14), '80' + '01'.repeat(14)],
        ['ff' + '00'.repeat(15), 'ff' + '00'.repeat(15)],
        ['00'.repeat(15) + '05', '05'],
      ];
      const engine = createEngine({ impl });
      try {
        for (const [given, expected] of serials) {
          const pair = selfSignedWithCrypto(Buffer.from(given, 'hex'));
          t.is(new X509Certificate(pair.cert).serialNumber, expected.toUpperCase(), given);
          const server = startRedisServer({ engine, port: 0, tls: pair });
          try {
            const { client, socket } = await tlsClient(server.address.port, { ca: pair.cert });
            t.true(socket.authorized, given);
            t.is(await client.call(inline('PING')), 'PONG');
            client.destroy();
          } finally {
            server.close();
          }
        }
      } finally {
        await engine.shutdown();
      }
    },
  );

  test.serial(
    `[${impl}] main.js --tls without openssl: node:crypto makes the pair and says openssl is needed`,
    async (t) => {
      // No PATH: `openssl` cannot be found (node itself is started by its full path).
      const demo = await startDemo(t, ['--impl', impl, '--tls'], { ...process.env, PATH: '' });
      t.regex(demo.stdout(), /made with node:crypto/);
      t.regex(demo.stdout(), /openssl was not found.*openssl is needed/);
      const cert = readFileSync(join(demo.dir!, 'cert.pem'));
      const { client, socket } = await tlsClient(demo.port, { ca: cert });
      t.true(socket.authorized, 'the node:crypto certificate verifies for localhost');
      t.is(await client.call(multibulk('SET', 'a', 'b')), 'OK');
      t.is(await client.call(multibulk('GET', 'a')), 'b');
      client.destroy();
      // An IP address is checked against the certificate's IP entries.
      const byIp = await tlsClient(demo.port, { ca: cert, servername: undefined });
      t.true(byIp.socket.authorized, 'and for 127.0.0.1');
      byIp.client.destroy();
      demo.kill('SIGTERM');
      t.is(await demo.exited, 0, demo.stderr());
      t.false(existsSync(demo.dir!));
    },
  );
}

test.serial(
  'main.js TLS flags: a cert without its key, an unreadable file, a file that is not PEM',
  async (t) => {
    const files = certFiles(t);
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [MAIN_JS, '--port', '0', ...args],
          { timeout: 30_000 },
          (err, _out, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        );
      });
    const cases: [string[], RegExp][] = [
      [['--tls-cert', files.cert], /--tls-cert needs --tls-key/],
      [['--tls', '--tls-key', files.key], /--tls-key needs --tls-cert/],
      [
        ['--tls-cert', '/nonexistent/cert.pem', '--tls-key', files.key],
        /--tls-cert: cannot read \/nonexistent\/cert\.pem: ENOENT/,
      ],
      [['--tls-cert', files.cert, '--tls-key', MAIN_JS], /--tls-key: not PEM/],
      [['--tls', '--tls-ca-cert', '/nonexistent/ca.pem'], /--tls-ca-cert: cannot read/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await run(args);
      t.is(code, 2, args.join(' '));
      t.regex(stderr, message);
      t.regex(stderr, /--tls-ca-cert FILE/, 'with the usage');
    }
    // A key that is not the certificate's: refused by listen, before anything is served.
    const mismatched = await run(['--tls-cert', files.cert, '--tls-key', files.selfKey]);
    t.is(mismatched.code, 1);
    t.regex(mismatched.stderr, /cannot listen on .*ERR_INVALID_ARG_VALUE/);
  },
);
