// Compiled with `tsc --noEmit --strict` by test/types.test.ts: every line here must compile.
// It uses each op's precise types, as a program written against the published declarations.
import {
  Callback,
  ENGINE_ERROR_CODES,
  type AddrInfo,
  type EngineError,
  type EngineErrorCode,
  type File,
  type FileStat,
  type Listener,
  type ListenerAddress,
  type Socket,
  createEngine,
} from 'async-engine';

const engine = createEngine({ maxBytes: 1024 });

// A TCP listener's address has a numeric port under --strict; a Unix one's is its path.
const listener = engine.listen({ host: '127.0.0.1', port: 0 });
const port: number = listener.address().port;
const plain: Listener<ListenerAddress> = engine.listen();
const plainPort: number = plain.address().port;
const unixPath: string = engine.listen({ path: '/tmp/good.sock' }).address();
const anyListener: Listener = listener;

// accept and connect: the new socket, twice; failure gets none.
engine.accept(listener, {
  success: (sock: Socket, same: Socket) => same.remoteAddress ?? sock.remotePort,
  failure: (err: EngineError, none: undefined) => err.code,
});
engine.accept(listener, { timeout: 1000, signal: AbortSignal.timeout(5000) }, (sock) => {
  engine.close(sock);
});
engine.connect({ host: '127.0.0.1', port }, { timeout: 100 }, (sock, same) => {
  const p: number | undefined = same.localPort;
  engine.close(sock);
});

// getaddrinfo: addresses, and undefined for the socket.
engine.getaddrinfo('localhost', 80, (addrs: AddrInfo[], none) => {
  const nothing: undefined = none;
  return addrs[0]?.address;
});
engine.getaddrinfo(
  'localhost',
  80,
  { signal: new AbortController().signal },
  {
    failure: (err, none: undefined) => err.hostname,
  },
);

// Socket reads: success and failure get the Socket; a failure handler can close it.
declare const sock: Socket;
declare function file0(): File;
engine.readChunk(sock, 100, (buf: Buffer, s) => s.remoteAddress);
engine.readExactly(
  sock,
  4,
  { timeout: 50 },
  {
    success: (buf, s) => engine.write(s, buf, (n: number, again: Socket) => again),
    failure: (err, s) => engine.close(s),
  },
);
engine.readUntil(sock, '\r\n', { maxBytes: 10 }, (b, s: Socket) => s);
engine.expectLine(sock, null, { encoding: 'latin1' }, (line: string, s) => s.bufferedBytes);

// File ops: success and failure get the File.
engine.open(
  '/tmp/good.txt',
  { flags: 'r' },
  {
    success: (file: File, same: File) => {
      engine.readChunk(file, 10, (buf, f: File) => f.path);
      engine.readAll(file, { position: 0 }, (all, f) => f.alignment);
      engine.readInto(file, new Uint8Array(8), (n: number, f: File) => f.direct);
      engine.fsync(file, { dataOnly: true }, { failure: (err, f: File) => engine.close(f) });
      engine.stat(file, (st: FileStat, f: File) => st.size + f.alignment);
      engine.write(file, 'x', { position: 4 }, (n, f) => f.path);
    },
    failure: (err, none: undefined) => err.code,
  },
);

// stat of a path, submitWork: nothing for the socket.
engine.stat('/tmp', { timeout: 10 }, (st, none: undefined) => st.isDirectory);
engine.submitWork<number>({ module: 'node:os', fn: 'cpus' }, (n: number, none: undefined) => n);

// A handle that may be either: the op is generic over it.
declare const either: Socket | File;
engine.readChunk(either, 10, (buf, h: Socket | File) => h.fileno());

// Callback with its type parameters left out, as before: its slots are typed with a Socket,
// and it fits every op.
const cb = new Callback<Buffer>({ success: (buf, s: Socket) => s.remoteAddress });
engine.readChunk(sock, 10, cb);
engine.readChunk(file0(), 10, cb);
engine.readChunk(sock, 10, new Callback<Buffer>({ failure: (err) => err.code }));
cb.failure?.(new Error('x') as EngineError);
const fileCb = new Callback<Buffer, File, File>({ success: (buf, f) => f.path });
declare const file: File;
engine.readChunk(file, 10, fileCb);

// Chains: options before the Callbacks; later stages' failure gets the socket, if one was made.
engine.connectThenExpectLine({ host: '127.0.0.1', port }, /^220/, { timeout: 1000 }, [
  (s: Socket) => s,
  {
    success: (line: string, s: Socket) => line,
    failure: (err, s?: Socket) => s && engine.close(s),
  },
]);
engine.acceptThenWrite(listener, 'hi', { signal: AbortSignal.timeout(10) }, [() => {}, () => {}]);
engine.connectThenWriteLine({ path: '/tmp/good.sock' }, 'EHLO', { timeout: 5 }, [
  () => {},
  () => {},
]);
// The accept and connect chains take TLS: a TLS listener, `address.tls` (handshakeTimeout too).
engine.connectThenWriteLine(
  { host: 'localhost', port, tls: { servername: 'localhost', handshakeTimeout: 5_000 } },
  'EHLO',
  [() => {}, () => {}],
);
void engine.promises.connectThenExpectLine({ host: 'localhost', port, tls: {} }, /^220/);
engine.getaddrinfoThenConnect('localhost', 80, { timeout: 5 }, [
  (addrs, none: undefined) => addrs.length,
  (s: Socket, same: Socket) => engine.close(s),
]);

// Error codes: a closed union, narrowed by comparison.
function describe(err: EngineError): string {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return 'peer went away';
    case 'ERR_LIMIT':
      return 'too long';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'no such name';
    default:
      return err.code;
  }
}
function narrowed(err: EngineError): 'ERR_LIMIT' | undefined {
  if (err.code === 'ERR_LIMIT') {
    const limit: 'ERR_LIMIT' = err.code;
    return limit;
  }
  return undefined;
}
const code: EngineErrorCode = 'ETIMEDOUT';
const known: boolean = (ENGINE_ERROR_CODES as readonly string[]).includes(code);

// Promise chains: a rejection carries the socket the chain ran on.
async function promised(): Promise<void> {
  try {
    const { value, socket } = await engine.promises.connectThenExpectLine(
      { host: '127.0.0.1', port },
      /^220/,
      { timeout: 100 },
    );
    engine.close(socket);
  } catch (e) {
    const err = e as EngineError;
    if (err.socket !== undefined) engine.close(err.socket);
  }
  const st: FileStat = await engine.promises.stat('/tmp');
  const addrs: AddrInfo[] = await engine.promises.getaddrinfo('localhost', 80);
}

export { anyListener, describe, known, narrowed, plainPort, promised, unixPath };

// acceptWhen: a string (or null) expectation delivers the line as a string, bytes as a Buffer.
engine.acceptWhen(listener, 'HELO', {
  success: (line: string, sock: Socket) => line.length + sock.bytesRead,
});
engine.acceptWhen(
  listener,
  null,
  { reply: '500\r\n', timeout: 1000, maxBytes: 512 },
  {
    success: (line: string) => line.toUpperCase(),
  },
);
engine.acceptWhen(listener, Buffer.from('HELO'), {
  success: (line: Buffer) => line.byteLength,
});
const deferred: number = engine.listenerOptions(engine.listen({ deferAccept: true })).deferAccept;
void deferred;
