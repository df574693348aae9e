// The exporter under a real Session/Collector: shutdown bounded by the exporter's own
// timeout against receivers that never answer, refuse, or read slowly; exact accounting
// of a burst larger than the collector's buffer; metrics of unsampled traces;
// OTEL_SDK_DISABLED.

#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <functional>
#include <map>

#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace otlp = spyglass::otlp;
using spyglass_test::Receiver;
using spyglass_test::Reply;
using namespace std::chrono_literals;

namespace {

constexpr auto kShutdownTimeout = 1500ms;

// Options that would keep retrying for minutes: only the shutdown deadline ends them.
otlp::OtlpOptions stubborn_options(const std::string& base_url) {
  otlp::OtlpOptions o;
  o.traces_endpoint = base_url + "/v1/traces";
  o.metrics_endpoint = base_url + "/v1/metrics";
  o.metrics_interval = 3600000ms;  // the final metrics go out at shutdown
  o.traces_timeout = 60000ms;
  o.metrics_timeout = 60000ms;
  o.export_timeout = 120000ms;
  o.max_attempts = 1000;
  o.initial_backoff = 20ms;
  o.max_backoff = 100ms;
  o.shutdown_timeout = kShutdownTimeout;
  return o;
}

void record_spans(int n) {
  for (int i = 0; i < n; ++i) {
    SPYGLASS_SCOPE("op");
  }
}

// Records `spans`, waits until `stuck` says the exporter is busy with the bad receiver,
// then shuts the Session's collector down and checks the bound and the accounting.
// Returns the exporter's counters as they were when shutdown returned.
otlp::OtlpCounters expect_bounded_shutdown(const otlp::OtlpOptions& o, int spans,
                                           const std::function<bool(const otlp::OtlpExporter&)>& stuck,
                                           const otlp_test::LogCapture& logs) {
  auto ex = std::make_shared<otlp::OtlpExporter>(o);
  EXPECT_EQ(ex->shutdown_timeout(), kShutdownTimeout);
  spyglass::SessionOptions so;
  so.collector.flush_interval = 10ms;
  spyglass::Session session(so, {ex});
  record_spans(spans);
  EXPECT_TRUE(otlp_test::eventually([&] { return stuck(*ex); })) << "the exporter never got to the receiver";
  const auto t0 = std::chrono::steady_clock::now();
  const bool in_time = session.collector().shutdown();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(in_time) << "the collector had to abandon the exporter";
  EXPECT_LT(took, kShutdownTimeout + 2s);

  const auto ec = session.collector().exporter_counters().at(0);
  const auto c = ex->counters();
  EXPECT_EQ(ec.produced, static_cast<std::uint64_t>(spans));
  EXPECT_EQ(ec.pending, 0u);
  EXPECT_EQ(ec.sent + ec.failed + ec.dropped, ec.produced);
  // The exporter saw what the collector did not drop, and agrees on what happened to it.
  EXPECT_EQ(c.produced, ec.produced - ec.dropped);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(c.sent, ec.sent);
  EXPECT_EQ(c.failed, ec.failed);
  EXPECT_EQ(c.dropped, 0u);
  otlp_test::expect_balanced(c);
  if (logs.complete()) {
    EXPECT_GE(logs.count("shutdown deadline"), 1u) << logs.text();
  }
  return c;
}

void expect_same(const otlp::OtlpCounters& a, const otlp::OtlpCounters& b) {
  EXPECT_EQ(a.produced, b.produced);
  EXPECT_EQ(a.sent, b.sent);
  EXPECT_EQ(a.failed, b.failed);
  EXPECT_EQ(a.dropped, b.dropped);
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_EQ(a.metric_exports + a.metric_failures, b.metric_exports + b.metric_failures);
}

}  // namespace

TEST(OtlpShutdown, BoundedWithAReceiverThatNeverAnswers) {
  otlp_test::LogCapture logs;
  Receiver rx;
  Reply hang;
  hang.action = Reply::hang;
  rx.set_default(hang);
  const auto c = expect_bounded_shutdown(
      stubborn_options(rx.url()), 600, [&](const otlp::OtlpExporter&) { return rx.count() >= 1; }, logs);
  EXPECT_EQ(c.sent, 0u);
  EXPECT_EQ(c.failed, c.produced);
}

TEST(OtlpShutdown, BoundedWithAReceiverThatRefusesConnections) {
  otlp_test::LogCapture logs;
  std::uint16_t port;
  {
    Receiver tmp;
    port = tmp.port();
  }
  const auto c = expect_bounded_shutdown(
      stubborn_options("http://127.0.0.1:" + std::to_string(port)), 600,
      [](const otlp::OtlpExporter& ex) { return ex.counters().retries >= 2; }, logs);
  EXPECT_EQ(c.sent, 0u);
  EXPECT_EQ(c.failed, c.produced);
}

TEST(OtlpShutdown, BoundedWithAReceiverThatReadsSlowly) {
  otlp_test::LogCapture logs;
  Receiver rx;
  rx.set_read_rate(256, 50ms);  // 5 KB/s: a batch of 512 spans takes many seconds
  const auto o = stubborn_options(rx.url());
  const auto c = expect_bounded_shutdown(
      o, 2000, [](const otlp::OtlpExporter& e) { return e.counters().pending > 0; }, logs);
  // Whatever it had: after shutdown, nothing changes any more.
  rx.stop();
  EXPECT_LT(c.sent, c.produced);
}

TEST(OtlpShutdown, CountersAreFinalWhenShutdownReturns) {
  otlp_test::LogCapture logs;
  Receiver rx;
  Reply hang;
  hang.action = Reply::hang;
  rx.set_default(hang);
  auto ex = std::make_shared<otlp::OtlpExporter>(stubborn_options(rx.url()));
  otlp::OtlpCounters at_shutdown;
  {
    spyglass::SessionOptions so;
    so.collector.flush_interval = 10ms;
    spyglass::Session session(so, {ex});
    record_spans(100);
    ASSERT_TRUE(rx.wait_for(1));
    session.collector().shutdown();
    at_shutdown = ex->counters();
  }
  rx.stop();  // ends the hung connections: nothing may come of it
  expect_same(ex->counters(), at_shutdown);
  EXPECT_EQ(at_shutdown.produced, 100u);
  EXPECT_EQ(at_shutdown.failed, 100u);
}

TEST(OtlpShutdown, ABurstLargerThanTheBufferIsAccountedExactly) {
  Receiver rx;
  // Slower than the burst comes in (a batch takes a tenth of a second or more), so the
  // collector's buffer overflows; each batch is still delivered well within the
  // shutdown timeout.
  rx.set_read_rate(16384, 10ms);
  otlp::OtlpOptions o;
  o.traces_endpoint = rx.url("/v1/traces");
  o.metrics_interval = 0ms;
  o.traces_protocol = otlp::Protocol::http_json;  // counted with simdjson
  o.shutdown_timeout = 30000ms;
  auto ex = std::make_shared<otlp::OtlpExporter>(o);
  constexpr int kSpans = 20000;
  spyglass::SessionOptions so;
  so.collector.buffer_capacity = 1024;
  so.collector.batch_max = 512;
  std::vector<spyglass::ExporterCounters> ec;
  {
    spyglass::Session session(so, {ex});
    record_spans(kSpans);
    EXPECT_TRUE(session.collector().shutdown());
    ec = session.collector().exporter_counters();
    const auto cc = session.collector().counters();
    EXPECT_EQ(cc.offered, static_cast<std::uint64_t>(kSpans));
    EXPECT_EQ(cc.dispatched + cc.rejected, cc.offered);
  }
  ASSERT_EQ(ec.size(), 1u);
  EXPECT_EQ(ec[0].pending, 0u);
  EXPECT_EQ(ec[0].failed, 0u);
  EXPECT_EQ(ec[0].sent + ec[0].dropped, ec[0].produced);
  // What the receiver got is exactly what was counted as sent.
  std::uint64_t received = 0;
  simdjson::dom::parser parser;
  for (const auto& r : rx.requests("/v1/traces")) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(r.payload()).get(doc), simdjson::SUCCESS);
    received += doc["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].get_array().size();
  }
  EXPECT_EQ(received, ec[0].sent);
  RecordProperty("dropped", std::to_string(ec[0].dropped));
  const auto c = ex->counters();
  EXPECT_EQ(c.sent, ec[0].sent);
  EXPECT_EQ(c.produced, ec[0].produced - ec[0].dropped);
}

namespace {
struct MetricCounts {
  std::map<std::string, std::string> request_count_by_status;
  std::size_t spans = 0;
};

// Ten requests, three of them server errors, under a Session with `ratio`.
MetricCounts run_requests_with_sample_ratio(double ratio) {
  Receiver rx;
  otlp::OtlpOptions o;
  o.traces_endpoint = rx.url("/v1/traces");
  o.metrics_endpoint = rx.url("/v1/metrics");
  o.metrics_interval = 3600000ms;  // the final ones at shutdown
  auto ex = std::make_shared<otlp::OtlpExporter>(o);
  {
    spyglass::SessionOptions so;
    so.sample_ratio = ratio;
    spyglass::Session session(so, {ex});
    for (int i = 0; i < 10; ++i) {
      spyglass::RequestScope req("/orders/{id}", {}, "GET");
      req.status(i < 3 ? 503 : 200);
    }
  }
  MetricCounts m;
  for (const auto& r : rx.requests("/v1/traces")) m.spans += otlp_test::spans_in(r);
  const auto metrics = rx.requests("/v1/metrics");
  EXPECT_EQ(metrics.size(), 1u);
  if (metrics.empty()) return m;
  const auto d = spyglass_test::decode_metrics(metrics.back().payload());
  EXPECT_EQ(d.exit_code, 0) << d.errors;
  if (d.exit_code != 0) return m;
  for (const auto* metric : d.tree.at("resource_metrics").at("scope_metrics").all("metrics")) {
    if (metric->at("name").value != "spyglass.request.count") continue;
    for (const auto* p : metric->at("sum").all("data_points")) {
      std::string status;
      for (const auto* kv : p->all("attributes")) {
        if (kv->at("key").value == "spyglass.status") status = kv->at("value").at("string_value").value;
      }
      m.request_count_by_status[status] = p->at("as_int").value;
    }
  }
  return m;
}
}  // namespace

TEST(OtlpMetrics, CountEveryRequestWhateverTheSampling) {
  const std::map<std::string, std::string> want{{"ok", "7"}, {"error", "3"}};
  const auto all = run_requests_with_sample_ratio(1.0);
  EXPECT_EQ(all.spans, 10u);
  EXPECT_EQ(all.request_count_by_status, want);
  const auto none = run_requests_with_sample_ratio(0.0);
  EXPECT_EQ(none.spans, 0u);  // no trace sampled: no span exported
  EXPECT_EQ(none.request_count_by_status, want);
}

TEST(OtlpDisabled, SdkDisabledMeansNoRequestAtAll) {
  Receiver rx;
  otlp::OtlpOptions o;
  o.traces_endpoint = rx.url("/v1/traces");
  o.metrics_endpoint = rx.url("/v1/metrics");
  o.metrics_interval = 1ms;
  ASSERT_EQ(::setenv("OTEL_SDK_DISABLED", "true", 1), 0);
  auto ex = std::make_shared<otlp::OtlpExporter>(o);
  {
    spyglass::Session session({}, {ex});
    EXPECT_FALSE(session.enabled());
    record_spans(50);
  }
  // Even driven directly, as a Collector of its own would, it sends nothing.
  const auto events = otlp_test::make_events(5);
  EXPECT_FALSE(ex->export_batch(events));
  ex->flush();
  ex->shutdown();
  ::unsetenv("OTEL_SDK_DISABLED");
  EXPECT_TRUE(ex->options().disabled);
  EXPECT_EQ(rx.count(), 0u);
  EXPECT_EQ(rx.connections(), 0u);
  const auto c = ex->counters();
  EXPECT_EQ(c.requests, 0u);
  EXPECT_EQ(c.produced, 5u);
  EXPECT_EQ(c.dropped, 5u);
}
