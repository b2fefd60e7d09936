// The `readiness` implementation: epoll, edge-triggered, non-blocking sockets (a reactor that
// emulates completion semantics in the native core).
import { addon } from '../../engine/internal/native.js';
import { intOption, type ImplDescriptor } from '../registry.js';

/** `config.readiness.maxEvents`: epoll events taken per epoll_wait. */
export const MAX_EVENTS_RANGE = { min: 1, max: 65536 } as const;

export const readiness: ImplDescriptor = {
  name: 'readiness',
  optionKeys: ['maxEvents'],
  extraStats: [],
  probe: () => addon.probe('readiness') || undefined,
  checkOptions: (config) => {
    intOption(config, 'readiness', 'maxEvents', MAX_EVENTS_RANGE.min, MAX_EVENTS_RANGE.max);
  },
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('readiness', manual, dispatch, {
      maxEvents: config.readiness?.maxEvents ?? 256, // checked by checkOptions first
    }),
};
