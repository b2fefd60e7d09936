// op_table.h IdTable: insert, find and erase by id; erased slots (tombstones) keep later ids in
// the same probe chain reachable; the table grows and sheds tombstones as ids come and go; an
// id inserted again replaces its entry.
#include "core/op_table.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "check.h"

using async_engine::IdTable;

namespace {

struct Op {
  int64_t id;
};

// n distinct positive ids from a fixed seed.
std::vector<int64_t> randomIds(size_t n, uint64_t seed) {
  Rng rng{0x9E3779B97F4A7C15ull * seed};
  std::vector<int64_t> ids;
  while (ids.size() < n) {
    int64_t id = static_cast<int64_t>(rng.next() >> 2);
    if (id > 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

}  // namespace

TEST(new_table_is_empty) {
  IdTable<Op> t;
  CHECK_EQ(t.size(), 0u);
  CHECK(t.find(1) == nullptr);
  CHECK(t.find(12345) == nullptr);
}

TEST(insert_then_find) {
  IdTable<Op> t;
  Op a{1}, b{2};
  t.insert(1, &a);
  t.insert(2, &b);
  CHECK_EQ(t.size(), 2u);
  CHECK(t.find(1) == &a);
  CHECK(t.find(2) == &b);
  CHECK(t.find(3) == nullptr);
}

TEST(erase_removes_only_that_id) {
  IdTable<Op> t;
  Op a{1}, b{2};
  t.insert(1, &a);
  t.insert(2, &b);
  t.erase(1);
  CHECK_EQ(t.size(), 1u);
  CHECK(t.find(1) == nullptr);
  CHECK(t.find(2) == &b);
}

TEST(erase_missing_id_is_a_no_op) {
  IdTable<Op> t;
  Op a{1};
  t.insert(1, &a);
  t.erase(2);
  t.erase(2);
  CHECK_EQ(t.size(), 1u);
  CHECK(t.find(1) == &a);
  t.erase(1);
  t.erase(1);
  CHECK_EQ(t.size(), 0u);
}

// 31 ids in 64 slots collide and probe; erasing every other one leaves tombstones in the
// chains, and every id after a tombstone must still be found. The ids are random: consecutive
// ones spread evenly over the slots and would never share a chain.
TEST(tombstones_keep_probe_chains) {
  IdTable<Op> t;
  std::vector<int64_t> ids = randomIds(31, 1);
  std::vector<Op> ops(ids.size());
  for (size_t i = 0; i < ids.size(); i++) {
    ops[i] = Op{ids[i]};
    t.insert(ids[i], &ops[i]);
  }
  for (size_t i = 0; i < ids.size(); i += 2) t.erase(ids[i]);
  CHECK_EQ(t.size(), 15u);
  for (size_t i = 0; i < ids.size(); i++) {
    CHECK(t.find(ids[i]) == (i % 2 == 0 ? nullptr : &ops[i]));
  }
}

TEST(reinsert_same_id_replaces) {
  IdTable<Op> t;
  Op a{7}, b{7};
  t.insert(7, &a);
  t.insert(7, &b);
  CHECK_EQ(t.size(), 1u);
  CHECK(t.find(7) == &b);
  t.erase(7);
  CHECK_EQ(t.size(), 0u);
  CHECK(t.find(7) == nullptr);
}

TEST(reinsert_after_erase) {
  IdTable<Op> t;
  Op a{7}, b{7};
  t.insert(7, &a);
  t.erase(7);
  t.insert(7, &b);
  CHECK_EQ(t.size(), 1u);
  CHECK(t.find(7) == &b);
}

// An id inserted again while a tombstone lies earlier in its probe chain replaces its entry
// rather than adding a second one that erase() would leave behind.
TEST(reinsert_live_id_behind_tombstone_replaces) {
  IdTable<Op> t;
  std::vector<int64_t> ids = randomIds(31, 2);
  std::vector<Op> ops(ids.size()), again(ids.size());
  for (size_t i = 0; i < ids.size(); i++) {
    ops[i] = again[i] = Op{ids[i]};
    t.insert(ids[i], &ops[i]);
  }
  for (size_t i = 0; i < ids.size(); i += 2) t.erase(ids[i]);
  for (size_t i = 1; i < ids.size(); i += 2) t.insert(ids[i], &again[i]);
  CHECK_EQ(t.size(), 15u);
  for (size_t i = 1; i < ids.size(); i += 2) {
    CHECK(t.find(ids[i]) == &again[i]);
    t.erase(ids[i]);
    CHECK(t.find(ids[i]) == nullptr);
  }
  CHECK_EQ(t.size(), 0u);
}

// Past half full the table rehashes into more slots; every id stays where find() sees it.
TEST(rehash_keeps_many_ids) {
  IdTable<Op> t;
  const int64_t n = 100000;
  std::vector<Op> ops(n + 1);
  for (int64_t id = 1; id <= n; id++) {
    ops[id] = Op{id};
    t.insert(id, &ops[id]);
  }
  CHECK_EQ(t.size(), static_cast<size_t>(n));
  for (int64_t id = 1; id <= n; id++) CHECK(t.find(id) == &ops[id]);
  CHECK(t.find(n + 1) == nullptr);
}

TEST(for_each_visits_each_live_id_once) {
  IdTable<Op> t;
  std::vector<Op> ops(1001);
  for (int64_t id = 1; id <= 1000; id++) {
    ops[id] = Op{id};
    t.insert(id, &ops[id]);
  }
  for (int64_t id = 1; id <= 1000; id += 3) t.erase(id);
  std::map<int64_t, int> seen;
  bool right = true;
  t.forEach([&](int64_t id, Op* op) {
    seen[id]++;
    right = right && op == &ops[id];
  });
  CHECK(right);
  CHECK_EQ(seen.size(), t.size());
  for (const auto& [id, count] : seen) {
    CHECK_EQ(count, 1);
    CHECK(id % 3 != 1);
  }
}

// Ids that come and go, as ops do, a million times with a few live at once: tombstones are
// reclaimed (a table with no empty slot left would never end a probe), and every live id is
// found throughout.
TEST(churn_reclaims_tombstones) {
  IdTable<Op> t;
  Op op{0};
  for (int64_t id = 1; id <= 1000000; id++) {
    t.insert(id, &op);
    if (id > 3) t.erase(id - 3);
    if (id % 1000 == 0) {
      CHECK_EQ(t.size(), 3u);
      CHECK(t.find(id) == &op);
      CHECK(t.find(id - 2) == &op);
      CHECK(t.find(id - 3) == nullptr);
    }
  }
}

// Random inserts (new ids and ids already there), erases and finds, checked against std::map.
TEST(random_ops_match_a_model) {
  IdTable<Op> t;
  std::map<int64_t, Op*> model;
  std::vector<Op> pool(64);
  Rng rng{0x243F6A8885A308D3ull};
  for (int i = 0; i < 300000; i++) {
    uint64_t r = rng.next();
    int64_t id = 1 + static_cast<int64_t>((r >> 8) % 2000);
    Op* p = &pool[(r >> 40) % pool.size()];
    switch (r % 3) {
      case 0:
        t.insert(id, p);
        model[id] = p;
        break;
      case 1:
        t.erase(id);
        model.erase(id);
        break;
      default: {
        auto it = model.find(id);
        CHECK(t.find(id) == (it == model.end() ? nullptr : it->second));
      }
    }
    CHECK_EQ(t.size(), model.size());
  }
}

// The core's own ops have negative ids (below -1, the tombstone marker): they survive the
// table's growth and forEach visits them, beside positive ones.
TEST(negative_ids_survive_growth_and_are_visited) {
  IdTable<Op> t;
  std::vector<Op> ops;
  ops.reserve(400);
  for (int64_t i = 1; i <= 200; i++) ops.push_back(Op{i});
  for (int64_t i = 2; i <= 201; i++) ops.push_back(Op{-i});
  for (Op& o : ops) t.insert(o.id, &o);
  // Churn: erase and reinsert the negative ones, leaving tombstones that force rehashes.
  for (int round = 0; round < 3; round++) {
    for (size_t k = 200; k < ops.size(); k++) t.erase(ops[k].id);
    for (size_t k = 200; k < ops.size(); k++) t.insert(ops[k].id, &ops[k]);
  }
  CHECK_EQ(t.size(), ops.size());
  for (Op& o : ops) CHECK(t.find(o.id) == &o);
  size_t seen = 0, negative = 0;
  t.forEach([&](int64_t id, Op* op) {
    CHECK_EQ(op->id, id);
    seen++;
    if (id < 0) negative++;
  });
  CHECK_EQ(seen, ops.size());
  CHECK_EQ(negative, 200u);
}
