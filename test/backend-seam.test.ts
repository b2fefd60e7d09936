// The backend seam (native/core/backend.h): a backend is written against that header alone.
// The core's own headers stay out of native/backends, and backend.h itself pulls in none of them
// but a header-only container.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = fileURLToPath(new URL('../../native/', import.meta.url));

/** The project headers (`#include "..."`) a source file includes. */
function projectIncludes(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1]!);
}

test('backend files include no core header but core/backend.h', (t) => {
  const dir = path.join(nativeDir, 'backends');
  const files = fs.readdirSync(dir).filter((f) => /\.(cc|h)$/.test(f));
  t.true(files.length >= 4, 'the backend sources are there');
  for (const f of files) {
    const core = projectIncludes(path.join(dir, f)).filter((inc) => inc.startsWith('core/'));
    t.deepEqual(
      core.filter((inc) => inc !== 'core/backend.h'),
      [],
      `${f} includes core headers beyond backend.h`,
    );
  }
});

test('core/backend.h includes only a header-only container of the core', (t) => {
  const includes = projectIncludes(path.join(nativeDir, 'core', 'backend.h'));
  t.deepEqual(includes, ['core/small_queue.h']);
});
