// framing.{h,cc}: where a delimiter or a line ends in buffered bytes, how the byte bound is
// enforced at its edge, that a scan resumes where the last one stopped, and globMatch's
// fnmatch(3) semantics.
#include "core/framing.h"

#include <fnmatch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "check.h"

using async_engine::Frame;
using async_engine::FrameStatus;
using async_engine::frameDelimiter;
using async_engine::frameDelimiters;
using async_engine::frameLine;
using async_engine::globMatch;

namespace {

Frame delim(const std::string& data, const std::string& d, size_t maxBytes) {
  size_t scan = 0;
  return frameDelimiter(data.data(), data.size(), d, maxBytes, &scan);
}

Frame line(const std::string& data, size_t maxBytes) {
  size_t scan = 0;
  return frameLine(data.data(), data.size(), maxBytes, &scan);
}

}  // namespace

// ---- frameDelimiter

TEST(delimiter_found) {
  Frame f = delim("abc\r\ndef", "\r\n", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

TEST(delimiter_first_occurrence_wins) {
  Frame f = delim("a--b--", "--", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 1u);
  CHECK_EQ(f.end, 3u);
}

TEST(delimiter_at_start_gives_empty_content) {
  Frame f = delim("--x", "--", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 0u);
  CHECK_EQ(f.end, 2u);
}

TEST(delimiter_self_overlapping) {
  Frame f = delim("aaab", "aab", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 1u);
  CHECK_EQ(f.end, 4u);
}

TEST(delimiter_missing_needs_more) {
  Frame f = delim("abcdef", "\r\n", 100);
  CHECK_EQ(f.status, FrameStatus::kNeedMore);
}

TEST(delimiter_with_nul_bytes) {
  std::string data("a\0b\0\0c", 6);
  Frame f = delim(data, std::string("\0\0", 2), 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

// A delimiter whose first bytes were already there when the last scan ran is still found.
TEST(delimiter_split_across_arrivals) {
  std::string data = "abc\r";
  size_t scan = 0;
  Frame f = frameDelimiter(data.data(), data.size(), "\r\n", 100, &scan);
  CHECK_EQ(f.status, FrameStatus::kNeedMore);
  data += "\n";
  f = frameDelimiter(data.data(), data.size(), "\r\n", 100, &scan);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

// Bytes arriving one at a time: each scan starts where a delimiter could still begin, so the
// work over the whole stream is linear, not quadratic.
TEST(delimiter_scan_from_advances) {
  const std::string d = "END";
  std::string data;
  size_t scan = 0;
  for (int i = 0; i < 1000; i++) {
    data += static_cast<char>('a' + i % 26);
    Frame f = frameDelimiter(data.data(), data.size(), d, 1 << 20, &scan);
    CHECK_EQ(f.status, FrameStatus::kNeedMore);
    CHECK_EQ(scan, data.size() < d.size() ? 0 : data.size() - (d.size() - 1));
  }
  for (char c : d) {
    data += c;
    Frame f = frameDelimiter(data.data(), data.size(), d, 1 << 20, &scan);
    if (data.size() == 1003) {
      CHECK_EQ(f.status, FrameStatus::kFound);
      CHECK_EQ(f.content, 1000u);
      CHECK_EQ(f.end, 1003u);
    } else {
      CHECK_EQ(f.status, FrameStatus::kNeedMore);
    }
  }
}

// The scan offset is trusted: bytes before it are not searched again.
TEST(delimiter_not_searched_before_scan_from) {
  std::string data = "ab\r\ncd";
  size_t scan = 4;
  Frame f = frameDelimiter(data.data(), data.size(), "\r\n", 100, &scan);
  CHECK_EQ(f.status, FrameStatus::kNeedMore);
  CHECK_EQ(scan, 5u);
}

TEST(delimiter_content_of_max_bytes_is_found) {
  Frame f = delim("abc\r\n", "\r\n", 3);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

TEST(delimiter_content_of_max_bytes_plus_one_is_over_limit) {
  Frame f = delim("abcd\r\n", "\r\n", 3);
  CHECK_EQ(f.status, FrameStatus::kOverLimit);
}

// Over the bound once maxBytes + the delimiter's length bytes hold no delimiter, not before.
TEST(delimiter_over_limit_without_delimiter_at_the_edge) {
  CHECK_EQ(delim("abc\r", "\r\n", 3).status, FrameStatus::kNeedMore);
  CHECK_EQ(delim("abcd", "\r\n", 3).status, FrameStatus::kNeedMore);
  CHECK_EQ(delim("abcde", "\r\n", 3).status, FrameStatus::kOverLimit);
  CHECK_EQ(delim("abc\rx", "\r\n", 3).status, FrameStatus::kOverLimit);
}

TEST(delimiter_max_bytes_zero) {
  CHECK_EQ(delim("\r\nx", "\r\n", 0).status, FrameStatus::kFound);
  CHECK_EQ(delim("\r", "\r\n", 0).status, FrameStatus::kNeedMore);
  CHECK_EQ(delim("x\r\n", "\r\n", 0).status, FrameStatus::kOverLimit);
}

TEST(delimiter_beyond_limit_not_reported_found) {
  // The delimiter is there, but only after more than maxBytes bytes.
  Frame f = delim("abcdefgh\r\n", "\r\n", 3);
  CHECK_EQ(f.status, FrameStatus::kOverLimit);
}

TEST(delimiter_unbounded_max_does_not_overflow) {
  Frame f = delim("abc\r\n", "\r\n", SIZE_MAX);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(delim("abc", "\r\n", SIZE_MAX).status, FrameStatus::kNeedMore);
  CHECK_EQ(delim("abc", "\r\n", SIZE_MAX - 1).status, FrameStatus::kNeedMore);
}

// ---- frameDelimiters

namespace {

struct Many {
  Frame f;
  size_t which;
};

Many many(const std::string& data, const std::vector<std::string>& ds, size_t maxBytes) {
  size_t scan = 0;
  size_t which = 99;
  Frame f = frameDelimiters(data.data(), data.size(), ds, maxBytes, &scan, &which);
  return {f, which};
}

}  // namespace

TEST(delimiters_the_one_ending_first_wins) {
  Many m = many("a\nb\r\nc", {"\r\n", "\n"}, 100);
  CHECK_EQ(m.f.status, FrameStatus::kFound);
  CHECK_EQ(m.f.end, 2u);
  CHECK_EQ(m.f.content, 1u);
  CHECK_EQ(m.which, 1u);
  m = many("b\r\nc", {"\r\n", "\n"}, 100);
  CHECK_EQ(m.f.end, 3u);
  CHECK_EQ(m.f.content, 1u);
  CHECK_EQ(m.which, 0u);
}

// "\r\n" and "\n" end at the same byte: the longer wins, whichever order they are given in.
TEST(delimiters_tie_goes_to_the_longer) {
  Many m = many("ab\r\n", {"\n", "\r\n"}, 100);
  CHECK_EQ(m.f.status, FrameStatus::kFound);
  CHECK_EQ(m.which, 1u);
  CHECK_EQ(m.f.content, 2u);
  m = many("abc", {"bc", "abc"}, 100);
  CHECK_EQ(m.which, 1u);
  CHECK_EQ(m.f.content, 0u);
}

// A delimiter that begins another one ends first and wins.
TEST(delimiters_prefix_of_another_ends_first) {
  Many m = many("xabcd", {"abcd", "ab"}, 100);
  CHECK_EQ(m.f.status, FrameStatus::kFound);
  CHECK_EQ(m.which, 1u);
  CHECK_EQ(m.f.end, 3u);
}

TEST(delimiters_equal_ones_first_given_wins) {
  Many m = many("a;", {";", ";"}, 100);
  CHECK_EQ(m.which, 0u);
}

TEST(delimiters_starting_earlier_but_ending_later_loses) {
  Many m = many("abcd-", {"abcd-", "c"}, 100);
  CHECK_EQ(m.which, 1u);
  CHECK_EQ(m.f.end, 3u);
}

// Bytes one at a time: the scan resumes where any delimiter could still begin, and finds the
// same frame as a single search would.
TEST(delimiters_bytewise_arrival_same_frame) {
  const std::string all = "xx\r\r-END\r\n";
  const std::vector<std::string> ds = {"END\r\n", "\r\n", "-E"};
  size_t scan = 0;
  size_t which = 99;
  Frame f;
  size_t n = 0;
  for (n = 1; n <= all.size(); n++) {
    f = frameDelimiters(all.data(), n, ds, 100, &scan, &which);
    if (f.status != FrameStatus::kNeedMore) break;
    CHECK(scan <= n);
  }
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(which, 2u);
  CHECK_EQ(f.end, 6u);
  CHECK_EQ(n, 6u);
}

TEST(delimiters_split_across_arrivals) {
  std::string data = "abc\r";
  size_t scan = 0;
  size_t which = 99;
  Frame f = frameDelimiters(data.data(), data.size(), {"\r\n", "\n"}, 100, &scan, &which);
  CHECK_EQ(f.status, FrameStatus::kNeedMore);
  data += "\n";
  f = frameDelimiters(data.data(), data.size(), {"\r\n", "\n"}, 100, &scan, &which);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(which, 0u);
  CHECK_EQ(f.end, 5u);
}

// maxBytes bounds the bytes before the delimiter found, as for one delimiter.
TEST(delimiters_bound_on_content) {
  Many m = many("abc\n", {"\n", "\r\n"}, 3);
  CHECK_EQ(m.f.status, FrameStatus::kFound);
  m = many("abcd\n", {"\n", "\r\n"}, 3);
  CHECK_EQ(m.f.status, FrameStatus::kOverLimit);
}

// The winner is chosen before the bound is applied: a shorter delimiter that ends first but
// starts past the bound fails the op, though a longer one starting within it ends later.
TEST(delimiters_winner_over_the_bound_fails) {
  Many m = many("abc\nz", {"\n", "bc\nz"}, 1);
  CHECK_EQ(m.f.status, FrameStatus::kOverLimit);
  CHECK_EQ(m.which, 0u);
}

// With none found, over the bound once maxBytes + the longest delimiter are buffered.
TEST(delimiters_over_limit_without_any) {
  Many m = many("abcdef", {"\n", "\r\n\r\n"}, 2);
  CHECK_EQ(m.f.status, FrameStatus::kOverLimit);
  m = many("abcde", {"\n", "\r\n\r\n"}, 2);
  CHECK_EQ(m.f.status, FrameStatus::kNeedMore);
}

TEST(delimiters_unbounded_max_does_not_overflow) {
  Many m = many("abc", {"\n", "xy"}, SIZE_MAX);
  CHECK_EQ(m.f.status, FrameStatus::kNeedMore);
}

// ---- frameLine

TEST(line_lf) {
  Frame f = line("abc\ndef", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 4u);
}

TEST(line_crlf) {
  Frame f = line("abc\r\ndef", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

TEST(line_empty) {
  Frame f = line("\nx", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 0u);
  CHECK_EQ(f.end, 1u);
  f = line("\r\nx", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 0u);
  CHECK_EQ(f.end, 2u);
}

// Only the "\r" right before "\n" is part of the terminator.
TEST(line_lone_cr_is_content) {
  Frame f = line("a\rb\n", 100);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 4u);
  f = line("a\r\r\n", 100);
  CHECK_EQ(f.content, 2u);
  CHECK_EQ(f.end, 4u);
}

TEST(line_missing_needs_more) {
  CHECK_EQ(line("abc", 100).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("abc\r", 100).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("", 100).status, FrameStatus::kNeedMore);
}

// "\r" arrives in one read and "\n" in the next: the "\r" still belongs to the terminator.
TEST(line_crlf_split_across_arrivals) {
  std::string data = "abc\r";
  size_t scan = 0;
  Frame f = frameLine(data.data(), data.size(), 100, &scan);
  CHECK_EQ(f.status, FrameStatus::kNeedMore);
  CHECK_EQ(scan, 4u);
  data += "\n";
  f = frameLine(data.data(), data.size(), 100, &scan);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

TEST(line_scan_from_advances) {
  std::string data;
  size_t scan = 0;
  for (int i = 0; i < 1000; i++) {
    data += static_cast<char>('a' + i % 26);
    Frame f = frameLine(data.data(), data.size(), 1 << 20, &scan);
    CHECK_EQ(f.status, FrameStatus::kNeedMore);
    CHECK_EQ(scan, data.size());
  }
  data += '\n';
  Frame f = frameLine(data.data(), data.size(), 1 << 20, &scan);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 1000u);
}

TEST(line_not_searched_before_scan_from) {
  std::string data = "ab\ncd";
  size_t scan = 3;
  CHECK_EQ(frameLine(data.data(), data.size(), 100, &scan).status, FrameStatus::kNeedMore);
}

TEST(line_of_max_bytes_is_found) {
  Frame f = line("abc\n", 3);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  f = line("abc\r\n", 3);
  CHECK_EQ(f.status, FrameStatus::kFound);
  CHECK_EQ(f.content, 3u);
  CHECK_EQ(f.end, 5u);
}

TEST(line_of_max_bytes_plus_one_is_over_limit) {
  CHECK_EQ(line("abcd\n", 3).status, FrameStatus::kOverLimit);
  CHECK_EQ(line("abcd\r\n", 3).status, FrameStatus::kOverLimit);
  CHECK_EQ(line("ab\rc\n", 3).status, FrameStatus::kOverLimit);
}

// Without a terminator yet: over the bound as soon as no terminator could still end the line
// within maxBytes bytes, and not before.
TEST(line_over_limit_without_terminator_at_the_edge) {
  CHECK_EQ(line("abc", 3).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("abc\r", 3).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("abcd", 3).status, FrameStatus::kOverLimit);
  CHECK_EQ(line("abc\rx", 3).status, FrameStatus::kOverLimit);
  CHECK_EQ(line("abcde", 3).status, FrameStatus::kOverLimit);
}

TEST(line_max_bytes_zero) {
  CHECK_EQ(line("\n", 0).status, FrameStatus::kFound);
  CHECK_EQ(line("\r\n", 0).status, FrameStatus::kFound);
  CHECK_EQ(line("\r", 0).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("x", 0).status, FrameStatus::kOverLimit);
  CHECK_EQ(line("\rx", 0).status, FrameStatus::kOverLimit);
}

TEST(line_unbounded_max_does_not_overflow) {
  CHECK_EQ(line("abc", SIZE_MAX).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("abc", SIZE_MAX - 1).status, FrameStatus::kNeedMore);
  CHECK_EQ(line("abc\r\n", SIZE_MAX).status, FrameStatus::kFound);
}

// ---- globMatch

TEST(glob_literal) {
  CHECK(globMatch("abc", "abc"));
  CHECK(!globMatch("abc", "abd"));
  CHECK(!globMatch("abc", "ab"));
  CHECK(!globMatch("abc", "abcd"));
  CHECK(globMatch("", ""));
  CHECK(!globMatch("", "a"));
}

TEST(glob_question_mark_is_one_byte) {
  CHECK(globMatch("a?c", "abc"));
  CHECK(!globMatch("a?c", "ac"));
  CHECK(!globMatch("?", ""));
}

TEST(glob_star) {
  CHECK(globMatch("*", ""));
  CHECK(globMatch("*", "anything"));
  CHECK(globMatch("a*", "a"));
  CHECK(globMatch("*c", "abc"));
  CHECK(globMatch("a*b*c", "axxbyybzc"));
  CHECK(globMatch("a**c", "ac"));
  CHECK(!globMatch("a*b", "axxbx"));
  CHECK(!globMatch("a*b*c", "acb"));
}

TEST(glob_many_stars_without_match_fails) {
  CHECK(!globMatch("*a*a*a*a*a*a*a*a*b", std::string(2000, 'a')));
  CHECK(globMatch("*a*a*a*a*a*a*a*a*b", std::string(2000, 'a') + "b"));
}

TEST(glob_bracket_set_and_range) {
  CHECK(globMatch("[abc]", "b"));
  CHECK(!globMatch("[abc]", "d"));
  CHECK(globMatch("[a-c]x", "bx"));
  CHECK(!globMatch("[a-c]x", "dx"));
  CHECK(globMatch("[0-9a-f]", "e"));
  CHECK(!globMatch("[c-a]", "b"));  // a reversed range matches nothing
}

TEST(glob_bracket_negation) {
  CHECK(globMatch("[!a]", "b"));
  CHECK(!globMatch("[!a]", "a"));
  CHECK(globMatch("[^a-c]", "d"));
  CHECK(!globMatch("[^a-c]", "b"));
  CHECK(!globMatch("[!a]", ""));
}

TEST(glob_bracket_close_first_and_dash_last_are_literal) {
  CHECK(globMatch("[]]", "]"));
  CHECK(globMatch("[]a]", "a"));
  CHECK(globMatch("[!]]", "x"));
  CHECK(!globMatch("[!]]", "]"));
  CHECK(globMatch("[a-]", "-"));
  CHECK(globMatch("[-a]", "-"));
  CHECK(!globMatch("[a-]", "b"));
}

TEST(glob_named_classes) {
  CHECK(globMatch("[[:digit:]]", "7"));
  CHECK(!globMatch("[[:digit:]]", "x"));
  CHECK(globMatch("[[:alpha:]]", "Q"));
  CHECK(globMatch("[[:upper:][:digit:]]", "3"));
  CHECK(!globMatch("[[:upper:][:digit:]]", "q"));
  CHECK(globMatch("[[:space:]]", "\t"));
  CHECK(globMatch("[[:blank:]]", " "));
  CHECK(!globMatch("[[:blank:]]", "\n"));
  CHECK(globMatch("[[:xdigit:]]", "F"));
  CHECK(globMatch("[![:alnum:]]", "-"));
  CHECK(globMatch("[[:punct:]]", "!"));
  CHECK(globMatch("[[:lower:]]", "q"));
}

// C locale: bytes above 0x7f belong to no class.
TEST(glob_classes_are_c_locale) {
  CHECK(!globMatch("[[:alpha:]]", "\xe9"));
  CHECK(!globMatch("[[:print:]]", "\xa0"));
  CHECK(globMatch("[![:alpha:]]", "\xe9"));
}

TEST(glob_unknown_class_matches_nothing) {
  CHECK(!globMatch("[[:nosuch:]]", "a"));
  CHECK(!globMatch("[[:nosuch:]]", ":"));
}

TEST(glob_unterminated_bracket_is_literal) {
  CHECK(globMatch("[ab", "[ab"));
  CHECK(!globMatch("[ab", "a"));
  CHECK(globMatch("x[", "x["));
}

TEST(glob_escapes) {
  CHECK(globMatch("\\*", "*"));
  CHECK(!globMatch("\\*", "x"));
  CHECK(globMatch("\\?", "?"));
  CHECK(!globMatch("\\?", "x"));
  CHECK(globMatch("\\[a]", "[a]"));
  CHECK(globMatch("a\\\\b", "a\\b"));
  CHECK(globMatch("\\a", "a"));
  CHECK(globMatch("[\\]]", "]"));
  CHECK(globMatch("[a\\-z]", "-"));
  CHECK(!globMatch("[a\\-z]", "m"));
}

TEST(glob_trailing_backslash_matches_nothing) {
  CHECK(!globMatch("a\\", "a\\"));
  CHECK(!globMatch("a\\", "a"));
  CHECK(!globMatch("*\\", "x\\"));
}

TEST(glob_nul_bytes_are_ordinary) {
  const std::string nul("\0", 1);
  CHECK(globMatch("?", nul));
  CHECK(globMatch("a*b", "a" + nul + nul + "b"));
  CHECK(globMatch("[[:cntrl:]]", nul));
  CHECK(globMatch("a" + nul + "b", "a" + nul + "b"));
  CHECK(!globMatch("a" + nul + "b", "a" + nul + "c"));
  CHECK(!globMatch("a", "a" + nul));
  CHECK(!globMatch("a" + nul, "a"));
  CHECK(globMatch("[!a]", nul));
  CHECK(globMatch("[" + nul + "-b]", "a"));
}

namespace {

// A well-formed glob: literals, escapes, `*`, `?` and terminated bracket expressions.
std::string randomGlob(Rng& rng) {
  static const char kLiteral[] = "ab-!^:]z9";
  static const char kEscaped[] = "ab*?[\\";
  static const char kInBracket[] = "ab-z9*?:![^";
  static const char* const kClasses[] = {"[:alpha:]", "[:digit:]", "[:punct:]", "[:upper:]"};
  static const char* const kRanges[] = {"a-z", "0-9", "!-/", "a-9", "0-z"};
  std::string g;
  size_t n = rng.below(7);
  for (size_t k = 0; k < n; k++) {
    size_t kind = rng.below(6);
    if (kind == 0) {
      g += '*';
    } else if (kind == 1) {
      g += '?';
    } else if (kind == 2) {
      g += '\\';
      g += kEscaped[rng.below(sizeof kEscaped - 1)];
    } else if (kind == 3) {
      g += '[';
      if (rng.below(3) == 0) g += "!^"[rng.below(2)];
      size_t items = 1 + rng.below(3);
      for (size_t i = 0; i < items; i++) {
        size_t item = rng.below(3);
        if (item == 0) {
          g += kClasses[rng.below(4)];
        } else if (item == 1) {
          g += kRanges[rng.below(5)];
        } else {
          g += kInBracket[rng.below(sizeof kInBracket - 1)];
        }
      }
      g += ']';
    } else {
      g += kLiteral[rng.below(sizeof kLiteral - 1)];
    }
  }
  return g;
}

}  // namespace

// On well-formed globs and texts without NUL bytes, the same answers as the C library's
// fnmatch(3) with no flags (the header's own definition). Unterminated brackets and a range
// that ends in a class are left out: glibc's answers there are its own.
TEST(glob_agrees_with_fnmatch) {
  static const char kTextBytes[] = "ab-*?[]!^\\:zA9/";
  Rng rng{0x9E3779B97F4A7C15ull};
  for (int i = 0; i < 100000; i++) {
    std::string g = randomGlob(rng);
    std::string t;
    size_t tl = rng.below(8);
    for (size_t k = 0; k < tl; k++) t += kTextBytes[rng.below(sizeof kTextBytes - 1)];
    bool want = ::fnmatch(g.c_str(), t.c_str(), 0) == 0;
    if (globMatch(g, t) != want) {
      check::fail(__FILE__, __LINE__,
                  "globMatch(" + check::show(g) + ", " + check::show(t) + ") != fnmatch(3): " + check::show(want));
      return;
    }
  }
}
