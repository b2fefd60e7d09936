// The `poll` implementation: poll(2), level-triggered, non-blocking sockets. The portable
// reference reactor: every wait costs time in proportion to the fds in the set, and in `auto`
// drive a watcher thread polls on the engine's behalf. It has no options and no extra stats,
// and `auto` never chooses it.
import { addon } from '../../engine/internal/native.js';
import type { ImplDescriptor } from '../registry.js';

export const poll: ImplDescriptor = {
  name: 'poll',
  optionKeys: [],
  extraStats: [],
  probe: () => addon.probe('poll') || undefined,
  checkOptions: () => {},
  create: (_config, manual, dispatch) => new addon.NativeEngine('poll', manual, dispatch, {}),
};
