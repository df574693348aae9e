// Real peers read what the exporter produces: promtool lints the exposition, a real
// Prometheus server scrapes and queries it, a real Pushgateway receives the pushes.
// Every server is started here on 127.0.0.1 and stopped at the end of its test.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/gauge.h>

#include "events.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/utf8.hpp"
#include "support.hpp"

namespace {

using spyglass::Collector;
using spyglass::Event;
using spyglass::EventKind;
using spyglass::Status;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::Child;
using spyglass::test::http_get;
using spyglass::test::kMs;
using spyglass::test::make_event;
using spyglass::test::TempDir;
using spyglass::test::wait_until;

const char kQuoted[] = "say \"hi\" \\ to\nall";
const char kInvalidUtf8[] = "caf\xc3 \xff\xfe end";
const char kControl[] = "tab\there\rcr\x01\x7f";

/// Events of every kind, with the hostile names, for the peers to read.
std::vector<Event> varied_events() {
  std::vector<Event> v;
  for (int i = 0; i < 20; ++i)
    v.push_back(make_event(EventKind::function, "render", static_cast<std::uint64_t>(i + 1) * kMs));
  v.push_back(make_event(EventKind::function, kQuoted, kMs));
  v.push_back(make_event(EventKind::function, kControl, kMs));
  v.push_back(make_event(EventKind::custom, kInvalidUtf8, 2 * kMs, Status::error));
  Event q = make_event(EventKind::db, "SELECT name FROM t WHERE id = ?", 3 * kMs);
  q.rows = 7;
  v.push_back(q);
  Event r = make_event(EventKind::request, "/api/{id}", 4 * kMs);
  r.bytes_in = 10;
  r.bytes_out = 20;
  v.push_back(r);
  Event c = make_event(EventKind::client, "/users/{id}", 5 * kMs);
  c.bytes_in = 30;
  c.bytes_out = 40;
  v.push_back(c);
  return v;
}

/// Events whose durations sit at the edges of the default buckets: 100 ns, 1 µs, 10 µs
/// and 30 s, one name each.
const std::vector<std::pair<const char*, std::uint64_t>> kEdgeDurations{
    {"edge_100ns", 100}, {"edge_1us", 1'000}, {"edge_10us", 10'000}, {"edge_30s", 30'000 * kMs}};

/// The result vector of an instant query: (labels as JSON object, value) per series.
struct QueryResult {
  bool ok = false;
  std::vector<std::pair<std::map<std::string, std::string>, double>> series;
};

QueryResult query(std::uint16_t port, const std::string& promql) {
  QueryResult out;
  const auto r = http_get("http://127.0.0.1:" + std::to_string(port) +
                          "/api/v1/query?query=" + spyglass::test::url_encode(promql));
  if (r.status != 200) return out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r.body).get(doc) != simdjson::SUCCESS) return out;
  std::string_view status;
  if (doc["status"].get(status) != simdjson::SUCCESS || status != "success") return out;
  simdjson::dom::array results;
  if (doc["data"]["result"].get(results) != simdjson::SUCCESS) return out;
  for (simdjson::dom::element e : results) {
    std::map<std::string, std::string> labels;
    simdjson::dom::object metric;
    if (e["metric"].get(metric) == simdjson::SUCCESS) {
      for (auto field : metric) labels[std::string(field.key)] = std::string(std::string_view(field.value));
    }
    std::string_view value;
    if (e["value"].at(1).get(value) != simdjson::SUCCESS) return out;
    out.series.emplace_back(std::move(labels), std::stod(std::string(value)));
  }
  out.ok = true;
  return out;
}

TEST(Promtool, AcceptsTheExpositionWithoutLintWarnings) {
  TempDir dir;
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  PrometheusExporter exp(o);
  prometheus::BuildGauge()
      .Name("app_queue_length")
      .Help("Jobs waiting.")
      .Register(*exp.registry())
      .Add({})
      .Set(3);
  exp.export_batch(varied_events());
  const auto served = http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics");
  ASSERT_EQ(served.status, 200) << served.error;

  std::string output;
  const std::string promtool = std::string(SPYGLASS_PROMTOOL) + " check metrics";
  EXPECT_EQ(spyglass::test::run_with_input(promtool, served.body, output, dir.path()), 0)
      << output << served.body;
  EXPECT_EQ(output, "") << served.body;
  EXPECT_EQ(spyglass::test::run_with_input(promtool, exp.scrape(), output, dir.path()), 0) << output;

  // The check can fail: promtool rejects a broken exposition and reports lint problems.
  EXPECT_NE(spyglass::test::run_with_input(promtool, "broken_metric{ 1\n", output, dir.path()), 0);
  EXPECT_NE(spyglass::test::run_with_input(
                promtool, "# HELP requests x\n# TYPE requests counter\nrequests 1\n", output, dir.path()),
            0);
  EXPECT_NE(output.find("_total"), std::string::npos) << output;
}

TEST(RealPrometheus, ScrapesTheSeriesAndComputesQuantiles) {
  TempDir dir;
  // Events arrive through a Collector, so its health is served too.
  Collector collector;
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  o.collector = &collector;
  auto shared = std::make_shared<PrometheusExporter>(o);
  PrometheusExporter& exp = *shared;
  collector.add_exporter(shared);

  // checkout: 1000 requests of 0.2 ms .. 200 ms, every 20th an error.
  std::vector<Event> batch = varied_events();
  std::vector<double> durations;
  for (int i = 1; i <= 1000; ++i) {
    const std::uint64_t d = static_cast<std::uint64_t>(i) * 200'000;
    durations.push_back(static_cast<double>(d) / 1e9);
    batch.push_back(make_event(EventKind::request, "checkout", d, i % 20 == 0 ? Status::error : Status::ok));
  }
  for (const auto& [name, d] : kEdgeDurations) {
    for (int i = 0; i < 10; ++i) batch.push_back(make_event(EventKind::function, name, d));
  }
  for (const Event& e : batch) ASSERT_TRUE(collector.enqueue(e));
  ASSERT_TRUE(collector.flush(std::chrono::seconds(60)));

  // A trickle of other requests while Prometheus scrapes, so that rates are not zero.
  std::atomic<bool> stop_feeding{false};
  std::thread feeder([&] {
    for (int i = 0; !stop_feeding; ++i) {
      collector.enqueue(make_event(EventKind::request, "/feed", static_cast<std::uint64_t>(1 + i % 50) * kMs,
                                   i % 4 == 0 ? Status::error : Status::ok));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // pacing, not synchronisation
    }
  });
  struct StopFeeding {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~StopFeeding() {
      stop = true;
      thread.join();
    }
  } stop_feeder{stop_feeding, feeder};

  const std::uint16_t web = spyglass::test::free_port();
  {
    std::ofstream cfg(dir.path() / "prometheus.yml");
    // A scrape that fails marks every series stale; a loaded machine gets 3 s to answer.
    cfg << "global:\n  scrape_interval: 3s\n  scrape_timeout: 3s\n"
        << "scrape_configs:\n  - job_name: spyglass\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << exp.port() << "']\n";
  }
  Child server({SPYGLASS_PROMETHEUS, "--config.file=" + (dir.path() / "prometheus.yml").string(),
                "--storage.tsdb.path=" + (dir.path() / "data").string(),
                "--web.listen-address=127.0.0.1:" + std::to_string(web), "--log.level=warn"},
               dir.path() / "prometheus.log");
  const auto log = [&] {
    std::ifstream in(dir.path() / "prometheus.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ASSERT_TRUE(wait_until(
      [&] {
        const auto q = query(web, R"(up{job="spyglass"})");
        return q.ok && q.series.size() == 1 && q.series[0].second == 1;
      },
      std::chrono::seconds(120)))
      << log();
  ASSERT_TRUE(wait_until([&] {
    return query(web, R"(spyglass_events_total{name="checkout"})").series.size() == 2;
  })) << log();

  // Each query waits until it answers the value expected: a scrape that failed under
  // load leaves the series stale until the next one succeeds.
  const auto expect_value = [&](const std::string& promql, double expected) {
    QueryResult r;
    EXPECT_TRUE(wait_until([&] {
      r = query(web, promql);
      return r.ok && r.series.size() == 1 && r.series[0].second == expected;
    })) << promql
        << ": " << (r.series.empty() ? std::string("no series") : std::to_string(r.series[0].second)) << "\n"
        << log();
    return r;
  };
  expect_value(R"(spyglass_events_total{kind="request",name="checkout",status="ok"})", 950);
  expect_value(R"(spyglass_events_total{kind="request",name="checkout",status="error"})", 50);
  expect_value(R"(spyglass_event_duration_seconds_count{name="checkout"})", 1000);
  QueryResult q = expect_value(R"(spyglass_db_rows_total)", 7);
  ASSERT_EQ(q.series.size(), 1u);
  EXPECT_EQ(q.series[0].first["name"], "SELECT name FROM t WHERE id = ?");
  EXPECT_EQ(q.series[0].first["kind"], "db");
  expect_value(R"(spyglass_http_request_bytes_total{kind="request",name="/api/{id}",direction="out"})", 20);
  // The collector's health: nothing rejected (the trickle never fills the transit), and
  // at least the batch offered and sent to this exporter (the trickle goes on).
  expect_value(R"(spyglass_collector_events_rejected_total)", 0);
  for (const char* series : {"spyglass_collector_events_offered_total",
                             R"(spyglass_exporter_events_sent_total{exporter="prometheus"})"}) {
    EXPECT_TRUE(wait_until([&] {
      q = query(web, series);
      return q.ok && q.series.size() == 1 && q.series[0].second >= static_cast<double>(batch.size());
    })) << series
        << "\n"
        << log();
  }
  EXPECT_TRUE(wait_until([&] {
    q = query(web, R"(process_resident_memory_bytes)");
    return q.ok && q.series.size() == 1 && q.series[0].second > 0;  // not knowable exactly
  })) << log();

  // The hostile names arrive intact (quotes, backslash, newline) or repaired (UTF-8).
  std::vector<std::string> names;
  EXPECT_TRUE(wait_until([&] {
    q = query(web, R"(spyglass_events_total{status="ok",kind="function"})");
    names.clear();
    for (auto& [labels, v] : q.series) names.push_back(labels["name"]);
    return std::find(names.begin(), names.end(), std::string(kQuoted)) != names.end() &&
           std::find(names.begin(), names.end(), std::string(kControl)) != names.end();
  })) << log();
  std::string repaired;
  spyglass::append_utf8_repaired(kInvalidUtf8, repaired);
  q = expect_value(R"(spyglass_events_total{status="error",kind="custom"})", 1);
  ASSERT_EQ(q.series.size(), 1u);
  EXPECT_EQ(q.series[0].first["name"], repaired);

  // Quantiles from the buckets fall in the bucket holding the true quantile.
  const auto bounds = spyglass::prom::default_buckets();
  const auto expect_quantile_in_bucket = [&](double phi, double truth, const std::string& selector) {
    const auto hi = std::lower_bound(bounds.begin(), bounds.end(), truth);
    ASSERT_NE(hi, bounds.end());
    const double lo = hi == bounds.begin() ? 0 : *(hi - 1);
    QueryResult r;
    EXPECT_TRUE(wait_until([&] {
      r = query(web, "histogram_quantile(" + std::to_string(phi) +
                         ", spyglass_event_duration_seconds_bucket{" + selector + "})");
      return r.ok && r.series.size() == 1;
    })) << selector;
    ASSERT_EQ(r.series.size(), 1u) << selector;
    EXPECT_GE(r.series[0].second, lo) << selector << " phi " << phi << " truth " << truth;
    EXPECT_LE(r.series[0].second, *hi) << selector << " phi " << phi << " truth " << truth;
  };
  std::sort(durations.begin(), durations.end());
  for (const double phi : {0.5, 0.9, 0.99}) {
    const double truth = durations[static_cast<std::size_t>(std::ceil(phi * 1000)) - 1];
    expect_quantile_in_bucket(phi, truth, R"(kind="request",name="checkout")");
  }
  // 100 ns, 1 µs and 10 µs no longer all read 99 µs, and 30 s no longer reads 10 s.
  for (const auto& [name, d] : kEdgeDurations) {
    expect_quantile_in_bucket(0.99, static_cast<double>(d) / 1e9,
                              std::string(R"(kind="function",name=")") + name + "\"");
  }

  // Every query of the Grafana dashboard answers with data from these series (rates
  // once Prometheus holds two scrapes of them), each panel's variables set to "All".
  simdjson::dom::parser parser;
  simdjson::dom::element dash;
  ASSERT_EQ(parser.load(SPYGLASS_DASHBOARD).get(dash), simdjson::SUCCESS);
  std::size_t queries = 0;
  for (simdjson::dom::element panel : dash["panels"].get_array()) {
    const std::string title{std::string_view(panel["title"])};
    for (simdjson::dom::element t : panel["targets"].get_array()) {
      std::string expr{std::string_view(t["expr"])};
      for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
               {"$__rate_interval", "1m"}, {"$job", ".*"}, {"$instance", ".*"}, {"$kind", ".*"}}) {
        for (auto pos = expr.find(var); pos != std::string::npos; pos = expr.find(var))
          expr.replace(pos, var.size(), value);
      }
      QueryResult result;
      EXPECT_TRUE(wait_until([&] {
        result = query(web, expr);
        return result.ok && !result.series.empty();
      })) << title
          << ": " << expr << (result.ok ? " (no data)" : " (query failed)") << "\n"
          << log();
      ++queries;
    }
  }
  EXPECT_GE(queries, 5u);

  // The trickle shows as throughput and as an error share of 1 in 4 (once Prometheus
  // holds two scrapes of it).
  EXPECT_TRUE(wait_until([&] {
    q = query(web, R"(sum(rate(spyglass_events_total{name="/feed"}[1m])))");
    return q.ok && q.series.size() == 1 && q.series[0].second > 0;  // the rate depends on the pacing
  })) << log();
  EXPECT_TRUE(wait_until([&] {
    q = query(web, R"(sum(rate(spyglass_events_total{name="/feed",status="error"}[1m])) /)"
                   R"( sum(rate(spyglass_events_total{name="/feed"}[1m])))");
    return q.ok && q.series.size() == 1 && std::abs(q.series[0].second - 0.25) <= 0.15;
  })) << (q.series.empty() ? -1.0 : q.series[0].second);
  server.stop();
}

/// A Pushgateway on a free port of 127.0.0.1, ready to take pushes.
class Pushgateway {
 public:
  explicit Pushgateway(const TempDir& dir)
      : port_(spyglass::test::free_port()),
        base_("http://127.0.0.1:" + std::to_string(port_)),
        child_({SPYGLASS_PUSHGATEWAY, "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
               dir.path() / "pushgateway.log") {}
  bool ready() const {
    return wait_until([&] { return http_get(base_ + "/-/ready").status == 200; });
  }
  const std::string& base() const { return base_; }
  std::map<std::string, double> metrics() const {
    return spyglass::test::parse_exposition(http_get(base_ + "/metrics").body);
  }

 private:
  std::uint16_t port_;
  std::string base_;
  Child child_;
};

const std::string kRenderOnGateway =
    R"(spyglass_events_total{instance="test-1",job="spyglass-test",kind="function",name="render",status="ok"})";

TEST(RealPushgateway, ReceivesPeriodicPushes) {
  TempDir dir;
  Pushgateway gateway(dir);
  ASSERT_TRUE(gateway.ready());

  PrometheusOptions o;
  o.listen_address.clear();
  o.push_url = gateway.base();
  o.push_job = "spyglass-test";
  o.push_instance = "test-1";
  o.push_interval = std::chrono::milliseconds(200);
  PrometheusExporter exp(o);
  exp.export_batch(varied_events());

  // One push carries the whole exposition (a single PUT), so the gateway holds the
  // events and the process metrics together, never one without the other.
  std::map<std::string, double> m;
  ASSERT_TRUE(wait_until([&] {
    m = gateway.metrics();
    return spyglass::test::sample(m, kRenderOnGateway) == 20;
  }));
  EXPECT_GT(
      spyglass::test::sample(m, R"(process_resident_memory_bytes{instance="test-1",job="spyglass-test"})"),
      0);  // not knowable exactly; -1 when absent
  EXPECT_EQ(spyglass::test::sample(
                m, R"(spyglass_prometheus_push_failures_total{instance="test-1",job="spyglass-test"})"),
            0);
  // The pusher counts a push once the gateway's answer is back, a moment after it stored it.
  EXPECT_TRUE(wait_until([&] { return exp.push_counters().ok >= 1; }));

  // Later events arrive with a later periodic push, without push() or shutdown().
  for (int i = 0; i < 5; ++i)
    exp.export_batch(std::vector<Event>{make_event(EventKind::function, "render", kMs)});
  EXPECT_TRUE(wait_until([&] { return spyglass::test::sample(gateway.metrics(), kRenderOnGateway) == 25; }));
  EXPECT_TRUE(wait_until([&] { return exp.push_counters().ok >= 2; }));
  EXPECT_EQ(exp.push_counters().failed, 0u);
  EXPECT_EQ(exp.push_counters().last_status / 100, 2);
}

TEST(RealPushgateway, ShutdownPushesTheFinalValuesOnce) {
  TempDir dir;
  Pushgateway gateway(dir);
  ASSERT_TRUE(gateway.ready());

  PrometheusOptions o;
  o.listen_address.clear();
  o.push_url = gateway.base();
  o.push_job = "spyglass-test";
  o.push_instance = "test-1";
  o.push_interval = std::chrono::hours(1);  // no periodic push during the test
  PrometheusExporter exp(o);
  exp.export_batch(varied_events());
  ASSERT_TRUE(exp.push());
  EXPECT_EQ(spyglass::test::sample(gateway.metrics(), kRenderOnGateway), 20);

  for (int i = 0; i < 5; ++i)
    exp.export_batch(std::vector<Event>{make_event(EventKind::function, "render", kMs)});
  const auto before = exp.push_counters();
  EXPECT_EQ(before.ok, 1u);
  exp.shutdown();
  const auto after = exp.push_counters();
  EXPECT_EQ(after.ok, before.ok + 1);
  EXPECT_EQ(after.failed, 0u);
  EXPECT_EQ(after.last_status / 100, 2);
  // The push at shutdown has been answered, so the gateway holds the final values.
  EXPECT_EQ(spyglass::test::sample(gateway.metrics(), kRenderOnGateway), 25);

  // Once only: a second shutdown() does not push again.
  exp.shutdown();
  EXPECT_EQ(exp.push_counters().ok, after.ok);
}

TEST(RealPushgateway, AFailedPushIsCountedNotFatal) {
  PrometheusOptions o;
  o.listen_address.clear();
  o.push_url = "http://127.0.0.1:" + std::to_string(spyglass::test::free_port());  // nobody listens
  o.push_interval = std::chrono::hours(1);
  PrometheusExporter exp(o);
  exp.export_batch(varied_events());
  EXPECT_FALSE(exp.push());
  const auto c = exp.push_counters();
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.ok, 0u);
  EXPECT_LT(c.last_status, 200);
}

}  // namespace
