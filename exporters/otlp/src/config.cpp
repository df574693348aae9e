// OtlpOptions from the standard OTEL_* environment variables, and the resource.

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "http.hpp"
#include "options.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/log.hpp"
#include "spyglass/version.hpp"

namespace SPYGLASS_NAMESPACE::otlp {

double SamplerConfig::root_ratio() const noexcept {
  switch (kind) {
    case SamplerKind::always_on:
    case SamplerKind::parentbased_always_on: return 1.0;
    case SamplerKind::always_off:
    case SamplerKind::parentbased_always_off: return 0.0;
    case SamplerKind::traceidratio:
    case SamplerKind::parentbased_traceidratio: return ratio;
  }
  return 1.0;
}

bool SamplerConfig::parent_based() const noexcept {
  return kind == SamplerKind::parentbased_always_on || kind == SamplerKind::parentbased_always_off ||
         kind == SamplerKind::parentbased_traceidratio;
}

std::string_view to_string(SamplerKind kind) noexcept {
  switch (kind) {
    case SamplerKind::always_on: return "always_on";
    case SamplerKind::always_off: return "always_off";
    case SamplerKind::traceidratio: return "traceidratio";
    case SamplerKind::parentbased_always_on: return "parentbased_always_on";
    case SamplerKind::parentbased_always_off: return "parentbased_always_off";
    case SamplerKind::parentbased_traceidratio: return "parentbased_traceidratio";
  }
  return "parentbased_always_on";
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return r;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding (W3C Baggage octets). Returns false on a malformed escape.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// `s` fit for one line of a log: control bytes become \xNN.
std::string printable(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string r;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      r += "\\x";
      r += digits[u >> 4];
      r += digits[u & 15];
    } else {
      r += c;
    }
  }
  return r;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

class EnvReader {
 public:
  EnvReader(std::vector<std::string>* warnings, const EnvLookup& lookup)
      : warnings_(warnings), lookup_(lookup) {}

  // The value of `name`, or null when unset or empty (empty means unset for OTEL_*).
  const char* get(const char* name) const {
    const char* v = lookup_ ? lookup_(name) : std::getenv(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
  }

  // "spyglass otlp: ignoring NAME='value': why".
  void warn(const char* name, std::string_view value, std::string_view why) const {
    say(std::string("ignoring ") + name + "='" + printable(value) + "': " + std::string(why));
  }
  // Logs `what` and keeps it as "spyglass otlp: <what>".
  void say(const std::string& what) const {
    log(LogLevel::warning, "otlp", what);
    if (warnings_ != nullptr) warnings_->push_back("spyglass otlp: " + what);
  }

 private:
  std::vector<std::string>* warnings_;
  const EnvLookup& lookup_;
};

bool valid_url(std::string_view v) {
  for (const char c : v) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;  // no spaces, no controls
  }
  const auto scheme_end = v.find("://");
  if (scheme_end == std::string_view::npos) return false;
  const std::string scheme = lower(v.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") return false;
  const std::string_view rest = v.substr(scheme_end + 3);
  return !rest.empty() && rest.front() != '/';
}

// One malformed entry of a "k1=v1,k2=v2" list.
struct PairError {
  std::string_view entry;
  std::string_view why;
};

// "k1=v1,k2=v2" with percent-encoded keys and values (W3C Baggage without properties).
// Empty entries are skipped; malformed ones are reported to `bad` and skipped.
template <typename OnError>
std::vector<std::pair<std::string, std::string>> parse_pairs(std::string_view value, OnError bad) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view item = trim(value.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    std::string k, v;
    if (eq == std::string_view::npos || trim(item.substr(0, eq)).empty()) {
      bad(PairError{item, "entry is not key=value"});
      continue;
    }
    if (!percent_decode(trim(item.substr(0, eq)), k) || !percent_decode(trim(item.substr(eq + 1)), v)) {
      bad(PairError{item, "bad percent-encoding"});
      continue;
    }
    out.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  s = trim(s);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::optional<Protocol> read_protocol(const EnvReader& env, const char* name) {
  const char* v = env.get(name);
  if (v == nullptr) return std::nullopt;
  const std::string s = lower(trim(v));
  if (s == "http/protobuf") return Protocol::http_protobuf;
  if (s == "http/json") return Protocol::http_json;
  env.warn(name, v,
           s == "grpc" ? "grpc is not supported (http/protobuf or http/json)"
                       : "expected http/protobuf or http/json");
  return std::nullopt;
}

std::optional<Compression> read_compression(const EnvReader& env, const char* name) {
  const char* v = env.get(name);
  if (v == nullptr) return std::nullopt;
  const std::string s = lower(trim(v));
  if (s == "gzip") return Compression::gzip;
  if (s == "none") return Compression::none;
  env.warn(name, v, "expected gzip or none");
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> read_millis(const EnvReader& env, const char* name) {
  const char* v = env.get(name);
  if (v == nullptr) return std::nullopt;
  const std::string_view s = trim(v);
  long long ms = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), ms);
  const bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
  if (digits && (r.ec == std::errc::result_out_of_range || ms > kMaxDuration.count())) {
    // More than any deadline can hold: the longest one, rather than an overflow.
    env.say(std::string(name) + "='" + printable(v) + "' is above the maximum of " +
            std::to_string(kMaxDuration.count()) + " ms; using " + std::to_string(kMaxDuration.count()));
    return kMaxDuration;
  }
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || ms <= 0) {
    env.warn(name, v, "expected a positive number of milliseconds");
    return std::nullopt;
  }
  return std::chrono::milliseconds(ms);
}

using Headers = std::vector<std::pair<std::string, std::string>>;

// The headers of a *_HEADERS variable, or nullopt when it is unset. Entries that are
// malformed or unsafe to send are skipped with a warning that names the header but never
// shows its value (often a credential).
std::optional<Headers> read_headers(const EnvReader& env, const char* name) {
  const char* v = env.get(name);
  if (v == nullptr) return std::nullopt;
  auto redacted = [](std::string_view entry) {
    const auto eq = entry.find('=');
    return eq == std::string_view::npos ? std::string("<entry without '='>")
                                        : printable(entry.substr(0, eq)) + "=<hidden>";
  };
  Headers out;
  for (auto& [k, val] :
       parse_pairs(v, [&](const PairError& e) { env.warn(name, redacted(e.entry), e.why); })) {
    const std::string_view problem = detail::header_problem(k, val);
    if (!problem.empty()) {
      env.warn(name, printable(k) + "=<hidden>", std::string(problem) + "; the header is not sent");
      continue;
    }
    out.emplace_back(std::move(k), std::move(val));
  }
  return out;
}

// `base` with `add` appended, each of them replacing headers of `base` of the same name.
Headers merge_headers(Headers base, const Headers& add) {
  for (const auto& h : add) {
    std::erase_if(base, [&](const auto& b) { return iequals(b.first, h.first); });
  }
  base.insert(base.end(), add.begin(), add.end());
  return base;
}

// The generic variable applies to both signals; the per-signal one overrides it.
template <typename T, typename Read>
void per_signal(const EnvReader& env, Read read, const char* generic, const char* traces, const char* metrics,
                T& t, T& m) {
  if (auto v = read(env, generic)) t = m = *v;
  if (auto v = read(env, traces)) t = *v;
  if (auto v = read(env, metrics)) m = *v;
}

// The URL of one signal under the base URL of OTEL_EXPORTER_OTLP_ENDPOINT: `suffix`
// ("/v1/traces") appended to the path, the query kept after it, a fragment dropped.
std::string signal_url(std::string_view base, std::string_view suffix) {
  const auto scheme_end = base.find("://");
  const std::size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  // The authority ends at the first '/', '?' or '#' (an IPv6 literal "[::1]" holds none).
  const std::size_t path = std::min(base.find_first_of("/?#", authority), base.size());
  const std::size_t query = std::min(base.find_first_of("?#", path), base.size());
  const std::size_t fragment = std::min(base.find('#', query), base.size());
  std::string_view p = base.substr(path, query - path);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  std::string s(base.substr(0, path));
  s += p;
  s += suffix;
  s += base.substr(query, fragment - query);
  return s;
}

std::string process_name() {
  std::ifstream f("/proc/self/comm");
  std::string n;
  std::getline(f, n);
  return n;
}

}  // namespace

namespace detail {
std::optional<bool> parse_sdk_disabled(std::string_view value) {
  const std::string s = lower(trim(value));
  if (s == "true") return true;
  if (s == "false" || s.empty()) return false;
  return std::nullopt;
}

bool sdk_disabled_in_environment() {
  const char* v = std::getenv("OTEL_SDK_DISABLED");
  return v != nullptr && parse_sdk_disabled(v).value_or(false);
}
}  // namespace detail

OtlpOptions from_env(OtlpOptions o, std::vector<std::string>* warnings, const EnvLookup& lookup) {
  const EnvReader env(warnings, lookup);

  if (const char* v = env.get("OTEL_SDK_DISABLED")) {
    if (const auto d = detail::parse_sdk_disabled(v)) {
      o.disabled = *d;
    } else {
      env.warn("OTEL_SDK_DISABLED", v, "expected true or false");
    }
  }

  if (const char* v = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    if (valid_url(trim(v))) {
      o.traces_endpoint = signal_url(trim(v), "/v1/traces");
      o.metrics_endpoint = signal_url(trim(v), "/v1/metrics");
    } else {
      env.warn("OTEL_EXPORTER_OTLP_ENDPOINT", v, "expected an http:// or https:// URL");
    }
  }
  if (const char* v = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
    if (valid_url(trim(v))) {
      o.traces_endpoint = std::string(trim(v));
    } else {
      env.warn("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v, "expected an http:// or https:// URL");
    }
  }
  if (const char* v = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")) {
    if (valid_url(trim(v))) {
      o.metrics_endpoint = std::string(trim(v));
    } else {
      env.warn("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v, "expected an http:// or https:// URL");
    }
  }

  // The signal's own variable replaces the generic one (not adds to it), as for every
  // other option; either is merged into the headers `base` has.
  {
    const auto generic = read_headers(env, "OTEL_EXPORTER_OTLP_HEADERS");
    const auto traces = read_headers(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    const auto metrics = read_headers(env, "OTEL_EXPORTER_OTLP_METRICS_HEADERS");
    if (const auto& h = traces ? traces : generic) {
      o.traces_headers = merge_headers(std::move(o.traces_headers), *h);
    }
    if (const auto& h = metrics ? metrics : generic) {
      o.metrics_headers = merge_headers(std::move(o.metrics_headers), *h);
    }
  }
  per_signal(env, read_protocol, "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
             "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", o.traces_protocol, o.metrics_protocol);
  per_signal(env, read_compression, "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
             "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", o.traces_compression, o.metrics_compression);
  per_signal(env, read_millis, "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
             "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", o.traces_timeout, o.metrics_timeout);
  if (auto v = read_millis(env, "OTEL_METRIC_EXPORT_INTERVAL")) o.metrics_interval = *v;
  // The batch processor's export timeout bounds one export and the shutdown alike.
  if (auto v = read_millis(env, "OTEL_BSP_EXPORT_TIMEOUT")) o.export_timeout = o.shutdown_timeout = *v;

  if (const char* v = env.get("OTEL_RESOURCE_ATTRIBUTES")) {
    // Any error discards the whole value (resource SDK specification), reported once.
    std::optional<PairError> first_error;
    auto pairs = parse_pairs(v, [&](const PairError& e) {
      if (!first_error) first_error = e;
    });
    if (first_error) {
      env.warn("OTEL_RESOURCE_ATTRIBUTES", v,
               std::string(first_error->why) + " in '" + printable(first_error->entry) +
                   "'; no attribute of it is used");
    } else {
      for (auto& [k, val] : pairs) {
        o.resource_attributes.push_back({std::move(k), AttributeValue(std::move(val))});
      }
    }
  }
  if (const char* v = env.get("OTEL_SERVICE_NAME")) o.service_name = std::string(trim(v));

  if (const char* v = env.get("OTEL_TRACES_SAMPLER")) {
    const std::string s = lower(trim(v));
    bool known = false;
    for (SamplerKind k : {SamplerKind::always_on, SamplerKind::always_off, SamplerKind::traceidratio,
                          SamplerKind::parentbased_always_on, SamplerKind::parentbased_always_off,
                          SamplerKind::parentbased_traceidratio}) {
      if (s == to_string(k)) {
        o.sampler.kind = k;
        known = true;
      }
    }
    if (!known) {
      env.warn("OTEL_TRACES_SAMPLER", v,
               "expected always_on, always_off, traceidratio, parentbased_always_on, "
               "parentbased_always_off or parentbased_traceidratio");
    }
  }
  if (const char* v = env.get("OTEL_TRACES_SAMPLER_ARG")) {
    const bool ratio_kind = o.sampler.kind == SamplerKind::traceidratio ||
                            o.sampler.kind == SamplerKind::parentbased_traceidratio;
    double r = 0;
    if (!parse_number(v, r) || !(r >= 0.0 && r <= 1.0)) {
      env.warn("OTEL_TRACES_SAMPLER_ARG", v, "expected a ratio in [0, 1]");
      if (ratio_kind) o.sampler.ratio = 1.0;
    } else if (ratio_kind) {
      o.sampler.ratio = r;
    }
  }
  return o;
}

std::vector<Attribute> make_resource(const OtlpOptions& o) {
  // The first resource_attributes entry of `key`, or null.
  auto user = [&](std::string_view key) -> const AttributeValue* {
    for (const Attribute& a : o.resource_attributes) {
      if (a.key == key) return &a.value;
    }
    return nullptr;
  };
  std::vector<Attribute> r;
  // service.*: the dedicated fields, else the attributes, else the specification's default.
  if (!o.service_name.empty()) {
    r.push_back({"service.name", o.service_name});
  } else if (const auto* v = user("service.name"); v != nullptr && *v != AttributeValue(std::string())) {
    r.push_back({"service.name", *v});
  } else {
    r.push_back({"service.name", "unknown_service:" + process_name()});
  }
  if (!o.service_version.empty()) {
    r.push_back({"service.version", o.service_version});
  } else if (const auto* v = user("service.version")) {
    r.push_back({"service.version", *v});
  }
  // Detected attributes: what the user gave wins (the SDKs' resource merge).
  if (const auto* v = user("host.name")) {
    r.push_back({"host.name", *v});
  } else {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0')
      r.push_back({"host.name", std::string(host)});
  }
  if (const auto* v = user("process.pid")) {
    r.push_back({"process.pid", *v});
  } else {
    r.push_back({"process.pid", std::int64_t{::getpid()}});
  }
  // spyglass's own identity.
  r.push_back({"telemetry.sdk.name", std::string("spyglass")});
  r.push_back({"telemetry.sdk.language", std::string("cpp")});
  r.push_back({"telemetry.sdk.version", std::string(SPYGLASS_VERSION_STRING)});
  for (const Attribute& a : o.resource_attributes) {
    bool taken = false;
    for (const Attribute& b : r) taken = taken || b.key == a.key;
    if (!taken) r.push_back(a);
  }
  return r;
}

}  // namespace SPYGLASS_NAMESPACE::otlp
