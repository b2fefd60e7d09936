// The published declarations, checked with the TypeScript compiler: test/types/good.ts must
// compile under --strict, and each test/types/bad-*.ts must fail with exactly the diagnostics
// its `// expect TS<code> <text>` comments name, on those lines, so that a fixture cannot fail
// for another reason (a typo in the fixture, a missing export) and still pass.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = path.join(root, 'test', 'types');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');

interface Diagnostic {
  file: string;
  line: number;
  code: string;
  message: string;
}

// One compiler run over every fixture (each is a module of its own): its diagnostics by file.
function compile(files: string[]): { status: number | null; diagnostics: Diagnostic[] } {
  const r = spawnSync(
    tsc,
    [
      '--noEmit',
      '--strict',
      '--pretty',
      'false',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--types',
      'node',
      '--skipLibCheck',
      ...files,
    ],
    { cwd: root, encoding: 'utf8', timeout: 100_000 },
  );
  if (r.error) throw r.error;
  const diagnostics: Diagnostic[] = [];
  for (const text of r.stdout.split('\n')) {
    const m = /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(text);
    if (m) {
      diagnostics.push({
        file: path.basename(m[1]!),
        line: Number(m[2]),
        code: m[3]!,
        message: m[4]!,
      });
    } else if (text.startsWith(' ') && diagnostics.length > 0) {
      diagnostics[diagnostics.length - 1]!.message += '\n' + text.trim(); // its elaboration
    } else if (text.trim() !== '') {
      throw new Error(`unexpected tsc output: ${text}`);
    }
  }
  return { status: r.status, diagnostics };
}

interface Expected {
  line: number;
  code: string;
  text: string;
}

function expectations(file: string): Expected[] {
  const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n');
  const out: Expected[] = [];
  lines.forEach((l, i) => {
    const m = /\/\/ expect (TS\d+) (.+)$/.exec(l);
    if (m) out.push({ line: i + 1, code: m[1]!, text: m[2]!.trim() });
  });
  return out;
}

const bad = fs
  .readdirSync(dir)
  .filter((f) => /^bad-.*\.ts$/.test(f))
  .sort();
const result = compile(['good.ts', ...bad].map((f) => path.join('test', 'types', f)));

test('the typed fixtures are there: good.ts and at least six bad-*.ts', (t) => {
  t.true(fs.existsSync(path.join(dir, 'good.ts')));
  t.true(bad.length >= 6, bad.join(', '));
});

test('good.ts compiles under --strict: precise op types, listener port, error codes', (t) => {
  const errors = result.diagnostics.filter((d) => d.file === 'good.ts');
  t.deepEqual(errors, []);
});

for (const file of bad) {
  test(`${file} fails to compile with exactly the diagnostics it expects`, (t) => {
    const want = expectations(file);
    t.true(want.length > 0, `${file} names no expected diagnostic`);
    const got = result.diagnostics.filter((d) => d.file === file);
    t.is(got.length, want.length, JSON.stringify(got, null, 2));
    for (const w of want) {
      const d = got.find((g) => g.line === w.line);
      t.truthy(d, `no diagnostic on line ${w.line} of ${file}: ${JSON.stringify(got)}`);
      t.is(d?.code, w.code, d?.message);
      t.true(d?.message.includes(w.text), `${d?.message}\n  does not say: ${w.text}`);
    }
  });
}

test('tsc exits non-zero for the bad fixtures (and only for them)', (t) => {
  t.not(result.status, 0);
  t.true(result.diagnostics.every((d) => d.file.startsWith('bad-')));
});
