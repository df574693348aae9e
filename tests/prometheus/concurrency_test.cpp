// Scrapes (HTTP and scrape()) and pushes while events arrive at full speed: every scrape
// is well-formed, counters never go back, and the final values are exact. Under TSan
// (the `threads` label of the tsan preset) these are also the data-race checks.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "events.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "support.hpp"

namespace {

using spyglass::Collector;
using spyglass::CollectorCounters;
using spyglass::Event;
using spyglass::EventKind;
using spyglass::Status;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::kMs;
using spyglass::test::make_event;
using spyglass::test::parse_exposition;
using spyglass::test::sample;

std::string metrics_url(const PrometheusExporter& exp) {
  return "http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics";
}

TEST(PrometheusConcurrency, ScrapeAndPushDuringHeavyEmission) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  // Exactly what the 200 names below need (100 functions of 30 series, 100 requests of
  // 32): the guard is checked on every new name, at its edge.
  o.max_series = 100 * 30 + 100 * 32;
  // Nobody listens there: each push collects everything, then fails to connect.
  o.push_url = "http://127.0.0.1:" + std::to_string(spyglass::test::free_port());
  o.push_interval = std::chrono::milliseconds(5);
  PrometheusExporter exp(o);

  std::deque<std::string> names;
  for (int i = 0; i < 200; ++i) names.push_back("op_" + std::to_string(i));
  std::vector<Event> batch;
  for (int i = 0; i < 1000; ++i) {
    Event e =
        make_event(i % 2 ? EventKind::function : EventKind::request,
                   names[static_cast<std::size_t>(i) % 200].c_str(), static_cast<std::uint64_t>(i) * 10'000);
    e.bytes_in = 1;
    batch.push_back(e);
  }

  // The writer goes on until both readers and the pusher have overlapped with it.
  constexpr int kMinBatches = 200;
  constexpr int kMinScrapes = 10;
  std::atomic<int> http_scrapes{0};
  std::atomic<int> direct_scrapes{0};
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  int batches = 0;
  std::thread writer([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (batches < kMinBatches ||
           (bad == 0 && std::chrono::steady_clock::now() < deadline &&
            (http_scrapes < kMinScrapes || direct_scrapes < kMinScrapes || exp.push_counters().failed < 2))) {
      exp.export_batch(batch);
      ++batches;
    }
    done = true;
  });

  const std::string key = R"(spyglass_events_total{kind="function",name="op_1",status="ok"})";
  const std::string count_key = R"(spyglass_event_duration_seconds_count{kind="function",name="op_1"})";
  const std::string inf_key =
      R"(spyglass_event_duration_seconds_bucket{kind="function",name="op_1",le="+Inf"})";
  const auto reader = [&](bool over_http, std::atomic<int>& scrapes) {
    double last = 0;
    while (!done) {
      std::string text;
      if (over_http) {
        const auto r = spyglass::test::http_get(metrics_url(exp));
        if (r.status != 200) {
          ++bad;
          return;
        }
        text = r.body;
      } else {
        text = exp.scrape();
      }
      const auto m = parse_exposition(text);
      const double v = sample(m, key);
      if (v >= 0) {
        if (v < last) ++bad;
        if (sample(m, count_key) != sample(m, inf_key)) ++bad;
        last = v;
      }
      ++scrapes;
    }
  };
  std::thread http_reader(reader, true, std::ref(http_scrapes));
  std::thread direct_reader(reader, false, std::ref(direct_scrapes));
  writer.join();
  http_reader.join();
  direct_reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GE(http_scrapes.load(), kMinScrapes);
  EXPECT_GE(direct_scrapes.load(), kMinScrapes);
  EXPECT_GE(exp.push_counters().failed, 2u);

  const auto m = parse_exposition(spyglass::test::http_get(metrics_url(exp)).body);
  // op_1 appears 5 times per batch (i = 1, 201, ...), all as functions.
  EXPECT_EQ(sample(m, key), 5.0 * batches);
  EXPECT_EQ(sample(m, count_key), 5.0 * batches);
  // 200 names alternate between two kinds: 100 per kind, all within the limit.
  EXPECT_EQ(exp.series_overflow(), 0u);
  EXPECT_EQ(exp.push_counters().ok, 0u);
}

/// The collector health values of a scrape (-1: absent): the collector's counters and
/// the Prometheus exporter's own (label exporter="prometheus").
struct Scraped {
  double offered, rejected, dispatched, in_transit, sent, failed, dropped, pending;
};

Scraped collector_values(const std::string& text) {
  const auto m = parse_exposition(text);
  const std::string own = R"({exporter="prometheus"})";
  return {sample(m, "spyglass_collector_events_offered_total"),
          sample(m, "spyglass_collector_events_rejected_total"),
          sample(m, "spyglass_collector_events_dispatched_total"),
          sample(m, "spyglass_collector_transit_events"),
          sample(m, "spyglass_exporter_events_sent_total" + own),
          sample(m, "spyglass_exporter_events_failed_total" + own),
          sample(m, "spyglass_exporter_events_dropped_total" + own),
          sample(m, "spyglass_exporter_pending_events" + own)};
}

TEST(PrometheusConcurrency, CollectorHealthScrapedWhileProducersRunAndShutDown) {
  spyglass::CollectorOptions co;
  co.transit_capacity = 1024;  // small enough that the producers overrun it now and then
  Collector collector(co);
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  o.collector = &collector;
  auto exp = std::make_shared<PrometheusExporter>(o);
  collector.add_exporter(exp);

  constexpr int kProducers = 2;
  constexpr int kEvents = 20'000;
  std::atomic<int> scrapes{0};
  std::atomic<int> bad{0};
  std::atomic<bool> stop_readers{false};
  const auto reader = [&] {
    Scraped last{0, 0, 0, 0, 0, 0, 0, 0};
    while (!stop_readers) {
      const auto r = spyglass::test::http_get(metrics_url(*exp));
      if (r.status != 200) {
        ++bad;
        return;
      }
      const Scraped s = collector_values(r.body);
      // Counters never go back, and nothing leaves before it came in.
      if (s.offered < last.offered || s.rejected < last.rejected || s.dispatched < last.dispatched ||
          s.sent < last.sent || s.failed < last.failed || s.dropped < last.dropped ||
          s.dispatched + s.rejected > s.offered || s.in_transit < 0 || s.pending < 0)
        ++bad;
      last = s;
      ++scrapes;
    }
  };
  std::vector<std::thread> readers;
  // Stops and joins the readers however the test ends.
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Join() {
      stop = true;
      for (auto& t : threads) t.join();
    }
  } join_readers{stop_readers, readers};
  readers.emplace_back(reader);
  readers.emplace_back(reader);

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (int i = 0; i < kEvents || (scrapes < 5 && bad == 0 && std::chrono::steady_clock::now() < deadline);
           ++i)
        collector.enqueue(make_event(EventKind::function, p == 0 ? "producer_0" : "producer_1", kMs,
                                     i % 7 == 0 ? Status::error : Status::ok));
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(collector.flush(std::chrono::seconds(60)));

  // Quiet now: a scrape shows exactly what the collector reports.
  const CollectorCounters before = collector.counters();
  const Scraped s = collector_values(spyglass::test::http_get(metrics_url(*exp)).body);
  const CollectorCounters after = collector.counters();
  const auto stage = collector.exporter_counters().at(0);
  EXPECT_EQ(before.offered, after.offered);
  EXPECT_EQ(before.dispatched, after.dispatched);
  EXPECT_EQ(s.offered, static_cast<double>(after.offered));
  EXPECT_EQ(s.rejected, static_cast<double>(after.rejected));
  EXPECT_EQ(s.dispatched, static_cast<double>(after.dispatched));
  EXPECT_EQ(s.in_transit, 0);
  EXPECT_EQ(s.sent, static_cast<double>(stage.sent));
  EXPECT_EQ(s.dropped, static_cast<double>(stage.dropped));
  EXPECT_EQ(s.failed, 0);  // export_batch never fails
  EXPECT_EQ(s.pending, 0);
  EXPECT_GE(after.offered, static_cast<std::uint64_t>(kProducers) * kEvents);
  EXPECT_EQ(after.offered, after.dispatched + after.rejected);

  // Shut down while the readers still scrape: the exporter stops reading the collector
  // and keeps serving the last values.
  ASSERT_TRUE(collector.shutdown(std::chrono::seconds(60)));
  const int scrapes_at_shutdown = scrapes;
  EXPECT_TRUE(spyglass::test::wait_until([&] { return scrapes >= scrapes_at_shutdown + 4 || bad > 0; }));
  EXPECT_EQ(bad.load(), 0);
  const Scraped frozen = collector_values(exp->scrape());
  EXPECT_EQ(frozen.offered, static_cast<double>(after.offered));
  EXPECT_EQ(frozen.dispatched, static_cast<double>(after.dispatched));

  // Every event the exporter was handed is in its series; under load its buffer may
  // have shed some (counted as dropped).
  const auto final_stage = collector.exporter_counters().at(0);
  EXPECT_EQ(final_stage.produced, after.dispatched);
  EXPECT_EQ(final_stage.sent + final_stage.dropped + final_stage.failed, final_stage.produced);
  EXPECT_EQ(final_stage.failed, 0u);
  EXPECT_EQ(final_stage.pending, 0u);
  const auto m = parse_exposition(exp->scrape());
  double recorded = 0;
  for (const char* name : {"producer_0", "producer_1"}) {
    for (const char* status : {"ok", "error"}) {
      const double v = sample(m, std::string(R"(spyglass_events_total{kind="function",name=")") + name +
                                     R"(",status=")" + status + R"("})");
      if (v > 0) recorded += v;
    }
  }
  EXPECT_EQ(recorded, static_cast<double>(final_stage.sent));
}

}  // namespace
