// Heap accounting of everything taken from the C allocator (malloc and friends, which
// operator new uses): once a series and its histogram chunks exist, record() allocates
// nothing, including across sub-window rotation (expired chunks are recycled).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../support/counting_malloc.hpp"
#include "spyglass/stats.hpp"

namespace sg = spyglass;
using namespace std::chrono_literals;

TEST(StatsAlloc, RecordAllocatesNothingForKnownSeries) {
  if (!sg::test::kCountingMalloc) GTEST_SKIP() << "a sanitizer replaces the allocator; nothing to count";
  constexpr std::uint64_t kSec = 1'000'000'000ULL;
  constexpr std::uint64_t kBase = 1'700'000'000ULL * kSec;
  sg::StatsStore store({.window = 60s, .slots = 6});
  std::vector<std::string> names;
  for (int i = 0; i < 64; ++i) names.push_back("series." + std::to_string(i));
  // The same names through other pointers too: they must hit the cache after warm-up.
  std::vector<std::string> copies = names;
  std::vector<sg::Event> batch;
  auto fill = [&](std::uint64_t t) {
    batch.clear();
    for (std::size_t i = 0; i < names.size(); ++i) {
      for (std::uint64_t k = 1; k <= 8; ++k) {
        sg::Event e;
        e.name = (k % 2 ? names[i] : copies[i]).c_str();
        e.kind = sg::EventKind::function;
        e.start = t + k;
        e.duration = k * 100'000;  // the same buckets every sub-window
        e.status = k == 8 ? sg::Status::error : sg::Status::ok;
        batch.push_back(e);
      }
    }
  };
  // Warm-up: one full window, then one rotation so the free list has its size.
  for (std::uint64_t s = 0; s <= 70; s += 10) {
    fill(kBase + s * kSec);
    store.record(batch, kBase + s * kSec);
  }
  std::uint64_t allocations = 0;
  for (std::uint64_t s = 80; s < 800; s += 5) {
    fill(kBase + s * kSec);  // outside the count: building the batch is the caller's work
    const std::uint64_t before = sg::test::tl_alloc_calls;
    store.record(batch, kBase + s * kSec);
    allocations += sg::test::tl_alloc_calls - before;
  }
  EXPECT_EQ(allocations, 0u);
  const auto snap = store.snapshot(kBase + 795 * kSec);
  ASSERT_EQ(snap.entries.size(), 64u);
  EXPECT_EQ(snap.entries[0].count, 12u * 8u);  // 60 s of batches every 5 s
}

// A snapshot taken into the same StatsSnapshot again allocates nothing once it has held
// every name, holds what a new snapshot holds, and shrinks as names leave the window.
TEST(StatsAlloc, SnapshotIntoAKeptSnapshotAllocatesNothing) {
  constexpr std::uint64_t kSec = 1'000'000'000ULL;
  constexpr std::uint64_t kBase = 1'700'000'000ULL * kSec;
  sg::StatsStore store({.window = 60s, .slots = 6});
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i)
    names.push_back("a rather long series name, past the small-string buffer " + std::to_string(i));
  std::vector<sg::Event> batch;
  for (std::size_t i = 0; i < names.size(); ++i) {
    for (std::uint64_t k = 1; k <= 5; ++k) {
      sg::Event e;
      e.name = names[i].c_str();
      e.kind = i % 2 ? sg::EventKind::db : sg::EventKind::request;
      // Half the names only in the first sub-window, so that they leave the window later.
      e.start = kBase + (i % 2 ? 0 : 30 * kSec) + k;
      e.duration = (i + 1) * k * 1'000;
      e.status = k == 5 ? sg::Status::error : sg::Status::ok;
      batch.push_back(e);
    }
  }
  store.record(batch, kBase + 30 * kSec);
  const auto same = [](const sg::StatsSnapshot& a, const sg::StatsSnapshot& b) {
    EXPECT_EQ(a.window_start_unix_ns, b.window_start_unix_ns);
    EXPECT_EQ(a.window_end_unix_ns, b.window_end_unix_ns);
    ASSERT_EQ(a.entries.size(), b.entries.size());
    for (std::size_t i = 0; i < a.entries.size(); ++i) {
      const auto &x = a.entries[i], &y = b.entries[i];
      EXPECT_EQ(x.kind, y.kind);
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.count, y.count);
      EXPECT_EQ(x.errors, y.errors);
      EXPECT_EQ(x.p50_ns, y.p50_ns);
      EXPECT_EQ(x.p90_ns, y.p90_ns);
      EXPECT_EQ(x.p99_ns, y.p99_ns);
      EXPECT_EQ(x.max_ns, y.max_ns);
      EXPECT_EQ(x.mean_ns, y.mean_ns);
    }
  };
  sg::StatsSnapshot kept;
  store.snapshot(kept, kBase + 40 * kSec);
  same(kept, store.snapshot(kBase + 40 * kSec));
  EXPECT_EQ(kept.entries.size(), 40u);
  const std::uint64_t before = sg::test::tl_alloc_calls;
  store.snapshot(kept, kBase + 41 * kSec);
  if (sg::test::kCountingMalloc) {
    EXPECT_EQ(sg::test::tl_alloc_calls - before, 0u);
  }
  same(kept, store.snapshot(kBase + 41 * kSec));
  // 70 s on: the names recorded at the start have left the window, the others stay.
  store.snapshot(kept, kBase + 75 * kSec);
  EXPECT_EQ(kept.entries.size(), 20u);
  same(kept, store.snapshot(kBase + 75 * kSec));
}
