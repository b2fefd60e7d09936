// Every name the package exports (the checker's exports of dist/index.d.ts: values, classes,
// types and interfaces) appears in docs/api.md as code (`name`, or inside a code span such as
// `createEngine(config?)`), so that the reference covers the whole public surface.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let names: string[] | undefined;

function exportedNames(): string[] {
  if (names !== undefined) return names;
  const entry = join(root, 'dist', 'index.d.ts');
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (source === undefined) throw new Error(`${entry} is missing; run npm run build`);
  const module = checker.getSymbolAtLocation(source);
  if (module === undefined) throw new Error(`${entry} is not a module`);
  names = checker
    .getExportsOfModule(module)
    .map((s) => s.name)
    .sort();
  return names;
}

/** The text of every code span and fenced code block in the markdown. */
function codeText(markdown: string): string {
  const fenced = [...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  const spans = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
  return [...fenced, ...spans].join('\n');
}

test('the package exports a public surface (the checker sees dist/index.d.ts)', (t) => {
  const all = exportedNames();
  t.true(all.includes('createEngine'));
  t.true(all.includes('Callback'));
  t.true(all.includes('EngineConfig'), 'types are among the exports');
});

test('every name exported by dist/index.d.ts appears as code in docs/api.md', (t) => {
  const code = codeText(readFileSync(join(root, 'docs', 'api.md'), 'utf8'));
  const missing = exportedNames().filter(
    (name) => !new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}(?![\\w$])`).test(code),
  );
  t.deepEqual(missing, [], `exported but not in docs/api.md: ${missing.join(', ')}`);
});
