// The docs' runnable snippets: every ```js block right after a `<!-- run -->` line in
// docs/*.md runs in a child process, on every implementation, and must exit 0 in time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type ChildResult, engineUrl, forEachImpl, runNode } from './helpers/harness.js';

// dist-test/test/ → the repository's docs/.
const docsDir = fileURLToPath(new URL('../../docs/', import.meta.url));
const MARK = '<!-- run -->';
const DEADLINE_MS = 30_000;

interface Snippet {
  page: string;
  /** 1-based line of the opening fence. */
  line: number;
  source: string;
}

/** A marker not followed by a ```js block: reported as a failing test, not skipped. */
interface Misplaced {
  page: string;
  line: number;
}

function extract(page: string, text: string): { snippets: Snippet[]; misplaced: Misplaced[] } {
  const lines = text.split('\n');
  const snippets: Snippet[] = [];
  const misplaced: Misplaced[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== MARK) continue;
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    if (j >= lines.length || !/^```(js|javascript|mjs)\s*$/.test(lines[j]!.trim())) {
      misplaced.push({ page, line: i + 1 });
      continue;
    }
    const body: string[] = [];
    let k = j + 1;
    while (k < lines.length && lines[k]!.trim() !== '```') body.push(lines[k++]!);
    if (k >= lines.length) {
      misplaced.push({ page, line: i + 1 }); // an unclosed fence
      continue;
    }
    snippets.push({ page, line: j + 1, source: body.join('\n') });
    i = k;
  }
  return { snippets, misplaced };
}

/** The snippet as a child can run it: the package specifier points at this build. */
function runnable(source: string): string {
  return source.replace(/(['"])async-engine\1/g, JSON.stringify(engineUrl));
}

/**
 * Runs a snippet as `node snippet.mjs`, as a reader would, rather than with the harness's
 * runNodeScript (`--input-type=module -e`): a snippet may start a Worker on its own file
 * (`import.meta.url`) or on eval'd CommonJS code, which `-e` and the `--input-type` flag that
 * workers inherit would break. ENGINE_URL and IMPL are set as runNodeScript sets them.
 */
async function runSnippet(source: string, impl: string, deadlineMs: number): Promise<ChildResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ae-snippet-'));
  const file = path.join(dir, 'snippet.mjs');
  fs.writeFileSync(file, runnable(source));
  try {
    return await runNode(
      [file],
      { cwd: dir, env: { IMPL: impl, ASYNC_ENGINE_IMPL: impl } },
      deadlineMs,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const pages = fs
  .readdirSync(docsDir)
  .filter((f) => f.endsWith('.md'))
  .sort();
const all: Snippet[] = [];
for (const page of pages) {
  const { snippets, misplaced } = extract(page, fs.readFileSync(docsDir + page, 'utf8'));
  all.push(...snippets);
  for (const m of misplaced) {
    test(`docs/${m.page}:${m.line}: ${MARK} is followed by a closed \`\`\`js block`, (t) => {
      t.fail(`docs/${m.page}:${m.line}: the marker is not followed by a closed \`\`\`js block`);
    });
  }
}

test('the extractor finds the promises page snippets', (t) => {
  const own = all.filter((s) => s.page === 'promises.md');
  t.true(own.length >= 5, `found ${own.length} runnable snippets in docs/promises.md`);
  t.true(
    own.every((s) => /from 'async-engine'/.test(s.source)),
    'each imports the package by its name',
  );
  t.false(runnable(own[0]!.source).includes("'async-engine'"), 'the specifier is rewritten');
});

// Each snippet is a node process of its own, and ava starts a file's tests all at once: well
// over a hundred processes started together starve one another on a small machine until the
// slowest miss any deadline. So a few run at a time, and each one's deadline (and the test's
// timeout) counts from its own start.
const PARALLEL = Math.max(2, os.availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];

async function inTurn<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= PARALLEL) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

for (const s of all) {
  forEachImpl(
    `docs/${s.page}:${s.line} runs`,
    async (t, _engine, impl) => {
      const r = await inTurn(() => {
        t.timeout(DEADLINE_MS + 10_000);
        return runSnippet(s.source, impl, DEADLINE_MS);
      });
      const out = `exit ${r.code} signal ${r.signal} after ${r.ms} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
      t.false(r.timedOut, `still running after ${DEADLINE_MS} ms\n${out}`);
      t.is(r.code, 0, out);
    },
    // Waiting for a turn is not the snippet's time: the timeout starts again with its turn.
    { timeout: 30 * 60_000 },
  );
}
