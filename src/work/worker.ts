// The program each worker thread of an engine's work pool runs: it imports the task's module,
// calls the named export with the arguments and posts back the value (awaited, if a promise)
// or the error thrown.
import { parentPort } from 'node:worker_threads';

interface TaskMessage {
  id: number;
  module: string;
  fn: string;
  args: unknown[];
}

const port = parentPort!;
port.on('message', (m: TaskMessage) => {
  void run(m);
});

async function run(m: TaskMessage): Promise<void> {
  try {
    const mod = (await import(m.module)) as Record<string, unknown>;
    const f = mod[m.fn];
    if (typeof f !== 'function') {
      throw new TypeError(`${m.module} has no exported function ${JSON.stringify(m.fn)}`);
    }
    const value: unknown = await (f as (...a: unknown[]) => unknown)(...m.args);
    // Buffers and typed arrays in the value are copied back (structured clone).
    port.postMessage({ id: m.id, ok: true, value });
  } catch (error) {
    try {
      port.postMessage({ id: m.id, ok: false, error });
    } catch {
      // The error itself cannot be cloned: send what it says.
      port.postMessage({ id: m.id, ok: false, error: new Error(String(error)) });
    }
  }
}
