// OtlpExporter: the bounded buffer, the metric aggregates and the sender thread.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "http.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/exporters/otlp.hpp"

namespace SPYGLASS_NAMESPACE::otlp {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

struct SeriesKey {
  EventKind kind;
  std::string_view name;  // borrowed from the event: lives until the process exits
  bool operator==(const SeriesKey&) const = default;
};
struct SeriesHash {
  std::size_t operator()(const SeriesKey& k) const noexcept {
    return std::hash<std::string_view>{}(k.name) * 31 + static_cast<std::size_t>(k.kind);
  }
};

const char* signal_name(bool traces) { return traces ? "traces" : "metrics"; }

using std::chrono::milliseconds;

// Clamps a duration setting into [0, kMaxDuration], so that no deadline computed from it
// can overflow; `fallback` replaces a value of zero or less when that is not meaningful
// (a timeout of zero would mean none at all to libcurl).
void check_duration(const char* what, milliseconds& d, std::optional<milliseconds> fallback = std::nullopt) {
  if (d > kMaxDuration) {
    std::fprintf(stderr, "spyglass otlp: %s of %lld ms is above the maximum of %lld ms; using that\n", what,
                 static_cast<long long>(d.count()), static_cast<long long>(kMaxDuration.count()));
    d = kMaxDuration;
  } else if (fallback && d.count() <= 0) {
    std::fprintf(stderr, "spyglass otlp: %s of %lld ms is not positive; using %lld ms\n", what,
                 static_cast<long long>(d.count()), static_cast<long long>(fallback->count()));
    d = *fallback;
  } else if (d.count() < 0) {
    std::fprintf(stderr, "spyglass otlp: %s of %lld ms is negative; using 0\n", what,
                 static_cast<long long>(d.count()));
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
    std::fprintf(stderr, "spyglass otlp: not sending the %s header '%s': %.*s\n", signal, name.c_str(),
                 static_cast<int>(problem.size()), problem.data());
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
    std::fprintf(stderr, "spyglass otlp: histogram bounds: dropped %zu that were not finite or repeated\n",
                 n - bounds.size());
  }
}

}  // namespace

struct OtlpState {
  explicit OtlpState(OtlpOptions o) : opt(std::move(o)) {
    if (opt.max_queue_size == 0) opt.max_queue_size = 1;
    if (opt.max_export_batch_size == 0) opt.max_export_batch_size = 1;
    if (opt.max_attempts < 1) opt.max_attempts = 1;
    const OtlpOptions defaults;
    check_duration("traces_timeout", opt.traces_timeout, defaults.traces_timeout);
    check_duration("metrics_timeout", opt.metrics_timeout, defaults.metrics_timeout);
    check_duration("schedule_delay", opt.schedule_delay);
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
  }

  OtlpOptions opt;
  std::vector<Attribute> resource;
  std::uint64_t start_ns = 0;

  // Buffer and accounting, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable wake;     // new work for the sender
  std::condition_variable idle;     // the sender finished a flush or exited
  std::condition_variable backoff;  // a retry wait to cut short
  std::deque<Event> buffer;
  Clock::time_point oldest_at{};
  std::uint64_t in_flight = 0;
  std::uint64_t flush_wanted = 0;
  std::uint64_t flush_done = 0;
  bool metrics_wanted = false;
  bool stopping = false;
  bool shut_down = false;
  bool sender_exited = true;
  Clock::time_point shutdown_deadline{};
  OtlpCounters c;
  std::atomic<bool> abort{false};

  // Metric aggregates, guarded by metrics_mu (written by export_batch, read by the sender).
  std::mutex metrics_mu;
  std::unordered_map<SeriesKey, MetricSeries, SeriesHash> series;
  MetricSeries overflow[4];

  std::thread sender;
  HttpClient traces_http;   // sender thread only
  HttpClient metrics_http;  // sender thread only
  std::minstd_rand jitter{std::random_device{}()};
  std::uint64_t warnings_printed = 0;

  bool metrics_on() const { return opt.metrics_interval.count() > 0; }

  void start() {
    sender_exited = false;
    sender = std::thread([this] { run(); });
  }

  void record_metrics(std::span<const Event> events) {
    if (!metrics_on()) return;
    const auto& bounds = opt.histogram_bounds;
    std::lock_guard lk(metrics_mu);
    for (const Event& e : events) {
      const SeriesKey key{e.kind, e.name ? std::string_view(e.name) : std::string_view()};
      MetricSeries* s;
      auto it = series.find(key);
      if (it != series.end()) {
        s = &it->second;
      } else if (series.size() < opt.max_metric_series) {
        MetricSeries fresh;
        fresh.kind = e.kind;
        fresh.name = std::string(key.name);
        s = &series.emplace(key, std::move(fresh)).first->second;
      } else {
        s = &overflow[static_cast<std::size_t>(e.kind) & 3];
        s->kind = e.kind;
        s->overflow = true;
      }
      if (s->bucket_counts.size() != bounds.size() + 1) s->bucket_counts.assign(bounds.size() + 1, 0);
      const double secs = static_cast<double>(e.duration) / 1e9;
      if (s->count == 0 || secs < s->min_seconds) s->min_seconds = secs;
      if (s->count == 0 || secs > s->max_seconds) s->max_seconds = secs;
      ++s->count;
      if (e.status == Status::error) ++s->errors;
      s->sum_seconds += secs;
      // Explicit buckets are (bounds[i-1], bounds[i]]; the last one is unbounded.
      const auto b = std::lower_bound(bounds.begin(), bounds.end(), secs) - bounds.begin();
      ++s->bucket_counts[static_cast<std::size_t>(b)];
    }
  }

  std::vector<MetricSeries> snapshot_metrics() {
    std::lock_guard lk(metrics_mu);
    std::vector<MetricSeries> v;
    v.reserve(series.size() + 4);
    for (const auto& [k, s] : series) v.push_back(s);
    for (const MetricSeries& o : overflow) {
      if (o.count != 0) v.push_back(o);
    }
    std::sort(v.begin(), v.end(), [](const MetricSeries& a, const MetricSeries& b) {
      return std::tie(a.kind, a.overflow, a.name) < std::tie(b.kind, b.overflow, b.name);
    });
    return v;
  }

  void warn(const char* signal, const HttpResult& r, int attempts) {
    // The first failures and then every 100th, so a dead receiver does not flood stderr.
    std::uint64_t n;
    {
      std::lock_guard lk(mu);
      n = warnings_printed++;
    }
    if (n >= 10 && n % 100 != 0) return;
    if (r.curl_code != 0) {
      std::fprintf(stderr, "spyglass otlp: %s export failed after %d attempt(s): %s\n", signal, attempts,
                   r.error.c_str());
    } else {
      std::fprintf(stderr, "spyglass otlp: %s export failed after %d attempt(s): HTTP %ld\n", signal,
                   attempts, r.status);
    }
  }

  // POSTs with the retry policy. Returns the last result; `ok` tells whether it succeeded.
  HttpResult send(bool traces, std::string_view body, bool& ok) {
    HttpClient& http = traces ? traces_http : metrics_http;
    const std::string& url = traces ? opt.traces_endpoint : opt.metrics_endpoint;
    const auto& headers = traces ? opt.traces_headers : opt.metrics_headers;
    const Protocol proto = traces ? opt.traces_protocol : opt.metrics_protocol;
    const bool gz = (traces ? opt.traces_compression : opt.metrics_compression) == Compression::gzip;
    const auto timeout = traces ? opt.traces_timeout : opt.metrics_timeout;
    const std::string_view type =
        proto == Protocol::http_json ? "application/json" : "application/x-protobuf";

    std::string zipped;
    if (gz && !gzip(body, zipped)) {
      ok = false;
      HttpResult r;
      r.error = "gzip failed";
      r.curl_code = -1;
      return r;
    }
    const std::string_view payload = gz ? std::string_view(zipped) : body;

    auto delay = opt.initial_backoff;
    HttpResult r;
    for (int attempt = 1;; ++attempt) {
      r = http.post(url, headers, type, gz, payload, timeout, &abort);
      {
        std::lock_guard lk(mu);
        if (traces) ++c.requests;
        if (attempt > 1) ++c.retries;
      }
      if (r.curl_code == 0 && r.status >= 200 && r.status < 300) {
        ok = true;
        return r;
      }
      ok = false;
      if (!retryable(r) || attempt >= opt.max_attempts) {
        if (!r.aborted) warn(signal_name(traces), r, attempt);
        return r;
      }
      // Jitter of +-20 % spreads the retries of many clients.
      std::uniform_real_distribution<double> jitter_dist(0.8, 1.2);
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(delay * jitter_dist(jitter));
      if (r.retry_after) wait = std::min(*r.retry_after, opt.max_retry_after);
      delay = std::min(delay * 2, opt.max_backoff);
      std::unique_lock lk(mu);
      const auto until = Clock::now() + wait;
      if (stopping && until > shutdown_deadline) return r;  // would outlive shutdown
      // shutdown() wakes this wait: give up when the rest of the wait would outlive it.
      auto give_up = [&] { return abort.load() || (stopping && until > shutdown_deadline); };
      backoff.wait_until(lk, until, give_up);
      if (give_up()) return r;
    }
  }

  void send_spans(const std::vector<Event>& batch, std::string& body) {
    body.clear();
    if (opt.traces_protocol == Protocol::http_json) {
      encode_traces_json(batch, resource, body);
    } else {
      encode_traces_protobuf(batch, resource, body);
    }
    bool ok = false;
    const HttpResult r = send(true, body, ok);
    const auto n = static_cast<std::uint64_t>(batch.size());
    std::lock_guard lk(mu);
    in_flight = 0;
    if (ok) {
      const auto rejected = std::min(static_cast<std::uint64_t>(partial_rejected(r, "rejectedSpans")), n);
      c.sent += n - rejected;
      c.failed += rejected;
      c.rejected += rejected;
    } else {
      c.failed += n;
    }
  }

  void send_metrics(std::string& body) {
    const auto series_now = snapshot_metrics();
    if (series_now.empty()) return;
    body.clear();
    const std::uint64_t now = clock::realtime_ns();
    if (opt.metrics_protocol == Protocol::http_json) {
      encode_metrics_json(series_now, opt.histogram_bounds, resource, start_ns, now, body);
    } else {
      encode_metrics_protobuf(series_now, opt.histogram_bounds, resource, start_ns, now, body);
    }
    bool ok = false;
    const HttpResult r = send(false, body, ok);
    std::lock_guard lk(mu);
    if (ok) {
      ++c.metric_exports;
      c.rejected_data_points += static_cast<std::uint64_t>(partial_rejected(r, "rejectedDataPoints"));
    } else {
      ++c.metric_failures;
    }
  }

  void run() {
    std::vector<Event> batch;
    std::string body;
    std::unique_lock lk(mu);
    auto next_metrics = Clock::now() + opt.metrics_interval;
    for (;;) {
      if (abort.load()) break;
      const auto now = Clock::now();
      const bool draining = stopping || flush_wanted > flush_done;
      if (!buffer.empty() &&
          (draining || buffer.size() >= opt.max_export_batch_size || now >= oldest_at + opt.schedule_delay)) {
        const std::size_t n = std::min(buffer.size(), opt.max_export_batch_size);
        batch.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
        buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
        in_flight = n;
        oldest_at = now;
        lk.unlock();
        send_spans(batch, body);
        lk.lock();
        continue;
      }
      if (draining) {
        const std::uint64_t gen = flush_wanted;
        if (metrics_on() && (metrics_wanted || stopping)) {
          metrics_wanted = false;
          lk.unlock();
          send_metrics(body);
          lk.lock();
          next_metrics = Clock::now() + opt.metrics_interval;
        }
        flush_done = gen;
        idle.notify_all();
        if (stopping) break;
        continue;
      }
      if (metrics_on() && now >= next_metrics) {
        lk.unlock();
        send_metrics(body);
        lk.lock();
        next_metrics = Clock::now() + opt.metrics_interval;
        continue;
      }
      const bool had_spans = !buffer.empty();
      auto ready = [&] {
        return stopping || abort.load() || flush_wanted > flush_done ||
               buffer.size() >= opt.max_export_batch_size || (!had_spans && !buffer.empty());
      };
      if (had_spans || metrics_on()) {
        auto until = had_spans ? oldest_at + opt.schedule_delay : next_metrics;
        if (metrics_on()) until = std::min(until, next_metrics);
        wake.wait_until(lk, until, ready);
      } else {
        wake.wait(lk, ready);
      }
    }
    sender_exited = true;
    idle.notify_all();
  }
};

}  // namespace detail

OtlpExporter::OtlpExporter(OtlpOptions options)
    : state_(std::make_unique<detail::OtlpState>(std::move(options))) {
  if (!state_->opt.disabled) state_->start();
}

OtlpExporter::~OtlpExporter() { shutdown(); }

bool OtlpExporter::export_batch(std::span<const Event> events) {
  detail::OtlpState& s = *state_;
  {
    std::lock_guard lk(s.mu);
    if (s.shut_down) return false;
    s.c.produced += events.size();
    if (s.opt.disabled) {
      s.c.dropped += events.size();
      return true;
    }
    const bool was_empty = s.buffer.empty();
    for (const Event& e : events) {
      if (s.buffer.size() >= s.opt.max_queue_size) {
        s.buffer.pop_front();  // the oldest goes, as in the collector
        ++s.c.dropped;
      }
      s.buffer.push_back(e);
    }
    if (was_empty) s.oldest_at = std::chrono::steady_clock::now();
    if (was_empty || s.buffer.size() >= s.opt.max_export_batch_size) s.wake.notify_one();
  }
  s.record_metrics(events);
  return true;
}

void OtlpExporter::flush() {
  detail::OtlpState& s = *state_;
  std::lock_guard lk(s.mu);
  if (s.sender_exited || s.buffer.empty()) return;
  ++s.flush_wanted;
  s.wake.notify_one();
}

bool OtlpExporter::force_flush(std::chrono::milliseconds timeout) {
  detail::OtlpState& s = *state_;
  timeout = std::clamp(timeout, std::chrono::milliseconds(0), kMaxDuration);  // no deadline overflow
  std::unique_lock lk(s.mu);
  if (s.sender_exited) return s.buffer.empty() && s.in_flight == 0;
  const std::uint64_t gen = ++s.flush_wanted;
  s.metrics_wanted = true;
  s.wake.notify_one();
  // flush_done reaches gen only once the buffer has been emptied after this call.
  const bool woke = s.idle.wait_for(lk, timeout, [&] { return s.sender_exited || s.flush_done >= gen; });
  return woke && (s.flush_done >= gen || (s.buffer.empty() && s.in_flight == 0));
}

void OtlpExporter::shutdown() {
  detail::OtlpState& s = *state_;
  std::unique_lock lk(s.mu);
  if (s.shut_down) return;
  s.shut_down = true;
  s.stopping = true;
  s.shutdown_deadline = std::chrono::steady_clock::now() + s.opt.shutdown_timeout;
  s.wake.notify_all();
  s.backoff.notify_all();
  // Give the sender until the deadline to drain, then cut its request or wait short.
  s.idle.wait_until(lk, s.shutdown_deadline, [&] { return s.sender_exited; });
  s.abort.store(true);
  s.backoff.notify_all();
  s.wake.notify_all();
  lk.unlock();
  if (s.sender.joinable()) s.sender.join();
  lk.lock();
  s.c.dropped += s.buffer.size();
  s.buffer.clear();
}

void OtlpExporter::after_fork_child() {
  detail::OtlpState& s = *state_;
  // Only this thread exists in the child: the sender thread, its locks and its
  // connections belong to the parent. Start over with fresh ones; the parent's buffered
  // spans stay the parent's to send.
  new (&s.mu) std::mutex;
  new (&s.metrics_mu) std::mutex;
  new (&s.wake) std::condition_variable;
  new (&s.idle) std::condition_variable;
  new (&s.backoff) std::condition_variable;
  new (&s.sender) std::thread;
  s.traces_http.forget();
  s.metrics_http.forget();
  s.buffer.clear();
  s.in_flight = 0;
  s.flush_wanted = s.flush_done = 0;
  s.metrics_wanted = false;
  s.c = {};
  s.series.clear();
  for (auto& o : s.overflow) o = {};
  s.resource = make_resource(s.opt);
  s.start_ns = clock::realtime_ns();
  s.sender_exited = true;
  if (!s.shut_down && !s.opt.disabled) s.start();
}

OtlpCounters OtlpExporter::counters() const {
  const detail::OtlpState& s = *state_;
  std::lock_guard lk(s.mu);
  OtlpCounters c = s.c;
  c.pending = s.buffer.size() + s.in_flight;
  return c;
}

const OtlpOptions& OtlpExporter::options() const noexcept { return state_->opt; }

}  // namespace SPYGLASS_NAMESPACE::otlp
