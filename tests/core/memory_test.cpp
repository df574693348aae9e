// Heap accounting through a replaced global operator new: the hot path allocates nothing
// after a thread's first event, and a stalled exporter cannot make memory grow.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace {
std::atomic<std::int64_t> g_live_bytes{0};
thread_local std::uint64_t tl_allocations = 0;

void* counted_alloc(std::size_t n) {
  // A size header in front of each block lets operator delete account for it.
  void* p = std::malloc(n + 16);
  if (p == nullptr) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  ++tl_allocations;
  return static_cast<char*>(p) + 16;
}
void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  char* base = static_cast<char*>(p) - 16;
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(*reinterpret_cast<std::size_t*>(base)),
                         std::memory_order_relaxed);
  std::free(base);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace sg = spyglass;
using sg::test::CollectingExporter;

TEST(HotPath, NoHeapAllocationAfterThreadsFirstEvent) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Session session({}, {sink});
  std::uint64_t allocations = ~0ULL;
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
    one_round();  // first events of this thread: producer token, names, SQL cache
    const std::uint64_t before = tl_allocations;
    for (int i = 0; i < 100'000; ++i) one_round();
    allocations = tl_allocations - before;
  });
  worker.join();
  EXPECT_EQ(allocations, 0u);
  ASSERT_TRUE(session.collector().flush());
  EXPECT_GT(sink->count(), 0u);
}

TEST(Memory, StalledExporterKeepsMemoryBounded) {
  const sg::CollectorOptions opts;  // defaults
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  const std::int64_t baseline = g_live_bytes.load();
  std::int64_t after_warmup = 0;
  {
    sg::Collector c(opts);
    c.add_exporter(stalled);
    sg::Event e;
    e.name = "flood";
    for (std::uint64_t i = 0; i < 100'000; ++i) c.enqueue(e);
    ASSERT_TRUE(sg::test::eventually([&] { return stalled->stalled(); }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    after_warmup = g_live_bytes.load() - baseline;
    for (std::uint64_t i = 0; i < 10'000'000; ++i) c.enqueue(e);
    ASSERT_TRUE(sg::test::eventually([&] { return c.counters().in_transit == 0; }));
    const std::int64_t grown = g_live_bytes.load() - baseline;
    // The documented bound (README, "Memory"): the transit queue, the batch being filled,
    // per exporter queue_size events plus 5 batch buffers, and 1 MiB of fixed overhead.
    const std::int64_t ev = sizeof(sg::Event);
    const std::int64_t bound = static_cast<std::int64_t>(opts.buffer_capacity) * ev +
                               static_cast<std::int64_t>(opts.transit_capacity) * ev +
                               static_cast<std::int64_t>(opts.buffer_capacity + 5 * opts.batch_max) * ev +
                               (1 << 20);
    EXPECT_LE(grown, bound) << "grown=" << grown << " bound=" << bound;
    // And nothing grows with the number of events.
    EXPECT_LE(grown - after_warmup, 64 * 1024) << "warmup=" << after_warmup << " grown=" << grown;
    const auto counters = c.counters();
    EXPECT_EQ(counters.offered, 10'100'000u);
    EXPECT_GT(counters.rejected + c.exporter_counters()[0].dropped, 9'000'000u);
    EXPECT_EQ(counters.offered, counters.dispatched + counters.rejected + counters.in_transit);
    stalled->release();
    c.shutdown();
  }
}
