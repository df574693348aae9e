// OtlpExporter: requests with retries and backoff on the collector's stage thread, the
// metric aggregates, and the accounting.

#include <algorithm>
#include <cmath>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <unordered_map>

#include "http.hpp"
#include "options.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE::otlp {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void warn(const std::string& message) { log(LogLevel::warning, "otlp", message); }

struct SeriesKey {
  EventKind kind;
  Status status;
  std::string_view name;  // borrowed from the event: lives until the process exits
  bool operator==(const SeriesKey&) const = default;
};
struct SeriesHash {
  std::size_t operator()(const SeriesKey& k) const noexcept {
    return (std::hash<std::string_view>{}(k.name) * 31 + static_cast<std::size_t>(k.kind)) * 2 +
           static_cast<std::size_t>(k.status);
  }
};

const char* signal_name(bool traces) { return traces ? "traces" : "metrics"; }

std::string describe(const HttpResult& r) {
  return r.curl_code != 0 ? r.error : "HTTP " + std::to_string(r.status);
}

// Clamps a duration setting into [0, kMaxDuration], so that no deadline computed from it
// can overflow; `fallback` replaces a value of zero or less when that is not meaningful
// (a timeout of zero would mean none at all to libcurl).
void check_duration(const char* what, milliseconds& d, std::optional<milliseconds> fallback = std::nullopt) {
  const std::string ms = std::to_string(d.count()) + " ms";
  if (d > kMaxDuration) {
    warn(std::string(what) + " of " + ms + " is above the maximum of " +
         std::to_string(kMaxDuration.count()) + " ms; using that");
    d = kMaxDuration;
  } else if (fallback && d.count() <= 0) {
    warn(std::string(what) + " of " + ms + " is not positive; using " + std::to_string(fallback->count()) +
         " ms");
    d = *fallback;
  } else if (d.count() < 0) {
    warn(std::string(what) + " of " + ms + " is negative; using 0");
    d = milliseconds(0);
  }
}

// Leaves out the headers that cannot be sent safely, with a warning naming them (never
// their values, which are often credentials).
void check_headers(const char* signal, std::vector<std::pair<std::string, std::string>>& headers) {
  std::erase_if(headers, [signal](const auto& h) {
    const std::string_view problem = header_problem(h.first, h.second);
    if (problem.empty()) return false;
    std::string name;
    for (const char c : h.first) {
      name += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
    warn(std::string("not sending the ") + signal + " header '" + name + "': " + std::string(problem));
    return true;
  });
}

// Explicit bucket bounds must be finite and strictly increasing (metrics.proto).
void check_bounds(std::vector<double>& bounds) {
  const auto n = bounds.size();
  std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  if (bounds.size() != n) {
    warn("histogram bounds: dropped " + std::to_string(n - bounds.size()) +
         " that were not finite or repeated");
  }
}

}  // namespace

struct OtlpState {
  explicit OtlpState(OtlpOptions o) : opt(std::move(o)) {
    if (!opt.disabled && sdk_disabled_in_environment()) opt.disabled = true;
    if (opt.max_attempts < 1) opt.max_attempts = 1;
    const OtlpOptions defaults;
    check_duration("traces_timeout", opt.traces_timeout, defaults.traces_timeout);
    check_duration("metrics_timeout", opt.metrics_timeout, defaults.metrics_timeout);
    check_duration("export_timeout", opt.export_timeout, defaults.export_timeout);
    check_duration("metrics_interval", opt.metrics_interval);
    check_duration("initial_backoff", opt.initial_backoff);
    check_duration("max_backoff", opt.max_backoff);
    check_duration("max_retry_after", opt.max_retry_after);
    check_duration("shutdown_timeout", opt.shutdown_timeout);
    check_headers("traces", opt.traces_headers);
    check_headers("metrics", opt.metrics_headers);
    check_bounds(opt.histogram_bounds);
    resource = make_resource(opt);
    start_ns = clock::realtime_ns();
    next_metrics = Clock::now() + opt.metrics_interval;
    if (opt.disabled) {
      log(LogLevel::info, "otlp", "disabled (OTEL_SDK_DISABLED): nothing is sent");
    } else {
      http = std::make_unique<HttpClient>();  // no connection until the first request
    }
  }

  OtlpOptions opt;
  std::vector<Attribute> resource;
  std::uint64_t start_ns = 0;
  std::unique_ptr<HttpClient> http;  // null when disabled
  Cutoff cutoff;                     // set by begin_shutdown(), from any thread

  // Stage thread only.
  bool shut_down = false;
  std::vector<Event> sampled;  // the sampled events of a batch, when it has others
  std::string body;
  std::string zipped;
  std::unordered_map<SeriesKey, MetricSeries, SeriesHash> series;
  MetricSeries overflow[4][2];  // per kind and status
  bool metrics_dirty = false;
  Clock::time_point next_metrics;
  std::minstd_rand jitter{std::random_device{}()};

  // The accounting, read from any thread.
  mutable std::mutex mu;
  OtlpCounters c;

  bool metrics_on() const { return opt.metrics_interval.count() > 0; }

  template <typename F>
  void count(F&& f) {
    std::lock_guard lk(mu);
    f(c);
  }

  void record_metrics(std::span<const Event> events) {
    if (!metrics_on() || events.empty()) return;
    const auto& bounds = opt.histogram_bounds;
    for (const Event& e : events) {
      const SeriesKey key{e.kind, e.status, e.name ? std::string_view(e.name) : std::string_view()};
      MetricSeries* s;
      auto it = series.find(key);
      if (it != series.end()) {
        s = &it->second;
      } else if (series.size() < opt.max_metric_series) {
        MetricSeries fresh;
        fresh.kind = e.kind;
        fresh.status = e.status;
        fresh.name = std::string(key.name);
        s = &series.emplace(key, std::move(fresh)).first->second;
      } else {
        s = &overflow[static_cast<std::size_t>(e.kind) & 3][e.status == Status::error ? 1 : 0];
        s->kind = e.kind;
        s->status = e.status;
        s->overflow = true;
      }
      if (s->bucket_counts.size() != bounds.size() + 1) s->bucket_counts.assign(bounds.size() + 1, 0);
      const double secs = static_cast<double>(e.duration) / 1e9;
      if (s->count == 0 || secs < s->min_seconds) s->min_seconds = secs;
      if (s->count == 0 || secs > s->max_seconds) s->max_seconds = secs;
      ++s->count;
      s->sum_seconds += secs;
      // Explicit buckets are (bounds[i-1], bounds[i]]; the last one is unbounded.
      const auto b = std::lower_bound(bounds.begin(), bounds.end(), secs) - bounds.begin();
      ++s->bucket_counts[static_cast<std::size_t>(b)];
    }
    metrics_dirty = true;
  }

  std::vector<MetricSeries> snapshot_metrics() const {
    std::vector<MetricSeries> v;
    v.reserve(series.size() + 8);
    for (const auto& [k, s] : series) v.push_back(s);
    for (const auto& per_kind : overflow) {
      for (const MetricSeries& o : per_kind) {
        if (o.count != 0) v.push_back(o);
      }
    }
    std::sort(v.begin(), v.end(), [](const MetricSeries& a, const MetricSeries& b) {
      return std::tie(a.kind, a.overflow, a.name, a.status) < std::tie(b.kind, b.overflow, b.name, b.status);
    });
    return v;
  }

  // POSTs `payload` with the retry policy: exponential backoff with jitter, Retry-After
  // honoured up to max_retry_after, all of it within export_timeout and the cutoff.
  // Returns the last result; `ok` tells whether it was delivered.
  HttpResult send(bool traces, std::string_view payload, bool& ok) {
    ok = false;
    const bool gz = (traces ? opt.traces_compression : opt.metrics_compression) == Compression::gzip;
    if (gz && !gzip(payload, zipped)) {
      HttpResult r;
      r.error = "gzip failed";
      r.curl_code = -1;
      warn(std::string(signal_name(traces)) + " export failed: gzip failed");
      return r;
    }
    HttpRequest req;
    req.url = traces ? &opt.traces_endpoint : &opt.metrics_endpoint;
    req.headers = traces ? &opt.traces_headers : &opt.metrics_headers;
    req.content_type = (traces ? opt.traces_protocol : opt.metrics_protocol) == Protocol::http_json
                           ? "application/json"
                           : "application/x-protobuf";
    req.gzipped = gz;
    req.body = gz ? std::string_view(zipped) : payload;
    const auto timeout = traces ? opt.traces_timeout : opt.metrics_timeout;
    const auto give_up_at = Clock::now() + opt.export_timeout;

    auto delay = opt.initial_backoff;
    HttpResult r;
    for (int attempt = 1;; ++attempt) {
      r = http->post(req, std::min(Clock::now() + timeout, give_up_at), cutoff);
      count([&](OtlpCounters& k) {
        if (traces) ++k.requests;
        if (attempt > 1) ++k.retries;
      });
      if (r.curl_code == 0 && r.status >= 200 && r.status < 300) {
        ok = true;
        return r;
      }
      const std::string what = std::string(signal_name(traces)) + " export failed after " +
                               std::to_string(attempt) + " attempt(s): " + describe(r);
      if (cutoff.get() <= Clock::now()) {
        warn(what + "; given up at the shutdown deadline");
        return r;
      }
      if (!retryable(r) || attempt >= opt.max_attempts) {
        warn(what);
        return r;
      }
      // Jitter of +-20 % spreads the retries of many clients.
      std::uniform_real_distribution<double> jitter_dist(0.8, 1.2);
      auto wait = std::chrono::duration_cast<milliseconds>(delay * jitter_dist(jitter));
      if (r.retry_after) wait = std::min(*r.retry_after, opt.max_retry_after);
      delay = std::min(delay * 2, opt.max_backoff);
      const auto until = Clock::now() + wait;
      const auto limit = cutoff.get();
      if (until > limit) {
        warn(what + "; a retry in " + std::to_string(wait.count()) +
             " ms would come after the shutdown deadline: given up");
        return r;
      }
      if (until > give_up_at) {
        warn(what + "; a retry in " + std::to_string(wait.count()) +
             " ms would come after export_timeout: given up");
        return r;
      }
      if (!http->wait_until(until, cutoff)) {
        warn(what + "; the wait for a retry was cut short at the shutdown deadline: given up");
        return r;
      }
    }
  }

  bool send_spans(std::span<const Event> spans) {
    body.clear();
    if (opt.traces_protocol == Protocol::http_json) {
      encode_traces_json(spans, resource, body);
    } else {
      encode_traces_protobuf(spans, resource, body);
    }
    bool ok = false;
    const HttpResult r = send(true, body, ok);
    const auto n = static_cast<std::uint64_t>(spans.size());
    std::uint64_t rejected = 0;
    if (ok) {
      const PartialSuccess p = partial_success(r, "rejectedSpans");
      rejected = std::min(static_cast<std::uint64_t>(p.rejected), n);
      if (rejected != 0 || !p.message.empty()) {
        warn("the receiver rejected " + std::to_string(rejected) + " of " + std::to_string(n) + " spans" +
             (p.message.empty() ? std::string() : ": " + p.message));
      }
    }
    count([&](OtlpCounters& k) {
      k.pending = 0;
      if (ok) {
        k.sent += n - rejected;
        k.failed += rejected;
        k.rejected += rejected;
      } else {
        k.failed += n;
      }
    });
    return ok;
  }

  // Sends the metrics when they changed and `due` (or the interval has passed).
  void send_metrics(bool due) {
    if (!metrics_on() || !metrics_dirty) return;
    if (!due && Clock::now() < next_metrics) return;
    const auto now_series = snapshot_metrics();
    body.clear();
    const std::uint64_t now = clock::realtime_ns();
    if (opt.metrics_protocol == Protocol::http_json) {
      encode_metrics_json(now_series, opt.histogram_bounds, resource, start_ns, now, body);
    } else {
      encode_metrics_protobuf(now_series, opt.histogram_bounds, resource, start_ns, now, body);
    }
    bool ok = false;
    const HttpResult r = send(false, body, ok);
    next_metrics = Clock::now() + opt.metrics_interval;
    if (ok) metrics_dirty = false;  // cumulative: a failed export is repeated by the next one
    std::int64_t rejected = 0;
    if (ok) {
      const PartialSuccess p = partial_success(r, "rejectedDataPoints");
      rejected = p.rejected;
      if (rejected != 0 || !p.message.empty()) {
        warn("the receiver rejected " + std::to_string(rejected) + " metric data points" +
             (p.message.empty() ? std::string() : ": " + p.message));
      }
    }
    count([&](OtlpCounters& k) {
      if (ok) {
        ++k.metric_exports;
        k.rejected_data_points += static_cast<std::uint64_t>(rejected);
      } else {
        ++k.metric_failures;
      }
    });
  }
};

}  // namespace detail

OtlpExporter::OtlpExporter(OtlpOptions options)
    : state_(std::make_unique<detail::OtlpState>(std::move(options))) {}

OtlpExporter::~OtlpExporter() = default;

bool OtlpExporter::export_batch(std::span<const Event> events) {
  detail::OtlpState& s = *state_;
  std::size_t n_sampled = 0;
  for (const Event& e : events) n_sampled += e.sampled() ? 1u : 0u;
  const auto n = static_cast<std::uint64_t>(n_sampled);
  const auto unsampled = static_cast<std::uint64_t>(events.size() - n_sampled);
  if (s.shut_down || s.opt.disabled) {
    s.count([&](OtlpCounters& k) {
      k.produced += n;
      k.dropped += n;
      k.unsampled += unsampled;
    });
    return false;
  }
  s.record_metrics(events);  // every event, sampled or not: metrics are not sampled
  s.count([&](OtlpCounters& k) {
    k.produced += n;
    k.pending = n;
    k.unsampled += unsampled;
  });
  bool ok = true;
  if (n != 0) {
    std::span<const Event> spans = events;
    if (unsampled != 0) {
      s.sampled.clear();
      for (const Event& e : events) {
        if (e.sampled()) s.sampled.push_back(e);
      }
      spans = s.sampled;
    }
    ok = s.send_spans(spans);
  }
  s.send_metrics(false);
  return ok;
}

void OtlpExporter::flush() {
  detail::OtlpState& s = *state_;
  if (s.shut_down || s.opt.disabled) return;
  s.send_metrics(true);
}

void OtlpExporter::shutdown() {
  detail::OtlpState& s = *state_;
  if (s.shut_down) return;
  if (!s.opt.disabled) s.send_metrics(true);  // the final ones, within the cutoff
  s.shut_down = true;
}

std::chrono::milliseconds OtlpExporter::shutdown_timeout() const { return state_->opt.shutdown_timeout; }

void OtlpExporter::begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept {
  detail::OtlpState& s = *state_;
  // End a little before the deadline: the collector gives up on an exporter that is not
  // done by then, and the final metrics and the stage's own bookkeeping come after.
  const auto now = std::chrono::steady_clock::now();
  const auto margin = deadline > now ? std::min<std::chrono::steady_clock::duration>(
                                           (deadline - now) / 10, std::chrono::milliseconds(200))
                                     : std::chrono::steady_clock::duration::zero();
  s.cutoff.set(deadline - margin);
  if (s.http) s.http->wake();
}

bool OtlpExporter::accepts_unsampled() const { return state_->metrics_on(); }

void OtlpExporter::after_fork_child() {
  detail::OtlpState& s = *state_;
  // Only this thread exists in the child; the parent's connections, aggregates and
  // counters stay the parent's. No batch is held here, so none can be sent twice.
  new (&s.mu) std::mutex;
  if (s.http) s.http->reopen_after_fork();
  s.c = {};
  s.series.clear();
  for (auto& per_kind : s.overflow) {
    for (auto& o : per_kind) o = {};
  }
  s.metrics_dirty = false;
  s.resource = make_resource(s.opt);
  s.start_ns = clock::realtime_ns();
  s.next_metrics = std::chrono::steady_clock::now() + s.opt.metrics_interval;
}

OtlpCounters OtlpExporter::counters() const {
  const detail::OtlpState& s = *state_;
  std::lock_guard lk(s.mu);
  return s.c;
}

const OtlpOptions& OtlpExporter::options() const noexcept { return state_->opt; }

}  // namespace SPYGLASS_NAMESPACE::otlp
