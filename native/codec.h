// The codec: the one place that knows how an op crosses N-API. Decoding turns the positional
// [kind, id, handle, timeoutMs, a, b] of a submit into an Op (what `a` and `b` mean for each
// kind: core/ops.def); encoding turns finished ops (Completions) into the batch the JavaScript
// dispatcher reads (src/engine/internal/native.ts, NativeBatch).
#pragma once

#include <napi.h>

#include <cstddef>
#include <vector>

#include "core/engine_core.h"

namespace async_engine {

// The name JavaScript sees as err.syscall; nullptr for kNone.
const char* syscallName(Syscall s);

// Builds an Op from v[0..5] = [kind, id, handle, timeoutMs, a, b]. A handle id that is not open
// resolves to `closedHandle` (the op then fails EBADF when it starts). Returns nullptr with a
// JavaScript exception pending when an argument cannot be decoded; the caller also checks for
// a pending exception after a successful return (a value of the wrong type).
Op* decodeOp(Napi::Env env, EngineCore& core, Handle* closedHandle, const Napi::Value* v);

// The op table as JavaScript sees it: [{ name, kind, js, family, a, b, result }, ...].
Napi::Value opKinds(Napi::Env env);

// One batch for the JS dispatcher. `idsResults` (a Float64Array reused from batch to batch)
// holds five numbers per finished op: id, result, the offset and length of its bytes in `arena`
// (a Buffer also reused), or -1 when its payload is in `payloads` (an array with holes, made
// only when some op needs it), and the bytes a socket read left buffered with no read queued
// behind it (Completion::rest), which JavaScript then takes in bulk. Small payloads thus cost
// no Buffer each.
struct Batch {
  napi_value count;
  napi_value idsResults;
  napi_value payloads;
  napi_value arena;
  // The batch is in the same Float64Array and arena as the one before, with no payloads.
  bool plain;
};

class BatchEncoder {
 public:
  // Moves the core's finished ops into a batch and counts them delivered.
  Batch take(Napi::Env env, EngineCore& core);
  // The next batch gets arrays of its own (a batch still being read keeps the current ones).
  void forget();

 private:
  static constexpr size_t kStride = 5;            // numbers per op in idsResults
  static constexpr size_t kArenaMax = 16 * 1024;  // larger payloads travel as their own Buffer

  static bool inArena(const Completion& c);
  static bool hasPayload(const Completion& c);
  static Napi::Value payload(Napi::Env env, Completion& c);

  std::vector<Completion> batch_;
  Napi::Reference<Napi::Float64Array> f64Ref_;
  double* f64_ = nullptr;
  size_t f64Cap_ = 0;
  Napi::Reference<Napi::Buffer<char>> arenaRef_;
  char* arena_ = nullptr;
  size_t arenaCap_ = 0;
};

}  // namespace async_engine
