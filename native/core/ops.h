// Op kinds and what the core knows of each, generated from the op table (core/ops.def): the
// OpKind enum, one OpInfo row per kind, and the predicates built on them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace async_engine {

enum class OpFamily : uint8_t { kRead, kWrite, kAccept, kConnect, kFile, kTimer, kResolve };

// The handles an op runs on (OpInfo::on).
enum OpOn : uint8_t { kOnNone = 0, kOnSocket = 1, kOnListener = 2, kOnFile = 4 };

// OpInfo::flags.
enum OpFlag : uint8_t { kSettlesAtDeadline = 1, kVerdict = 2, kVerdictIsLength = 4 };

// What a read settles with when its stream ends short of the goal.
enum class ReadEnd : uint8_t {
  kIncomplete,   // ERR_INCOMPLETE with every byte left
  kEmptyChunk,   // an empty chunk
  kNothingRead,  // 0 bytes read, no payload
  kDeliverAll,   // every byte left: readAll's success
  kAskJs,        // a progress report at EOF first, for JavaScript's last verdict
};

// How a read at a file position proceeds.
enum class FileRead : uint8_t { kStream, kOnce, kOnceInto, kExactly, kToEof };

enum class OpKind : uint8_t {
#define OP(Name, js, family, on, flags, start, frame, atEnd, fileRead, file, a, b, result) k##Name,
#include "core/ops.def"
#undef OP
};

struct OpInfo {
  const char* name;  // the OpKind member without its k
  const char* js;    // the engine method, for diagnostics
  OpFamily family;
  uint8_t on;
  uint8_t flags;
  ReadEnd atEnd;
  FileRead fileRead;
  const char* a;
  const char* b;
  const char* result;
};

inline constexpr OpInfo kOps[] = {
#define OP(Name, js, family, on, flags, start, frame, atEnd, fileRead, file, a, b, result) \
  {#Name, js, OpFamily::family, on, flags, ReadEnd::atEnd, FileRead::fileRead, a, b, result},
#include "core/ops.def"
#undef OP
};

inline constexpr size_t kOpCount = sizeof kOps / sizeof kOps[0];

inline const OpInfo& opInfo(OpKind k) { return kOps[static_cast<size_t>(k)]; }

// Ops that read a stream (a socket's input, a file read sequentially or at a position).
inline bool isRead(OpKind k) { return opInfo(k).family == OpFamily::kRead; }
inline bool isWrite(OpKind k) { return opInfo(k).family == OpFamily::kWrite; }
inline bool isAccept(OpKind k) { return opInfo(k).family == OpFamily::kAccept; }
// Ops that can run on a socket's stream.
inline bool isStreamOp(OpKind k) { return opInfo(k).on & kOnSocket; }
// Ops that run only as file requests (open, fsync, stat) or only on a File (readInto).
inline bool isFileOp(OpKind k) { return opInfo(k).family == OpFamily::kFile || opInfo(k).on == kOnFile; }
inline bool hasFlag(OpKind k, OpFlag f) { return opInfo(k).flags & f; }

}  // namespace async_engine
