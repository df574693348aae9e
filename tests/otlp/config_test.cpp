// OtlpOptions from the OTEL_* environment: every variable, and malformed values.

#include <gtest/gtest.h>

#include <unistd.h>

#include <map>

#include "spyglass/exporters/otlp.hpp"

namespace otlp = spyglass::otlp;

namespace {

struct Env {
  std::map<std::string, std::string> vars;
  otlp::EnvLookup lookup() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
  otlp::OtlpOptions parse(std::vector<std::string>* warnings = nullptr) const {
    return otlp::from_env({}, warnings, lookup());
  }
};

}  // namespace

TEST(OtlpConfig, DefaultsWithoutEnvironment) {
  std::vector<std::string> w;
  const auto o = Env{}.parse(&w);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(o.traces_endpoint, "http://localhost:4318/v1/traces");
  EXPECT_EQ(o.metrics_endpoint, "http://localhost:4318/v1/metrics");
  EXPECT_EQ(o.traces_protocol, otlp::Protocol::http_protobuf);
  EXPECT_EQ(o.traces_compression, otlp::Compression::none);
  EXPECT_EQ(o.traces_timeout, std::chrono::milliseconds(10000));
  EXPECT_FALSE(o.disabled);
  EXPECT_EQ(o.sampler.kind, otlp::SamplerKind::parentbased_always_on);
  EXPECT_EQ(o.sampler.root_ratio(), 1.0);
}

TEST(OtlpConfig, BaseEndpointGetsSignalPathsAlsoUnderAPrefix) {
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318";
  auto o = e.parse();
  EXPECT_EQ(o.traces_endpoint, "http://collector:4318/v1/traces");
  EXPECT_EQ(o.metrics_endpoint, "http://collector:4318/v1/metrics");
  e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "https://gw.example.com/otlp/";
  o = e.parse();
  EXPECT_EQ(o.traces_endpoint, "https://gw.example.com/otlp/v1/traces");
  EXPECT_EQ(o.metrics_endpoint, "https://gw.example.com/otlp/v1/metrics");
}

TEST(OtlpConfig, BaseEndpointPathQueryAndIpv6FollowTheSpecification) {
  // The signal path goes after the base path, before the query; a fragment is dropped.
  const std::pair<const char*, const char*> cases[] = {
      {"http://host:4318", "http://host:4318/v1/traces"},
      {"http://host:4318/", "http://host:4318/v1/traces"},
      {"http://host:4318//", "http://host:4318/v1/traces"},
      {"http://host:4318/base", "http://host:4318/base/v1/traces"},
      {"http://host:4318/base/", "http://host:4318/base/v1/traces"},
      {"http://host:4318?x=1", "http://host:4318/v1/traces?x=1"},
      {"http://host:4318/?x=1&y=2", "http://host:4318/v1/traces?x=1&y=2"},
      {"http://host:4318/base?x=1#frag", "http://host:4318/base/v1/traces?x=1"},
      {"http://host:4318#frag", "http://host:4318/v1/traces"},
      {"http://[::1]:4318", "http://[::1]:4318/v1/traces"},
      {"http://[::1]:4318/p/?x=1", "http://[::1]:4318/p/v1/traces?x=1"},
      {"https://[2001:db8::1]/", "https://[2001:db8::1]/v1/traces"},
  };
  for (const auto& [base, traces] : cases) {
    SCOPED_TRACE(base);
    Env e;
    e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = base;
    const auto o = e.parse();
    EXPECT_EQ(o.traces_endpoint, traces);
    std::string metrics = traces;
    metrics.replace(metrics.find("/v1/traces"), 10, "/v1/metrics");
    EXPECT_EQ(o.metrics_endpoint, metrics);
  }
}

TEST(OtlpConfig, SignalEndpointsWithQueriesAreUsedAsIs) {
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://base:4318";
  e.vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://[::1]:4318?x=1";
  e.vars["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = "http://m:9/custom/?k=v";
  const auto o = e.parse();
  EXPECT_EQ(o.traces_endpoint, "http://[::1]:4318?x=1");
  EXPECT_EQ(o.metrics_endpoint, "http://m:9/custom/?k=v");
}

TEST(OtlpConfig, BspExportTimeoutBoundsAnExportAndTheShutdown) {
  Env e;
  e.vars["OTEL_BSP_EXPORT_TIMEOUT"] = "8000";
  e.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "2500";
  const auto o = e.parse();
  EXPECT_EQ(o.export_timeout, std::chrono::milliseconds(8000));
  EXPECT_EQ(o.shutdown_timeout, std::chrono::milliseconds(8000));
  EXPECT_EQ(o.traces_timeout, std::chrono::milliseconds(2500));  // one request
  EXPECT_EQ(o.metrics_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(otlp::OtlpExporter(o).shutdown_timeout(), std::chrono::milliseconds(8000));
  const auto d = Env{}.parse();
  EXPECT_EQ(d.shutdown_timeout, otlp::OtlpOptions{}.shutdown_timeout);
}

TEST(OtlpConfig, SignalEndpointsAreUsedAsIs) {
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://base:4318";
  e.vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://t:1234/custom/path";
  e.vars["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = "http://m:9/";
  const auto o = e.parse();
  EXPECT_EQ(o.traces_endpoint, "http://t:1234/custom/path");
  EXPECT_EQ(o.metrics_endpoint, "http://m:9/");
}

TEST(OtlpConfig, HeadersProtocolCompressionTimeout) {
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_HEADERS"] = "api-key=secret%20value, x-tenant = acme";
  e.vars["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "x-signal=traces";
  e.vars["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/json";
  e.vars["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"] = "http/protobuf";
  e.vars["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip";
  e.vars["OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"] = "none";
  e.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "2500";
  e.vars["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"] = "700";
  std::vector<std::string> w;
  const auto o = e.parse(&w);
  EXPECT_TRUE(w.empty());
  using H = std::vector<std::pair<std::string, std::string>>;
  // The signal's own variable replaces the generic one (OTLP exporter specification).
  EXPECT_EQ(o.traces_headers, (H{{"x-signal", "traces"}}));
  EXPECT_EQ(o.metrics_headers, (H{{"api-key", "secret value"}, {"x-tenant", "acme"}}));
  EXPECT_EQ(o.traces_protocol, otlp::Protocol::http_json);
  EXPECT_EQ(o.metrics_protocol, otlp::Protocol::http_protobuf);
  EXPECT_EQ(o.traces_compression, otlp::Compression::gzip);
  EXPECT_EQ(o.metrics_compression, otlp::Compression::none);
  EXPECT_EQ(o.traces_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(o.metrics_timeout, std::chrono::milliseconds(700));
}

TEST(OtlpConfig, SignalHeadersReplaceTheGenericOnesAndMergeIntoThoseFromCode) {
  using H = std::vector<std::pair<std::string, std::string>>;
  otlp::OtlpOptions base;
  base.traces_headers = {{"Authorization", "from-code"}, {"x-keep", "1"}};
  base.metrics_headers = base.traces_headers;
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_HEADERS"] = "authorization=from-env,x-generic=g";
  auto o = otlp::from_env(base, nullptr, e.lookup());
  // Same name (any case): the environment's value replaces the one from code.
  EXPECT_EQ(o.traces_headers, (H{{"x-keep", "1"}, {"authorization", "from-env"}, {"x-generic", "g"}}));
  EXPECT_EQ(o.metrics_headers, o.traces_headers);
  e.vars["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] = "x-metrics=m";
  o = otlp::from_env(base, nullptr, e.lookup());
  EXPECT_EQ(o.traces_headers, (H{{"x-keep", "1"}, {"authorization", "from-env"}, {"x-generic", "g"}}));
  EXPECT_EQ(o.metrics_headers, (H{{"Authorization", "from-code"}, {"x-keep", "1"}, {"x-metrics", "m"}}));
  // Set but with nothing usable in it: still replaces the generic variable.
  e.vars["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] = "novalue";
  o = otlp::from_env(base, nullptr, e.lookup());
  EXPECT_EQ(o.metrics_headers, base.metrics_headers);
}

TEST(OtlpConfig, HeaderValuesWithControlCharactersAreNeverAccepted) {
  using H = std::vector<std::pair<std::string, std::string>>;
  Env e;
  // After percent-decoding: CR LF (header injection), NUL, HTAB, DEL; a name that is not
  // a token; a raw CR LF in the variable itself.
  e.vars["OTEL_EXPORTER_OTLP_HEADERS"] =
      "ok=1,evil=secret%0D%0AX-Injected:%20yes,lf=a%0Ab,nul=a%00b,tab=a%09b,del=a%7Fb,"
      "bad%20name=v,colon%3A=v,raw=secret\r\nX-Raw: 1,also-ok=%C3%A9";
  e.vars["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "t=x%0D";
  std::vector<std::string> w;
  const auto o = e.parse(&w);
  EXPECT_EQ(o.metrics_headers, (H{{"ok", "1"}, {"also-ok", "\xC3\xA9"}}));
  EXPECT_TRUE(o.traces_headers.empty());
  int generic = 0, traces = 0;
  for (const auto& s : w) {
    generic += s.find("OTEL_EXPORTER_OTLP_HEADERS=") != std::string::npos;
    traces += s.find("OTEL_EXPORTER_OTLP_TRACES_HEADERS=") != std::string::npos;
    // One line each, and the values (often secrets) are not repeated.
    EXPECT_EQ(s.find_first_of("\r\n"), std::string::npos) << s;
    EXPECT_EQ(s.find("secret"), std::string::npos) << s;
    EXPECT_EQ(s.find("Injected"), std::string::npos) << s;
  }
  EXPECT_EQ(generic, 8);
  EXPECT_EQ(traces, 1);
  bool named = false;
  for (const auto& s : w)
    named = named || (s.find("'evil=") != std::string::npos && s.find("control") != std::string::npos);
  EXPECT_TRUE(named) << "the warning names the header and the reason";
}

TEST(OtlpConfig, HugeDurationsAreClampedWithAWarning) {
  Env e;
  e.vars["OTEL_METRIC_EXPORT_INTERVAL"] = "99999999999999999999999";  // beyond any integer
  e.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "9223372036854775807";       // ns arithmetic overflows
  e.vars["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"] = std::to_string(otlp::kMaxDuration.count() + 1);
  std::vector<std::string> w;
  auto o = e.parse(&w);
  EXPECT_EQ(o.metrics_interval, otlp::kMaxDuration);
  EXPECT_EQ(o.traces_timeout, otlp::kMaxDuration);
  EXPECT_EQ(o.metrics_timeout, otlp::kMaxDuration);
  ASSERT_EQ(w.size(), 3u);
  for (const auto& s : w) EXPECT_NE(s.find("maximum"), std::string::npos) << s;
  // The maximum itself is fine; a huge negative one is malformed.
  e.vars.clear();
  e.vars["OTEL_METRIC_EXPORT_INTERVAL"] = std::to_string(otlp::kMaxDuration.count());
  e.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "-99999999999999999999999";
  w.clear();
  o = e.parse(&w);
  EXPECT_EQ(o.metrics_interval, otlp::kMaxDuration);
  EXPECT_EQ(o.traces_timeout, otlp::OtlpOptions{}.traces_timeout);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("OTEL_EXPORTER_OTLP_TIMEOUT="), std::string::npos);
}

TEST(OtlpConfig, ResourceAttributesWithAnyErrorAreDiscardedWhole) {
  for (const char* bad : {"a=1,k=%4,b=2", "a=1,k=%zz", "a=1,novalue,b=2", "a=1,=v"}) {
    SCOPED_TRACE(bad);
    Env e;
    e.vars["OTEL_RESOURCE_ATTRIBUTES"] = bad;
    std::vector<std::string> w;
    const auto o = e.parse(&w);
    EXPECT_TRUE(o.resource_attributes.empty());
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("OTEL_RESOURCE_ATTRIBUTES="), std::string::npos);
  }
  // Those set in code stay.
  otlp::OtlpOptions base;
  base.resource_attributes.push_back({"from.code", std::string("yes")});
  Env e;
  e.vars["OTEL_RESOURCE_ATTRIBUTES"] = "a=%";
  const auto o = otlp::from_env(base, nullptr, e.lookup());
  EXPECT_EQ(o.resource_attributes, base.resource_attributes);
}

TEST(OtlpConfig, ResourceAttributesOverrideDetectedOnesButNotTheSdkOrCode) {
  Env e;
  e.vars["OTEL_RESOURCE_ATTRIBUTES"] =
      "host.name=from-env,process.pid=42,telemetry.sdk.name=other,service.version=9,team=a";
  otlp::OtlpOptions base;
  base.resource_attributes.push_back({"team", std::string("from-code")});
  auto o = otlp::from_env(base, nullptr, e.lookup());
  auto r = otlp::make_resource(o);
  std::map<std::string, otlp::AttributeValue> m;
  for (const auto& a : r) {
    EXPECT_TRUE(m.emplace(a.key, a.value).second) << "twice: " << a.key;
  }
  EXPECT_EQ(m.at("host.name"), otlp::AttributeValue(std::string("from-env")));
  // OTEL_RESOURCE_ATTRIBUTES values are strings.
  EXPECT_EQ(m.at("process.pid"), otlp::AttributeValue(std::string("42")));
  EXPECT_EQ(m.at("telemetry.sdk.name"), otlp::AttributeValue(std::string("spyglass")));
  EXPECT_EQ(m.at("service.version"), otlp::AttributeValue(std::string("9")));
  EXPECT_EQ(m.at("team"), otlp::AttributeValue(std::string("from-code")));
  // The order make_resource() documents.
  ASSERT_GE(r.size(), 7u);
  EXPECT_EQ(r[0].key, "service.name");
  EXPECT_EQ(r[1].key, "service.version");
  EXPECT_EQ(r[2].key, "host.name");
  EXPECT_EQ(r[3].key, "process.pid");
  // service_version set in code wins over the attribute.
  o.service_version = "1.0";
  r = otlp::make_resource(o);
  EXPECT_EQ(r[1].value, otlp::AttributeValue(std::string("1.0")));
  // Without overrides, the detected values.
  r = otlp::make_resource({});
  m.clear();
  for (const auto& a : r) m.emplace(a.key, a.value);
  EXPECT_EQ(m.at("process.pid"), otlp::AttributeValue(std::int64_t{::getpid()}));
  EXPECT_EQ(m.count("service.version"), 0u);
}

TEST(OtlpConfig, ServiceAndResourceAttributesWithPercentDecoding) {
  Env e;
  e.vars["OTEL_RESOURCE_ATTRIBUTES"] = "service.name=from-attrs,deployment.environment=prod%2Ceu,team=a%3Db";
  auto o = e.parse();
  auto r = otlp::make_resource(o);
  auto find = [&](const std::string& k) -> std::string {
    for (const auto& a : r) {
      if (a.key == k) return std::get<std::string>(a.value);
    }
    return "<missing>";
  };
  EXPECT_EQ(find("service.name"), "from-attrs");
  EXPECT_EQ(find("deployment.environment"), "prod,eu");
  EXPECT_EQ(find("team"), "a=b");
  e.vars["OTEL_SERVICE_NAME"] = "from-service-name";  // takes precedence
  o = e.parse();
  r = otlp::make_resource(o);
  EXPECT_EQ(find("service.name"), "from-service-name");
  int service_names = 0;
  for (const auto& a : r) service_names += a.key == "service.name";
  EXPECT_EQ(service_names, 1);
}

TEST(OtlpConfig, DefaultServiceNameNamesTheProcess) {
  const auto r = otlp::make_resource({});
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r[0].key, "service.name");
  EXPECT_EQ(std::get<std::string>(r[0].value).rfind("unknown_service:", 0), 0u);
}

TEST(OtlpConfig, SdkDisabled) {
  Env e;
  e.vars["OTEL_SDK_DISABLED"] = "TRUE";
  EXPECT_TRUE(e.parse().disabled);
  e.vars["OTEL_SDK_DISABLED"] = "false";
  EXPECT_FALSE(e.parse().disabled);
}

TEST(OtlpConfig, Samplers) {
  Env e;
  e.vars["OTEL_TRACES_SAMPLER"] = "traceidratio";
  e.vars["OTEL_TRACES_SAMPLER_ARG"] = "0.25";
  auto o = e.parse();
  EXPECT_EQ(o.sampler.kind, otlp::SamplerKind::traceidratio);
  EXPECT_DOUBLE_EQ(o.sampler.root_ratio(), 0.25);
  e.vars["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio";
  e.vars["OTEL_TRACES_SAMPLER_ARG"] = "0.5";
  o = e.parse();
  EXPECT_EQ(o.sampler.kind, otlp::SamplerKind::parentbased_traceidratio);
  EXPECT_DOUBLE_EQ(o.sampler.root_ratio(), 0.5);
  e.vars["OTEL_TRACES_SAMPLER"] = "always_off";
  o = e.parse();
  EXPECT_EQ(o.sampler.root_ratio(), 0.0);
  e.vars["OTEL_TRACES_SAMPLER"] = "parentbased_always_off";
  EXPECT_EQ(e.parse().sampler.root_ratio(), 0.0);
  e.vars["OTEL_TRACES_SAMPLER"] = "always_on";
  EXPECT_EQ(e.parse().sampler.root_ratio(), 1.0);
  EXPECT_EQ(otlp::to_string(otlp::SamplerKind::parentbased_traceidratio), "parentbased_traceidratio");
  // Whether a remote parent's flag decides (SessionOptions::parent_based).
  const std::map<std::string, bool> parent_based{{"always_on", false},
                                                 {"always_off", false},
                                                 {"traceidratio", false},
                                                 {"parentbased_always_on", true},
                                                 {"parentbased_always_off", true},
                                                 {"parentbased_traceidratio", true}};
  for (const auto& [name, want] : parent_based) {
    e.vars["OTEL_TRACES_SAMPLER"] = name;
    EXPECT_EQ(e.parse().sampler.parent_based(), want) << name;
  }
  EXPECT_TRUE(Env{}.parse().sampler.parent_based());  // parentbased_always_on by default
}

TEST(OtlpConfig, MalformedValuesWarnAndKeepDefaults) {
  Env e;
  e.vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = "collector:4318";  // no scheme
  e.vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "ftp://x/";
  e.vars["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc";
  e.vars["OTEL_EXPORTER_OTLP_COMPRESSION"] = "brotli";
  e.vars["OTEL_EXPORTER_OTLP_TIMEOUT"] = "10s";
  e.vars["OTEL_EXPORTER_OTLP_HEADERS"] = "novalue,=empty,ok=1,bad=%zz";
  e.vars["OTEL_SDK_DISABLED"] = "yes";
  e.vars["OTEL_TRACES_SAMPLER"] = "sometimes";
  e.vars["OTEL_TRACES_SAMPLER_ARG"] = "1.5";
  e.vars["OTEL_RESOURCE_ATTRIBUTES"] = "k=%4";
  e.vars["OTEL_METRIC_EXPORT_INTERVAL"] = "-3";
  std::vector<std::string> w;
  const auto o = e.parse(&w);
  const otlp::OtlpOptions d;
  EXPECT_EQ(o.traces_endpoint, d.traces_endpoint);
  EXPECT_EQ(o.metrics_endpoint, d.metrics_endpoint);
  EXPECT_EQ(o.traces_protocol, d.traces_protocol);
  EXPECT_EQ(o.traces_compression, d.traces_compression);
  EXPECT_EQ(o.traces_timeout, d.traces_timeout);
  EXPECT_EQ(o.disabled, d.disabled);
  EXPECT_EQ(o.sampler.kind, d.sampler.kind);
  EXPECT_EQ(o.sampler.root_ratio(), 1.0);
  EXPECT_EQ(o.metrics_interval, d.metrics_interval);
  EXPECT_TRUE(o.resource_attributes.empty());
  using H = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.traces_headers, (H{{"ok", "1"}}));
  // One clear warning per bad value, naming the variable.
  auto warned = [&](const std::string& var) {
    int n = 0;
    for (const auto& s : w) n += s.find(var + "=") != std::string::npos;
    return n;
  };
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_ENDPOINT"), 1);
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), 1);
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_PROTOCOL"), 1);
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_COMPRESSION"), 1);
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_TIMEOUT"), 1);
  EXPECT_EQ(warned("OTEL_EXPORTER_OTLP_HEADERS"), 3);
  EXPECT_EQ(warned("OTEL_SDK_DISABLED"), 1);
  EXPECT_EQ(warned("OTEL_TRACES_SAMPLER"), 1);
  EXPECT_EQ(warned("OTEL_TRACES_SAMPLER_ARG"), 1);
  EXPECT_EQ(warned("OTEL_RESOURCE_ATTRIBUTES"), 1);
  EXPECT_EQ(warned("OTEL_METRIC_EXPORT_INTERVAL"), 1);
}

TEST(OtlpConfig, ReadsTheRealEnvironmentByDefault) {
  ::setenv("OTEL_SERVICE_NAME", "env-service", 1);
  const auto o = otlp::from_env();
  ::unsetenv("OTEL_SERVICE_NAME");
  EXPECT_EQ(o.service_name, "env-service");
}
