// The pool of worker threads behind `engine.submitWork`: created lazily, none until the first
// task, at most `size` threads. A queued task can be taken back; a running one cannot, short of
// terminating its thread (done for a deadline and at shutdown; the thread is replaced on
// demand). Idle threads do not keep the process alive.
import { Worker, type TransferListItem } from 'node:worker_threads';

/** What a task settles with. */
export type WorkOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Job {
  id: number;
  module: string;
  fn: string;
  args: unknown[];
  transfer: TransferListItem[];
  done: (o: WorkOutcome) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

export class WorkPool {
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #closed = false;

  constructor(size: number) {
    this.#size = size;
  }

  /** Threads started and alive. */
  get threads(): number {
    return this.#slots.length;
  }

  /** Tasks waiting for a thread. */
  get queued(): number {
    return this.#queue.length;
  }

  submit(job: Job): void {
    this.#queue.push(job);
    this.#pump();
  }

  /** Takes a queued task back. False when it runs already (or is unknown). */
  cancel(id: number): boolean {
    const i = this.#queue.findIndex((j) => j.id === id);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    return true;
  }

  /** True when the task runs on a thread now. */
  running(id: number): boolean {
    return this.#slots.some((s) => s.job?.id === id);
  }

  /** Stops the thread running `id` (its result will never come). */
  async terminate(id: number): Promise<void> {
    const s = this.#slots.find((x) => x.job?.id === id);
    if (!s) return;
    s.job = undefined;
    this.#remove(s);
    await s.worker.terminate();
    this.#pump();
  }

  /** Drops the queue and stops every thread. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    const all = this.#slots.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  #pump(): void {
    while (!this.#closed && this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.job === undefined);
      if (!slot) {
        if (this.#slots.length >= this.#size) return;
        slot = this.#spawn();
      }
      const job = this.#queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(
        { id: job.id, module: job.module, fn: job.fn, args: job.args },
        job.transfer,
      );
    }
  }

  #spawn(): Slot {
    // The thread runs a file: options for a main program given as a string do not apply to it.
    const execArgv = process.execArgv.filter(
      (a) => !a.startsWith('--input-type') && a !== '-e' && a !== '--eval',
    );
    const worker = new Worker(WORKER_URL, { execArgv });
    const slot: Slot = { worker, job: undefined };
    worker.unref();
    worker.on('message', (m: { id: number } & WorkOutcome) => {
      const job = slot.job;
      if (!job || job.id !== m.id) return;
      slot.job = undefined;
      worker.unref();
      job.done(m.ok ? { ok: true, value: m.value } : { ok: false, error: m.error });
      this.#pump();
    });
    const lost = (error: Error) => {
      // The thread died under a task (an uncaught error, out of memory): the task fails.
      const job = slot.job;
      slot.job = undefined;
      this.#remove(slot);
      if (job) job.done({ ok: false, error });
      this.#pump();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      if (this.#slots.includes(slot)) lost(new Error(`work thread exited with code ${code}`));
    });
    this.#slots.push(slot);
    return slot;
  }

  #remove(s: Slot): void {
    const i = this.#slots.indexOf(s);
    if (i >= 0) this.#slots.splice(i, 1);
  }
}
