// Framing state machines (see framing.h).
#include "core/framing.h"

#include <fnmatch.h>

#include <cstring>

namespace async_engine {

namespace {
size_t addCapped(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }
}  // namespace

Frame frameDelimiter(const char* p, size_t len, const std::string& delim, size_t maxBytes,
                     size_t* scanFrom) {
  Frame f;
  const size_t dlen = delim.size();
  // A delimiter starting past maxBytes could not give a frame within bounds.
  size_t limit = addCapped(maxBytes, dlen);
  size_t searchEnd = len < limit ? len : limit;
  size_t from = *scanFrom;
  if (searchEnd >= from + dlen) {
    const void* hit = ::memmem(p + from, searchEnd - from, delim.data(), dlen);
    if (hit) {
      f.content = static_cast<const char*>(hit) - p;
      f.end = f.content + dlen;
      f.status = f.content > maxBytes ? FrameStatus::kOverLimit : FrameStatus::kFound;
      return f;
    }
    // The last dlen-1 bytes may begin a delimiter that is still arriving.
    *scanFrom = searchEnd - (dlen - 1);
  }
  if (len >= limit) f.status = FrameStatus::kOverLimit;
  return f;
}

Frame frameLine(const char* p, size_t len, size_t maxBytes, size_t* scanFrom) {
  Frame f;
  // Longest acceptable line: maxBytes bytes, then "\r\n".
  size_t limit = addCapped(maxBytes, 2);
  size_t searchEnd = len < limit ? len : limit;
  size_t from = *scanFrom;
  if (searchEnd > from) {
    const void* hit = std::memchr(p + from, '\n', searchEnd - from);
    if (hit) {
      size_t nl = static_cast<const char*>(hit) - p;
      f.content = (nl > 0 && p[nl - 1] == '\r') ? nl - 1 : nl;
      f.end = nl + 1;
      f.status = f.content > maxBytes ? FrameStatus::kOverLimit : FrameStatus::kFound;
      return f;
    }
    *scanFrom = searchEnd;
  }
  // No terminator yet: over the bound once even "\r\n" next could not save the line.
  if (len >= limit || (len == addCapped(maxBytes, 1) && p[len - 1] != '\r')) {
    f.status = FrameStatus::kOverLimit;
  }
  return f;
}

bool globMatch(const std::string& glob, const std::string& text) {
  return ::fnmatch(glob.c_str(), text.c_str(), 0) == 0;
}

}  // namespace async_engine
