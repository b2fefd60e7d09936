// The implementations in order of preference for `impl: 'auto'`, each with its probe.
import type { Dispatcher, NativeEngine } from '../engine/internal/native.js';
import type { EngineConfig, ImplAvailability, ImplName } from '../engine/types.js';
import { completion } from './completion/index.js';
import { readiness } from './readiness/index.js';
import { threadpool } from './threadpool/index.js';

/** What the engine needs of one implementation. */
export interface ImplDescriptor {
  name: ImplName;
  /** undefined when it can run here, else why not. Probed once per process. */
  probe(): string | undefined;
  create(config: EngineConfig, manual: boolean, dispatch: Dispatcher): NativeEngine;
}

/** `auto` takes the first available of these. */
export const autoOrder: ImplName[] = ['completion', 'readiness'];

export const impls: Record<ImplName, ImplDescriptor> = { completion, readiness, threadpool };

const probed = new Map<ImplName, string | undefined>();

/** Why `name` cannot run here, or undefined when it can. */
export function unavailableReason(name: ImplName): string | undefined {
  if (!probed.has(name)) probed.set(name, impls[name].probe());
  return probed.get(name);
}

/** Every implementation with whether it can run here and, if not, why. */
export function availableImpls(): ImplAvailability[] {
  return (Object.keys(impls) as ImplName[]).map((impl) => {
    const reason = unavailableReason(impl);
    return reason === undefined ? { impl, available: true } : { impl, available: false, reason };
  });
}
