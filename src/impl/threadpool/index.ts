// The `threadpool` implementation: blocking system calls on native threads, completions handed
// back in batches. Its probe says why it cannot run here.
import { addon } from '../../engine/internal/native.js';
import type { ImplDescriptor } from '../registry.js';

export const threadpool: ImplDescriptor = {
  name: 'threadpool',
  probe: () => addon.probe('threadpool') || undefined,
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('threadpool', manual, dispatch, {
      threads: config.threadpool?.threads ?? 0,
    }),
};
