// The encoders, checked by protoc with the official definitions (protobuf) and by
// simdjson against OTLP/JSON's rules (JSON).

#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <regex>

#include "../../fuzz/otlp/protoc_decode.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/version.hpp"

namespace otlp = spyglass::otlp;
using spyglass::Event;
using spyglass::EventKind;
using spyglass_test::PNode;

namespace {

std::vector<otlp::Attribute> test_resource() {
  otlp::OtlpOptions o;
  o.service_name = "checkout";
  o.service_version = "1.2.3";
  o.resource_attributes.push_back({"deployment.environment", std::string("test")});
  return otlp::make_resource(o);
}

// A small trace across kinds and threads: request -> function -> db, plus a custom root.
std::vector<Event> sample_events() {
  std::vector<Event> v;
  const spyglass::TraceId t1{0x0102030405060708ULL, 0x090a0b0c0d0e0f10ULL};
  Event req;
  req.kind = EventKind::request;
  req.start = 1'700'000'000'000'000'000ULL;
  req.duration = 25'000'000;
  req.trace_id = t1;
  req.span_id = 0x1111111111111111ULL;
  req.name = "/users/{id}";
  req.detail = "GET";
  req.http_status = 503;
  req.bytes_in = 12;
  req.bytes_out = 3456;
  req.thread_id = 4242;
  req.status = spyglass::Status::error;
  v.push_back(req);

  Event fn;
  fn.kind = EventKind::function;
  fn.start = req.start + 1000;
  fn.duration = 5'000'000;
  fn.trace_id = t1;
  fn.span_id = 0x2222222222222222ULL;
  fn.parent_span_id = req.span_id;
  fn.name = "load_user(int)";
  fn.thread_id = 4243;  // ran on a pool thread
  v.push_back(fn);

  Event db;
  db.kind = EventKind::db;
  db.start = fn.start + 10;
  db.duration = 1'500'000;
  db.trace_id = t1;
  db.span_id = 0xfedcba9876543210ULL;
  db.parent_span_id = fn.span_id;
  db.name = "SELECT * FROM users WHERE id = ?";
  db.detail = "postgresql";
  db.rows = 1;
  db.thread_id = 4243;
  v.push_back(db);

  Event custom;
  custom.kind = EventKind::custom;
  custom.start = req.start + 5;
  custom.duration = 7;
  custom.trace_id = {0, 0xabcdef};
  custom.span_id = 0x0000000000000001ULL;
  custom.name = "caf\xc3\xa9 \"quoted\"\n";  // UTF-8, a quote and a newline
  custom.thread_id = 0;
  v.push_back(custom);
  return v;
}

std::map<std::string, std::string> attrs_of(const PNode& n) {
  std::map<std::string, std::string> m;
  for (const PNode* a : n.all("attributes")) {
    const PNode& val = a->at("value");
    const std::string v = val.has("string_value") ? val.at("string_value").value : val.at("int_value").value;
    m[a->at("key").value] = v;
  }
  return m;
}

std::string hex_trace(const spyglass::TraceId& t) { return spyglass::to_hex(t); }

}  // namespace

TEST(OtlpProtobuf, OfficialDecoderReadsEverySpanFieldByField) {
  const auto events = sample_events();
  const auto resource = test_resource();
  std::string body;
  otlp::encode_traces_protobuf(events, resource, body);
  const auto d = spyglass_test::decode_traces(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;

  const auto rs = d.tree.all("resource_spans");
  ASSERT_EQ(rs.size(), 1u);
  const auto res = attrs_of(rs[0]->at("resource"));
  EXPECT_EQ(res.at("service.name"), "checkout");
  EXPECT_EQ(res.at("service.version"), "1.2.3");
  EXPECT_EQ(res.at("telemetry.sdk.name"), "spyglass");
  EXPECT_EQ(res.at("telemetry.sdk.language"), "cpp");
  EXPECT_EQ(res.at("telemetry.sdk.version"), SPYGLASS_VERSION_STRING);
  EXPECT_EQ(res.at("process.pid"), std::to_string(::getpid()));
  EXPECT_EQ(res.at("deployment.environment"), "test");
  EXPECT_FALSE(res.at("host.name").empty());

  const auto ss = rs[0]->all("scope_spans");
  ASSERT_EQ(ss.size(), 1u);
  EXPECT_EQ(ss[0]->at("scope").at("name").value, "spyglass");
  EXPECT_EQ(ss[0]->at("scope").at("version").value, SPYGLASS_VERSION_STRING);
  const auto spans = ss[0]->all("spans");
  ASSERT_EQ(spans.size(), events.size());

  for (std::size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    const PNode& s = *spans[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(spyglass_test::hex(s.at("trace_id").value), hex_trace(e.trace_id));
    EXPECT_EQ(spyglass_test::hex(s.at("span_id").value), spyglass::span_to_hex(e.span_id));
    if (e.parent_span_id == 0) {
      EXPECT_FALSE(s.has("parent_span_id"));
    } else {
      EXPECT_EQ(spyglass_test::hex(s.at("parent_span_id").value), spyglass::span_to_hex(e.parent_span_id));
    }
    EXPECT_EQ(s.at("start_time_unix_nano").value, std::to_string(e.start));
    EXPECT_EQ(s.at("end_time_unix_nano").value, std::to_string(e.start + e.duration));
    const auto a = attrs_of(s);
    if (e.thread_id != 0) {
      EXPECT_EQ(a.at("thread.id"), std::to_string(e.thread_id));
    } else {
      EXPECT_EQ(a.count("thread.id"), 0u);
    }
    if (e.status == spyglass::Status::error) {
      EXPECT_EQ(s.at("status").at("code").value, "STATUS_CODE_ERROR");
    } else {
      EXPECT_FALSE(s.has("status"));
    }
  }
  // Per-kind mapping (semantic conventions).
  EXPECT_EQ(spans[0]->at("kind").value, "SPAN_KIND_SERVER");
  EXPECT_EQ(spans[0]->at("name").value, "GET /users/{id}");
  auto a0 = attrs_of(*spans[0]);
  EXPECT_EQ(a0.at("http.route"), "/users/{id}");
  EXPECT_EQ(a0.at("http.request.method"), "GET");
  EXPECT_EQ(a0.at("http.response.status_code"), "503");
  EXPECT_EQ(a0.at("http.request.body.size"), "12");
  EXPECT_EQ(a0.at("http.response.body.size"), "3456");
  EXPECT_EQ(a0.at("url.path"), "/users/{id}");
  EXPECT_EQ(a0.at("url.scheme"), "http");
  EXPECT_EQ(a0.at("error.type"), "503");  // a server error is named by its status code

  EXPECT_EQ(spans[1]->at("kind").value, "SPAN_KIND_INTERNAL");
  EXPECT_EQ(spans[1]->at("name").value, "load_user(int)");
  EXPECT_EQ(attrs_of(*spans[1]).at("code.function"), "load_user(int)");

  EXPECT_EQ(spans[2]->at("kind").value, "SPAN_KIND_CLIENT");
  EXPECT_EQ(spans[2]->at("name").value, "SELECT");
  auto a2 = attrs_of(*spans[2]);
  EXPECT_EQ(a2.at("db.query.text"), "SELECT * FROM users WHERE id = ?");
  EXPECT_EQ(a2.at("db.system"), "postgresql");
  EXPECT_EQ(a2.at("db.system.name"), "postgresql");
  EXPECT_EQ(a2.at("db.operation.name"), "SELECT");
  EXPECT_EQ(a2.at("db.response.returned_rows"), "1");

  EXPECT_EQ(spans[3]->at("kind").value, "SPAN_KIND_INTERNAL");
  EXPECT_EQ(spans[3]->at("name").value, "caf\xc3\xa9 \"quoted\"\n");
}

TEST(OtlpProtobuf, SemanticConventionsForErrorsMethodsAndDatabases) {
  std::vector<Event> v(5);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i].trace_id = {1, 2};
    v[i].span_id = i + 1;
    v[i].start = 1000;
    v[i].duration = 10;
  }
  v[0].kind = EventKind::request;  // an exception escaped: no status code to name it by
  v[0].name = "/a";
  v[0].detail = "POST";
  v[0].status = spyglass::Status::error;
  v[1].kind = EventKind::request;  // a client error is not a server span's error
  v[1].name = "/b";
  v[1].detail = "GET";
  v[1].http_status = 404;
  v[2].kind = EventKind::request;  // a method the conventions do not know
  v[2].name = "/c";
  v[2].detail = "BREW";
  v[2].http_status = 500;
  v[3].kind = EventKind::db;  // no database system named
  v[3].name = "UPDATE t SET x = ?";
  v[4].kind = EventKind::db;
  v[4].name = "SELECT 1";
  v[4].detail = "sqlite";
  v[4].status = spyglass::Status::error;
  std::string body;
  otlp::encode_traces_protobuf(v, test_resource(), body);
  const auto d = spyglass_test::decode_traces(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;
  const auto spans = d.tree.at("resource_spans").at("scope_spans").all("spans");
  ASSERT_EQ(spans.size(), 5u);
  const auto a0 = attrs_of(*spans[0]);
  EXPECT_EQ(a0.at("error.type"), "_OTHER");
  EXPECT_EQ(a0.count("http.response.status_code"), 0u);
  EXPECT_EQ(spans[0]->at("status").at("code").value, "STATUS_CODE_ERROR");
  const auto a1 = attrs_of(*spans[1]);
  EXPECT_EQ(a1.count("error.type"), 0u);
  EXPECT_FALSE(spans[1]->has("status"));
  EXPECT_EQ(a1.at("http.response.status_code"), "404");
  const auto a2 = attrs_of(*spans[2]);
  EXPECT_EQ(a2.at("http.request.method"), "_OTHER");
  EXPECT_EQ(a2.at("http.request.method_original"), "BREW");
  EXPECT_EQ(a2.at("error.type"), "500");
  EXPECT_EQ(spans[2]->at("status").at("code").value, "STATUS_CODE_ERROR");
  EXPECT_EQ(attrs_of(*spans[3]).at("db.system"), "other_sql");
  EXPECT_EQ(attrs_of(*spans[3]).at("db.system.name"), "other_sql");
  EXPECT_EQ(attrs_of(*spans[3]).count("error.type"), 0u);
  EXPECT_EQ(attrs_of(*spans[4]).at("db.system"), "sqlite");
  EXPECT_EQ(attrs_of(*spans[4]).at("error.type"), "_OTHER");

  // The JSON encoding says the same (one mapping).
  std::string json;
  otlp::encode_traces_json(v, test_resource(), json);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  auto js = doc["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"];
  for (std::size_t i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    std::map<std::string, std::string> ja;
    for (auto kv : js.at(i)["attributes"].get_array()) {
      auto val = kv["value"];
      std::string_view sv;
      if (val["stringValue"].get(sv) != simdjson::SUCCESS) sv = std::string_view(val["intValue"]);
      ja[std::string(std::string_view(kv["key"]))] = std::string(sv);
    }
    EXPECT_EQ(ja, attrs_of(*spans[i]));
  }
}

TEST(OtlpProtobuf, ClientEventsAreHttpClientSpans) {
  std::vector<Event> v(4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i].kind = EventKind::client;
    v[i].trace_id = {1, 2};
    v[i].span_id = i + 1;
    v[i].start = 1000;
    v[i].duration = 10;
  }
  v[0].name = "/users/{id}";
  v[0].detail = "GET";
  v[0].peer = "http://api.example.com:8080";
  v[0].http_status = 200;
  v[0].bytes_in = 42;
  v[1].name = "/orders";  // a client error is a client span's error
  v[1].detail = "POST";
  v[1].peer = "https://[::1]:8443";
  v[1].http_status = 404;
  v[1].bytes_out = 10;
  v[1].status = spyglass::Status::error;
  v[2].name = "/x";  // no answer at all (refused, timed out)
  v[2].detail = "GET";
  v[2].peer = "http://db.internal:80";
  v[2].status = spyglass::Status::error;
  v[3].name = "fetch";  // no route template, no server known, a method the conventions do not know
  v[3].detail = "BREW";
  v[3].http_status = 503;
  std::string body;
  otlp::encode_traces_protobuf(v, test_resource(), body);
  const auto d = spyglass_test::decode_traces(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;
  const auto spans = d.tree.at("resource_spans").at("scope_spans").all("spans");
  ASSERT_EQ(spans.size(), 4u);
  for (const auto* s : spans) EXPECT_EQ(s->at("kind").value, "SPAN_KIND_CLIENT");

  EXPECT_EQ(spans[0]->at("name").value, "GET /users/{id}");
  EXPECT_FALSE(spans[0]->has("status"));
  EXPECT_EQ(attrs_of(*spans[0]), (std::map<std::string, std::string>{
                                     {"http.request.method", "GET"},
                                     {"server.address", "api.example.com"},
                                     {"server.port", "8080"},
                                     {"url.full", "http://api.example.com:8080/users/{id}"},
                                     {"url.template", "/users/{id}"},
                                     {"http.response.status_code", "200"},
                                     {"http.response.body.size", "42"},
                                 }));
  EXPECT_EQ(spans[1]->at("name").value, "POST /orders");
  EXPECT_EQ(spans[1]->at("status").at("code").value, "STATUS_CODE_ERROR");
  const auto a1 = attrs_of(*spans[1]);
  EXPECT_EQ(a1.at("server.address"), "::1");  // without the brackets of the URL
  EXPECT_EQ(a1.at("server.port"), "8443");
  EXPECT_EQ(a1.at("url.full"), "https://[::1]:8443/orders");
  EXPECT_EQ(a1.at("http.request.body.size"), "10");
  EXPECT_EQ(a1.at("error.type"), "404");
  EXPECT_EQ(spans[2]->at("status").at("code").value, "STATUS_CODE_ERROR");
  const auto a2 = attrs_of(*spans[2]);
  EXPECT_EQ(a2.at("error.type"), "_OTHER");
  EXPECT_EQ(a2.count("http.response.status_code"), 0u);
  EXPECT_EQ(a2.at("server.port"), "80");
  EXPECT_EQ(spans[3]->at("name").value, "HTTP fetch");
  EXPECT_EQ(spans[3]->at("status").at("code").value, "STATUS_CODE_ERROR");  // 5xx, even unmarked
  const auto a3 = attrs_of(*spans[3]);
  EXPECT_EQ(a3.at("http.request.method"), "_OTHER");
  EXPECT_EQ(a3.at("http.request.method_original"), "BREW");
  EXPECT_EQ(a3.at("error.type"), "503");
  for (const char* absent : {"server.address", "server.port", "url.full", "url.template"})
    EXPECT_EQ(a3.count(absent), 0u) << absent;

  // The JSON encoding says the same, with kind 3 (SPAN_KIND_CLIENT).
  std::string json;
  otlp::encode_traces_json(v, test_resource(), json);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  auto js = doc["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"];
  for (std::size_t i = 0; i < v.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(std::int64_t(js.at(i)["kind"]), 3);
    std::map<std::string, std::string> ja;
    for (auto kv : js.at(i)["attributes"].get_array()) {
      auto val = kv["value"];
      std::string_view sv;
      if (val["stringValue"].get(sv) != simdjson::SUCCESS) sv = std::string_view(val["intValue"]);
      ja[std::string(std::string_view(kv["key"]))] = std::string(sv);
    }
    EXPECT_EQ(ja, attrs_of(*spans[i]));
  }
}

TEST(OtlpProtobuf, InvalidUtf8IsRepairedSoTheDecoderAcceptsIt) {
  Event e;
  e.trace_id = {1, 2};
  e.span_id = 3;
  e.kind = EventKind::db;
  e.name = "SELECT '\xff\xfe' \xc3";  // invalid bytes, truncated sequence at the end
  e.detail = "sql\xe2\x82";
  std::string body;
  otlp::encode_traces_protobuf(std::span(&e, 1), test_resource(), body);
  const auto d = spyglass_test::decode_traces(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;
  const PNode& s = d.tree.at("resource_spans").at("scope_spans").at("spans");
  EXPECT_EQ(attrs_of(s).at("db.query.text"), "SELECT '\xef\xbf\xbd\xef\xbf\xbd' \xef\xbf\xbd");
  EXPECT_EQ(attrs_of(s).at("db.system"), "sql\xef\xbf\xbd");
}

TEST(OtlpProtobuf, LargeBatchesAndLongNamesUseMultiByteLengths) {
  static const std::string long_name(70000, 'x');  // a length varint of 3 bytes
  std::vector<Event> events(2000);
  for (std::size_t i = 0; i < events.size(); ++i) {
    events[i].trace_id = {i + 1, i};
    events[i].span_id = i + 1;
    events[i].parent_span_id = i;
    events[i].kind = static_cast<EventKind>(i % 4);
    events[i].name = i == 7 ? long_name.c_str() : "op";
    events[i].start = i;
    events[i].duration = i * 3;
  }
  std::string body;
  otlp::encode_traces_protobuf(events, test_resource(), body);
  const auto d = spyglass_test::decode_traces(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;
  const auto spans = d.tree.at("resource_spans").at("scope_spans").all("spans");
  ASSERT_EQ(spans.size(), events.size());
  EXPECT_EQ(spans[7]->at("name").value, long_name);
  EXPECT_EQ(spans[1999]->at("end_time_unix_nano").value, std::to_string(1999 + 1999 * 3));
}

TEST(OtlpProtobuf, MetricsDecodeAsCumulativeSumsAndHistograms) {
  const std::vector<double> bounds{0.001, 0.01, 0.1};
  std::vector<otlp::MetricSeries> series(3);
  series[0].kind = EventKind::request;
  series[0].name = "/a";
  series[0].count = 3;
  series[0].sum_seconds = 0.0205;
  series[0].min_seconds = 0.0005;
  series[0].max_seconds = 0.015;
  series[0].bucket_counts = {1, 1, 1, 0};
  series[1].kind = EventKind::db;
  series[1].name = "SELECT ?";
  series[1].count = 1;
  series[1].sum_seconds = 2.0;
  series[1].min_seconds = series[1].max_seconds = 2.0;
  series[1].bucket_counts = {0, 0, 0, 1};
  series[2].kind = EventKind::request;
  series[2].overflow = true;
  series[2].count = 5;
  series[2].bucket_counts = {5, 0, 0, 0};
  std::string body;
  otlp::encode_metrics_protobuf(series, bounds, test_resource(), 1000, 2000, body);
  const auto d = spyglass_test::decode_metrics(body);
  ASSERT_EQ(d.exit_code, 0) << d.errors;
  const auto& sm = d.tree.at("resource_metrics").at("scope_metrics");
  EXPECT_EQ(sm.at("scope").at("name").value, "spyglass");
  std::map<std::string, const PNode*> metrics;
  for (const PNode* m : sm.all("metrics")) metrics[m->at("name").value] = m;
  ASSERT_EQ(metrics.size(), 4u);

  const PNode& count = metrics.at("spyglass.request.count")->at("sum");
  EXPECT_EQ(count.at("aggregation_temporality").value, "AGGREGATION_TEMPORALITY_CUMULATIVE");
  EXPECT_EQ(count.at("is_monotonic").value, "true");
  const auto pts = count.all("data_points");
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(attrs_of(*pts[0]).at("spyglass.name"), "/a");
  EXPECT_EQ(pts[0]->at("as_int").value, "3");
  EXPECT_EQ(pts[0]->at("start_time_unix_nano").value, "1000");
  EXPECT_EQ(pts[0]->at("time_unix_nano").value, "2000");
  EXPECT_EQ(attrs_of(*pts[1]).at("otel.metric.overflow"), "true");
  EXPECT_EQ(pts[1]->at("as_int").value, "5");

  const PNode& hist = metrics.at("spyglass.request.duration")->at("histogram");
  EXPECT_EQ(metrics.at("spyglass.request.duration")->at("unit").value, "s");
  EXPECT_EQ(hist.at("aggregation_temporality").value, "AGGREGATION_TEMPORALITY_CUMULATIVE");
  const PNode& hp = *hist.all("data_points")[0];
  EXPECT_EQ(hp.at("count").value, "3");
  EXPECT_DOUBLE_EQ(std::stod(hp.at("sum").value), 0.0205);
  EXPECT_DOUBLE_EQ(std::stod(hp.at("min").value), 0.0005);
  EXPECT_DOUBLE_EQ(std::stod(hp.at("max").value), 0.015);
  std::vector<std::string> counts, bnds;
  for (const PNode* b : hp.all("bucket_counts")) counts.push_back(b->value);
  for (const PNode* b : hp.all("explicit_bounds")) bnds.push_back(b->value);
  EXPECT_EQ(counts, (std::vector<std::string>{"1", "1", "1", "0"}));
  ASSERT_EQ(bnds.size(), 3u);
  EXPECT_DOUBLE_EQ(std::stod(bnds[2]), 0.1);

  const PNode& dbh = *metrics.at("spyglass.db.duration")->at("histogram").all("data_points")[0];
  EXPECT_EQ(attrs_of(dbh).at("spyglass.name"), "SELECT ?");
  EXPECT_EQ(dbh.all("bucket_counts").back()->value, "1");
}

// ---- JSON ---------------------------------------------------------------------------

namespace {

// Every object key in the document is lowerCamelCase (OTLP/JSON uses the proto3 JSON names).
void expect_camel_keys(simdjson::dom::element el, const std::string& where) {
  static const std::regex camel("^[a-z][a-zA-Z]*$");
  if (el.is_object()) {
    for (auto field : el.get_object()) {
      const std::string k(field.key);
      EXPECT_TRUE(std::regex_match(k, camel)) << "key '" << k << "' at " << where;
      expect_camel_keys(field.value, where + "." + k);
    }
  } else if (el.is_array()) {
    for (auto child : el.get_array()) expect_camel_keys(child, where + "[]");
  }
}

std::string str(simdjson::dom::element el) { return std::string(std::string_view(el.get_string())); }

std::map<std::string, std::string> json_attrs(simdjson::dom::element el) {
  std::map<std::string, std::string> m;
  for (auto a : el["attributes"].get_array()) {
    auto v = a["value"];
    if (v["stringValue"].error() == simdjson::SUCCESS) {
      m[str(a["key"])] = str(v["stringValue"]);
    } else {
      EXPECT_TRUE(v["intValue"].is_string()) << "intValue must be a decimal string";
      m[str(a["key"])] = str(v["intValue"]);
    }
  }
  return m;
}

}  // namespace

TEST(OtlpJson, FollowsOtlpJsonRules) {
  const auto events = sample_events();
  std::string body;
  otlp::encode_traces_json(events, test_resource(), body);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  expect_camel_keys(doc, "$");

  auto rs = doc["resourceSpans"].at(0);
  const auto res = json_attrs(rs["resource"]);
  EXPECT_EQ(res.at("service.name"), "checkout");
  EXPECT_EQ(res.at("process.pid"), std::to_string(::getpid()));
  auto ss = rs["scopeSpans"].at(0);
  EXPECT_EQ(str(ss["scope"]["name"]), "spyglass");
  auto spans = ss["spans"].get_array();
  ASSERT_EQ(spans.size(), events.size());
  static const std::regex hex32("^[0-9a-f]{32}$"), hex16("^[0-9a-f]{16}$");
  std::size_t i = 0;
  for (auto s : spans) {
    const Event& e = events[i++];
    // Ids as lowercase hex, not base64.
    EXPECT_TRUE(std::regex_match(str(s["traceId"]), hex32));
    EXPECT_EQ(str(s["traceId"]), hex_trace(e.trace_id));
    EXPECT_TRUE(std::regex_match(str(s["spanId"]), hex16));
    EXPECT_EQ(str(s["spanId"]), spyglass::span_to_hex(e.span_id));
    if (e.parent_span_id != 0) {
      EXPECT_EQ(str(s["parentSpanId"]), spyglass::span_to_hex(e.parent_span_id));
    } else {
      EXPECT_NE(s["parentSpanId"].error(), simdjson::SUCCESS);
    }
    // Enums as integers, 64-bit integers as decimal strings.
    EXPECT_TRUE(s["kind"].is_int64());
    EXPECT_TRUE(s["startTimeUnixNano"].is_string());
    EXPECT_EQ(str(s["startTimeUnixNano"]), std::to_string(e.start));
    EXPECT_EQ(str(s["endTimeUnixNano"]), std::to_string(e.start + e.duration));
    if (e.status == spyglass::Status::error) {
      EXPECT_EQ(int64_t(s["status"]["code"]), 2);
    }
  }
  EXPECT_EQ(int64_t(spans.at(0)["kind"]), 2);  // SERVER
  EXPECT_EQ(int64_t(spans.at(1)["kind"]), 1);  // INTERNAL
  EXPECT_EQ(int64_t(spans.at(2)["kind"]), 3);  // CLIENT
  EXPECT_EQ(str(spans.at(0)["name"]), "GET /users/{id}");
  EXPECT_EQ(json_attrs(spans.at(0)).at("http.response.status_code"), "503");
  EXPECT_EQ(json_attrs(spans.at(2)).at("db.query.text"), "SELECT * FROM users WHERE id = ?");
  EXPECT_EQ(str(spans.at(3)["name"]), "caf\xc3\xa9 \"quoted\"\n");
}

TEST(OtlpJson, MetricsFollowOtlpJsonRules) {
  const std::vector<double> bounds{0.5, 1.0};
  std::vector<otlp::MetricSeries> series(1);
  series[0].kind = EventKind::function;
  series[0].name = "f";
  series[0].count = 2;
  series[0].sum_seconds = 1.25;
  series[0].min_seconds = 0.25;
  series[0].max_seconds = 1.0;
  series[0].bucket_counts = {1, 1, 0};
  std::string body;
  otlp::encode_metrics_json(series, bounds, test_resource(), 5, 6, body);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(body).get(doc), simdjson::SUCCESS) << body;
  expect_camel_keys(doc, "$");
  auto metrics = doc["resourceMetrics"].at(0)["scopeMetrics"].at(0)["metrics"];
  auto sum = metrics.at(0);
  EXPECT_EQ(str(sum["name"]), "spyglass.function.count");
  EXPECT_EQ(int64_t(sum["sum"]["aggregationTemporality"]), 2);
  EXPECT_TRUE(bool(sum["sum"]["isMonotonic"]));
  EXPECT_EQ(str(sum["sum"]["dataPoints"].at(0)["asInt"]), "2");
  EXPECT_EQ(str(sum["sum"]["dataPoints"].at(0)["startTimeUnixNano"]), "5");
  auto h = metrics.at(1)["histogram"]["dataPoints"].at(0);
  EXPECT_EQ(str(h["count"]), "2");
  EXPECT_DOUBLE_EQ(double(h["sum"]), 1.25);
  EXPECT_EQ(str(h["bucketCounts"].at(1)), "1");
  EXPECT_DOUBLE_EQ(double(h["explicitBounds"].at(1)), 1.0);
}

TEST(OtlpProtobuf, TheDecoderRejectsCorruptBodies) {
  // The decoder is a real check: a truncated or garbled body is refused.
  std::string body;
  otlp::encode_traces_protobuf(sample_events(), test_resource(), body);
  EXPECT_NE(spyglass_test::decode_traces(body.substr(0, body.size() - 5)).exit_code, 0);
  std::string garbled = body;
  garbled[0] = '\x0f';  // field 1 with wire type 7, which does not exist
  EXPECT_NE(spyglass_test::decode_traces(garbled).exit_code, 0);
}
