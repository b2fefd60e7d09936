// Framing state machines (see framing.h).
#include "core/framing.h"

#include <cctype>
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

Frame frameDelimiters(const char* p, size_t len, const std::vector<std::string>& delims,
                      size_t maxBytes, size_t* scanFrom, size_t* which) {
  Frame f;
  size_t maxLen = 0;
  for (const std::string& d : delims) maxLen = d.size() > maxLen ? d.size() : maxLen;
  // Once maxBytes + the longest delimiter are buffered with none found, any delimiter still to
  // come starts past maxBytes. A delimiter that ends first within the search wins, even when it
  // starts past maxBytes (then the op is over its bound): a match ending later cannot win.
  size_t limit = addCapped(maxBytes, maxLen);
  size_t searchEnd = len < limit ? len : limit;
  size_t from = *scanFrom;
  size_t bestEnd = SIZE_MAX;
  size_t best = 0;
  for (size_t i = 0; i < delims.size(); i++) {
    const std::string& d = delims[i];
    const size_t dlen = d.size();
    // Only a match ending by the best end so far can win.
    size_t end = searchEnd < bestEnd ? searchEnd : bestEnd;
    if (end < from + dlen) continue;
    const void* hit = ::memmem(p + from, end - from, d.data(), dlen);
    if (!hit) continue;
    size_t e = static_cast<size_t>(static_cast<const char*>(hit) - p) + dlen;
    if (e < bestEnd || (e == bestEnd && dlen > delims[best].size())) {
      bestEnd = e;
      best = i;
    }
  }
  if (bestEnd != SIZE_MAX) {
    f.end = bestEnd;
    f.content = bestEnd - delims[best].size();
    f.status = f.content > maxBytes ? FrameStatus::kOverLimit : FrameStatus::kFound;
    *which = best;
    return f;
  }
  // The last maxLen-1 bytes may begin a delimiter that is still arriving.
  if (searchEnd >= maxLen && searchEnd - (maxLen - 1) > from) *scanFrom = searchEnd - (maxLen - 1);
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

namespace {

bool inNamedClass(const std::string& name, unsigned char c) {
  if (name == "alnum") return std::isalnum(c);
  if (name == "alpha") return std::isalpha(c);
  if (name == "blank") return c == ' ' || c == '\t';
  if (name == "cntrl") return std::iscntrl(c);
  if (name == "digit") return c >= '0' && c <= '9';
  if (name == "graph") return std::isgraph(c);
  if (name == "lower") return std::islower(c);
  if (name == "print") return std::isprint(c);
  if (name == "punct") return std::ispunct(c);
  if (name == "space") return std::isspace(c);
  if (name == "upper") return std::isupper(c);
  if (name == "xdigit") return std::isxdigit(c);
  return false;
}

enum class Bracket { kMatch, kNoMatch, kNotABracket };

// The bracket expression at g[*i] (just past its `[`), matched against byte c. On kMatch or
// kNoMatch, *i moves past the closing `]`. An unterminated bracket is kNotABracket: the `[` is
// then an ordinary character, as fnmatch(3) has it. A class name it does not know matches no
// byte.
Bracket matchBracket(const std::string& g, size_t* i, unsigned char c) {
  size_t k = *i;
  const size_t n = g.size();
  bool negate = false;
  if (k < n && (g[k] == '!' || g[k] == '^')) {
    negate = true;
    k++;
  }
  bool matched = false;
  bool first = true;
  for (;;) {
    if (k >= n) return Bracket::kNotABracket;
    unsigned char lo = static_cast<unsigned char>(g[k]);
    if (lo == ']' && !first) {
      k++;
      break;
    }
    first = false;
    if (lo == '[' && k + 1 < n && g[k + 1] == ':') {
      // `[:name:]`; a character other than a lowercase letter before `:]` makes the `[` an
      // ordinary one.
      size_t e = k + 2;
      while (e < n && g[e] >= 'a' && g[e] <= 'z') e++;
      if (e + 1 < n && g[e] == ':' && g[e + 1] == ']') {
        if (inNamedClass(g.substr(k + 2, e - (k + 2)), c)) matched = true;
        k = e + 2;
        continue;
      }
    }
    if (lo == '\\') {
      if (k + 1 >= n) return Bracket::kNotABracket;
      lo = static_cast<unsigned char>(g[++k]);
    }
    k++;
    unsigned char hi = lo;
    // A range, unless the `-` is the last character before `]`.
    if (k + 1 < n && g[k] == '-' && g[k + 1] != ']') {
      k++;
      hi = static_cast<unsigned char>(g[k]);
      if (hi == '\\') {
        if (k + 1 >= n) return Bracket::kNotABracket;
        hi = static_cast<unsigned char>(g[++k]);
      }
      k++;
    }
    if (lo <= c && c <= hi) matched = true;
  }
  *i = k;
  return matched != negate ? Bracket::kMatch : Bracket::kNoMatch;
}

}  // namespace

// Backtracking to the last `*` only: without FNM_PATHNAME a later `*` can absorb whatever an
// earlier one would, so no deeper backtracking is needed; at worst O(glob x line), no recursion.
bool globMatch(const std::string& glob, const std::string& text) {
  const size_t gn = glob.size();
  const size_t tn = text.size();
  size_t gi = 0, ti = 0;
  size_t starG = std::string::npos, starT = 0;
  while (ti < tn || gi < gn) {
    if (gi < gn) {
      char gc = glob[gi];
      if (gc == '*') {
        while (gi < gn && glob[gi] == '*') gi++;
        if (gi == gn) return true;
        starG = gi;
        starT = ti;
        continue;
      }
      if (ti < tn) {
        unsigned char c = static_cast<unsigned char>(text[ti]);
        if (gc == '?') {
          gi++;
          ti++;
          continue;
        }
        if (gc == '[') {
          size_t k = gi + 1;
          Bracket b = matchBracket(glob, &k, c);
          if (b == Bracket::kMatch) {
            gi = k;
            ti++;
            continue;
          }
          if (b == Bracket::kNoMatch) goto mismatch;
          // Not a bracket: `[` is literal.
        } else if (gc == '\\') {
          if (gi + 1 >= gn) return false;  // a trailing backslash matches nothing
          if (static_cast<unsigned char>(glob[gi + 1]) == c) {
            gi += 2;
            ti++;
            continue;
          }
          goto mismatch;
        }
        if (static_cast<unsigned char>(gc) == c) {
          gi++;
          ti++;
          continue;
        }
      }
    }
  mismatch:
    if (starG == std::string::npos || starT >= tn) return false;
    gi = starG;
    ti = ++starT;
  }
  return true;
}

}  // namespace async_engine
