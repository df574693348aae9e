// The exporter behind a real Collector: events arrive through it, and its health is
// exported as spyglass_collector_*, value for value what Collector::counters() says.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

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

/// Fails every other batch: by returning false, or by throwing.
class FlakyExporter final : public spyglass::Exporter {
 public:
  bool export_batch(std::span<const Event>) override {
    const int n = ++calls_;
    if (n % 4 == 2) return false;
    if (n % 4 == 0) throw std::runtime_error("flaky exporter");
    return true;
  }
  [[nodiscard]] std::string_view name() const override { return "flaky"; }

 private:
  std::atomic<int> calls_{0};
};

/// The spyglass_collector_* samples of `text` next to the collector's own numbers.
void expect_scrape_matches(const std::string& text, const CollectorCounters& c) {
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, "spyglass_collector_events_enqueued_total"), static_cast<double>(c.enqueued)) << text;
  EXPECT_EQ(sample(m, "spyglass_collector_events_dropped_total"), static_cast<double>(c.dropped));
  EXPECT_EQ(sample(m, "spyglass_collector_events_exported_total"), static_cast<double>(c.exported));
  EXPECT_EQ(sample(m, "spyglass_collector_events_export_errors_total"), static_cast<double>(c.export_errors));
  EXPECT_EQ(sample(m, "spyglass_collector_queue_depth"), static_cast<double>(c.queued));
}

bool operator==(const CollectorCounters& a, const CollectorCounters& b) {
  return a.enqueued == b.enqueued && a.dropped == b.dropped && a.exported == b.exported &&
         a.export_errors == b.export_errors && a.queued == b.queued;
}

TEST(PrometheusWithCollector, ExportsEventsAndCollectorHealthWithDropsAndErrors) {
  spyglass::CollectorOptions co;
  co.transit_size = 64;  // the smallest transit: a burst overruns it
  co.batch_max = 16;
  // Asleep between drains for longer than the burst takes; flush() wakes it.
  co.drain_interval = std::chrono::milliseconds(500);
  Collector collector(co);
  PrometheusOptions o;
  o.listen_address.clear();
  o.collector = &collector;
  auto exp = std::make_shared<PrometheusExporter>(o);
  collector.add_exporter(exp);
  collector.add_exporter(std::make_shared<FlakyExporter>());

  constexpr int kBurst = 5000;
  std::uint64_t accepted = 0;
  for (int i = 0; i < kBurst; ++i) {
    const bool ok = collector.enqueue(
        make_event(EventKind::function, "via_collector", kMs, i % 10 == 0 ? Status::error : Status::ok));
    accepted += ok ? 1 : 0;
  }
  ASSERT_TRUE(collector.flush(std::chrono::seconds(60)));

  // Stable after the flush: read the collector, scrape, read it again.
  const CollectorCounters c = collector.counters();
  const std::string text = exp->scrape();
  ASSERT_TRUE(c == collector.counters());
  expect_scrape_matches(text, c);
  EXPECT_NE(text.find("# TYPE spyglass_collector_queue_depth gauge"), std::string::npos);
  for (const char* counter : {"enqueued", "dropped", "exported", "export_errors"}) {
    EXPECT_NE(text.find(std::string("# TYPE spyglass_collector_events_") + counter + "_total counter"),
              std::string::npos)
        << counter;
  }

  // The situation the numbers describe: a burst the transit could not hold, and an
  // exporter that failed some of what it got.
  EXPECT_EQ(c.enqueued, static_cast<std::uint64_t>(kBurst));
  EXPECT_EQ(c.dropped, kBurst - accepted);
  EXPECT_EQ(c.exported, accepted);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_GT(c.dropped, 0u);
  EXPECT_GT(c.export_errors, 0u);
  EXPECT_LT(c.export_errors, c.exported);
  const auto per_exporter = collector.exporter_counters();
  ASSERT_EQ(per_exporter.size(), 2u);
  EXPECT_EQ(per_exporter[0].exported, c.exported);  // the Prometheus exporter got it all
  EXPECT_EQ(c.export_errors, per_exporter[1].failed + per_exporter[1].dropped);
  // Five different numbers, so a metric wired to the wrong counter cannot pass.
  const std::uint64_t values[] = {c.enqueued, c.dropped, c.exported, c.export_errors, c.queued};
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t j = i + 1; j < 5; ++j) EXPECT_NE(values[i], values[j]) << i << " " << j;
  }

  // The events the collector passed on, by status.
  const auto m = parse_exposition(text);
  const double ok = sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="ok"})");
  const double errors =
      sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="error"})");
  EXPECT_EQ(ok + errors, static_cast<double>(c.exported));
  EXPECT_GT(errors, 0);

  // After the collector shuts down the exporter keeps the last values it read, which
  // are the collector's final ones.
  ASSERT_TRUE(collector.shutdown());
  const CollectorCounters final_counters = collector.counters();
  EXPECT_TRUE(final_counters == c);
  expect_scrape_matches(exp->scrape(), final_counters);
}

TEST(PrometheusWithCollector, NoCollectorMetricsWithoutACollector) {
  PrometheusOptions o;
  o.listen_address.clear();
  PrometheusExporter exp(o);
  EXPECT_EQ(exp.scrape().find("spyglass_collector_"), std::string::npos);
}

}  // namespace
