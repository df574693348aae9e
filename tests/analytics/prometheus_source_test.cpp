// `spyglass analyze|detect --prometheus`: a real Prometheus, started here, scrapes the
// library's own exporter; the command's series and analysis are compared with what the
// same range query returns when asked directly.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../monitor/support.hpp"
#include "../prometheus/events.hpp"
#include "../prometheus/support.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/exporters/prometheus.hpp"

namespace {

using spyglass::test::free_port;
using spyglass::test::http_get;
using spyglass::test::url_encode;
using spyglass::test::wait_until;

// One range query's points, read from Prometheus' answer.
struct Points {
  std::vector<double> times, values;
};

// The one series of a range query asked directly; empty when it has no single series.
Points range(std::uint16_t port, const std::string& promql, double start, double end, double step) {
  Points p;
  const auto r = http_get(
      "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query_range?query=" + url_encode(promql) +
      "&start=" + std::to_string(start) + "&end=" + std::to_string(end) + "&step=" + std::to_string(step));
  if (r.status != 200) return p;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array result, values;
  if (parser.parse(r.body).get(doc) != simdjson::SUCCESS ||
      doc["data"]["result"].get(result) != simdjson::SUCCESS || result.size() != 1 ||
      result.at(0)["values"].get(values) != simdjson::SUCCESS)
    return p;
  for (auto v : values) {
    double t = 0;
    std::string_view text;
    if (v.at(0).get(t) != simdjson::SUCCESS || v.at(1).get(text) != simdjson::SUCCESS) return {};
    p.times.push_back(t);
    p.values.push_back(std::stod(std::string(text)));
  }
  return p;
}

double now_seconds() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()) /
         1000.0;
}

spyglass::Event checkout() {
  return spyglass::test::make_event(spyglass::EventKind::request, "checkout", spyglass::test::kMs);
}

// The library serving /metrics, fed with a steady trickle of requests and, on demand, one
// burst; a Prometheus scraping it every second.
class PrometheusSource : public ::testing::Test {
 protected:
  void SetUp() override {
    spyglass::prom::PrometheusOptions o;
    o.listen_address = "127.0.0.1:0";
    exporter_ = std::make_shared<spyglass::prom::PrometheusExporter>(o);
    collector_.add_exporter(exporter_);
    feeder_ = std::thread([this] {
      while (!stop_) {
        const int n = burst_.exchange(0);
        for (int i = 0; i < 1 + n; ++i) collector_.enqueue(checkout());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // pacing, not synchronisation
      }
    });
    web_ = free_port();
    {
      std::ofstream cfg(dir_.path() / "prometheus.yml");
      cfg << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
          << "scrape_configs:\n  - job_name: app\n    static_configs:\n"
          << "      - targets: ['127.0.0.1:" << exporter_->port() << "']\n";
    }
    server_ = std::make_unique<spyglass::test::Child>(
        std::vector<std::string>{
            SPYGLASS_PROMETHEUS, "--config.file=" + (dir_.path() / "prometheus.yml").string(),
            "--storage.tsdb.path=" + (dir_.path() / "data").string(),
            "--web.listen-address=127.0.0.1:" + std::to_string(web_), "--log.level=warn"},
        dir_.path() / "prometheus.log");
  }

  void TearDown() override {
    stop_ = true;
    feeder_.join();
    server_.reset();
    collector_.shutdown();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(web_); }

  std::string log() const {
    std::ifstream in(dir_.path() / "prometheus.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  spyglass::test::TempDir dir_;
  spyglass::Collector collector_;
  std::shared_ptr<spyglass::prom::PrometheusExporter> exporter_;
  std::atomic<bool> stop_{false};
  std::atomic<int> burst_{0};
  std::thread feeder_;
  std::uint16_t web_ = 0;
  std::unique_ptr<spyglass::test::Child> server_;
};

constexpr const char* kCounter = R"(spyglass_events_total{name="checkout",status="ok"})";
constexpr const char* kPerScrape = R"(idelta(spyglass_events_total{name="checkout",status="ok"}[5s]))";

// Reads a JSON document the command printed.
simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  return doc;
}

TEST_F(PrometheusSource, AnalysesTheSeriesPrometheusReturns) {
  const double start = std::floor(now_seconds());
  Points direct;
  double end = 0;
  // Enough scraped points for a trend: at least 8 (the trickle goes on meanwhile).
  ASSERT_TRUE(wait_until(
      [&] {
        end = std::floor(now_seconds());
        direct = range(web_, kCounter, start, end, 1);
        return direct.values.size() >= 8;
      },
      std::chrono::seconds(180)))
      << log();

  const auto r = spyglass_test::run({spyglass_test::kSpyglass, "analyze", "--prometheus", url() + "/",
                                     "--query", kCounter, "--start", std::to_string(start), "--end",
                                     std::to_string(end), "--step", "1s", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  const auto doc = parse(parser, r.out);
  // The same points as the direct query: count, first and last time, and their statistics.
  std::int64_t points = 0;
  ASSERT_EQ(doc["series"]["points"].get(points), simdjson::SUCCESS);
  EXPECT_EQ(static_cast<std::size_t>(points), direct.values.size());
  std::string_view first, last, source;
  ASSERT_EQ(doc["series"]["first"].get(first), simdjson::SUCCESS);
  ASSERT_EQ(doc["series"]["last"].get(last), simdjson::SUCCESS);
  EXPECT_EQ(std::stod(std::string(first)), direct.times.front());
  EXPECT_EQ(std::stod(std::string(last)), direct.times.back());
  ASSERT_EQ(doc["series"]["query"].get(source), simdjson::SUCCESS);
  EXPECT_EQ(source, kCounter);
  double min = 0, max = 0, mean = 0;
  ASSERT_EQ(doc["summary"]["min"].get(min), simdjson::SUCCESS);
  ASSERT_EQ(doc["summary"]["max"].get(max), simdjson::SUCCESS);
  ASSERT_EQ(doc["summary"]["mean"].get(mean), simdjson::SUCCESS);
  EXPECT_EQ(min, *std::min_element(direct.values.begin(), direct.values.end()));
  EXPECT_EQ(max, *std::max_element(direct.values.begin(), direct.values.end()));
  double sum = 0;
  for (double v : direct.values) sum += v;
  EXPECT_NEAR(mean, sum / static_cast<double>(direct.values.size()), 1e-9 * std::fabs(mean));
  // A counter fed all along only grows.
  double slope = 0;
  ASSERT_EQ(doc["trend"]["slope_per_point"].get(slope), simdjson::SUCCESS);
  EXPECT_GT(slope, 0);
}

TEST_F(PrometheusSource, DetectFlagsTheBurstAtTheTimePrometheusGivesIt) {
  const double start = std::floor(now_seconds());
  // Some calm scrapes, then a burst of 5000 requests, then calm again.
  ASSERT_TRUE(wait_until([&] { return range(web_, kPerScrape, start, now_seconds(), 1).values.size() >= 10; },
                         std::chrono::seconds(180)))
      << log();
  burst_ = 5000;
  Points direct;
  double end = 0;
  std::size_t peak = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        end = std::floor(now_seconds());
        direct = range(web_, kPerScrape, start, end, 1);
        if (direct.values.empty()) return false;
        peak = static_cast<std::size_t>(std::max_element(direct.values.begin(), direct.values.end()) -
                                        direct.values.begin());
        // A scrape in the middle of the burst splits it over two points: one holds half.
        return direct.values[peak] >= 2500 && direct.values.size() >= peak + 4;
      },
      std::chrono::seconds(180)))
      << "points: " << direct.values.size() << ", largest "
      << (direct.values.empty() ? 0 : direct.values[peak]) << "\n"
      << log();

  const auto r =
      spyglass_test::run({spyglass_test::kSpyglass, "detect", "--prometheus", url(), "--query", kPerScrape,
                          "--start", std::to_string(start), "--end", std::to_string(end), "--step", "1",
                          "--method", "mad", "--offline", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser parser;
  const auto doc = parse(parser, r.out);
  simdjson::dom::array anomalies;
  ASSERT_EQ(doc["anomalies"].get(anomalies), simdjson::SUCCESS);
  std::vector<double> flagged, scores;
  for (auto a : anomalies) {
    std::string_view stamp;
    double score = 0;
    ASSERT_EQ(a["timestamp"].get(stamp), simdjson::SUCCESS);
    ASSERT_EQ(a["score"].get(score), simdjson::SUCCESS);
    flagged.push_back(std::stod(std::string(stamp)));
    scores.push_back(std::fabs(score));
  }
  // The burst is flagged, at the time Prometheus gives it, with the highest score. A scrape
  // in the middle of the burst puts part of it in the point before or after the peak, which
  // may be flagged too. A calm point may be flagged as well when a scrape came late or early
  // (on a loaded machine the calm points are not all equal, and their MAD is small), but
  // never as strongly as the burst: below a tenth of its score.
  EXPECT_NE(std::find(flagged.begin(), flagged.end(), direct.times[peak]), flagged.end()) << r.out;
  ASSERT_FALSE(scores.empty()) << r.out;
  const double top = *std::max_element(scores.begin(), scores.end());
  for (std::size_t k = 0; k < flagged.size(); ++k) {
    const auto at = std::find(direct.times.begin(), direct.times.end(), flagged[k]);
    ASSERT_NE(at, direct.times.end()) << flagged[k] << " is not a time Prometheus gave\n" << r.out;
    const auto i = static_cast<std::size_t>(at - direct.times.begin());
    if ((i > peak ? i - peak : peak - i) <= 1) continue;
    EXPECT_LT(scores[k], top / 10) << "a calm point flagged like the burst: " << flagged[k] << "\n" << r.out;
  }
  const auto strongest =
      static_cast<std::size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
  const auto strongest_at = static_cast<std::size_t>(
      std::find(direct.times.begin(), direct.times.end(), flagged[strongest]) - direct.times.begin());
  EXPECT_LE(strongest_at > peak ? strongest_at - peak : peak - strongest_at, 1u) << r.out;
  std::string_view source;
  ASSERT_EQ(doc["parameters"]["prometheus"].get(source), simdjson::SUCCESS);
  EXPECT_EQ(source, url());
}

TEST_F(PrometheusSource, BadQueriesAndUnreachableServersGetClearErrors) {
  ASSERT_TRUE(
      wait_until([&] { return range(web_, "up", now_seconds() - 60, now_seconds(), 1).values.size() >= 1; },
                 std::chrono::seconds(180)))
      << log();
  const auto detect = [&](const std::string& base, const std::string& query, const std::string& start) {
    return spyglass_test::run({spyglass_test::kSpyglass, "detect", "--prometheus", base, "--query", query,
                               "--start", start, "--json"});
  };
  // Two series where one is needed: their labels are listed.
  auto r = detect(url(), R"({__name__=~"up|scrape_duration_seconds"})", "now-5m");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("selects 2 series"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("__name__=\"up\""), std::string::npos) << r.err;
  // None.
  r = detect(url(), R"(up{job="nothing"})", "now-5m");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("selects no series"), std::string::npos) << r.err;
  // PromQL Prometheus refuses: its own error is quoted.
  r = detect(url(), "sum(", "now-5m");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad_data"), std::string::npos) << r.err;
  // Nothing listening.
  r = detect("http://127.0.0.1:" + std::to_string(free_port()), "up", "now-5m");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("request failed"), std::string::npos) << r.err;
  // Usage errors: a start after the end, a time that is none, a source twice.
  r = detect(url(), "up", "now+5m");
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--start: not a time"), std::string::npos) << r.err;
  r = spyglass_test::run({spyglass_test::kSpyglass, "analyze", "--prometheus", url(), "--query", "up",
                          "--start", "now-1m", "--end", "now-2m"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--start must be before --end"), std::string::npos) << r.err;
  r = spyglass_test::run({spyglass_test::kSpyglass, "analyze", "--prometheus", url(), "--query", "up",
                          "--start", "now-1m", "--csv", "x.csv"});
  EXPECT_EQ(r.exit_code, 125);
  r = spyglass_test::run({spyglass_test::kSpyglass, "detect", "--query", "up"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("go with --prometheus"), std::string::npos) << r.err;
}

}  // namespace
