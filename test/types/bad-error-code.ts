// Must not compile: a misspelled error code is not among the codes the engine produces.
import type { EngineError } from 'async-engine';

export function reset(err: EngineError): boolean {
  return err.code === 'ECONNRESTE'; // expect TS2367 This comparison appears to be unintentional
}
