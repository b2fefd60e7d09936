// byte_buffer.h: bytes received on an empty buffer are borrowed in place, settle() copies what
// is left, consume and prepend keep the bytes in order, storage is released when the buffer
// drains, and growth and compaction never lose a byte.
#include "core/byte_buffer.h"

#include <algorithm>
#include <string>

#include "check.h"

using async_engine::ByteBuffer;

namespace {

std::string contents(const ByteBuffer& b) { return std::string(b.data(), b.size()); }

// Distinct bytes, so that a misplaced or repeated span shows.
std::string pattern(size_t n, size_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

}  // namespace

TEST(new_buffer_is_empty) {
  ByteBuffer b;
  CHECK(b.empty());
  CHECK_EQ(b.size(), 0u);
}

TEST(append_to_empty_borrows) {
  std::string in = "hello";
  ByteBuffer b;
  b.append(in.data(), in.size());
  CHECK(b.data() == in.data());
  CHECK_EQ(b.size(), 5u);
}

TEST(append_nothing_changes_nothing) {
  std::string in = "x";
  ByteBuffer b;
  b.append(in.data(), 0);
  CHECK(b.empty());
  b.append(in.data(), 1);
  b.append(nullptr, 0);
  CHECK(b.data() == in.data());
  CHECK_EQ(b.size(), 1u);
}

TEST(consume_borrowed_advances_in_place) {
  std::string in = "hello world";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.consume(6);
  CHECK(b.data() == in.data() + 6);
  CHECK_EQ(contents(b), std::string("world"));
  b.consume(5);
  CHECK(b.empty());
}

// A receive buffer fully consumed where it landed leaves nothing borrowed behind: the next
// bytes are borrowed from their own memory.
TEST(borrow_again_after_borrowed_bytes_drain) {
  std::string first = "abc", second = "defg";
  ByteBuffer b;
  b.append(first.data(), first.size());
  b.consume(3);
  b.append(second.data(), second.size());
  CHECK(b.data() == second.data());
  CHECK_EQ(contents(b), second);
}

TEST(settle_copies_what_is_unconsumed) {
  std::string in = "hello world";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.consume(6);
  b.settle();
  CHECK(b.data() != in.data() + 6);
  in.assign(in.size(), 'X');  // the receive memory is reused
  CHECK_EQ(contents(b), std::string("world"));
}

TEST(settle_when_owned_or_empty_changes_nothing) {
  ByteBuffer empty;
  empty.settle();
  CHECK(empty.empty());
  std::string in = "abc";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.settle();
  const char* owned = b.data();
  b.settle();
  CHECK(b.data() == owned);
  CHECK_EQ(contents(b), in);
}

// A second receive while bytes are borrowed: the borrowed ones are copied first, then the new
// ones after them.
TEST(append_while_borrowed_copies_both_in_order) {
  std::string first = "abc", second = "def";
  ByteBuffer b;
  b.append(first.data(), first.size());
  b.consume(1);
  b.append(second.data(), second.size());
  CHECK(b.data() != first.data() + 1);
  first.assign(3, 'X');
  second.assign(3, 'Y');
  CHECK_EQ(contents(b), std::string("bcdef"));
}

TEST(consume_owned_keeps_the_rest) {
  std::string a = "0123", c = "4567";
  ByteBuffer b;
  b.append(a.data(), a.size());
  b.settle();
  b.append(c.data(), c.size());
  b.consume(3);
  CHECK_EQ(contents(b), std::string("34567"));
  b.consume(4);
  CHECK_EQ(contents(b), std::string("7"));
}

// An idle connection holds no buffer memory: once its owned bytes are consumed, the storage
// goes.
TEST(storage_released_when_owned_bytes_drain) {
  std::string in = "abcdef";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.settle();
  CHECK(b.data() != nullptr);
  b.consume(2);
  CHECK(b.data() != nullptr);
  b.consume(4);
  CHECK(b.empty());
  CHECK(b.data() == nullptr);
}

TEST(release_drops_everything) {
  std::string in = "abcdef";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.settle();
  b.release();
  CHECK(b.empty());
  CHECK(b.data() == nullptr);
  b.append(in.data(), 3);
  CHECK(b.data() == in.data());
}

// Owned storage drained, then new bytes: they are borrowed again, not copied.
TEST(borrow_again_after_owned_bytes_drain) {
  std::string a = "abc", c = "xyz";
  ByteBuffer b;
  b.append(a.data(), a.size());
  b.settle();
  b.consume(3);
  b.append(c.data(), c.size());
  CHECK(b.data() == c.data());
}

TEST(prepend_to_empty) {
  std::string in = "back";
  ByteBuffer b;
  b.prepend(in.data(), in.size());
  CHECK(b.data() != in.data());
  in.assign(4, 'X');
  CHECK_EQ(contents(b), std::string("back"));
}

TEST(prepend_before_borrowed_bytes) {
  std::string recv = "world", back = "hello ";
  ByteBuffer b;
  b.append(recv.data(), recv.size());
  b.prepend(back.data(), back.size());
  recv.assign(5, 'X');
  CHECK_EQ(contents(b), std::string("hello world"));
}

// Bytes given back into the room that consume() left in front, even when they fill it.
TEST(prepend_into_consumed_room) {
  std::string in = "0123456789";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.settle();
  b.consume(3);
  const char* before = b.data();
  std::string back = "abc";
  b.prepend(back.data(), back.size());
  CHECK(b.data() == before - 3);
  CHECK_EQ(contents(b), std::string("abc3456789"));
}

TEST(prepend_larger_than_room_grows) {
  std::string in = "0123456789";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.settle();
  b.consume(2);
  std::string back = pattern(10000, 1);
  b.prepend(back.data(), back.size());
  CHECK_EQ(contents(b), back + "23456789");
}

TEST(prepend_nothing_changes_nothing) {
  std::string in = "abc";
  ByteBuffer b;
  b.append(in.data(), in.size());
  b.prepend(nullptr, 0);
  CHECK(b.data() == in.data());
}

TEST(grows_past_the_first_block) {
  ByteBuffer b;
  std::string want;
  for (size_t i = 0; i < 64; i++) {
    std::string piece = pattern(1000 + i * 37, i);
    b.append(piece.data(), piece.size());
    if (i == 0) b.settle();
    want += piece;
  }
  CHECK_EQ(b.size(), want.size());
  CHECK(contents(b) == want);
}

// Appends and consumes interleaved, so that the buffer compacts or grows many times: the bytes
// always come out as they went in.
TEST(interleaved_append_consume_keeps_order) {
  ByteBuffer b;
  std::string stream = pattern(1 << 20, 3);
  size_t in = 0, out = 0, step = 0;
  while (out < stream.size()) {
    size_t n = std::min(stream.size() - in, static_cast<size_t>(1 + (step * 977) % 9000));
    if (n > 0) {
      b.append(stream.data() + in, n);
      b.settle();  // the receive memory is about to be reused
      in += n;
    }
    size_t take = std::min(b.size(), static_cast<size_t>(1 + (step * 613) % 8000));
    if (in == stream.size()) take = b.size();
    CHECK(std::string(b.data(), take) == stream.substr(out, take));
    b.consume(take);
    out += take;
    step++;
  }
  CHECK(b.empty());
  CHECK(b.data() == nullptr);
}
