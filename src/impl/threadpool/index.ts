// The `threadpool` implementation: native worker threads that wait in epoll sets of their own
// and make the non-blocking calls, completions handed back in batches. Its probe says why it
// cannot run here.
import { addon } from '../../engine/internal/native.js';
import { intOption, type ImplDescriptor } from '../registry.js';

/** `config.threadpool.threads`: worker threads at most. */
export const THREADS_RANGE = { min: 1, max: 1024 } as const;

export const threadpool: ImplDescriptor = {
  name: 'threadpool',
  optionKeys: ['threads'],
  extraStats: ['queueDepth', 'busyWorkers'],
  probe: () => addon.probe('threadpool') || undefined,
  checkOptions: (config) => {
    intOption(config, 'threadpool', 'threads', THREADS_RANGE.min, THREADS_RANGE.max);
  },
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('threadpool', manual, dispatch, {
      threads: config.threadpool?.threads ?? 0, // checked by checkOptions first
    }),
};
