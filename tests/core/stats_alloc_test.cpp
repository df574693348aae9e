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
