// The native unit tests' harness. Each test program is one small binary whose exit code is the
// verdict (0: every test passed, 1: one failed), in liburing's manner. TEST(name) registers a
// function that checks one behaviour; CHECK and CHECK_EQ print file:line and what failed, mark
// the test failed and return from the function they are in. `program name...` runs only the
// named tests. Included by exactly one file per program, which it gives its main().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace check {

struct Test {
  const char* name;
  void (*fn)();
};

inline std::vector<Test>& registry() {
  static std::vector<Test> tests;
  return tests;
}

// Whether the running test has failed.
inline bool& failed() {
  static bool f = false;
  return f;
}

struct Register {
  Register(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

// A value as a failure message shows it: strings quoted with their bytes escaped.
template <typename T>
std::string show(const T& v) {
  std::ostringstream os;
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    std::string_view s = v;
    os << '"';
    for (unsigned char c : s) {
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
        os << c;
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        os << hex;
      }
    }
    os << '"';
  } else if constexpr (std::is_enum_v<T>) {
    os << static_cast<long long>(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else {
    os << v;
  }
  return os.str();
}

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, what.c_str());
  failed() = true;
}

}  // namespace check

// A fixed-seed generator (xorshift64), so that a failing random test replays exactly.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return next() % n; }
};

#define TEST(name)                                                    \
  static void test_##name();                                          \
  static const ::check::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(expr)                                                 \
  do {                                                              \
    if (!(expr)) {                                                  \
      ::check::fail(__FILE__, __LINE__, "CHECK(" #expr ") failed"); \
      return;                                                       \
    }                                                               \
  } while (0)

#define CHECK_EQ(actual, expected)                                                                       \
  do {                                                                                                   \
    const auto& check_a_ = (actual);                                                                     \
    const auto& check_e_ = (expected);                                                                   \
    if (!(check_a_ == check_e_)) {                                                                       \
      ::check::fail(__FILE__, __LINE__,                                                                  \
                    "CHECK_EQ(" #actual ", " #expected ") failed: " + ::check::show(check_a_) + " != " + \
                        ::check::show(check_e_));                                                        \
      return;                                                                                            \
    }                                                                                                    \
  } while (0)

int main(int argc, char** argv) {
  int ran = 0;
  std::vector<const char*> failures;
  for (const check::Test& t : check::registry()) {
    bool wanted = argc < 2;
    for (int i = 1; i < argc; i++) wanted = wanted || std::strcmp(argv[i], t.name) == 0;
    if (!wanted) continue;
    ran++;
    check::failed() = false;
    try {
      t.fn();
    } catch (const std::exception& e) {
      check::fail(__FILE__, __LINE__, std::string("threw: ") + e.what());
    }
    if (check::failed()) {
      std::fprintf(stderr, "FAIL %s\n", t.name);
      failures.push_back(t.name);
    }
  }
  if (ran == 0) {
    std::fprintf(stderr, "no test matched\n");
    return 1;
  }
  if (!failures.empty()) {
    std::printf("%zu of %d tests failed:", failures.size(), ran);
    for (const char* name : failures) std::printf(" %s", name);
    std::printf("\n");
    return 1;
  }
  std::printf("%d tests passed\n", ran);
  return 0;
}
