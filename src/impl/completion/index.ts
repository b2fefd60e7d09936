// The `completion` implementation: io_uring (a proactor). Its probe says why it cannot run here.
import { addon } from '../../engine/internal/native.js';
import { intOption, type ImplDescriptor } from '../registry.js';

/** `config.completion.entries`: io_uring submission queue entries (the kernel rounds up to a power of two). */
export const ENTRIES_RANGE = { min: 1, max: 32768 } as const;

export const completion: ImplDescriptor = {
  name: 'completion',
  optionKeys: ['entries'],
  extraStats: [
    'ringEntries',
    'ringSetupFlags',
    'multishotAccept',
    'multishotRecv',
    'recvBuffersInUse',
  ],
  probe: () => addon.probe('completion') || undefined,
  checkOptions: (config) => {
    intOption(config, 'completion', 'entries', ENTRIES_RANGE.min, ENTRIES_RANGE.max);
  },
  create: (config, manual, dispatch) =>
    new addon.NativeEngine('completion', manual, dispatch, {
      entries: config.completion?.entries ?? 0, // checked by checkOptions first
    }),
};
