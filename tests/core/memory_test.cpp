// Heap accounting of everything the process takes from the C allocator (malloc, calloc,
// realloc, aligned; operator new goes through them): the hot path allocates nothing after
// a thread's first event, and a stalled exporter cannot make memory grow past a bound
// stated in bytes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "../support/counting_malloc.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;
using sg::test::g_live_bytes;
using sg::test::tl_alloc_calls;

TEST(HotPath, NoAllocationAfterThreadsFirstEvent) {
  if (!sg::test::kCountingMalloc) GTEST_SKIP() << "a sanitizer replaces the allocator; nothing to count";
  constexpr std::uint64_t kRounds = 100'000;
  constexpr std::uint64_t kEventsPerRound = 5;
  auto sink = std::make_shared<CollectingExporter>();
  sg::Session session({}, {sink});
  std::uint64_t allocations = ~0ULL;
  std::uint64_t first_round_allocations = 0;
  std::thread worker([&] {
    auto traced_fn = sg::traced("traced.fn", [](int x) { return x + 1; });
    const auto one_round = [&] {
      SPYGLASS_REQUEST(r, "/orders");
      r.status(200);
      SPYGLASS_SCOPE("handler");
      SPYGLASS_FUNCTION();
      SPYGLASS_QUERY(q, "SELECT * FROM orders WHERE id = 17");
      q.rows(1);
      (void)traced_fn(1);
    };
    const std::uint64_t start = tl_alloc_calls;
    one_round();  // first events of this thread: producer slot, names, SQL cache
    const std::uint64_t before = tl_alloc_calls;
    first_round_allocations = before - start;
    for (std::uint64_t i = 0; i < kRounds; ++i) one_round();
    allocations = tl_alloc_calls - before;
  });
  worker.join();
  EXPECT_EQ(allocations, 0u);  // no malloc, calloc, realloc or operator new at all
  // The counter sees this thread's allocations: its first events did allocate.
  EXPECT_GT(first_round_allocations, 0u);
  ASSERT_TRUE(session.collector().shutdown());
  const auto c = session.collector().counters();
  EXPECT_EQ(c.offered, (kRounds + 1) * kEventsPerRound);
  EXPECT_EQ(c.offered, c.rejected + c.dispatched);
  const auto e = session.collector().exporter_counters().at(0);
  EXPECT_EQ(e.produced, c.dispatched);
  EXPECT_EQ(e.produced, e.sent + e.dropped);
  EXPECT_EQ(sink->count(), e.sent);
}

// The bound, in bytes, for one collector with one exporter (sizeof(Event) = 112):
//   transit_capacity x sizeof(Event)   the lock-free hand-off, preallocated in blocks
// + buffer_capacity x sizeof(Event)    the exporter's ring (per exporter)
// + kFixedOverhead                     everything that does not scale with those two:
//     2 x 4096 x sizeof(Event)  the collector thread's drain buffer and the copy of the
//                               sampled events it hands to span exporters (896 KiB);
//     batch_max x sizeof(Event) the stage's batch (56 KiB at 512);
//     the transit's block headers and one producer's block index (1024 entries), the
//     StatsStore's first series and chunks, thread objects and malloc's own rounding.
// Measured on Debian 12 / glibc 2.36: about 1.0 MiB in all; 1.25 MiB leaves room for
// allocator rounding elsewhere.
constexpr std::int64_t kFixedOverhead = 1'310'720;

TEST(Memory, StalledExporterKeepsMemoryBounded) {
  if (!sg::test::kCountingMalloc) GTEST_SKIP() << "a sanitizer replaces the allocator; nothing to count";
  const sg::CollectorOptions opts;  // defaults
  const std::int64_t ev = sizeof(sg::Event);
  const std::int64_t bound = static_cast<std::int64_t>(opts.transit_capacity) * ev +
                             static_cast<std::int64_t>(opts.buffer_capacity) * ev + kFixedOverhead;
  const std::int64_t baseline = g_live_bytes.load();
  {
    auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
    sg::Collector c(opts);
    c.add_exporter(stalled);
    sg::Event e;
    e.name = "flood";
    ASSERT_TRUE(c.enqueue(e));  // starts the engine: transit, ring, threads
    ASSERT_TRUE(sg::test::eventually([&] { return stalled->stalled(); }));
    const std::int64_t started = g_live_bytes.load() - baseline;
    for (std::uint64_t i = 1; i < 10'000'000; ++i) c.enqueue(e);
    ASSERT_TRUE(sg::test::eventually([&] { return c.counters().in_transit == 0; }));
    const std::int64_t grown = g_live_bytes.load() - baseline;
    std::printf("started: %lld B, after 10M events: %lld B, bound %lld B (fixed part %lld B)\n",
                static_cast<long long>(started), static_cast<long long>(grown), static_cast<long long>(bound),
                static_cast<long long>(grown - bound + kFixedOverhead));
    EXPECT_LE(started, bound);
    EXPECT_LE(grown, bound) << "grown=" << grown << " bound=" << bound;
    // Everything was allocated up front: ten million events later, nothing grew with
    // their number. (Time may add one stats sub-window: one block of 16 histogram
    // chunks, 4 KiB, and its bookkeeping, if the flood crosses a minute boundary.)
    EXPECT_LE(grown - started, 16 * 1024) << "started=" << started << " grown=" << grown;
    const auto counters = c.counters();
    EXPECT_EQ(counters.offered, 10'000'000u);
    EXPECT_EQ(counters.offered, counters.dispatched + counters.rejected + counters.in_transit);
    const auto per = c.exporter_counters().at(0);
    EXPECT_EQ(per.produced, counters.dispatched);
    EXPECT_LE(per.pending, opts.buffer_capacity + opts.batch_max);
    EXPECT_EQ(per.produced, per.dropped + per.pending);
    stalled->release();
    EXPECT_TRUE(c.shutdown());
  }
  // And it is all given back (the exporter's copy of what it received included).
  EXPECT_LE(g_live_bytes.load() - baseline, 64 * 1024);
}
