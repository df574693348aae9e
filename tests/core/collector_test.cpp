#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>
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
  // Read the counters while producers run: monotonic, and never more out than in beyond
  // the events in flight (documented: exact when quiet, under load within the events in
  // flight). A producer counts its event just after handing it over, so each producer
  // may have one event already dispatched but not yet counted as offered.
  sg::CollectorCounters last;
  while (running.load() > 0) {
    const auto now = c.counters();
    EXPECT_GE(now.offered, last.offered);
    EXPECT_GE(now.dispatched, last.dispatched);
    EXPECT_GE(now.rejected, last.rejected);
    EXPECT_LE(now.dispatched + now.rejected, now.offered + kThreads);
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
  constexpr std::uint64_t kCapacity = 2048;
  constexpr std::uint64_t kBatch = 8;
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  auto good = std::make_shared<CollectingExporter>("good");
  sg::Collector c({.buffer_capacity = kCapacity, .batch_max = kBatch, .flush_interval = 1ms});
  c.add_exporter(stalled);
  c.add_exporter(good);
  // Waves the good exporter can keep up with; the stalled one falls further behind each time.
  std::uint64_t seq = 0;
  for (int wave = 0; wave < 10; ++wave) {
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(c.enqueue(make_event(seq++)));
    ASSERT_TRUE(eventually([&] { return good->count() == seq; })) << "wave " << wave;
  }
  ASSERT_TRUE(eventually([&] { return stalled->stalled(); }));
  const auto per = c.exporter_counters();
  ASSERT_EQ(per.size(), 2u);
  // The stalled exporter holds the batch it is stuck on (in flight, never evicted: 1 to
  // batch_max events) plus a full buffer of the newest events; everything older was shed.
  EXPECT_EQ(per[0].produced, seq);
  EXPECT_EQ(per[0].sent, 0u);
  EXPECT_EQ(per[0].failed, 0u);
  EXPECT_GE(per[0].pending, kCapacity);
  EXPECT_LE(per[0].pending, kCapacity + kBatch);
  EXPECT_EQ(per[0].dropped, seq - per[0].pending);
  // The good one lost nothing.
  EXPECT_EQ(per[1].produced, seq);
  EXPECT_EQ(per[1].sent, seq);
  EXPECT_EQ(per[1].dropped, 0u);
  EXPECT_EQ(per[1].pending, 0u);
  // Released, the stalled exporter delivers exactly what it held, in order: the batch it
  // was stuck on, then the newest events, ending with the last one. The stuck batch was
  // taken when the stage first ran (on a loaded machine possibly late, from a full
  // buffer): at most one gap, right after it.
  stalled->release();
  ASSERT_TRUE(c.flush());
  const auto kept = stalled->events();
  ASSERT_EQ(kept.size(), per[0].pending);
  std::size_t gaps = 0, gap_at = 0;
  for (std::size_t i = 1; i < kept.size(); ++i) {
    ASSERT_LT(kept[i - 1].rows, kept[i].rows) << i;
    if (kept[i].rows != kept[i - 1].rows + 1) {
      ++gaps;
      gap_at = i;
    }
  }
  EXPECT_LE(gaps, 1u);
  EXPECT_LE(gap_at, kBatch);
  EXPECT_EQ(kept.back().rows, seq - 1);
  ASSERT_TRUE(c.shutdown());
  const auto after = c.exporter_counters();
  EXPECT_EQ(after[0].sent, per[0].pending);
  EXPECT_EQ(after[0].dropped, per[0].dropped);
  EXPECT_EQ(after[0].pending, 0u);
  const auto counters = c.counters();
  EXPECT_EQ(counters.offered, seq);
  EXPECT_EQ(counters.dispatched, seq);
  expect_balanced(counters);
}

TEST(Collector, DropNewestKeepsTheOldest) {
  auto sink = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  sg::Collector keep_old(
      {.buffer_capacity = 32, .batch_max = 32, .flush_interval = 10min, .drop_oldest = false});
  keep_old.add_exporter(sink);
  // One full batch that the exporter gets stuck on, then a flood while it is stuck.
  for (std::uint64_t i = 0; i < 32; ++i) ASSERT_TRUE(keep_old.enqueue(make_event(i)));
  ASSERT_TRUE(eventually([&] { return sink->stalled(); }));
  for (std::uint64_t i = 32; i < 200; ++i) ASSERT_TRUE(keep_old.enqueue(make_event(i)));
  ASSERT_TRUE(eventually([&] { return keep_old.counters().dispatched == 200; }));
  // The stuck batch (0..31) is in flight; the buffer took the next 32 and refused the rest.
  auto per = keep_old.exporter_counters();
  EXPECT_EQ(per[0].produced, 200u);
  EXPECT_EQ(per[0].pending, 64u);
  EXPECT_EQ(per[0].dropped, 136u);
  sink->release();
  ASSERT_TRUE(keep_old.flush());
  const auto events = sink->events();
  ASSERT_EQ(events.size(), 64u);
  for (std::uint64_t i = 0; i < 64; ++i) EXPECT_EQ(events[i].rows, i);
  const auto counters = keep_old.counters();
  EXPECT_EQ(counters.offered, 200u);
  EXPECT_EQ(counters.rejected, 0u);
  per = keep_old.exporter_counters();
  EXPECT_EQ(per[0].sent, 64u);
  EXPECT_EQ(per[0].dropped, 136u);
  EXPECT_EQ(per[0].pending, 0u);
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
  EXPECT_EQ(per[1].name, "throwing");
  EXPECT_EQ(per[2].name, "good");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(per[i].produced, 100u);
    EXPECT_EQ(per[i].failed, 100u);
    EXPECT_EQ(per[i].sent, 0u);
    EXPECT_EQ(per[i].dropped, 0u);
    EXPECT_EQ(per[i].pending, 0u);
  }
  EXPECT_EQ(per[2].sent, 100u);
  EXPECT_EQ(per[2].failed, 0u);
  EXPECT_EQ(failing->calls(), 10);  // one call per batch of 10, no retry by the collector
  EXPECT_EQ(throwing->calls(), 10);
  EXPECT_TRUE(c.shutdown());  // a failing exporter is not a late one
  EXPECT_EQ(throwing->shutdowns(), 1);
}

TEST(Collector, StalledExporterNeverBlocksProducersAndShutdownReturns) {
  constexpr std::uint64_t kEvents = 200'000;
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  auto good = std::make_shared<CollectingExporter>("good");
  auto c = std::make_unique<sg::Collector>(sg::CollectorOptions{.buffer_capacity = 1 << 18, .batch_max = 16});
  c->add_exporter(stalled);
  c->add_exporter(good);
  // Would hang forever if producers waited on the exporter.
  for (std::uint64_t i = 0; i < kEvents; ++i) c->enqueue(make_event(i));
  ASSERT_TRUE(eventually([&] {
    const auto cc = c->counters();
    return cc.in_transit == 0 && good->count() == cc.dispatched;
  }));
  ASSERT_TRUE(stalled->stalled());
  const auto collector = c->counters();
  EXPECT_EQ(collector.offered, kEvents);
  expect_balanced(collector);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c->shutdown(200ms));  // the stalled one is abandoned, shutdown still returns
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms + 2s);
  const auto per = c->exporter_counters();
  // Abandoned: its batch in flight counts as failed, the rest of its buffer as dropped.
  EXPECT_EQ(per[0].produced, collector.dispatched);
  EXPECT_EQ(per[0].sent, 0u);
  EXPECT_GE(per[0].failed, 1u);
  EXPECT_LE(per[0].failed, 16u);
  EXPECT_EQ(per[0].pending, 0u);
  EXPECT_EQ(per[0].failed + per[0].dropped, per[0].produced);
  EXPECT_EQ(per[1].sent, good->count());
  EXPECT_EQ(per[1].sent, collector.dispatched);
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
    // Child: a fresh engine starts on first use; events flow to the exporter copy.
    const std::size_t before = sink->count();
    for (std::uint64_t i = 0; i < 100; ++i) c.enqueue(make_event(1000 + i));
    const bool flushed = c.flush(10s);
    // It forgot the parent's events in after_fork_child() and received the child's.
    const bool ok = before == 0 && flushed && sink->count() == 100 && sink->forks() == 1;
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
  constexpr std::size_t kPerRound = 200;
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
      // Each session lives until its exporter got events from the running producers.
      ASSERT_TRUE(eventually([&] { return sink->count() >= kPerRound; })) << "round " << round;
    }
    EXPECT_EQ(sink->shutdowns(), 1);
    const auto events = sink->events();
    ASSERT_GE(events.size(), kPerRound);
    std::set<sg::SpanId> spans;
    for (const auto& e : events) {
      const std::string_view name = e.name;
      ASSERT_TRUE(name == "churn.outer" || name == "churn.inner") << name;
      ASSERT_TRUE(e.trace_id.valid());
      ASSERT_NE(e.span_id, 0u);
      ASSERT_NE(e.thread_id, 0u);
      ASSERT_EQ(e.flags & sg::Event::kFlagTicks, 0);
      spans.insert(e.span_id);
    }
    EXPECT_EQ(spans.size(), events.size());  // each span delivered once
  }
  stop = true;
  for (auto& p : producers) p.join();
}

// --- Bounded shutdown --------------------------------------------------------------

namespace {
// Holds its first batch until begin_shutdown() says the collector is stopping, then
// delivers it and everything after it at once: an exporter that honours the deadline.
class WaitsForShutdownExporter : public sg::Exporter {
 public:
  bool export_batch(std::span<const sg::Event> events) override {
    std::unique_lock<std::mutex> lock(m_);
    in_call_ = true;
    cv_.wait(lock, [&] { return deadline_set_; });
    received_ += events.size();
    return true;
  }
  std::chrono::milliseconds shutdown_timeout() const override { return 60s; }
  void begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept override {
    std::lock_guard<std::mutex> lock(m_);
    deadline_ = deadline;
    deadline_set_ = true;
    cv_.notify_all();
  }
  std::string_view name() const override { return "waits-for-shutdown"; }
  bool in_call() {
    std::lock_guard<std::mutex> lock(m_);
    return in_call_;
  }
  std::uint64_t received() {
    std::lock_guard<std::mutex> lock(m_);
    return received_;
  }
  std::chrono::steady_clock::time_point deadline() {
    std::lock_guard<std::mutex> lock(m_);
    return deadline_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool in_call_ = false;
  bool deadline_set_ = false;
  std::chrono::steady_clock::time_point deadline_{};
  std::uint64_t received_ = 0;
};

// Blocks in its first export_batch() until the test releases it, whatever the deadline.
class IgnoresDeadlineExporter : public sg::Exporter {
 public:
  explicit IgnoresDeadlineExporter(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  bool export_batch(std::span<const sg::Event> events) override {
    std::unique_lock<std::mutex> lock(m_);
    ++calls_;
    in_call_ = true;
    cv_.wait(lock, [&] { return released_; });
    in_call_ = false;
    received_ += events.size();
    return true;
  }
  std::chrono::milliseconds shutdown_timeout() const override { return timeout_; }
  void shutdown() override {
    std::lock_guard<std::mutex> lock(m_);
    ++shutdowns_;
  }
  std::string_view name() const override { return "ignores-deadline"; }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    released_ = true;
    cv_.notify_all();
  }
  bool in_call() {
    std::lock_guard<std::mutex> lock(m_);
    return in_call_;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(m_);
    return calls_;
  }
  std::uint64_t received() {
    std::lock_guard<std::mutex> lock(m_);
    return received_;
  }

 private:
  const std::chrono::milliseconds timeout_;
  std::mutex m_;
  std::condition_variable cv_;
  bool released_ = false;
  bool in_call_ = false;
  int calls_ = 0;
  int shutdowns_ = 0;
  std::uint64_t received_ = 0;
};

bool same(const sg::ExporterCounters& a, const sg::ExporterCounters& b) {
  return a.name == b.name && a.produced == b.produced && a.sent == b.sent && a.failed == b.failed &&
         a.dropped == b.dropped && a.pending == b.pending;
}
}  // namespace

TEST(Shutdown, ExporterThatHonoursTheDeadlineLosesNothing) {
  auto waits = std::make_shared<WaitsForShutdownExporter>();
  sg::Collector c({.batch_max = 10, .flush_interval = 10min});  // only full batches until shutdown
  c.add_exporter(waits);
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(c.enqueue(make_event(i)));
  ASSERT_TRUE(eventually([&] { return waits->in_call() && c.counters().dispatched == 100; }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.shutdown());
  const auto took = std::chrono::steady_clock::now() - t0;
  // begin_shutdown() carried its own timeout as the deadline, and released the exporter
  // long before it: shutdown did not sit out the 60 s.
  EXPECT_GE(waits->deadline(), t0 + 60s);
  EXPECT_LE(waits->deadline(), std::chrono::steady_clock::now() + 60s);
  EXPECT_LT(took, 30s);
  EXPECT_EQ(waits->received(), 100u);
  const auto per = c.exporter_counters().at(0);
  EXPECT_EQ(per.produced, 100u);
  EXPECT_EQ(per.sent, 100u);
  EXPECT_EQ(per.failed + per.dropped + per.pending, 0u);
}

TEST(Shutdown, CallerTimeoutCapsTheExportersOwn) {
  auto waits = std::make_shared<WaitsForShutdownExporter>();
  sg::Collector c({.batch_max = 10, .flush_interval = 10min});  // only full batches until shutdown
  c.add_exporter(waits);
  for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(c.enqueue(make_event(i)));
  ASSERT_TRUE(eventually([&] { return waits->in_call(); }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.shutdown(3s));
  EXPECT_LE(waits->deadline(), t0 + 3s + 1s);  // the exporter was told the capped deadline
  EXPECT_EQ(c.exporter_counters().at(0).sent, 20u);
}

TEST(Shutdown, ExporterThatIgnoresTheDeadlineIsAbandonedAtItsTimeout) {
  constexpr auto kTimeout = 300ms;
  auto stuck = std::make_shared<IgnoresDeadlineExporter>(kTimeout);
  auto good = std::make_shared<CollectingExporter>("good");
  // Only full batches of 10 until shutdown, so the batch in flight is exactly 10 events.
  auto c = std::make_unique<sg::Collector>(sg::CollectorOptions{.batch_max = 10, .flush_interval = 10min});
  c->add_exporter(stuck);
  c->add_exporter(good);
  for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(c->enqueue(make_event(i)));
  // One batch of 10 is in flight in the stuck exporter, the other 90 wait behind it.
  ASSERT_TRUE(eventually([&] { return stuck->in_call() && c->counters().dispatched == 100; }));
  ASSERT_TRUE(eventually([&] { return good->count() == 100; }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c->shutdown());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, kTimeout + 2s);
  const auto first = c->exporter_counters();
  const auto second = c->exporter_counters();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(same(first[0], second[0]) && same(first[1], second[1]));  // final
  EXPECT_EQ(first[0].produced, 100u);
  EXPECT_EQ(first[0].sent, 0u);
  EXPECT_EQ(first[0].failed, 10u);   // the batch in flight
  EXPECT_EQ(first[0].dropped, 90u);  // the rest of its buffer
  EXPECT_EQ(first[0].pending, 0u);
  EXPECT_EQ(first[1].sent, 100u);  // the other exporter finished normally
  EXPECT_EQ(good->shutdowns(), 1);
  // Released late, the abandoned exporter finishes its call; the counters stay final.
  stuck->release();
  ASSERT_TRUE(eventually([&] { return stuck->received() == 10u; }));
  ASSERT_TRUE(eventually([&] { return !stuck->in_call(); }));
  const auto later = c->exporter_counters();
  EXPECT_TRUE(same(first[0], later[0]) && same(first[1], later[1]));
  EXPECT_EQ(stuck->calls(), 1);  // not handed the rest of its buffer after it was abandoned
  c.reset();
}

TEST(Session, FlushCompletesWhileThreadsKeepRecording) {
  // flush() promises what was enqueued before the call, not an empty transit: threads
  // that never pause must not keep it from returning.
  auto sink = std::make_shared<CollectingExporter>();
  sg::Session session({}, {sink});
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t)
    producers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        SPYGLASS_SCOPE("busy.outer");
        SPYGLASS_SCOPE("busy.inner");
      }
    });
  ASSERT_TRUE(eventually([&] { return sink->count() > 0; }));
  int completed = 0;
  for (int i = 0; i < 5; ++i) completed += session.collector().flush(10s) ? 1 : 0;
  stop = true;
  for (auto& p : producers) p.join();
  EXPECT_EQ(completed, 5);
  EXPECT_TRUE(session.collector().flush(10s));  // and once they stopped
}
