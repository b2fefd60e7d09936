// The thread-safe entry into an engine: a worker thread (or any code holding the port) asks
// the engine's thread to run something. The engine's side runs the handler as a callSoon: in
// order, one message at a time, never inside another callback.
import type { MessagePort, TransferListItem } from 'node:worker_threads';

/** What {@link AsyncEngine.threadsafe} returns. */
export interface ThreadsafeEntry {
  /** Hand this port to a worker thread (in `workerData` or a message, with it in the transfer list). */
  readonly port: MessagePort;
  /** Stops delivering; messages still in flight are dropped. */
  close(): void;
}

/**
 * From any thread: asks the engine that made `port` (with `engine.threadsafe(handler)`) to run
 * `handler(message)` on its own thread, soon. `message` is structured-cloned; `transfer` lists
 * buffers to move instead.
 */
export function callSoonThreadsafe(
  port: MessagePort,
  message: unknown,
  transfer?: readonly TransferListItem[],
): void {
  port.postMessage(message, transfer);
}
