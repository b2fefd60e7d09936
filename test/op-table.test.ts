// The table of in-flight op records: array slots for the common case, a Map for ops that
// outlive a lap of the array, growth when half full. Checked against a Map as the model.
import test from 'ava';
import fc from 'fast-check';
import { OpTable } from '../src/engine/internal/op-table.js';

test('OpTable agrees with a Map under random inserts and deletes, long-lived ops included', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.nat(300)), { maxLength: 3000 }),
      fc.integer({ min: 1, max: 6 }),
      (steps, capLog) => {
        const table = new OpTable<{ id: number }>(1 << capLog);
        const model = new Map<number, { id: number }>();
        let next = 1;
        for (const [insert, pick] of steps) {
          if (insert || model.size === 0) {
            const rec = { id: next++ };
            table.set(rec);
            model.set(rec.id, rec);
          } else {
            // Delete a random live op: the oldest ones survive many laps of the slots.
            const ids = [...model.keys()];
            const id = ids[pick % ids.length]!;
            if (table.delete(id) !== true) return false;
            model.delete(id);
          }
          if (table.size !== model.size) return false;
        }
        for (let id = 1; id < next; id++) {
          if (table.get(id) !== model.get(id) || table.has(id) !== model.has(id)) return false;
        }
        const sorted = table.sorted().map((r) => r.id);
        return JSON.stringify(sorted) === JSON.stringify([...model.keys()].sort((a, b) => a - b));
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

test('an op that waits while a million others pass stays findable, and the table stays small', (t) => {
  const table = new OpTable<{ id: number }>(16);
  const waiting = { id: 1 };
  table.set(waiting);
  for (let id = 2; id < 1_000_000; id++) {
    table.set({ id });
    t.is(table.delete(id), true);
  }
  t.is(table.get(1), waiting);
  t.is(table.size, 1);
  t.false(table.delete(2));
  t.true(table.delete(1));
  t.is(table.size, 0);
});
