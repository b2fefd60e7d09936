// The `readiness` implementation: epoll, edge-triggered, non-blocking sockets (a reactor that
// emulates completion semantics in the native core).
import { addon } from '../../engine/internal/native.js';
import type { ImplDescriptor } from '../registry.js';

export const readiness: ImplDescriptor = {
  name: 'readiness',
  probe: () => addon.probe('readiness') || undefined,
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('readiness', manual, dispatch, {
      maxEvents: config.readiness?.maxEvents ?? 256,
    }),
};
