// The implementations in order of preference for `impl: 'auto'`, each with its probe.
import type { Dispatcher, NativeEngine } from '../engine/internal/native.js';
import type { EngineConfig, ImplAvailability, ImplName } from '../engine/types.js';
import { invalidArgType, outOfRange } from '../engine/errors.js';
import { completion } from './completion/index.js';
import { readiness } from './readiness/index.js';
import { threadpool } from './threadpool/index.js';

/** What the engine needs of one implementation. */
export interface ImplDescriptor {
  name: ImplName;
  /** undefined when it can run here, else why not. Probed once per process. */
  probe(): string | undefined;
  /** Throws when this implementation's options in `config` are of a wrong type or range. */
  checkOptions(config: EngineConfig): void;
  create(config: EngineConfig, manual: boolean, dispatch: Dispatcher): NativeEngine;
}

/**
 * The integer option `config[group][key]`: undefined when absent, else an integer from `min`
 * to `max` (a TypeError or a RangeError otherwise).
 */
export function intOption(
  config: EngineConfig,
  group: 'completion' | 'readiness' | 'threadpool',
  key: string,
  min: number,
  max: number,
): number | undefined {
  const g: unknown = config[group];
  if (g === undefined) return undefined;
  const name = `config.${group}`;
  if (g === null || typeof g !== 'object') throw invalidArgType(name, 'an object', g);
  const v: unknown = (g as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw invalidArgType(`${name}.${key}`, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw outOfRange(`${name}.${key}`, `an integer from ${min} to ${max}`, v);
  }
  return v;
}

/**
 * Checks every implementation's numeric options (whichever implementation runs), before any
 * reaches native code: a wrong type throws a TypeError, a number outside its range a
 * RangeError (`ERR_OUT_OF_RANGE`).
 */
export function checkImplOptions(config: EngineConfig): void {
  for (const d of Object.values(impls)) d.checkOptions(config);
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
