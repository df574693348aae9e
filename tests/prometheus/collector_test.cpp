// The exporter behind a real Collector: events arrive through it, and its health is
// exported as spyglass_collector_*, value for value what Collector::counters() says.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
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

/// Fails 3 batches in 8: two by returning false, one by throwing.
class FlakyExporter final : public spyglass::Exporter {
 public:
  bool export_batch(std::span<const Event>) override {
    const int n = ++calls_;
    if (n % 4 == 2) return false;
    if (n % 8 == 0) throw std::runtime_error("flaky exporter");
    return true;
  }
  [[nodiscard]] std::string_view name() const override { return "flaky"; }

 private:
  std::atomic<int> calls_{0};
};

/// The spyglass_collector_* and spyglass_exporter_* samples of `text` next to the
/// collector's own numbers.
void expect_scrape_matches(const std::string& text, const CollectorCounters& c,
                           const std::vector<spyglass::ExporterCounters>& per_exporter) {
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, "spyglass_collector_events_offered_total"), static_cast<double>(c.offered)) << text;
  EXPECT_EQ(sample(m, "spyglass_collector_events_rejected_total"), static_cast<double>(c.rejected));
  EXPECT_EQ(sample(m, "spyglass_collector_events_dispatched_total"), static_cast<double>(c.dispatched));
  EXPECT_EQ(sample(m, "spyglass_collector_events_pre_fork_total"), static_cast<double>(c.pre_fork));
  EXPECT_EQ(sample(m, "spyglass_collector_transit_events"), static_cast<double>(c.in_transit));
  for (const auto& e : per_exporter) {
    const std::string label = R"({exporter=")" + e.name + R"("})";
    EXPECT_EQ(sample(m, "spyglass_exporter_events_produced_total" + label), static_cast<double>(e.produced))
        << e.name;
    EXPECT_EQ(sample(m, "spyglass_exporter_events_sent_total" + label), static_cast<double>(e.sent))
        << e.name;
    EXPECT_EQ(sample(m, "spyglass_exporter_events_failed_total" + label), static_cast<double>(e.failed))
        << e.name;
    EXPECT_EQ(sample(m, "spyglass_exporter_events_dropped_total" + label), static_cast<double>(e.dropped))
        << e.name;
    EXPECT_EQ(sample(m, "spyglass_exporter_pending_events" + label), static_cast<double>(e.pending))
        << e.name;
  }
}

bool operator==(const CollectorCounters& a, const CollectorCounters& b) {
  return a.offered == b.offered && a.rejected == b.rejected && a.dispatched == b.dispatched &&
         a.pre_fork == b.pre_fork && a.in_transit == b.in_transit;
}

TEST(PrometheusWithCollector, ExportsEventsAndCollectorHealthWithRejectionsAndFailures) {
  spyglass::CollectorOptions co;
  co.transit_capacity = 64;  // a small transit: a burst overruns it
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
  const auto per_exporter = collector.exporter_counters();
  const std::string text = exp->scrape();
  ASSERT_TRUE(c == collector.counters());
  expect_scrape_matches(text, c, per_exporter);
  EXPECT_NE(text.find("# TYPE spyglass_collector_transit_events gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE spyglass_exporter_pending_events gauge"), std::string::npos);
  for (const char* counter : {"offered", "rejected", "dispatched", "pre_fork"}) {
    EXPECT_NE(text.find(std::string("# TYPE spyglass_collector_events_") + counter + "_total counter"),
              std::string::npos)
        << counter;
  }

  // The situation the numbers describe: a burst the transit could not hold, and an
  // exporter that failed some of what it got.
  EXPECT_EQ(c.offered, static_cast<std::uint64_t>(kBurst));
  EXPECT_EQ(c.rejected, kBurst - accepted);
  EXPECT_EQ(c.dispatched, accepted);
  EXPECT_EQ(c.in_transit, 0u);
  EXPECT_EQ(c.pre_fork, 0u);
  EXPECT_GT(c.rejected, 0u);  // how many depends on when the collector thread wakes
  ASSERT_EQ(per_exporter.size(), 2u);
  EXPECT_EQ(per_exporter[0].name, "prometheus");
  EXPECT_EQ(per_exporter[0].produced, c.dispatched);
  EXPECT_EQ(per_exporter[0].sent, c.dispatched);  // the Prometheus exporter got it all
  EXPECT_EQ(per_exporter[0].failed + per_exporter[0].dropped + per_exporter[0].pending, 0u);
  const auto& flaky = per_exporter[1];
  EXPECT_EQ(flaky.name, "flaky");
  EXPECT_EQ(flaky.produced, c.dispatched);
  EXPECT_EQ(flaky.dropped + flaky.pending, 0u);
  EXPECT_EQ(flaky.sent + flaky.failed, flaky.produced);
  // Batches 2, 6, 8, 10, 14, 16, ... failed: 3 in 8, so sent and failed differ.
  EXPECT_GT(flaky.failed, 0u);
  EXPECT_GT(flaky.sent, 0u);
  // Distinct numbers, so a metric wired to the wrong counter cannot pass.
  const std::uint64_t values[] = {c.offered, c.rejected, c.dispatched, flaky.sent, flaky.failed};
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t j = i + 1; j < 5; ++j) EXPECT_NE(values[i], values[j]) << i << " " << j;
  }

  // The events the collector passed on, by status.
  const auto m = parse_exposition(text);
  const double ok = sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="ok"})");
  const double errors =
      sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="error"})");
  EXPECT_EQ(ok + errors, static_cast<double>(c.dispatched));

  // After the collector shuts down the exporter keeps the last values it read, which
  // are the collector's final ones.
  ASSERT_TRUE(collector.shutdown());
  const CollectorCounters final_counters = collector.counters();
  EXPECT_TRUE(final_counters == c);
  expect_scrape_matches(exp->scrape(), final_counters, {});
}

TEST(PrometheusWithCollector, NoCollectorMetricsWithoutACollector) {
  PrometheusOptions o;
  o.listen_address.clear();
  PrometheusExporter exp(o);
  EXPECT_EQ(exp.scrape().find("spyglass_collector_"), std::string::npos);
}

}  // namespace
