// Scrapes (HTTP and scrape()) while the exporter's thread records at full speed: every
// scrape is well-formed, counters never go back, and the final values are exact. Run
// under TSan (SPYGLASS_SANITIZE=thread) this is also the data-race check.

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "events.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "support.hpp"

namespace {

using spyglass::Event;
using spyglass::EventKind;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::make_event;
using spyglass::test::parse_exposition;
using spyglass::test::sample;

TEST(PrometheusConcurrency, ScrapeDuringHeavyEmission) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  o.max_names_per_kind = 150;  // the guard is exercised too
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
  constexpr int kBatches = 2000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kBatches; ++i) exp.export_batch(batch);
    done = true;
  });

  const std::string key = R"(spyglass_events_total{kind="function",name="op_1",status="ok"})";
  const std::string count_key = R"(spyglass_event_duration_seconds_count{kind="function",name="op_1"})";
  const std::string inf_key =
      R"(spyglass_event_duration_seconds_bucket{kind="function",name="op_1",le="+Inf"})";
  std::atomic<int> bad{0};
  const auto reader = [&](bool over_http) {
    double last = 0;
    int scrapes = 0;
    while (!done || scrapes < 3) {
      const std::string text =
          over_http
              ? spyglass::test::http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics").body
              : exp.scrape();
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
  std::thread http_reader(reader, true);
  std::thread direct_reader(reader, false);
  writer.join();
  http_reader.join();
  direct_reader.join();
  EXPECT_EQ(bad.load(), 0);

  const auto m = parse_exposition(exp.scrape());
  // op_1 appears 5 times per batch (i = 1, 201, ...), all as functions.
  EXPECT_EQ(sample(m, key), 5.0 * kBatches);
  EXPECT_EQ(sample(m, count_key), 5.0 * kBatches);
  // 200 names alternate between two kinds: 100 per kind, under the limit of 150.
  EXPECT_EQ(exp.series_overflow(), 0u);
}

}  // namespace
