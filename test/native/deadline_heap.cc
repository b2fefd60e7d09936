// deadline_heap.h: elements come out by deadline, equal deadlines first in first out by their
// sequence number, any element can leave from the middle without breaking the order, and each
// element's heapIndex always says where it is.
#include "core/deadline_heap.h"

#include <cstdint>
#include <set>
#include <tuple>
#include <vector>

#include "check.h"

using async_engine::DeadlineHeap;
using async_engine::kNotInHeap;

namespace {

struct Timer {
  int64_t deadline = 0;
  uint64_t timerSeq = 0;
  size_t heapIndex = kNotInHeap;
  int id = 0;
};

// Timers with the given deadlines, sequence numbers in creation order.
std::vector<Timer> timers(const std::vector<int64_t>& deadlines) {
  std::vector<Timer> out(deadlines.size());
  for (size_t i = 0; i < deadlines.size(); i++) {
    out[i].deadline = deadlines[i];
    out[i].timerSeq = i + 1;
    out[i].id = static_cast<int>(i);
  }
  return out;
}

// Takes the elements out one by one from the top, as the engine expires them.
std::vector<int> popAll(DeadlineHeap<Timer>& heap) {
  std::vector<int> ids;
  while (!heap.empty()) {
    Timer* t = heap.top();
    heap.remove(t);
    ids.push_back(t->id);
  }
  return ids;
}

// Whether the in-heap elements' indexes are exactly 0 .. size-1, each once, and the elements
// placed by those indexes form a heap: no element is due before its parent.
bool heapValid(const DeadlineHeap<Timer>& heap, const std::vector<Timer>& all) {
  std::vector<const Timer*> at(heap.size(), nullptr);
  for (const Timer& t : all) {
    if (!DeadlineHeap<Timer>::contains(&t)) continue;
    if (t.heapIndex >= at.size() || at[t.heapIndex]) return false;
    at[t.heapIndex] = &t;
  }
  for (size_t i = 0; i < at.size(); i++) {
    if (!at[i]) return false;
    const Timer* parent = i > 0 ? at[(i - 1) / 2] : nullptr;
    if (parent && std::tie(at[i]->deadline, at[i]->timerSeq) < std::tie(parent->deadline, parent->timerSeq)) {
      return false;
    }
  }
  return heap.empty() || heap.top() == at[0];
}

}  // namespace

TEST(new_heap_is_empty) {
  DeadlineHeap<Timer> heap;
  CHECK(heap.empty());
  CHECK_EQ(heap.size(), 0u);
}

TEST(top_is_the_earliest_deadline) {
  std::vector<Timer> t = timers({30, 10, 20});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  CHECK_EQ(heap.size(), 3u);
  CHECK(heap.top() == &t[1]);
}

TEST(comes_out_in_deadline_order) {
  std::vector<Timer> t = timers({50, 10, 40, 20, 30, 0, 60});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  CHECK(popAll(heap) == (std::vector<int>{5, 1, 3, 4, 2, 0, 6}));
}

TEST(equal_deadlines_first_in_first_out) {
  std::vector<Timer> t = timers({7, 7, 7, 7, 7, 7, 7, 7});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  CHECK(popAll(heap) == (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// The sequence number, not the order of push, breaks a tie: a timer re-armed for the same
// deadline keeps the place its sequence number gives it.
TEST(equal_deadlines_ordered_by_sequence_not_push_order) {
  std::vector<Timer> t = timers({5, 5, 5, 5});
  DeadlineHeap<Timer> heap;
  for (int i = 3; i >= 0; i--) heap.push(&t[i]);
  CHECK(popAll(heap) == (std::vector<int>{0, 1, 2, 3}));
}

TEST(extreme_deadlines_order) {
  std::vector<Timer> t = timers({INT64_MAX, 0, INT64_MIN, -1, INT64_MAX - 1});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  CHECK(popAll(heap) == (std::vector<int>{2, 3, 1, 4, 0}));
}

TEST(push_sets_index_and_remove_clears_it) {
  std::vector<Timer> t = timers({1, 2});
  DeadlineHeap<Timer> heap;
  CHECK(!DeadlineHeap<Timer>::contains(&t[0]));
  heap.push(&t[0]);
  heap.push(&t[1]);
  CHECK(DeadlineHeap<Timer>::contains(&t[0]));
  CHECK_EQ(t[0].heapIndex, 0u);
  CHECK_EQ(t[1].heapIndex, 1u);
  heap.remove(&t[0]);
  CHECK(!DeadlineHeap<Timer>::contains(&t[0]));
  CHECK_EQ(t[0].heapIndex, kNotInHeap);
  CHECK_EQ(t[1].heapIndex, 0u);
}

TEST(remove_when_absent_is_a_no_op) {
  std::vector<Timer> t = timers({1, 2});
  DeadlineHeap<Timer> heap;
  heap.push(&t[1]);
  heap.remove(&t[0]);
  CHECK_EQ(heap.size(), 1u);
  heap.remove(&t[1]);
  heap.remove(&t[1]);
  CHECK(heap.empty());
}

TEST(remove_the_last_element) {
  std::vector<Timer> t = timers({1, 2, 3});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  heap.remove(&t[2]);  // the last slot
  CHECK_EQ(heap.size(), 2u);
  CHECK(popAll(heap) == (std::vector<int>{0, 1}));
}

// Elements taken out from the middle: what is left still comes out in order, and the element
// that filled each hole knows its new place.
TEST(remove_from_the_middle_keeps_order) {
  std::vector<int64_t> deadlines;
  for (int i = 0; i < 64; i++) deadlines.push_back((i * 37) % 64);
  std::vector<Timer> t = timers(deadlines);
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  for (int i = 5; i < 64; i += 7) {
    heap.remove(&t[i]);
    CHECK(heapValid(heap, t));
  }
  std::vector<int> out = popAll(heap);
  CHECK_EQ(out.size(), 64u - 9u);
  for (size_t i = 1; i < out.size(); i++) CHECK(t[out[i - 1]].deadline <= t[out[i]].deadline);
  for (int i = 5; i < 64; i += 7) {
    for (int id : out) CHECK(id != i);
  }
}

// A removal whose replacement must move up, not down: the last element is earlier than the
// removed one's parent.
TEST(remove_moves_replacement_up) {
  // Heap by deadline:         1
  //                     10         2
  //                   11  12     3   4
  // Removing 11 (index 3) brings 4 (the last) there, under 10: it must rise above 10.
  std::vector<Timer> t = timers({1, 10, 2, 11, 12, 3, 4});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  CHECK_EQ(t[3].heapIndex, 3u);
  heap.remove(&t[3]);
  CHECK(heapValid(heap, t));
  CHECK(popAll(heap) == (std::vector<int>{0, 2, 5, 6, 1, 4}));
}

// A timer re-armed after it left: pushed again with a new deadline and sequence number.
TEST(push_again_after_removal) {
  std::vector<Timer> t = timers({10, 20, 30});
  DeadlineHeap<Timer> heap;
  for (Timer& x : t) heap.push(&x);
  heap.remove(&t[0]);
  t[0].deadline = 25;
  t[0].timerSeq = 4;
  heap.push(&t[0]);
  CHECK(heapValid(heap, t));
  CHECK(popAll(heap) == (std::vector<int>{1, 0, 2}));
}

// Pushes, removals from anywhere and expiries from the top, checked after each step against a
// sorted model; deadlines from a small range so that ties are common.
TEST(random_ops_match_a_sorted_model) {
  const size_t n = 512;
  std::vector<Timer> t(n);
  for (size_t i = 0; i < n; i++) t[i].id = static_cast<int>(i);
  DeadlineHeap<Timer> heap;
  std::set<std::tuple<int64_t, uint64_t, int>> model;
  Rng rng{0x2545F4914F6CDD1Dull};
  uint64_t seq = 0;
  for (int step = 0; step < 200000; step++) {
    Timer& x = t[rng.below(n)];
    size_t what = rng.below(3);
    if (what == 0 && !DeadlineHeap<Timer>::contains(&x)) {
      x.deadline = static_cast<int64_t>(rng.below(64));
      x.timerSeq = ++seq;
      heap.push(&x);
      model.emplace(x.deadline, x.timerSeq, x.id);
    } else if (what == 1) {
      if (DeadlineHeap<Timer>::contains(&x)) model.erase({x.deadline, x.timerSeq, x.id});
      heap.remove(&x);
    } else if (!heap.empty()) {
      Timer* top = heap.top();
      CHECK(std::get<2>(*model.begin()) == top->id);
      heap.remove(top);
      model.erase(model.begin());
    }
    CHECK_EQ(heap.size(), model.size());
    if (!heap.empty()) CHECK_EQ(heap.top()->id, std::get<2>(*model.begin()));
    if (step % 97 == 0) CHECK(heapValid(heap, t));
  }
  CHECK(heapValid(heap, t));
}
