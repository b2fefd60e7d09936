// Framing over a socket's buffered bytes: where the next delimiter or line ends, and whether
// the op's byte bound is already exceeded. Pure functions, searched incrementally through a
// scan offset so that a slow peer never makes framing quadratic.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace async_engine {

enum class FrameStatus { kNeedMore, kFound, kOverLimit };

struct Frame {
  FrameStatus status = FrameStatus::kNeedMore;
  size_t content = 0;  // bytes before the delimiter or line terminator
  size_t end = 0;      // bytes through the delimiter or terminator
};

// The first occurrence of `delim` in p[0, len). maxBytes bounds `content`.
Frame frameDelimiter(const char* p, size_t len, const std::string& delim, size_t maxBytes,
                     size_t* scanFrom);

// The frame through whichever of `delims` (1 or more, none empty) ends first in p[0, len); of
// two ending at the same byte, the longer (of equal ones, the first given). Once one has ended,
// no other can end before it, so the choice never changes as more bytes arrive. maxBytes bounds
// `content` (the bytes before the delimiter found) as frameDelimiter's does. `*which`: the
// index of the delimiter found (kFound and a kOverLimit with a delimiter found).
Frame frameDelimiters(const char* p, size_t len, const std::vector<std::string>& delims,
                      size_t maxBytes, size_t* scanFrom, size_t* which);

// The first line ending in "\n" (a preceding "\r" is part of the terminator). maxBytes bounds
// the line without its terminator.
Frame frameLine(const char* p, size_t len, size_t maxBytes, size_t* scanFrom);

// fnmatch(3) semantics without flags, in the C locale: `*`, `?`, bracket expressions (`!` or
// `^` negation, ranges, `[:alpha:]`-style classes), backslash escapes. Both are byte strings of
// their own length: a NUL byte in `text` is an ordinary byte, matched by `?`, `*` or a class.
bool globMatch(const std::string& glob, const std::string& text);

}  // namespace async_engine
