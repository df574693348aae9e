#pragma once
// What both processes of the example share: their flags (--name VALUE), and a Session
// that writes JSONL into a directory and also sends OTLP/HTTP when an endpoint is given
// (--otlp URL, or the standard OTEL_EXPORTER_OTLP_ENDPOINT /
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), with the exporters' counters printed at the end.

#include <spyglass/exporters/jsonl.hpp>
#include <spyglass/exporters/otlp.hpp>
#include <spyglass/spyglass.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace example {

/// A flag and where its value goes.
using Flag = std::pair<const char*, std::string*>;

/// Reads `--flag VALUE` pairs into the flags' strings. Returns what is wrong with the
/// command line, or "" when nothing is.
inline std::string parse_flags(int argc, char** argv, const std::vector<Flag>& flags) {
  for (int i = 1; i < argc; ++i) {
    std::string* into = nullptr;
    for (const auto& [name, value] : flags)
      if (std::strcmp(argv[i], name) == 0) into = value;
    if (into == nullptr) return std::string("unknown argument ") + argv[i];
    if (i + 1 == argc) return std::string("no value after ") + argv[i];
    *into = argv[++i];
  }
  return {};
}

/// The Session of one process and its exporters.
class Telemetry {
 public:
  /// `service`: the JSONL file prefix and the OTLP service.name (OTEL_SERVICE_NAME wins).
  /// `out_dir`: the JSONL directory. `otlp_url`: an OTLP/HTTP base URL, or "" for the
  /// environment's. Throws what the exporters throw for an unusable directory.
  Telemetry(const std::string& service, const std::string& out_dir, const std::string& otlp_url) {
    namespace otlp = spyglass::otlp;
    // The flag stands for OTEL_EXPORTER_OTLP_ENDPOINT; every other OTEL_* variable applies.
    const auto lookup = [&otlp_url](const char* name) -> const char* {
      if (!otlp_url.empty() && std::strcmp(name, "OTEL_EXPORTER_OTLP_ENDPOINT") == 0) return otlp_url.c_str();
      return std::getenv(name);
    };
    otlp::OtlpOptions base;
    base.service_name = service;
    const otlp::OtlpOptions options = otlp::from_env(base, nullptr, lookup);

    spyglass::JsonlOptions jsonl_options;
    jsonl_options.directory = out_dir;
    jsonl_options.file_name = service + "-{time}.jsonl";
    jsonl_ = std::make_shared<spyglass::JsonlExporter>(jsonl_options);
    std::vector<std::shared_ptr<spyglass::Exporter>> exporters{jsonl_};
    if (set(lookup("OTEL_EXPORTER_OTLP_ENDPOINT")) || set(lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))) {
      otlp_ = std::make_shared<otlp::OtlpExporter>(options);
      exporters.push_back(otlp_);
      traces_endpoint_ = options.traces_endpoint;
    }
    spyglass::SessionOptions session_options;
    session_options.sample_ratio = options.sampler.root_ratio();  // OTEL_TRACES_SAMPLER(_ARG)
    session_options.parent_based = options.sampler.parent_based();
    session_ = std::make_unique<spyglass::Session>(session_options, exporters);
  }

  /// Delivers what is left (bounded by the exporters' shutdown timeouts), prints where
  /// the spans went and returns whether every span reached every exporter.
  bool finish(const char* program) {
    session_->collector().shutdown();
    bool complete = true;
    for (const spyglass::ExporterCounters& c : session_->collector().exporter_counters()) {
      std::printf("%s: %s: produced %llu, sent %llu, failed %llu, dropped %llu\n", program, c.name.c_str(),
                  static_cast<unsigned long long>(c.produced), static_cast<unsigned long long>(c.sent),
                  static_cast<unsigned long long>(c.failed), static_cast<unsigned long long>(c.dropped));
      complete = complete && c.failed == 0 && c.dropped == 0;
    }
    if (otlp_ && otlp_->counters().rejected != 0) complete = false;
    if (!traces_endpoint_.empty()) std::printf("%s: traces -> %s\n", program, traces_endpoint_.c_str());
    if (!complete)
      std::fprintf(stderr, "%s: some spans were not delivered (see the counters above)\n", program);
    std::fflush(stdout);
    return complete;
  }

 private:
  static bool set(const char* value) { return value != nullptr && *value != '\0'; }

  std::shared_ptr<spyglass::JsonlExporter> jsonl_;
  std::shared_ptr<spyglass::otlp::OtlpExporter> otlp_;
  std::string traces_endpoint_;
  std::unique_ptr<spyglass::Session> session_;
};

}  // namespace example
