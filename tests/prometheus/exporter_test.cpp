// The exporter's metrics as scrape() renders them, without endpoint or push (no thread):
// values, labels, histogram buckets, the cardinality guard, bad input and option errors.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "events.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/utf8.hpp"
#include "support.hpp"

namespace {

using spyglass::Event;
using spyglass::EventKind;
using spyglass::Status;
using spyglass::prom::PrometheusExporter;
using spyglass::prom::PrometheusOptions;
using spyglass::test::kMs;
using spyglass::test::make_event;
using spyglass::test::parse_exposition;
using spyglass::test::sample;

PrometheusOptions offline() {
  PrometheusOptions o;
  o.listen_address.clear();  // no endpoint: these tests read scrape()
  return o;
}

TEST(PrometheusExporter, CountsEventsByKindNameAndStatus) {
  PrometheusExporter exp(offline());
  std::vector<Event> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(make_event(EventKind::function, "alpha", 1 * kMs));
  batch.push_back(make_event(EventKind::function, "alpha", 20 * kMs, Status::error));
  batch.push_back(make_event(EventKind::custom, "alpha", 7 * kMs));
  ASSERT_TRUE(exp.export_batch(batch));

  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="alpha",status="ok"})"), 3) << text;
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="alpha",status="error"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="alpha",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="alpha",status="error"})"), 0);
  EXPECT_NE(text.find("# TYPE spyglass_events_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE spyglass_event_duration_seconds histogram"), std::string::npos);
}

TEST(PrometheusExporter, HistogramBucketsAreCumulativeWithLeSemantics) {
  PrometheusExporter exp(offline());
  // 1 ms sits exactly on the 0.001 bound (le: counted there); 1 ms + 1 ns does not; 60 s
  // is the last bound, 60 s + 1 ns is past it.
  std::vector<Event> batch{
      make_event(EventKind::function, "h", 1 * kMs), make_event(EventKind::function, "h", 1 * kMs + 1),
      make_event(EventKind::function, "h", 20 * kMs), make_event(EventKind::function, "h", 60'000 * kMs),
      make_event(EventKind::function, "h", 60'000 * kMs + 1)};
  exp.export_batch(batch);
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  const std::string p = R"(spyglass_event_duration_seconds_bucket{kind="function",name="h",le=")";
  EXPECT_EQ(sample(m, p + R"(0.0005"})"), 0) << text;
  EXPECT_EQ(sample(m, p + R"(0.001"})"), 1);
  EXPECT_EQ(sample(m, p + R"(0.002"})"), 2);
  EXPECT_EQ(sample(m, p + R"(0.02"})"), 3);
  EXPECT_EQ(sample(m, p + R"(50"})"), 3);
  EXPECT_EQ(sample(m, p + R"(60"})"), 4);
  EXPECT_EQ(sample(m, p + R"(+Inf"})"), 5);
  EXPECT_EQ(sample(m, R"(spyglass_event_duration_seconds_count{kind="function",name="h"})"), 5);
  EXPECT_NEAR(sample(m, R"(spyglass_event_duration_seconds_sum{kind="function",name="h"})"),
              0.001 + 0.001000001 + 0.020 + 60.0 + 60.000000001, 1e-9);
}

TEST(PrometheusExporter, CustomBuckets) {
  PrometheusOptions o = offline();
  o.buckets = {0.5, 2};
  PrometheusExporter exp(o);
  exp.export_batch(std::vector<Event>{make_event(EventKind::db, "q", 1000 * kMs)});
  const auto m = parse_exposition(exp.scrape());
  const std::string p = R"(spyglass_event_duration_seconds_bucket{kind="db",name="q",le=")";
  EXPECT_EQ(sample(m, p + R"(0.5"})"), 0);
  EXPECT_EQ(sample(m, p + R"(2"})"), 1);
  EXPECT_EQ(sample(m, p + R"(+Inf"})"), 1);
  EXPECT_EQ(sample(m, p + R"(0.001"})"), -1);  // default bounds not present
}

TEST(PrometheusExporter, DefaultBucketsAre125PerDecadeFrom1usTo60s) {
  const auto b = spyglass::prom::default_buckets();
  const std::vector<double> expected{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
                                     1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,  0.2,  0.5,
                                     1,    2,    5,    10,   20,   50,   60};
  EXPECT_EQ(b, expected);
}

TEST(PrometheusExporter, DefaultBucketsSeparate100ns1us10usAnd30s) {
  // Each lands in the bucket whose bounds bracket it, so a quantile computed from the
  // buckets is off by at most the bucket's width (checked by a real Prometheus in
  // peers_test.cpp).
  PrometheusExporter exp(offline());
  exp.export_batch(std::vector<Event>{
      make_event(EventKind::function, "100ns", 100), make_event(EventKind::function, "1us", 1'000),
      make_event(EventKind::function, "10us", 10'000), make_event(EventKind::function, "30s", 30'000 * kMs)});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  const auto bucket = [&](const char* name, const char* le) {
    return sample(m, std::string(R"(spyglass_event_duration_seconds_bucket{kind="function",name=")") + name +
                         R"(",le=")" + le + R"("})");
  };
  EXPECT_EQ(bucket("100ns", "1e-06"), 1) << text;
  EXPECT_EQ(bucket("1us", "1e-06"), 1);
  EXPECT_EQ(bucket("10us", "5e-06"), 0);
  EXPECT_EQ(bucket("10us", "1e-05"), 1);
  EXPECT_EQ(bucket("30s", "20"), 0);
  EXPECT_EQ(bucket("30s", "50"), 1);
  // The series cost the header documents: 25 bounds, +Inf, _sum and _count per name.
  std::size_t lines = 0;
  for (const auto& [key, value] : m) lines += key.find(R"(name="30s")") != std::string::npos ? 1u : 0u;
  EXPECT_EQ(lines, 2u + 25u + 3u);
}

TEST(PrometheusExporter, DbRowsAndHttpBytes) {
  PrometheusExporter exp(offline());
  Event q = make_event(EventKind::db, "SELECT * FROM users WHERE id = ?", 2 * kMs);
  q.rows = 5;
  Event r = make_event(EventKind::request, "/api/items", 3 * kMs);
  r.bytes_in = 100;
  r.bytes_out = 2500;
  // A call to another server: its own kind, in the same families.
  Event c = make_event(EventKind::client, "/api/items", 1 * kMs, Status::error);
  c.bytes_in = 7;
  c.bytes_out = 9;
  exp.export_batch(std::vector<Event>{q, q, r, c});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_db_rows_total{kind="db",name="SELECT * FROM users WHERE id = ?"})"), 10)
      << text;
  EXPECT_EQ(
      sample(m, R"(spyglass_http_request_bytes_total{kind="request",name="/api/items",direction="in"})"),
      100);
  EXPECT_EQ(
      sample(m, R"(spyglass_http_request_bytes_total{kind="request",name="/api/items",direction="out"})"),
      2500);
  EXPECT_EQ(sample(m, R"(spyglass_http_request_bytes_total{kind="client",name="/api/items",direction="in"})"),
            7);
  EXPECT_EQ(
      sample(m, R"(spyglass_http_request_bytes_total{kind="client",name="/api/items",direction="out"})"), 9);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="client",name="/api/items",status="error"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_event_duration_seconds_count{kind="client",name="/api/items"})"), 1);
  // Only db events have rows and only requests served and made have bytes.
  EXPECT_EQ(text.find(R"(spyglass_db_rows_total{kind="request")"), std::string::npos);
  EXPECT_EQ(text.find(R"(spyglass_http_request_bytes_total{kind="db")"), std::string::npos);
  // One label name for the operation across families: no `route`.
  EXPECT_EQ(text.find("route="), std::string::npos);
}

TEST(PrometheusExporter, SameTextThroughDifferentPointersIsOneSeries) {
  static const char a[] = "shared-name";
  static const char b[] = "shared-name";
  ASSERT_NE(static_cast<const void*>(a), static_cast<const void*>(b));
  PrometheusExporter exp(offline());
  exp.export_batch(
      std::vector<Event>{make_event(EventKind::function, a, kMs), make_event(EventKind::function, b, kMs)});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="shared-name",status="ok"})"), 2);
  const std::string key = R"(spyglass_events_total{kind="function",name="shared-name",status="ok"})";
  std::size_t lines = 0;
  for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + key.size())) ++lines;
  EXPECT_EQ(lines, 1u);
}

TEST(PrometheusExporter, EscapesQuotesBackslashesNewlinesAndRepairsUtf8) {
  static const char quoted[] = "say \"hi\"\\now\nthen";
  static const char bad1[] = "bad\xff";
  static const char bad2[] = "bad\xfe";  // repairs to the same label as bad1
  // A truncated 3-byte sequence is one maximal subpart: one U+FFFD, not one per byte.
  static const char truncated[] = "euro\xe2\x82!";
  PrometheusExporter exp(offline());
  exp.export_batch(std::vector<Event>{
      make_event(EventKind::function, quoted, kMs), make_event(EventKind::function, bad1, kMs),
      make_event(EventKind::function, bad2, kMs), make_event(EventKind::function, truncated, kMs)});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="say \"hi\"\\now\nthen",status="ok"})"),
            1)
      << text;
  EXPECT_EQ(sample(m, "spyglass_events_total{kind=\"function\",name=\"bad\xef\xbf\xbd\",status=\"ok\"}"), 2);
  EXPECT_EQ(sample(m, "spyglass_events_total{kind=\"function\",name=\"euro\xef\xbf\xbd!\",status=\"ok\"}"),
            1);
  // The library's one rule, the same that JSONL and OTLP apply.
  std::string repaired;
  spyglass::append_utf8_repaired(truncated, repaired);
  EXPECT_EQ(repaired, "euro\xef\xbf\xbd!");
  EXPECT_TRUE(spyglass::is_valid_utf8(text));
  EXPECT_EQ(text.find('\xff'), std::string::npos);
  EXPECT_EQ(text.find('\xfe'), std::string::npos);
}

/// Series lines of the event families (the ones max_series bounds) in `m`.
std::size_t event_family_series(const std::map<std::string, double>& m) {
  std::size_t n = 0;
  for (const auto& [key, value] : m) {
    for (const char* f : {"spyglass_events_total{", "spyglass_event_duration_seconds_",
                          "spyglass_db_rows_total{", "spyglass_http_request_bytes_total{"}) {
      if (key.starts_with(f)) ++n;
    }
  }
  return n;
}

TEST(PrometheusExporter, CardinalityGuardCountsSeriesWithADocumentedDefault) {
  std::deque<std::string> names;  // outlive the exporter, as interned names do
  for (int i = 0; i < 10'000; ++i) names.push_back("fn_" + std::to_string(i));
  const PrometheusOptions o = offline();
  EXPECT_EQ(o.max_series, 30'000u);
  PrometheusExporter exp(o);
  std::vector<Event> batch;
  for (const auto& n : names) batch.push_back(make_event(EventKind::function, n.c_str(), kMs));
  batch.push_back(make_event(EventKind::db, "q", kMs));  // no room left: folded as well
  exp.export_batch(batch);
  exp.export_batch(batch);  // second time through the pointer cache

  // A function name costs 30 series with the default buckets: 1000 of them fill 30000.
  EXPECT_EQ(exp.series_overflow(), 2u * (9'000u + 1u));
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, "spyglass_series_overflow_total"), 18'002);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="__other__",status="ok"})"), 18'000);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="fn_999",status="ok"})"), 2);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="fn_1000",status="ok"})"), -1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="db",name="q",status="ok"})"), -1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="db",name="__other__",status="ok"})"), 2);
  // The limit, plus the "__other__" series of the two kinds (30 and 31).
  EXPECT_EQ(event_family_series(m), 30'000u + 30u + 31u);
}

TEST(PrometheusExporter, CardinalityGuardCountsEveryLabelCombinationOfAName) {
  PrometheusOptions o = offline();
  o.max_series = 100;
  PrometheusExporter exp(o);
  // "x" as a function (30 series) and as a request (32) is two combinations: 62 of 100.
  // A db name then costs 31 (93), and a custom one 30 more would pass 100: folded.
  exp.export_batch(
      std::vector<Event>{make_event(EventKind::function, "x", kMs), make_event(EventKind::request, "x", kMs),
                         make_event(EventKind::db, "y", kMs), make_event(EventKind::custom, "z", kMs)});
  EXPECT_EQ(exp.series_overflow(), 1u);
  const auto m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="x",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="request",name="x",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="db",name="y",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="z",status="ok"})"), -1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="__other__",status="ok"})"), 1);
  EXPECT_EQ(event_family_series(m), 30u + 32u + 31u + 30u);
}

TEST(PrometheusExporter, SmallGuardLimit) {
  PrometheusOptions o = offline();
  o.max_series = 64;  // two request names (32 series each)
  PrometheusExporter exp(o);
  exp.export_batch(std::vector<Event>{
      make_event(EventKind::request, "/a", kMs), make_event(EventKind::request, "/b", kMs),
      make_event(EventKind::request, "/c", kMs), make_event(EventKind::request, "/a", kMs)});
  const auto m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="request",name="/a",status="ok"})"), 2);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="request",name="__other__",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_http_request_bytes_total{kind="request",name="__other__",direction="in"})"),
            0);
  EXPECT_EQ(exp.series_overflow(), 1u);
}

TEST(PrometheusExporter, AnEventNamedOtherIsNoOverflow) {
  PrometheusOptions o = offline();
  o.max_series = 60;  // two custom names (30 series each)
  PrometheusExporter exp(o);
  static const char other_copy[] = "__other__";  // same text through another pointer
  exp.export_batch(std::vector<Event>{make_event(EventKind::custom, "__other__", kMs),
                                      make_event(EventKind::custom, other_copy, kMs),
                                      make_event(EventKind::custom, "__other__", kMs, Status::error)});
  EXPECT_EQ(exp.series_overflow(), 0u);
  auto m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="__other__",status="ok"})"), 2);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="__other__",status="error"})"), 1);
  EXPECT_EQ(sample(m, "spyglass_series_overflow_total"), 0);

  // It takes nothing from the budget: two more names get series of their own, and only
  // the third is folded into "__other__" and counted as overflow.
  exp.export_batch(std::vector<Event>{
      make_event(EventKind::custom, "a", kMs), make_event(EventKind::custom, "b", kMs),
      make_event(EventKind::custom, "c", kMs), make_event(EventKind::custom, "__other__", kMs)});
  EXPECT_EQ(exp.series_overflow(), 1u);
  m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="a",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="b",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="c",status="ok"})"), -1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="__other__",status="ok"})"), 4);
  EXPECT_EQ(sample(m, "spyglass_series_overflow_total"), 1);

  // Past the limit too, and through the pointer cache on later batches.
  exp.export_batch(std::vector<Event>{make_event(EventKind::custom, other_copy, kMs),
                                      make_event(EventKind::custom, "c", kMs)});
  EXPECT_EQ(exp.series_overflow(), 2u);
  m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="custom",name="__other__",status="ok"})"), 6);
}

TEST(PrometheusExporter, RejectsBadOptionsWithClearErrors) {
  const auto expect_invalid = [](PrometheusOptions o, const std::string& needle) {
    try {
      PrometheusExporter exp(std::move(o));
      ADD_FAILURE() << "no exception for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  PrometheusOptions o = offline();
  o.buckets = {};
  expect_invalid(o, "buckets");
  o.buckets = {0.1, 0.05};
  expect_invalid(o, "ascending");
  o.buckets = {-1};
  expect_invalid(o, "bucket bound");
  o.buckets = {0.1, std::numeric_limits<double>::infinity()};
  expect_invalid(o, "bucket bound");
  o = offline();
  o.listen_address = "localhost";
  expect_invalid(o, "localhost");
  o.listen_address = "127.0.0.1:99999";
  expect_invalid(o, "127.0.0.1:99999");
  o = offline();
  o.push_url = "127.0.0.1:9091";
  expect_invalid(o, "127.0.0.1:9091");
  o.push_url = "ftp://x:1";
  expect_invalid(o, "ftp://x:1");
  o.push_url = "http://127.0.0.1:9091/metrics";
  expect_invalid(o, "path");
  o.push_url = "http://127.0.0.1:9091";
  o.push_job = "a/b";
  expect_invalid(o, "a/b");
  o.push_job = "spyglass";
  o.push_timeout = std::chrono::milliseconds(0);
  expect_invalid(o, "push_timeout");
  o = offline();
  o.request_timeout = std::chrono::milliseconds(0);
  expect_invalid(o, "request_timeout");
  o = offline();
  o.server_threads = 0;
  expect_invalid(o, "server_threads");
}

TEST(PrometheusExporter, PortInUseIsAClearErrorNamingTheAddress) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  PrometheusOptions o;
  o.listen_address = address;
  try {
    PrometheusExporter exp(o);
    ADD_FAILURE() << "a busy port was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
  }
  close(fd);
}

TEST(PrometheusExporter, BadPushOptionsAreReportedBeforeThePortIsBound) {
  // The port is taken: were the endpoint started first, its error would come instead.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  const auto expect_invalid = [&](const std::string& needle) {
    try {
      PrometheusExporter exp(o);
      ADD_FAILURE() << "no exception for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the endpoint was started before the push options were checked: " << e.what();
    }
  };
  o.push_url = "htp:/nowhere";
  expect_invalid("htp:/nowhere");
  o.push_url = "http://127.0.0.1:9091";
  o.push_instance = "a/b";
  expect_invalid("a/b");
  o.push_instance.clear();
  o.push_interval = std::chrono::milliseconds(0);
  expect_invalid("push_interval");
  close(fd);
}

TEST(PrometheusExporter, NoProcessMetricsWhenTurnedOff) {
  PrometheusOptions o = offline();
  o.process_metrics = false;
  PrometheusExporter exp(o);
  EXPECT_EQ(exp.scrape().find("process_"), std::string::npos);
}

TEST(PrometheusExporter, MetricsCountUnsampledEventsToo) {
  PrometheusExporter exp(offline());
  EXPECT_TRUE(exp.accepts_unsampled());
  Event unsampled = make_event(EventKind::function, "sampling", kMs);
  unsampled.flags |= Event::kFlagUnsampled;
  ASSERT_FALSE(unsampled.sampled());
  exp.export_batch(std::vector<Event>{unsampled, make_event(EventKind::function, "sampling", kMs)});
  EXPECT_EQ(sample(parse_exposition(exp.scrape()),
                   R"(spyglass_events_total{kind="function",name="sampling",status="ok"})"),
            2);
}

TEST(PrometheusExporter, ShutdownTimeoutCoversTheFinalPush) {
  PrometheusExporter offline_exp(offline());
  EXPECT_EQ(offline_exp.shutdown_timeout(), std::chrono::seconds(1));
}

}  // namespace
