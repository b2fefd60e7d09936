// The `completion` implementation: io_uring (a proactor). Its probe says why it cannot run here.
import { addon } from '../../engine/internal/native.js';
import type { ImplDescriptor } from '../registry.js';

export const completion: ImplDescriptor = {
  name: 'completion',
  probe: () => addon.probe('completion') || undefined,
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('completion', manual, dispatch, {
      entries: config.completion?.entries ?? 0,
    }),
};
