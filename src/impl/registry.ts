// The implementations, and the one place that chooses among them: `impl: 'auto'`, the
// ASYNC_ENGINE_IMPL override, the probes. Each implementation's own knowledge (its options and
// their checks, its extra stats, why it cannot run) is in src/impl/<name>/index.ts; the native
// side lists the same implementations and option keys in its backend table
// (native/backends/factory.cc), and test/impl-table.test.ts holds the two together.
import type { Dispatcher, NativeEngine } from '../engine/internal/native.js';
import type { EngineConfig, ImplAvailability, ImplName } from '../engine/types.js';
import { EngineError, invalidArgType, invalidArgValue, outOfRange } from '../engine/errors.js';
import { completion } from './completion/index.js';
import { poll } from './poll/index.js';
import { readiness } from './readiness/index.js';
import { threadpool } from './threadpool/index.js';

/** What the engine needs of one implementation. */
export interface ImplDescriptor {
  name: ImplName;
  /** The keys of `config[name]`: the option keys of its row in the native backend table. */
  optionKeys: readonly string[];
  /** The {@link EngineStats} fields only this implementation reports. */
  extraStats: readonly string[];
  /** undefined when it can run here, else why not. Probed once per process. */
  probe(): string | undefined;
  /** Throws when this implementation's options in `config` are of a wrong type or range. */
  checkOptions(config: EngineConfig): void;
  create(config: EngineConfig, manual: boolean, dispatch: Dispatcher): NativeEngine;
}

/** The implementations that have options, each a group of `EngineConfig`. */
type OptionGroup = 'completion' | 'readiness' | 'threadpool';

/**
 * The integer option `config[group][key]`: undefined when absent, else an integer from `min`
 * to `max` (a TypeError or a RangeError otherwise).
 */
export function intOption(
  config: EngineConfig,
  group: OptionGroup,
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

/** Every implementation, in the native backend table's order. */
export const impls: Readonly<Record<ImplName, ImplDescriptor>> = {
  completion,
  readiness,
  threadpool,
  poll,
};

/**
 * `auto` takes the first available of these. `threadpool` and `poll` are never chosen: they
 * are the portable fallback and the portable reference, asked for by name.
 */
export const autoOrder: readonly ImplName[] = ['completion', 'readiness'];

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

/**
 * Implementations designed for other platforms (docs/architecture.md, "Other platforms") and not
 * built: asking for one by name is an `ERR_IMPL_UNAVAILABLE` that says where it stands, not an
 * unknown name.
 */
const designedOnly: Readonly<Record<string, string>> = {
  iocp: 'Windows I/O completion ports; designed (docs/architecture.md) but not built: this package runs on Linux only',
  kqueue:
    'kqueue of macOS and the BSDs; designed (docs/architecture.md) but not built: this package runs on Linux only',
};

function refuseDesignedOnly(name: string, source: string): void {
  if (Object.hasOwn(designedOnly, name)) {
    throw new EngineError(
      'ERR_IMPL_UNAVAILABLE',
      `${source} '${name}' cannot run here: ${designedOnly[name]}`,
    );
  }
}

function isImplName(v: unknown): v is ImplName {
  return typeof v === 'string' && Object.hasOwn(impls, v);
}

function expected(): string {
  const names = ['auto', ...Object.keys(impls)].map((n) => `'${n}'`);
  return `must be ${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
}

/**
 * The implementation an engine runs for `config.impl`: by name, or for `'auto'` the
 * `ASYNC_ENGINE_IMPL` environment variable when set, else the first of {@link autoOrder}
 * that can run here. A name that is not an implementation throws `ERR_INVALID_ARG_VALUE`;
 * one that cannot run here, or one designed for another platform (`'iocp'`, `'kqueue'`), an
 * `EngineError` (`ERR_IMPL_UNAVAILABLE`) saying why.
 */
export function chooseImpl(requested: unknown): ImplName {
  if (typeof requested === 'string') refuseDesignedOnly(requested, 'impl');
  if (requested !== 'auto' && !isImplName(requested)) {
    throw invalidArgValue('config.impl', expected(), requested);
  }
  let want: 'auto' | ImplName = requested;
  if (want === 'auto') {
    const env = process.env.ASYNC_ENGINE_IMPL;
    if (env !== undefined && env !== '') {
      refuseDesignedOnly(env, 'ASYNC_ENGINE_IMPL');
      if (env !== 'auto' && !isImplName(env))
        throw invalidArgValue('ASYNC_ENGINE_IMPL', expected(), env);
      want = env;
    }
  }
  if (want === 'auto') {
    for (const name of autoOrder) if (unavailableReason(name) === undefined) return name;
    throw new EngineError('ERR_IMPL_UNAVAILABLE', 'no implementation can run on this machine');
  }
  const reason = unavailableReason(want);
  if (reason !== undefined) {
    throw new EngineError('ERR_IMPL_UNAVAILABLE', `impl '${want}' cannot run here: ${reason}`);
  }
  return want;
}
