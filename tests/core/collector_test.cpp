#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/scope.hpp"
#include "spyglass/session.hpp"
#include "spyglass/stats.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;
using sg::test::eventually;
using namespace std::chrono_literals;

namespace {
sg::Event make_event(std::uint64_t seq, const char* name = "op") {
  sg::Event e;
  e.kind = sg::EventKind::function;
  e.name = name;
  e.rows = seq;  // carries a sequence number through the pipeline
  e.start = 1'700'000'000'000'000'000ULL + seq;
  e.duration = 1000;
  e.span_id = seq + 1;
  return e;
}

void expect_balanced(const sg::CollectorCounters& c) {
  EXPECT_EQ(c.offered, c.dispatched + c.rejected + c.pre_fork + c.in_transit)
      << "offered=" << c.offered << " dispatched=" << c.dispatched << " rejected=" << c.rejected
      << " in_transit=" << c.in_transit;
}
}  // namespace

TEST(Collector, DeliversInBatchesAndCounts) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Collector c({.buffer_capacity = 1024, .batch_max = 50});
  c.add_exporter(sink);
  for (std::uint64_t i = 0; i < 500; ++i) ASSERT_TRUE(c.enqueue(make_event(i)));
  ASSERT_TRUE(c.flush());
  const auto events = sink->events();
  ASSERT_EQ(events.size(), 500u);
  for (std::uint64_t i = 0; i < 500; ++i) EXPECT_EQ(events[i].rows, i);  // one producer: order kept
  EXPECT_LE(sink->max_batch(), 50u);
  EXPECT_GE(sink->flushes(), 1);
  const auto counters = c.counters();
  EXPECT_EQ(counters.offered, 500u);
  EXPECT_EQ(counters.dispatched, 500u);
  EXPECT_EQ(counters.rejected, 0u);
  EXPECT_EQ(counters.in_transit, 0u);
  c.shutdown();
  EXPECT_EQ(sink->shutdowns(), 1);
}

TEST(Collector, PartialBatchIsExportedAfterFlushInterval) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Collector c({.batch_max = 128, .flush_interval = 20ms});
  c.add_exporter(sink);
  c.enqueue(make_event(1));
  EXPECT_TRUE(eventually([&] { return sink->count() == 1; }, 5s));
}

namespace {
// Counts events and checks that each producer's events arrive in the order it sent them
// (drops may leave gaps, reordering may not).
class OrderCheckingExporter : public sg::Exporter {
 public:
  bool export_batch(std::span<const sg::Event> events) override {
    for (const auto& e : events) {
      auto& last = last_seq_[e.thread_id];
      if (seen_[e.thread_id] && e.rows <= last) ++out_of_order_;
      seen_[e.thread_id] = true;
      last = e.rows;
    }
    count_.fetch_add(events.size());
    return true;
  }
  std::string_view name() const override { return "order-checking"; }
  std::uint64_t count() const { return count_.load(); }
  std::uint64_t out_of_order() const { return out_of_order_; }  // read after shutdown only

 private:
  std::map<std::uint32_t, std::uint64_t> last_seq_;
  std::map<std::uint32_t, bool> seen_;
  std::uint64_t out_of_order_ = 0;
  std::atomic<std::uint64_t> count_{0};
};
}  // namespace

TEST(Collector, StressManyThreadsAccountsForEveryEvent) {
  constexpr std::uint32_t kThreads = 8;
  constexpr std::uint64_t kPerThread = 1'000'000;
  auto sink = std::make_shared<OrderCheckingExporter>();
  sg::Collector c;
  c.add_exporter(sink);
  std::atomic<std::uint32_t> running{kThreads};
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        sg::Event e = make_event(i);
        e.thread_id = t;
        c.enqueue(e);
      }
      running.fetch_sub(1);
    });
  }
  // Read the counters while producers run: monotonic, and never more out than in.
  sg::CollectorCounters last;
  while (running.load() > 0) {
    const auto now = c.counters();
    EXPECT_GE(now.offered, last.offered);
    EXPECT_GE(now.dispatched, last.dispatched);
    EXPECT_GE(now.rejected, last.rejected);
    EXPECT_LE(now.dispatched + now.rejected, now.offered);
    last = now;
    std::this_thread::sleep_for(2ms);
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(c.flush(120s));
  const auto counters = c.counters();
  EXPECT_EQ(counters.offered, kThreads * kPerThread);
  EXPECT_EQ(counters.in_transit, 0u);
  expect_balanced(counters);
  ASSERT_TRUE(c.shutdown(60s));
  // Everything the collector passed on reached the exporter's stage, and the stage
  // accounts for each event: written, or dropped because the exporter fell behind.
  const auto stage = c.exporter_counters().at(0);
  EXPECT_EQ(stage.produced, counters.dispatched);
  EXPECT_EQ(stage.sent + stage.dropped + stage.failed, stage.produced);
  EXPECT_EQ(stage.pending, 0u);
  EXPECT_EQ(sink->count(), stage.sent);
  EXPECT_GT(sink->count(), 0u);
  EXPECT_EQ(sink->out_of_order(), 0u);
}

TEST(Collector, StalledExporterShedsOldestWithoutHurtingOthers) {
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  auto good = std::make_shared<CollectingExporter>("good");
  sg::Collector c({.buffer_capacity = 2048, .batch_max = 8, .flush_interval = 1ms});
  c.add_exporter(stalled);
  c.add_exporter(good);
  // Waves the good exporter can keep up with; the stalled one falls further behind each time.
  std::uint64_t seq = 0;
  for (int wave = 0; wave < 10; ++wave) {
    for (int i = 0; i < 1000; ++i) c.enqueue(make_event(seq++));
    ASSERT_TRUE(eventually([&] { return good->count() == seq; })) << "wave " << wave;
  }
  const auto per = c.exporter_counters();
  EXPECT_TRUE(stalled->stalled());
  EXPECT_GT(per[0].dropped, 7000u);       // shed its oldest batches
  EXPECT_LE(per[0].pending, 2048u + 8u);  // queue_size plus the batch it is stuck on
  EXPECT_EQ(per[0].produced, per[0].dropped + per[0].pending);
  EXPECT_EQ(per[1].dropped, 0u);  // the good one lost nothing
  EXPECT_EQ(per[1].sent, seq);
  // The stalled exporter kept the newest events: its pending tail ends with the last one.
  stalled->release();
  ASSERT_TRUE(c.flush());
  const auto kept = stalled->events();
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back().rows, seq - 1);
  EXPECT_EQ(kept.front().rows, 0u);  // the batch it was stuck on when it stalled
  c.shutdown();
  expect_balanced(c.counters());
}

TEST(Collector, DropNewestKeepsTheOldest) {
  auto sink = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  sg::Collector keep_old(
      {.buffer_capacity = 32, .batch_max = 32, .flush_interval = 10s, .drop_oldest = false});
  keep_old.add_exporter(sink);
  // One batch that the exporter gets stuck on, then a flood while it is stuck.
  for (std::uint64_t i = 0; i < 32; ++i) keep_old.enqueue(make_event(i));
  ASSERT_TRUE(eventually([&] { return sink->stalled(); }));
  for (std::uint64_t i = 32; i < 200; ++i) keep_old.enqueue(make_event(i));
  ASSERT_TRUE(eventually([&] { return keep_old.counters().dispatched >= 192; }));
  sink->release();
  ASSERT_TRUE(keep_old.flush());
  const auto events = sink->events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().rows, 0u);  // the first events were kept, later ones dropped
  // The stuck batch (0..31) and the one buffered behind it (32..63) were kept; later full
  // batches were shed while the exporter was stuck.
  ASSERT_GE(events.size(), 64u);
  for (std::uint64_t i = 0; i < 64; ++i) EXPECT_EQ(events[i].rows, i);
  EXPECT_LT(events.size(), 200u);
  const auto counters = keep_old.counters();
  EXPECT_EQ(counters.offered, 200u);
  EXPECT_EQ(counters.dispatched + counters.rejected, 200u);
  const auto per = keep_old.exporter_counters();
  EXPECT_EQ(sink->count(), per[0].sent);
  EXPECT_EQ(per[0].sent + per[0].dropped, counters.dispatched);
}

TEST(Collector, FailingAndThrowingExportersAreCountedAndIsolated) {
  auto failing = std::make_shared<CollectingExporter>("failing", CollectingExporter::Mode::fail);
  auto throwing = std::make_shared<CollectingExporter>("throwing", CollectingExporter::Mode::throw_error);
  auto good = std::make_shared<CollectingExporter>("good");
  sg::Collector c({.batch_max = 10});
  c.add_exporter(failing);
  c.add_exporter(throwing);
  c.add_exporter(good);
  for (std::uint64_t i = 0; i < 100; ++i) c.enqueue(make_event(i));
  ASSERT_TRUE(c.flush());
  EXPECT_EQ(good->count(), 100u);
  const auto per = c.exporter_counters();
  ASSERT_EQ(per.size(), 3u);
  EXPECT_EQ(per[0].name, "failing");
  EXPECT_EQ(per[0].failed, 100u);
  EXPECT_EQ(per[1].failed, 100u);
  EXPECT_EQ(per[2].sent, 100u);
  EXPECT_EQ(per[0].failed + per[1].failed, 200u);
}

TEST(Collector, StalledExporterNeverBlocksProducersAndShutdownReturns) {
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  auto good = std::make_shared<CollectingExporter>("good");
  auto c = std::make_unique<sg::Collector>(sg::CollectorOptions{.buffer_capacity = 1 << 20, .batch_max = 16});
  c->add_exporter(stalled);
  c->add_exporter(good);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < 200'000; ++i) c->enqueue(make_event(i));
  const auto producer_time = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(producer_time, 10s);  // would hang forever if producers waited on the exporter
  ASSERT_TRUE(
      eventually([&] { return c->counters().in_transit == 0 && good->count() == c->counters().dispatched; }));
  EXPECT_FALSE(c->shutdown(200ms));  // the stalled one is abandoned, shutdown still returns
  const auto per = c->exporter_counters();
  EXPECT_EQ(per[1].sent, good->count());
  c.reset();
  stalled->release();  // let the abandoned worker finish; it holds its own references
}

TEST(Collector, ShutdownDrainsEverything) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Collector c({.batch_max = 1000, .flush_interval = 10s});
  c.add_exporter(sink);
  for (std::uint64_t i = 0; i < 777; ++i) c.enqueue(make_event(i));
  EXPECT_TRUE(c.shutdown());
  EXPECT_EQ(sink->count(), 777u);
  EXPECT_EQ(sink->shutdowns(), 1);
  EXPECT_TRUE(c.shutdown());  // idempotent
}

TEST(Collector, StatsAreFedByTheCollector) {
  sg::Collector c;
  for (std::uint64_t i = 0; i < 100; ++i) {
    sg::Event e = make_event(i, "stats.op");
    e.start = sg::clock::realtime_ns();
    e.duration = 1000 * (i + 1);
    if (i % 10 == 0) e.status = sg::Status::error;
    c.enqueue(e);
  }
  ASSERT_TRUE(c.flush());
  const auto snap = c.stats().snapshot();
  const sg::StatsEntry* entry = nullptr;
  for (const auto& e : snap.entries)
    if (e.name == "stats.op") entry = &e;
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->count, 100u);
  EXPECT_EQ(entry->errors, 10u);
  EXPECT_NEAR(entry->p50_ns, 50'500, 50'500 * 0.02);
  EXPECT_NEAR(entry->max_ns, 100'000, 100'000 * 0.01);
}

TEST(Collector, WorksInForkedChild) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Collector c({.batch_max = 10});
  c.add_exporter(sink);
  for (std::uint64_t i = 0; i < 50; ++i) c.enqueue(make_event(i));
  ASSERT_TRUE(c.flush());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: the collector's threads were restarted; events flow to the exporter copy.
    const std::size_t before = sink->count();
    for (std::uint64_t i = 0; i < 100; ++i) c.enqueue(make_event(1000 + i));
    const bool flushed = c.flush(10s);
    const bool ok = flushed && sink->count() == before + 100 && sink->forks() == 1;
    _exit(ok ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent keeps working too.
  for (std::uint64_t i = 0; i < 50; ++i) c.enqueue(make_event(50 + i));
  ASSERT_TRUE(c.flush());
  EXPECT_EQ(sink->count(), 100u);
  EXPECT_EQ(sink->forks(), 0);
}

TEST(Session, CreatedAndDestroyedWhileThreadsRecord) {
  // Producers record continuously while sessions come and go: no crash, no use after
  // free (ASan/TSan runs), and each session's exporter receives only complete events.
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        SPYGLASS_SCOPE("churn.outer");
        SPYGLASS_SCOPE("churn.inner");
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    auto sink = std::make_shared<CollectingExporter>();
    {
      sg::Session session({}, {sink});
      std::this_thread::sleep_for(5ms);
    }
    for (const auto& e : sink->events()) {
      const std::string_view name = e.name;
      ASSERT_TRUE(name == "churn.outer" || name == "churn.inner");
      ASSERT_TRUE(e.trace_id.valid());
      ASSERT_NE(e.span_id, 0u);
    }
  }
  stop = true;
  for (auto& p : producers) p.join();
}
