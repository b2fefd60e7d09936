// The op kinds TypeScript numbers (Kind in src/engine/internal/native.ts) are the native op
// table's (native/core/ops.def): the same names with the same numbers, in the source and in the
// built addon.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { OpKindInfo } from '../src/engine/internal/native.js';

const root = new URL('../../', import.meta.url);
// The addon the package loads (as src/engine/internal/native.ts finds it).
const require = createRequire(import.meta.url);
const addonFile = process.env.ASYNC_ENGINE_ADDON;
const addon = (
  addonFile
    ? require(addonFile)
    : (require('node-gyp-build') as (dir: string) => unknown)(fileURLToPath(root))
) as { opKinds(): OpKindInfo[] };

/** Kinds that exist only in JavaScript (never submitted to the native side). */
const jsOnly = new Set(['Work']);

/** The members of `export const enum Kind { ... }` in native.ts, as name -> number. */
function kindEnum(source: string): Map<string, number> {
  const body = /export const enum Kind \{([\s\S]*?)\n\}/.exec(source)?.[1];
  if (body === undefined) throw new Error('no `export const enum Kind` in native.ts');
  const out = new Map<string, number>();
  for (const m of body.matchAll(/^\s*(\w+)\s*=\s*(\d+),?\s*$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** The row names of ops.def, in order (a row's index is its number). */
function opsDefRows(source: string): string[] {
  return [...source.matchAll(/^OP\((\w+),/gm)].map((m) => m[1]!);
}

/** Every difference between the table (names by number) and the enum; empty when they match. */
function mirrorDiff(table: readonly string[], kinds: Map<string, number>): string[] {
  const diff: string[] = [];
  table.forEach((name, i) => {
    const n = kinds.get(name);
    if (n === undefined) diff.push(`Kind lacks ${name} (${i})`);
    else if (n !== i) diff.push(`Kind.${name} is ${n}, the table numbers it ${i}`);
  });
  for (const [name, n] of kinds) {
    if (!jsOnly.has(name) && !table.includes(name))
      diff.push(`Kind.${name} (${n}) is not in the table`);
  }
  return diff;
}

const kinds = kindEnum(readFileSync(new URL('src/engine/internal/native.ts', root), 'utf8'));
const rows = opsDefRows(readFileSync(new URL('native/core/ops.def', root), 'utf8'));

test('Kind in native.ts mirrors ops.def: same names, same numbers', (t) => {
  t.true(rows.length > 10, `rows read from ops.def: ${rows.join(', ')}`);
  t.deepEqual(mirrorDiff(rows, kinds), []);
});

test('the built addon numbers its ops as ops.def does, and describes each', (t) => {
  const table = addon.opKinds();
  t.deepEqual(
    table.map((r) => r.name),
    rows,
  );
  table.forEach((r, i) => {
    t.is(r.kind, i);
    for (const field of ['js', 'family', 'a', 'b', 'result'] as const) {
      t.true(typeof r[field] === 'string' && r[field] !== '', `${r.name}.${field}`);
    }
  });
  t.deepEqual(
    mirrorDiff(
      table.map((r) => r.name),
      kinds,
    ),
    [],
  );
});

test('the mirror check reports a renumbered, renamed, missing or extra kind', (t) => {
  const ok = new Map(rows.map((name, i) => [name, i]));
  t.deepEqual(mirrorDiff(rows, ok), []);
  const swapped = new Map(ok);
  swapped.set(rows[2]!, 3);
  swapped.set(rows[3]!, 2);
  t.is(mirrorDiff(rows, swapped).length, 2);
  const renamed = new Map(ok);
  renamed.delete(rows[0]!);
  renamed.set(`${rows[0]!}X`, 0);
  t.deepEqual(mirrorDiff(rows, renamed), [
    `Kind lacks ${rows[0]!} (0)`,
    `Kind.${rows[0]!}X (0) is not in the table`,
  ]);
  t.is(mirrorDiff([...rows, 'NewOp'], ok).length, 1, 'a row added to the table alone');
  t.is(mirrorDiff(rows.slice(0, -1), ok).length, 1, 'a kind left in Kind alone');
  t.deepEqual(mirrorDiff(rows, new Map([...ok, ['Work', 100]])), [], 'JavaScript-only kinds');
});
