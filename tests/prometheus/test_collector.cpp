// The exporter behind a real Collector: events arrive through it, and its health is
// exported as spyglass_collector_*.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "events.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "support.hpp"

namespace {

using spyglass::Collector;
using spyglass::EventKind;
using spyglass::Status;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::kMs;
using spyglass::test::make_event;
using spyglass::test::parse_exposition;
using spyglass::test::sample;

TEST(PrometheusWithCollector, ExportsEventsAndCollectorHealth) {
  Collector collector;
  PrometheusOptions o;
  o.listen_address.clear();
  o.collector = &collector;
  auto exp = std::make_shared<PrometheusExporter>(o);
  collector.add_exporter(exp);

  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(collector.enqueue(
        make_event(EventKind::function, "via_collector", kMs, i % 10 == 0 ? Status::error : Status::ok)));
  }
  ASSERT_TRUE(collector.flush(std::chrono::seconds(60)));

  const std::string text = exp->scrape();
  auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="ok"})"), 900)
      << text;
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="error"})"), 100);
  EXPECT_EQ(sample(m, "spyglass_collector_events_enqueued_total"), 1000);
  EXPECT_EQ(sample(m, "spyglass_collector_events_exported_total"), 1000);
  EXPECT_EQ(sample(m, "spyglass_collector_events_dropped_total"), 0);
  EXPECT_EQ(sample(m, "spyglass_collector_events_export_errors_total"), 0);
  EXPECT_EQ(sample(m, "spyglass_collector_queue_depth"), 0);
  EXPECT_NE(text.find("# TYPE spyglass_collector_queue_depth gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE spyglass_collector_events_enqueued_total counter"), std::string::npos);

  // After the collector shuts down the exporter keeps the last values it read.
  ASSERT_TRUE(collector.shutdown());
  m = parse_exposition(exp->scrape());
  EXPECT_EQ(sample(m, "spyglass_collector_events_enqueued_total"), 1000);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="via_collector",status="ok"})"), 900);
}

TEST(PrometheusWithCollector, NoCollectorMetricsWithoutACollector) {
  PrometheusOptions o;
  o.listen_address.clear();
  PrometheusExporter exp(o);
  EXPECT_EQ(exp.scrape().find("spyglass_collector_"), std::string::npos);
}

}  // namespace
