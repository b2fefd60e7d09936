// The HTTP/1.1 example (examples/http-hello) on every available impl: node:net clients sending
// keep-alive, pipelined and HTTP/1.0 requests, requests with bodies (whole, split, looking like
// requests themselves), and the malformed or oversized heads and bodies that get an error and a
// close.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import net from 'node:net';
import { createEngine } from 'async-engine';
import { implsUnderTest, sleep } from './helpers/harness.js';

type Engine = ReturnType<typeof createEngine>;

interface HttpDemoServer {
  engine: Engine;
  address: { address: string; family: string; port: number };
  connections: Set<unknown>;
  close(): void;
}

// The example is plain JavaScript outside test/; compiled tests live in dist-test/test/.
const { startHttpServer } = (await import(
  new URL('../../examples/http-hello/server.js', import.meta.url).href
)) as { startHttpServer(options: { engine: Engine; port?: number }): HttpDemoServer };
const { MAX_BODY, MAX_HEAD } = (await import(
  new URL('../../examples/http-hello/http.js', import.meta.url).href
)) as { MAX_BODY: number; MAX_HEAD: number };

interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A node:net client that parses every response it receives and notices the server's close. */
class Client {
  raw = '';
  closed = false;
  private pos = 0;
  private readonly responses: Response[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.raw += d;
      this.parse();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
        socket.removeListener('error', reject);
        resolve(new Client(socket));
      });
      socket.once('error', reject);
    });
  }

  private parse(): void {
    for (;;) {
      const end = this.raw.indexOf('\r\n\r\n', this.pos);
      if (end < 0) return;
      const lines = this.raw.slice(this.pos, end).split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)?.[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      // HEAD responses carry Content-Length but no body: the test says which it sent.
      const length = this.headOnly ? 0 : Number(headers['content-length'] ?? 0);
      if (this.raw.length < end + 4 + length) return;
      this.responses.push({ status, headers, body: this.raw.slice(end + 4, end + 4 + length) });
      this.pos = end + 4 + length;
    }
  }

  /** Set while only HEAD requests are answered. */
  headOnly = false;

  send(data: string): void {
    this.socket.write(Buffer.from(data, 'latin1'));
  }

  /** The next `n` responses (fails after `ms`, or when the server closes first). */
  async read(n: number, ms = 10_000): Promise<Response[]> {
    const deadline = Date.now() + ms;
    while (this.responses.length < n) {
      if (this.closed)
        throw new Error(`closed after ${this.responses.length} of ${n}: ${this.raw}`);
      if (Date.now() > deadline) throw new Error(`${this.responses.length} of ${n} responses`);
      await sleep(5);
    }
    return this.responses.splice(0, n);
  }

  /** Waits until the server closes the connection. */
  async closedByServer(ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('the server did not close the connection');
      await sleep(5);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const get = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const post = (body: string, extra = '') =>
  `POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

async function withServer(
  t: ExecutionContext,
  impl: string,
  body: (port: number, server: HttpDemoServer) => Promise<void>,
): Promise<void> {
  const engine = createEngine({ impl: impl as never });
  try {
    const server = startHttpServer({ engine, port: 0 });
    try {
      t.is(server.address.address, '127.0.0.1');
      await body(server.address.port, server);
    } finally {
      server.close();
    }
  } finally {
    await engine.shutdown();
  }
}

function isHello(t: ExecutionContext, r: Response | undefined, what: string): void {
  t.is(r?.status, 200, what);
  t.is(r?.body, 'Hello, World!', what);
}

for (const impl of implsUnderTest()) {
  test(`[${impl}] keep-alive requests, pipelined ones and HTTP/1.0`, async (t) => {
    await withServer(t, impl, async (port) => {
      const c = await Client.connect(port);
      for (let i = 0; i < 3; i++) {
        c.send(get(`/${i}`));
        const [r] = await c.read(1);
        isHello(t, r, `request ${i}`);
        t.false('connection' in r!.headers, 'HTTP/1.1 keeps the connection by default');
      }
      c.send(get('/a') + get('/b') + get('/c'));
      for (const r of await c.read(3)) isHello(t, r, 'pipelined');
      t.false(c.closed);
      c.destroy();

      const head = await Client.connect(port);
      head.headOnly = true;
      head.send(`HEAD / HTTP/1.1\r\nHost: x\r\n\r\n`);
      const [h] = await head.read(1);
      t.is(h!.status, 200);
      t.is(h!.headers['content-length'], '13');
      await sleep(20);
      t.is(head.raw.endsWith('\r\n\r\n'), true, 'no body after a HEAD response');
      head.destroy();

      const old = await Client.connect(port);
      old.send('GET / HTTP/1.0\r\n\r\n');
      const [o] = await old.read(1);
      isHello(t, o, 'HTTP/1.0');
      t.is(o!.headers.connection, 'close');
      await old.closedByServer();
      old.destroy();

      const closing = await Client.connect(port);
      closing.send(get('/', 'Connection: close\r\n') + get('/never'));
      const [cl] = await closing.read(1);
      isHello(t, cl, 'Connection: close');
      await closing.closedByServer();
      t.is(closing.raw.split('HTTP/1.1 ').length - 1, 1, 'nothing answered after the close');
      closing.destroy();
    });
  });

  test(`[${impl}] request bodies are read whole and never taken for requests`, async (t) => {
    await withServer(t, impl, async (port) => {
      const c = await Client.connect(port);
      // A body that looks like two requests, pipelined with a real one after it.
      const sneaky = get('/in-body') + get('/in-body-too');
      c.send(post(sneaky) + get('/after'));
      const rs = await c.read(2);
      isHello(t, rs[0], 'the POST');
      isHello(t, rs[1], 'the GET after it');
      await sleep(50);
      t.is(c.raw.split('HTTP/1.1 ').length - 1, 2, 'exactly two responses');

      // Content-Length: 0, and a binary body with every byte value.
      let binary = '';
      for (let i = 0; i < 256; i++) binary += String.fromCharCode(i);
      c.send(post('') + post(binary) + get());
      for (const r of await c.read(3)) isHello(t, r, 'empty and binary bodies');

      // A body split across writes: head, part of the body, the rest with the next request.
      const body = 'b'.repeat(100_000);
      const whole = post(body) + get('/next');
      const cut1 = whole.indexOf('\r\n\r\n') + 4 + 10;
      const cut2 = cut1 + 60_000;
      c.send(whole.slice(0, cut1 - 12)); // mid-head
      await sleep(20);
      c.send(whole.slice(cut1 - 12, cut1));
      await sleep(20);
      c.send(whole.slice(cut1, cut2));
      await sleep(20);
      t.is(c.raw.split('HTTP/1.1 ').length - 1, 5, 'no response before the body is complete');
      c.send(whole.slice(cut2));
      for (const r of await c.read(2)) isHello(t, r, 'split body, then a GET');

      // The largest body accepted.
      c.send(post('m'.repeat(MAX_BODY)));
      isHello(t, (await c.read(1))[0], 'a body of MAX_BODY bytes');
      t.false(c.closed);
      c.destroy();
    });
  });

  test(`[${impl}] bad heads and bodies get an error response and a close`, async (t) => {
    await withServer(t, impl, async (port) => {
      const cases: Array<[request: string, status: number]> = [
        ['BREW /pot HTCPCP/1.0\r\n\r\n', 400],
        ['GET / HTTP/1.1\r\nno colon here\r\n\r\n', 400],
        ['POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n', 400],
        ['POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 400],
        [`POST / HTTP/1.1\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`, 413],
        ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 501],
        [`GET / HTTP/1.1\r\nX-Big: ${'h'.repeat(MAX_HEAD)}\r\n\r\n`, 431],
      ];
      for (const [request, status] of cases) {
        const c = await Client.connect(port);
        // A good request first: its response must still arrive before the error.
        c.send(get() + request + get());
        const [ok, err] = await c.read(2);
        isHello(t, ok, `before ${status}`);
        t.is(err!.status, status, JSON.stringify(request.slice(0, 60)));
        t.is(err!.headers.connection, 'close');
        await c.closedByServer();
        t.is(c.raw.split('HTTP/1.1 ').length - 1, 2, `${status}: nothing answered after it`);
        c.destroy();
      }
    });
  });

  test(`[${impl}] a client that leaves mid-body or mid-head is released`, async (t) => {
    await withServer(t, impl, async (port, server) => {
      for (const partial of [
        'POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc',
        'GET / HTTP/1.1\r\nHost',
        `${get()}POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n`,
      ]) {
        const c = await Client.connect(port);
        c.send(partial);
        await sleep(20);
        c.socket.end();
        await c.closedByServer();
        t.false(/HTTP\/1\.1 [^2]/.test(c.raw), 'no error response, just the close');
        c.destroy();
      }
      const deadline = Date.now() + 10_000;
      while (server.connections.size > 0 && Date.now() < deadline) await sleep(10);
      t.is(server.connections.size, 0);
      t.is(server.engine.stats().sockets, 0);
    });
  });

  test(`[${impl}] each request, with or without a body, is one readLengthPrefixed op`, async (t) => {
    await withServer(t, impl, async (port, server) => {
      const engine = server.engine as unknown as Record<string, unknown>;
      const calls: Record<string, number> = {};
      for (const name of ['readUntil', 'readExactly', 'readLengthPrefixed']) {
        const original = engine[name] as (...a: unknown[]) => unknown;
        calls[name] = 0;
        engine[name] = (...a: unknown[]) => {
          calls[name]!++;
          return original.apply(server.engine, a);
        };
      }
      const c = await Client.connect(port);
      c.send(get() + post('x'.repeat(1000)) + post('') + get());
      for (const r of await c.read(4)) isHello(t, r, 'answered');
      // Four requests read, and the fifth asked for before the last response went out.
      t.deepEqual(calls, { readUntil: 0, readExactly: 0, readLengthPrefixed: 5 });
      c.destroy();
    });
  });
}
