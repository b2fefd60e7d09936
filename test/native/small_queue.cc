// small_queue.h: a FIFO that holds no memory while empty, keeps its order through pops,
// erases and swaps, gives back the storage of a queue that grew large, and stays bounded when
// it is never empty for long.
#include "core/small_queue.h"

#include <malloc.h>

#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <vector>

#include "check.h"

using async_engine::SmallQueue;

// Counts the program's live heap allocations made through operator new, and their bytes, so
// that a test can see what a queue holds.
namespace {
size_t liveAllocations = 0;
size_t liveBytes = 0;
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  liveAllocations++;
  liveBytes += malloc_usable_size(p);
  return p;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  liveAllocations--;
  liveBytes -= malloc_usable_size(p);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace {

std::vector<int> drain(SmallQueue<int>& q) {
  std::vector<int> out;
  while (!q.empty()) {
    out.push_back(q.front());
    q.pop_front();
  }
  return out;
}

// Out of line, so that the compiler does not follow the queue's exact length into the vector
// code (GCC 12 then warns about a memmove of nothing past its end).
[[gnu::noinline]] void pushAll(SmallQueue<int>& q, std::initializer_list<int> values) {
  for (int v : values) q.push_back(v);
}

std::vector<int> items(SmallQueue<int>& q) { return std::vector<int>(q.begin(), q.end()); }

}  // namespace

TEST(new_queue_is_empty_and_holds_no_memory) {
  size_t before = liveAllocations;
  SmallQueue<int> q;
  CHECK(q.empty());
  CHECK_EQ(q.size(), 0u);
  CHECK(q.begin() == q.end());
  CHECK_EQ(liveAllocations, before);
}

TEST(fifo_order) {
  SmallQueue<int> q;
  for (int i = 1; i <= 5; i++) q.push_back(i);
  CHECK_EQ(q.size(), 5u);
  CHECK_EQ(q.front(), 1);
  q.pop_front();
  CHECK_EQ(q.front(), 2);
  CHECK_EQ(q.size(), 4u);
  CHECK(drain(q) == (std::vector<int>{2, 3, 4, 5}));
  CHECK(q.empty());
}

TEST(iteration_starts_at_front) {
  SmallQueue<int> q;
  for (int i = 1; i <= 4; i++) q.push_back(i);
  q.pop_front();
  CHECK(items(q) == (std::vector<int>{2, 3, 4}));
}

TEST(push_after_drain) {
  SmallQueue<int> q;
  q.push_back(1);
  q.pop_front();
  CHECK(q.empty());
  q.push_back(2);
  q.push_back(3);
  CHECK_EQ(q.front(), 2);
  CHECK(drain(q) == (std::vector<int>{2, 3}));
}

TEST(erase_from_the_middle_keeps_order) {
  SmallQueue<int> q;
  for (int i = 1; i <= 5; i++) q.push_back(i);
  q.pop_front();
  q.erase(q.begin() + 1);  // 3
  CHECK(items(q) == (std::vector<int>{2, 4, 5}));
  q.erase(q.begin());
  CHECK_EQ(q.front(), 4);
  CHECK_EQ(q.size(), 2u);
}

TEST(erase_the_last_item_empties) {
  SmallQueue<int> q;
  pushAll(q, {1, 2});
  q.pop_front();
  q.erase(q.begin());
  CHECK(q.empty());
  CHECK_EQ(q.size(), 0u);
  q.push_back(9);
  CHECK_EQ(q.front(), 9);
  CHECK_EQ(q.size(), 1u);
}

TEST(swap_exchanges_contents) {
  SmallQueue<int> a, b;
  for (int i = 1; i <= 3; i++) a.push_back(i);
  a.pop_front();
  b.push_back(7);
  a.swap(b);
  CHECK(items(a) == (std::vector<int>{7}));
  CHECK(items(b) == (std::vector<int>{2, 3}));
  CHECK_EQ(b.size(), 2u);
  CHECK_EQ(b.front(), 2);
}

TEST(clear_empties) {
  SmallQueue<int> q;
  for (int i = 1; i <= 3; i++) q.push_back(i);
  q.pop_front();
  q.clear();
  CHECK(q.empty());
  q.push_back(4);
  CHECK(items(q) == (std::vector<int>{4}));
}

TEST(move_only_items) {
  SmallQueue<std::unique_ptr<int>> q;
  q.push_back(std::make_unique<int>(1));
  q.push_back(std::make_unique<int>(2));
  std::unique_ptr<int> first = std::move(q.front());
  q.pop_front();
  CHECK_EQ(*first, 1);
  CHECK_EQ(*q.front(), 2);
}

// The usual length is 0 to 2: a queue that drains keeps its small storage for the next items.
TEST(small_queue_reuses_its_storage) {
  SmallQueue<int> q;
  q.push_back(1);
  q.push_back(2);
  size_t held = liveAllocations;
  for (int round = 0; round < 100; round++) {
    drain(q);
    q.push_back(1);
    q.push_back(2);
  }
  CHECK_EQ(liveAllocations, held);
}

TEST(large_queue_gives_storage_back_when_drained) {
  size_t before = liveAllocations;
  SmallQueue<int> q;
  for (int i = 0; i < 1000; i++) q.push_back(i);
  CHECK(liveAllocations > before);
  std::vector<int> out = drain(q);
  CHECK_EQ(out.size(), 1000u);
  out = std::vector<int>();
  CHECK_EQ(liveAllocations, before);
}

TEST(large_queue_gives_storage_back_when_cleared) {
  size_t before = liveAllocations;
  SmallQueue<int> q;
  for (int i = 0; i < 1000; i++) q.push_back(i);
  q.clear();
  CHECK_EQ(liveAllocations, before);
}

TEST(large_queue_gives_storage_back_when_last_item_erased) {
  size_t before = liveAllocations;
  SmallQueue<int> q;
  for (int i = 0; i < 1000; i++) q.push_back(i);
  for (int i = 0; i < 999; i++) q.pop_front();
  q.erase(q.begin());
  CHECK_EQ(liveAllocations, before);
}

// A queue that never drains (a receive report always waiting behind the one being taken) must
// not keep every item that passed through it: its storage is bounded by the most it held at
// once.
TEST(queue_that_never_drains_stays_bounded) {
  size_t before = liveBytes;
  SmallQueue<int> q;
  q.push_back(0);
  for (int i = 1; i <= 100000; i++) {
    q.push_back(i);
    CHECK_EQ(q.front(), i - 1);
    q.pop_front();
  }
  CHECK_EQ(q.size(), 1u);
  CHECK_EQ(q.front(), 100000);
  CHECK(liveBytes - before <= 1024);
}

// Items popped from a queue that never drains are dropped from its storage now and then; the
// ones still queued keep their order, for front() and for iteration.
TEST(order_kept_while_never_draining) {
  SmallQueue<int> q;
  pushAll(q, {0, 1, 2});
  for (int i = 3; i < 1000; i++) {
    q.push_back(i);
    q.pop_front();
    CHECK_EQ(q.front(), i - 2);
    CHECK(items(q) == (std::vector<int>{i - 2, i - 1, i}));
  }
}
