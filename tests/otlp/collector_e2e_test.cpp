// End to end: instrumented code on several threads -> Session/Collector -> OtlpExporter ->
// loopback receiver -> protoc. Parent links must survive the hop across threads.

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "spyglass/exporters/otlp.hpp"
#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace otlp = spyglass::otlp;
using namespace std::chrono_literals;

namespace {

struct DecodedSpan {
  std::string trace_id, span_id, parent, name, kind;
  std::map<std::string, std::string> attrs;
  bool error = false;
};

std::vector<DecodedSpan> decode_all(const std::vector<spyglass_test::Request>& reqs) {
  std::vector<DecodedSpan> out;
  for (const auto& r : reqs) {
    if (r.path != "/v1/traces") continue;
    const auto d = spyglass_test::decode_traces(r.payload());
    EXPECT_EQ(d.exit_code, 0) << d.errors;
    if (d.exit_code != 0) continue;
    for (const auto* s : d.tree.at("resource_spans").at("scope_spans").all("spans")) {
      DecodedSpan x;
      x.trace_id = spyglass_test::hex(s->at("trace_id").value);
      x.span_id = spyglass_test::hex(s->at("span_id").value);
      if (s->has("parent_span_id")) x.parent = spyglass_test::hex(s->at("parent_span_id").value);
      x.name = s->at("name").value;
      x.kind = s->at("kind").value;
      x.error = s->has("status");
      for (const auto* a : s->all("attributes")) {
        const auto& v = a->at("value");
        x.attrs[a->at("key").value] =
            v.has("string_value") ? v.at("string_value").value : v.at("int_value").value;
      }
      out.push_back(std::move(x));
    }
  }
  return out;
}

}  // namespace

TEST(OtlpEndToEnd, SpansFromACollectorKeepTheirParentsAcrossThreads) {
  spyglass_test::Receiver rx;
  otlp::OtlpOptions o;
  o.traces_endpoint = rx.url("/v1/traces");
  o.metrics_endpoint = rx.url("/v1/metrics");
  o.service_name = "e2e";
  o.metrics_interval = 0ms;
  o.traces_compression = otlp::Compression::gzip;
  auto exporter = std::make_shared<otlp::OtlpExporter>(o);

  constexpr int kRequests = 20;
  {
    spyglass::SessionOptions so;
    so.sample_ratio = o.sampler.root_ratio();
    spyglass::Session session(so, {exporter});
    for (int i = 0; i < kRequests; ++i) {
      spyglass::RequestScope req("/orders/{id}", {}, "POST");
      { SPYGLASS_SCOPE("validate"); }
      const auto ctx = spyglass::Context::current();
      std::thread worker([ctx] {
        spyglass::ContextGuard g(ctx);
        SPYGLASS_SCOPE("price");
        SPYGLASS_QUERY(q, "SELECT price FROM items WHERE id = 42");
        q.rows(3);
      });
      worker.join();
      req.status(i % 5 == 0 ? 500 : 200);
    }
    ASSERT_TRUE(session.collector().flush(30s));  // delivered when it returns
  }                                               // the Session drains and shuts the exporter down

  const auto c = exporter->counters();
  EXPECT_EQ(c.produced, kRequests * 4u);
  EXPECT_EQ(c.sent, c.produced);
  EXPECT_EQ(c.pending, 0u);

  const auto spans = decode_all(rx.requests());
  ASSERT_EQ(spans.size(), kRequests * 4u);
  std::map<std::string, const DecodedSpan*> by_id;
  for (const auto& s : spans) by_id[s.span_id] = &s;
  int roots = 0, errors = 0, cross_thread = 0;
  for (const auto& s : spans) {
    if (s.kind == "SPAN_KIND_SERVER") {
      ++roots;
      EXPECT_TRUE(s.parent.empty());
      EXPECT_EQ(s.name, "POST /orders/{id}");
      EXPECT_EQ(s.attrs.at("http.route"), "/orders/{id}");
      if (s.error) {
        ++errors;
        EXPECT_EQ(s.attrs.at("http.response.status_code"), "500");
      }
      continue;
    }
    ASSERT_TRUE(by_id.count(s.parent)) << s.name << " has no parent in the export";
    const DecodedSpan& parent = *by_id.at(s.parent);
    EXPECT_EQ(s.trace_id, parent.trace_id);
    if (s.kind == "SPAN_KIND_CLIENT") {
      EXPECT_EQ(parent.name, "price");
      EXPECT_EQ(s.attrs.at("db.query.text"), "SELECT price FROM items WHERE id = ?");  // redacted
      EXPECT_EQ(s.attrs.at("db.response.returned_rows"), "3");
    } else if (s.name == "price") {
      EXPECT_EQ(parent.kind, "SPAN_KIND_SERVER");
      EXPECT_NE(s.attrs.at("thread.id"), parent.attrs.at("thread.id"));  // the worker thread
      ++cross_thread;
    } else {
      EXPECT_EQ(s.name, "validate");
      EXPECT_EQ(s.attrs.at("thread.id"), parent.attrs.at("thread.id"));
    }
  }
  EXPECT_EQ(roots, kRequests);
  EXPECT_EQ(errors, kRequests / 5);
  EXPECT_EQ(cross_thread, kRequests);
}

TEST(OtlpEndToEnd, EverySamplerFromTheEnvironmentIsHonouredUnderRemoteParents) {
  // Callers' traceparents: sampled (-01) or not (-00), with a trace id whose low half is
  // small (passes a 0.5 ratio) or large (does not).
  const std::string low = "00-4bf92f3577b34da60000000000000001-00f067aa0ba902b7-";
  const std::string high = "00-4bf92f3577b34da6ffffffffffffff00-00f067aa0ba902b7-";
  struct Case {
    const char* sampler;
    std::multiset<std::string> recorded;  // traceparents whose request is exported
    std::optional<bool> new_root;         // a request without a traceparent is exported
  };
  const Case cases[] = {
      {"always_on", {low + "01", low + "00", high + "01", high + "00"}, true},
      {"always_off", {}, false},
      {"traceidratio", {low + "01", low + "00"}, std::nullopt},  // a new root's id is random
      {"parentbased_always_on", {low + "01", high + "01"}, true},
      {"parentbased_always_off", {low + "01", high + "01"}, false},
      {"parentbased_traceidratio", {low + "01", high + "01"}, std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sampler);
    const std::map<std::string, std::string> env{{"OTEL_TRACES_SAMPLER", c.sampler},
                                                 {"OTEL_TRACES_SAMPLER_ARG", "0.5"}};
    spyglass_test::Receiver rx;
    otlp::OtlpOptions base;
    base.traces_endpoint = rx.url("/v1/traces");
    base.metrics_interval = 0ms;
    const auto o = otlp::from_env(base, nullptr, [&](const char* n) -> const char* {
      auto it = env.find(n);
      return it == env.end() ? nullptr : it->second.c_str();
    });
    auto exporter = std::make_shared<otlp::OtlpExporter>(o);
    std::multiset<std::string> recorded;
    {
      spyglass::SessionOptions so;
      so.sample_ratio = o.sampler.root_ratio();
      so.parent_based = o.sampler.parent_based();
      spyglass::Session session(so, {exporter});
      for (const std::string& tp : {low + "01", low + "00", high + "01", high + "00"}) {
        spyglass::RequestScope req("/in", tp, "GET");
        SPYGLASS_SCOPE("child");
      }
      if (c.new_root) {
        spyglass::RequestScope req("/new", {}, "GET");
      }
      ASSERT_TRUE(session.collector().flush(30s));
    }
    std::map<std::string, int> requests_by_trace, children_by_trace;
    bool new_root = false;
    for (const auto& s : decode_all(rx.requests())) {
      if (s.name == "GET /new") {
        new_root = true;
      } else if (s.name == "GET /in") {
        ++requests_by_trace[s.trace_id];
        EXPECT_EQ(s.parent, "00f067aa0ba902b7");  // the caller's span
      } else {
        ++children_by_trace[s.trace_id];
      }
    }
    std::multiset<std::string> want;  // trace ids of the requests expected
    for (const auto& tp : c.recorded) want.insert(tp.substr(3, 32));
    std::multiset<std::string> got;
    for (const auto& [trace, n] : requests_by_trace) {
      for (int i = 0; i < n; ++i) got.insert(trace);
    }
    EXPECT_EQ(got, want);
    EXPECT_EQ(children_by_trace, requests_by_trace);  // children follow their request
    if (c.new_root) {
      EXPECT_EQ(new_root, *c.new_root);
    }
  }
}
