// EngineErrorCode is a closed union: ENGINE_ERROR_CODES lists every code the engine produces.
// Every code the runtime maps to (the native result codes, every errno, getaddrinfo's EAI_*
// values, the codes the TypeScript layer throws) is in the list; that a misspelled code does not
// compile is test/types/bad-error-code.ts's (test/types.test.ts).
import test from 'ava';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { ENGINE_ERROR_CODES, type Socket } from 'async-engine';
import { errorFromNative } from '../src/engine/errors.js';
import { expectErr, forEachImpl, noFdLeaks, once } from './helpers/harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const known = new Set<string>(ENGINE_ERROR_CODES);

test('ENGINE_ERROR_CODES has no duplicates', (t) => {
  t.is(known.size, ENGINE_ERROR_CODES.length);
});

test('every native result code (EngineCode in engine_core.h) maps to a listed code', (t) => {
  const header = readFileSync(path.join(root, 'native/core/engine_core.h'), 'utf8');
  const body = /enum EngineCode[^{]*\{([\s\S]*?)\};/.exec(header)?.[1] ?? '';
  const values = [...body.matchAll(/=\s*(-\d+)/g)].map((m) => Number(m[1]));
  t.true(values.length >= 9, `EngineCode values: ${values.join(', ')}`);
  for (const v of values) {
    // A resolver failure carries [EAI_* value, errno]; every other code a syscall name.
    const payload = v === -100007 ? [-2, 0] : 'recv';
    const code = errorFromNative(v, payload).code;
    t.true(known.has(code), `${v} -> ${code}`);
  }
});

test('every errno maps to a listed code: its name where Node names it, else UNKNOWN', (t) => {
  for (let errno = 1; errno < 4096; errno++) {
    const err = errorFromNative(-errno, 'recv');
    t.true(known.has(err.code), `-${errno} -> ${err.code}`);
    t.is(err.errno, -errno);
    const name = getSystemErrorName(-errno);
    // Kernel errnos (below 512) that Node names keep their name.
    if (errno < 512 && !name.startsWith('Unknown')) t.is(err.code, name as typeof err.code);
  }
});

test('every getaddrinfo result maps to a listed code', (t) => {
  for (let gai = -200; gai <= 0; gai++) {
    const err = errorFromNative(-100007, [gai, 0]);
    t.true(known.has(err.code), `EAI ${gai} -> ${err.code}`);
    t.is(err.syscall, 'getaddrinfo');
  }
  t.is(errorFromNative(-100007, [-2, 0]).code, 'ENOTFOUND');
  t.is(errorFromNative(-100007, [-3, 0]).code, 'EAI_AGAIN');
});

// The TypeScript sources: every code given to `new EngineError(...)` or set as `code = '...'`.
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

test('every code the TypeScript layer sets or throws is listed', (t) => {
  const found = new Set<string>();
  for (const file of sourceFiles(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new EngineError\(\s*'([A-Z0-9_]+)'/g)) found.add(m[1]!);
    for (const m of text.matchAll(/\bcode = '([A-Z0-9_]+)'/g)) found.add(m[1]!);
    for (const m of text.matchAll(/\[-?\d+\]: '([A-Z0-9_]+)'/g)) found.add(m[1]!);
  }
  t.true(found.has('ERR_ENGINE_CLOSED') && found.has('ERR_INVALID_ARG_TYPE'), [...found].join());
  t.true(found.has('EAI_AGAIN'), [...found].join());
  for (const code of found) t.true(known.has(code), code);
});

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

forEachImpl('an op that fails on a real socket fails with a listed code', async (t, engine) => {
  const port = await closedPort();
  const con = once<Socket>();
  engine.connect({ host: '127.0.0.1', port }, con.cb);
  const err = await expectErr(t, con, 'ECONNREFUSED');
  t.true(known.has(err.code));
});

noFdLeaks();
