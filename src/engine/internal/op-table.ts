/**
 * The records of the ops in flight, by id. Ids are handed out in increasing order, so most
 * lookups are an array index (`id & mask`); an op that outlives a whole lap of the array (an
 * accept waiting for hours) moves to a Map when a newer op needs its slot. This keeps the
 * per-op cost of a busy server free of hashing.
 */
export class OpTable<T extends { id: number }> {
  #slots: Array<T | undefined>;
  #mask: number;
  #inSlots = 0;
  readonly #old = new Map<number, T>();

  constructor(capacity = 1024) {
    this.#slots = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#inSlots + this.#old.size;
  }

  get(id: number): T | undefined {
    const r = this.#slots[id & this.#mask];
    if (r !== undefined && r.id === id) return r;
    return this.#old.size === 0 ? undefined : this.#old.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(rec: T): void {
    if (this.#inSlots >= this.#slots.length >> 1) this.#grow();
    const i = rec.id & this.#mask;
    const cur = this.#slots[i];
    if (cur !== undefined) this.#old.set(cur.id, cur);
    else this.#inSlots++;
    this.#slots[i] = rec;
  }

  delete(id: number): boolean {
    const i = id & this.#mask;
    const r = this.#slots[i];
    if (r !== undefined && r.id === id) {
      this.#slots[i] = undefined;
      this.#inSlots--;
      return true;
    }
    return this.#old.delete(id);
  }

  /** Every record, oldest (lowest id) first. */
  sorted(): T[] {
    const all: T[] = [...this.#old.values()];
    for (const r of this.#slots) if (r !== undefined) all.push(r);
    return all.sort((a, b) => a.id - b.id);
  }

  #grow(): void {
    const all = this.sorted();
    this.#slots = new Array<T | undefined>(this.#slots.length * 2).fill(undefined);
    this.#mask = this.#slots.length - 1;
    this.#inSlots = 0;
    this.#old.clear();
    for (const r of all) this.set(r);
  }
}
