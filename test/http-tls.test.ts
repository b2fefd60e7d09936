// The HTTP example over TLS (examples/http-hello with `tls`, and main.js with --tls or
// --tls-cert/--tls-key) on every available impl: node:https keep-alive requests on one
// connection, ALPN http/1.1, pipelined requests over node:tls, curl --cacert, and a client that
// never starts its handshake not keeping the others out.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createEngine } from 'async-engine';
import { implsUnderTest, withDeadline } from './helpers/harness.js';
import { testCerts } from './helpers/tls-certs.js';

type Engine = ReturnType<typeof createEngine>;

interface HttpDemoServer {
  address: { address: string; family: string; port: number };
  close(): void;
}

// The example is plain JavaScript outside test/; compiled tests live in dist-test/test/.
const { startHttpServer } = (await import(
  new URL('../../examples/http-hello/server.js', import.meta.url).href
)) as {
  startHttpServer(options: {
    engine: Engine;
    port?: number;
    tls?: { key: string; cert: string };
    handshakeTimeout?: number;
  }): HttpDemoServer;
};
const MAIN_JS = fileURLToPath(new URL('../../examples/http-hello/main.js', import.meta.url));
const CURL = '/usr/bin/curl';
const execFileAsync = promisify(execFile);

/** GET / through `agent`; resolves with the status, the body and whether the socket was reused. */
function get(
  port: number,
  agent: https.Agent,
  ca: string | Buffer,
): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', servername: 'localhost', port, path: '/', agent, ca },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            body,
            reused: req.reusedSocket,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

/** Five keep-alive requests: the first makes the connection, the others reuse it. */
async function keepAliveRequests(t: ExecutionContext, port: number, ca: string | Buffer) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 5; i++) {
      // Under the 10 s the demo gives a handshake: silent connections are never timed out.
      const r = await withDeadline(get(port, agent, ca), 9_000, `request ${i}`);
      t.is(r.status, 200);
      t.is(r.body, 'Hello, World!');
      t.is(r.reused, i > 0, `request ${i} on the kept-alive connection`);
    }
  } finally {
    agent.destroy();
  }
}

for (const impl of implsUnderTest()) {
  test.serial(
    `[${impl}] startHttpServer with tls: node:https keep-alive, ALPN http/1.1, pipelined over node:tls`,
    async (t) => {
      const certs = testCerts();
      const engine = createEngine({ impl });
      try {
        const server = startHttpServer({ engine, port: 0, tls: certs.leaf });
        try {
          const port = server.address.port;
          // Connections that never send a ClientHello: the server must go on accepting others.
          const silent: net.Socket[] = [];
          for (let i = 0; i < 3; i++) {
            const s = net.connect({ host: '127.0.0.1', port });
            s.on('error', () => {});
            silent.push(s);
          }
          try {
            await keepAliveRequests(t, port, certs.ca);
            // ALPN and three pipelined requests in one write; the last one closes.
            const socket = tls.connect({
              host: '127.0.0.1',
              port,
              servername: 'localhost',
              ca: certs.ca,
              ALPNProtocols: ['http/1.1'],
            });
            let raw = '';
            socket.setEncoding('latin1').on('data', (d: string) => (raw += d));
            const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
            await withDeadline(
              new Promise<void>((resolve, reject) => {
                socket.once('secureConnect', () => resolve());
                socket.once('error', reject);
              }),
              10_000,
              'the handshake',
            );
            t.is(socket.alpnProtocol, 'http/1.1');
            const request = 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n';
            socket.write(
              request + request + 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
            );
            await withDeadline(closed, 10_000, 'the server to close after Connection: close');
            t.is(raw.match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 3, raw);
            t.is(raw.match(/Hello, World!/g)?.length, 3);
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
    `[${impl}] startHttpServer with tls: more silent connections than waiting accepts are closed at the handshake timeout`,
    async (t) => {
      const certs = testCerts();
      const engine = createEngine({ impl });
      try {
        const server = startHttpServer({ engine, port: 0, tls: certs.leaf, handshakeTimeout: 300 });
        try {
          const port = server.address.port;
          // 12 > the 8 accepts waiting at once: every one of them holds a silent connection.
          const silent = Array.from({ length: 12 }, () => {
            const s = net.connect({ host: '127.0.0.1', port });
            s.on('error', () => {});
            return new Promise<void>((resolve) => s.on('close', () => resolve()));
          });
          await withDeadline(Promise.all(silent), 20_000, 'the server to close the silent ones');
          await keepAliveRequests(t, port, certs.ca);
        } finally {
          server.close();
        }
      } finally {
        await engine.shutdown();
      }
    },
  );

  test.serial(
    `[${impl}] main.js --tls-cert --tls-key and --tls alone: curl --cacert keep-alive, node:https`,
    async (t) => {
      const certs = testCerts();
      const dir = mkdtempSync(join(tmpdir(), 'ae-http-tls-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'cert.pem'), certs.leaf.cert);
      writeFileSync(join(dir, 'key.pem'), certs.leaf.key);
      writeFileSync(join(dir, 'ca.pem'), certs.ca);
      const own = ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')];
      for (const [flags, caOf] of [
        [own, () => join(dir, 'ca.pem')],
        [['--tls'], (out: string) => join(/ in (\S+) \(cert\.pem/.exec(out)![1], 'cert.pem')],
      ] as const) {
        const child = spawn(process.execPath, [MAIN_JS, '--impl', impl, '--port', '0', ...flags], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        t.teardown(() => void child.kill('SIGKILL'));
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
        const port = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no banner: ${stdout} ${stderr}`)),
            30_000,
          );
          child.stdout.on('data', () => {
            const m = /listening on 127\.0\.0\.1:(\d+) over TLS \(https\)\n/.exec(stdout);
            if (m) {
              clearTimeout(timer);
              resolve(Number(m[1]));
            }
          });
          void exited.then((code) =>
            reject(new Error(`exited early (${code}): ${stdout} ${stderr}`)),
          );
        });
        const ca = caOf(stdout);
        if (existsSync(CURL) || process.env.CI) {
          const url = `https://localhost:${port}/`;
          const { stdout: out, stderr: log } = await execFileAsync(
            CURL,
            ['-sv', '--cacert', ca, '--resolve', `localhost:${port}:127.0.0.1`, url, url, url],
            // The sanitizer runtimes the ASan lane preloads are for node, not for curl.
            { timeout: 20_000, env: { ...process.env, LD_PRELOAD: '' } },
          );
          t.is(out, 'Hello, World!'.repeat(3));
          t.regex(log, /ALPN: server accepted http\/1\.1|ALPN, server accepted to use http\/1\.1/);
          t.is(log.match(/Re-using existing connection/g)?.length, 2, 'one connection for three');
        }
        await keepAliveRequests(t, port, readFileSync(ca));
        child.kill('SIGTERM');
        t.is(await exited, 0, stderr);
      }
    },
  );
}
