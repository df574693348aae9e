// The exporter's metrics as scraped: values, labels, histogram buckets, the cardinality
// guard, option errors, the HTTP endpoint and the application's own metrics.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <prometheus/counter.h>

#include "events.hpp"
#include "spyglass/exporters/prometheus.hpp"
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
  // 1 ms sits exactly on the 0.001 bound (le: counted there); 1 ms + 1 ns does not.
  std::vector<Event> batch{
      make_event(EventKind::function, "h", 1 * kMs), make_event(EventKind::function, "h", 1 * kMs + 1),
      make_event(EventKind::function, "h", 20 * kMs), make_event(EventKind::function, "h", 60'000 * kMs)};
  exp.export_batch(batch);
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  const std::string p = R"(spyglass_event_duration_seconds_bucket{kind="function",name="h",le=")";
  EXPECT_EQ(sample(m, p + R"(0.0005"})"), 0) << text;
  EXPECT_EQ(sample(m, p + R"(0.001"})"), 1);
  EXPECT_EQ(sample(m, p + R"(0.0025"})"), 2);
  EXPECT_EQ(sample(m, p + R"(0.025"})"), 3);
  EXPECT_EQ(sample(m, p + R"(10"})"), 3);
  EXPECT_EQ(sample(m, p + R"(+Inf"})"), 4);
  EXPECT_EQ(sample(m, R"(spyglass_event_duration_seconds_count{kind="function",name="h"})"), 4);
  EXPECT_NEAR(sample(m, R"(spyglass_event_duration_seconds_sum{kind="function",name="h"})"),
              0.001 + 0.001000001 + 0.020 + 60.0, 1e-9);
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

TEST(PrometheusExporter, DefaultBucketsSpan100usTo10s) {
  const auto b = spyglass::prom::default_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0001);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

TEST(PrometheusExporter, DbRowsAndHttpBytes) {
  PrometheusExporter exp(offline());
  Event q = make_event(EventKind::db, "SELECT * FROM users WHERE id = ?", 2 * kMs);
  q.rows = 5;
  Event r = make_event(EventKind::request, "/api/items", 3 * kMs);
  r.bytes_in = 100;
  r.bytes_out = 2500;
  exp.export_batch(std::vector<Event>{q, q, r});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_db_rows_total{name="SELECT * FROM users WHERE id = ?"})"), 10) << text;
  EXPECT_EQ(sample(m, R"(spyglass_http_request_bytes_total{route="/api/items",direction="in"})"), 100);
  EXPECT_EQ(sample(m, R"(spyglass_http_request_bytes_total{route="/api/items",direction="out"})"), 2500);
  // Only db events have rows and only requests have bytes.
  EXPECT_EQ(text.find(R"(spyglass_db_rows_total{name="/api/items"})"), std::string::npos);
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
  PrometheusExporter exp(offline());
  exp.export_batch(std::vector<Event>{make_event(EventKind::function, quoted, kMs),
                                      make_event(EventKind::function, bad1, kMs),
                                      make_event(EventKind::function, bad2, kMs)});
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="say \"hi\"\\now\nthen",status="ok"})"),
            1)
      << text;
  EXPECT_EQ(sample(m, "spyglass_events_total{kind=\"function\",name=\"bad\xef\xbf\xbd\",status=\"ok\"}"), 2);
  EXPECT_EQ(text.find('\xff'), std::string::npos);
  EXPECT_EQ(text.find('\xfe'), std::string::npos);
}

TEST(PrometheusExporter, CardinalityGuardFoldsExtraNamesIntoOther) {
  std::deque<std::string> names;  // outlive the exporter, as interned names do
  for (int i = 0; i < 10'000; ++i) names.push_back("fn_" + std::to_string(i));
  PrometheusExporter exp(offline());
  std::vector<Event> batch;
  for (const auto& n : names) batch.push_back(make_event(EventKind::function, n.c_str(), kMs));
  batch.push_back(make_event(EventKind::db, "q", kMs));  // another kind has its own budget
  exp.export_batch(batch);
  exp.export_batch(batch);  // second time through the pointer cache

  EXPECT_EQ(exp.series_overflow(), 2u * 9'000u);
  const std::string text = exp.scrape();
  const auto m = parse_exposition(text);
  EXPECT_EQ(sample(m, "spyglass_series_overflow_total"), 18'000);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="__other__",status="ok"})"), 18'000);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="fn_999",status="ok"})"), 2);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="fn_1000",status="ok"})"), -1);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="db",name="q",status="ok"})"), 2);
  std::size_t function_series = 0;
  for (const auto& [k, v] : m) {
    if (k.starts_with(R"(spyglass_events_total{kind="function")") && k.ends_with(R"(status="ok"})"))
      ++function_series;
  }
  EXPECT_EQ(function_series, 1001u);  // 1000 names + __other__
}

TEST(PrometheusExporter, SmallGuardLimit) {
  PrometheusOptions o = offline();
  o.max_names_per_kind = 2;
  PrometheusExporter exp(o);
  exp.export_batch(std::vector<Event>{
      make_event(EventKind::request, "/a", kMs), make_event(EventKind::request, "/b", kMs),
      make_event(EventKind::request, "/c", kMs), make_event(EventKind::request, "/a", kMs)});
  const auto m = parse_exposition(exp.scrape());
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="request",name="/a",status="ok"})"), 2);
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="request",name="__other__",status="ok"})"), 1);
  EXPECT_EQ(sample(m, R"(spyglass_http_request_bytes_total{route="__other__",direction="in"})"), 0);
  EXPECT_EQ(exp.series_overflow(), 1u);
}

TEST(PrometheusExporter, AnEventNamedOtherIsNoOverflow) {
  PrometheusOptions o = offline();
  o.max_names_per_kind = 2;
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

TEST(PrometheusExporter, ServesMetricsOverHttpWithApplicationMetrics) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  PrometheusExporter exp(o);
  ASSERT_NE(exp.port(), 0);
  auto& family =
      prometheus::BuildCounter().Name("app_jobs_total").Help("Jobs done.").Register(*exp.registry());
  family.Add({{"queue", "default"}}).Increment(42);
  exp.export_batch(std::vector<Event>{make_event(EventKind::function, "served", kMs)});

  const auto r = spyglass::test::http_get("http://127.0.0.1:" + std::to_string(exp.port()) + "/metrics");
  ASSERT_EQ(r.status, 200) << r.error;
  const auto m = parse_exposition(r.body);
  EXPECT_EQ(sample(m, R"(app_jobs_total{queue="default"})"), 42) << r.body;
  EXPECT_EQ(sample(m, R"(spyglass_events_total{kind="function",name="served",status="ok"})"), 1);
  EXPECT_GT(sample(m, "process_resident_memory_bytes"), 0);
  EXPECT_NE(exp.scrape().find("app_jobs_total"), std::string::npos);
}

TEST(PrometheusExporter, NoProcessMetricsWhenTurnedOff) {
  PrometheusOptions o = offline();
  o.process_metrics = false;
  PrometheusExporter exp(o);
  EXPECT_EQ(exp.scrape().find("process_"), std::string::npos);
}

/// Whether a TCP connection to 127.0.0.1:port is accepted into a listen queue.
bool connectable(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

TEST(PrometheusExporter, ForkedChildRecordsAfreshAndLeavesTheEndpointToTheParent) {
  PrometheusOptions o;
  o.listen_address = "127.0.0.1:0";
  auto exp = std::make_unique<PrometheusExporter>(o);
  const std::uint16_t port = exp->port();
  ASSERT_NE(port, 0);
  exp->export_batch(std::vector<Event>{make_event(EventKind::function, "before_fork", kMs)});
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(60);  // a hang in the child fails the test instead of blocking it
    exp->after_fork_child();
    exp->export_batch(std::vector<Event>{make_event(EventKind::function, "in_child", kMs)});
    const auto m = parse_exposition(exp->scrape());
    const bool ok =
        sample(m, R"(spyglass_events_total{kind="function",name="in_child",status="ok"})") == 1 &&
        sample(m, R"(spyglass_events_total{kind="function",name="before_fork",status="ok"})") == -1 &&
        exp->port() == 0;
    const char result = ok ? 'y' : 'n';
    if (write(ready[1], &result, 1) != 1) _exit(3);
    char c = 0;
    if (read(release[0], &c, 1) != 1) _exit(4);  // alive until the parent has checked
    exp.reset();                                 // must not wait for the parent's threads
    _exit(ok ? 0 : 1);
  }
  close(ready[1]);
  close(release[0]);
  char result = 0;
  ASSERT_EQ(read(ready[0], &result, 1), 1);
  EXPECT_EQ(result, 'y');

  // The parent still serves what it recorded.
  const auto r = spyglass::test::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(sample(parse_exposition(r.body),
                   R"(spyglass_events_total{kind="function",name="before_fork",status="ok"})"),
            1);
  // Once the parent closes its endpoint the port is closed, although the child lives
  // on: the child holds no copy of the listening socket.
  exp.reset();
  EXPECT_FALSE(connectable(port));

  const char go = 'x';
  EXPECT_EQ(write(release[1], &go, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child did not exit normally";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(ready[0]);
  close(release[1]);
}

}  // namespace
