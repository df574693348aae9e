// spyglass::http: the in-app server on cpp-httplib. See include/spyglass/http.hpp.
#include "spyglass/http.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "exclusive_port.hpp"
#include "page.hpp"
#include "spyglass/exporter.hpp"
#include "spyglass/flamegraph.hpp"
#include "spyglass/json.hpp"
#include "spyglass/log.hpp"
#include "spyglass/stats.hpp"

namespace SPYGLASS_NAMESPACE::http {
// Internal types (in detail, not an anonymous namespace, because ServerImpl, which the
// header names, holds them).
namespace detail {

std::uint64_t unix_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// Keeps the last error events and the last spans, for /metrics.json and the flame graph.
/// Fed on its collector stage thread; read by the HTTP threads.
class RecentEvents final : public Exporter {
 public:
  RecentEvents(std::size_t errors, std::size_t spans) : max_errors_(errors), max_spans_(spans) {}

  bool export_batch(std::span<const Event> events) override {
    const std::lock_guard lock(mutex_);
    for (const Event& e : events) {
      if (e.status == Status::error && max_errors_ > 0) {
        if (errors_.size() == max_errors_) errors_.pop_front();
        errors_.push_back(e);
      }
      if (max_spans_ > 0 && e.sampled()) {
        if (spans_.size() == max_spans_) spans_.pop_front();
        spans_.push_back(e);
      }
    }
    return true;
  }
  void after_fork_child() override {
    const std::lock_guard lock(mutex_);
    errors_.clear();
    spans_.clear();
  }
  /// Errors of unsampled traces are errors too.
  [[nodiscard]] bool accepts_unsampled() const override { return true; }
  [[nodiscard]] std::string_view name() const override { return "http"; }

  [[nodiscard]] std::vector<Event> errors() const {
    const std::lock_guard lock(mutex_);
    return {errors_.begin(), errors_.end()};
  }
  [[nodiscard]] std::vector<Event> spans() const {
    const std::lock_guard lock(mutex_);
    return {spans_.begin(), spans_.end()};
  }

 private:
  const std::size_t max_errors_, max_spans_;
  mutable std::mutex mutex_;
  std::deque<Event> errors_, spans_;
};

/// cpp-httplib runs each connection on one pool thread for as long as it is open, idle
/// keep-alive included, so a fixed pool is starved by as many idle clients as it has
/// threads. This pool starts a thread whenever none is free, up to a cap; only beyond the
/// cap does a connection wait (for one to close, within the keep-alive timeout).
class ElasticPool final : public ::httplib::TaskQueue {
 public:
  ElasticPool(std::size_t initial, std::size_t max) : max_(max) {
    const std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < initial; ++i) start_thread();
  }
  ~ElasticPool() override { shutdown(); }
  ElasticPool(const ElasticPool&) = delete;
  ElasticPool& operator=(const ElasticPool&) = delete;

  void enqueue(std::function<void()> fn) override {
    {
      const std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(fn));
      if (idle_ < jobs_.size() && threads_.size() < max_) {
        try {
          start_thread();
        } catch (const std::system_error&) {
          // Out of threads: the job waits for a running one, as beyond the cap.
          --idle_;
          if (threads_.empty()) throw;
        }
      }
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void start_thread() {
    ++idle_;
    threads_.emplace_back([this] { work(); });
  }
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to serve
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      --idle_;
      lock.unlock();
      try {
        job();
      } catch (...) {
        log(LogLevel::warning, "http", "a connection handler threw; the connection was dropped");
      }
      lock.lock();
      ++idle_;
    }
  }

  const std::size_t max_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;  // only grows, under mutex_, until shutdown()
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

/// Compares in time that depends on the lengths only, not on where the texts differ.
bool constant_time_equal(std::string_view a, std::string_view b) {
  const std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0U;
    const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0U;
    diff |= x ^ y;
  }
  return diff == 0;
}

struct Address {
  std::string host;
  int port = 0;
};

Address parse_address(const std::string& address) {
  const auto bad = [&] {
    return std::invalid_argument("spyglass http: address \"" + address +
                                 "\" is not host:port (e.g. 127.0.0.1:9465)");
  };
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() || colon + 6 < address.size())
    throw bad();
  int port = 0;
  for (std::size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9') throw bad();
    port = port * 10 + (address[i] - '0');
  }
  if (port > 65535) throw bad();
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, port};
}

void check_options(const HttpOptions& o) {
  const auto bad = [](const std::string& what) { return std::invalid_argument("spyglass http: " + what); };
  if (o.threads == 0) throw bad("threads must be at least 1");
  if (o.max_connections < o.threads) throw bad("max_connections must be at least threads");
  if (o.read_timeout.count() < 1 || o.write_timeout.count() < 1 || o.keep_alive_timeout.count() < 1)
    throw bad("read_timeout, write_timeout and keep_alive_timeout must be at least 1 s");
  for (const char c : o.token) {
    // A token travels in a header: no control characters or spaces.
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      throw bad("token must be printable ASCII without spaces");
  }
}

/// A kind's name ("db") back to the kind; false for anything else.
bool parse_kind(std::string_view s, EventKind& out) {
  for (const EventKind k : {EventKind::request, EventKind::function, EventKind::db, EventKind::custom}) {
    if (s == to_string(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

/// What a /metrics.json request asked for.
struct MetricsQuery {
  bool by_kind = false;
  EventKind kind = EventKind::custom;
  std::size_t errors = SIZE_MAX;  // capped by the options
};

void write_event(JsonWriter& w, const Event& e) {
  w.begin_object();
  w.key("time_unix_ns");
  w.value(e.start);
  w.key("kind");
  w.value(to_string(e.kind));
  w.key("name");
  w.value(e.name);
  w.key("detail");
  w.value(e.detail);
  w.key("duration_ns");
  w.value(e.duration);
  w.key("http_status");
  w.value(e.http_status);
  w.key("trace_id");
  w.value(to_hex(e.trace_id));
  w.end_object();
}

struct ServerImpl {
  Collector& collector;
  HttpOptions options;
  std::shared_ptr<RecentEvents> recent;
  std::uint64_t started_unix_ns = unix_now_ns();
  ::httplib::Server server;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  std::uint16_t port = 0;

  // metrics_json's snapshot, kept so that a poll allocates no entries or names.
  mutable std::mutex snapshot_mutex;
  mutable StatsSnapshot last_snapshot;

  ServerImpl(Collector& c, HttpOptions o) : collector(c), options(std::move(o)) {}

  std::string metrics_json(const MetricsQuery& q) const;
  std::string flame_graph() const;
  void install_routes();
};

// A non-negative nanosecond figure rounded to a whole one, half up (a bucket midpoint
// ends in .5), without llround's call; 2^64 and more (a saturated max) as the largest.
static std::uint64_t whole_ns(double ns) noexcept {
  return ns < 18446744073709549568.0 ? static_cast<std::uint64_t>(ns + 0.5)
                                     : std::numeric_limits<std::uint64_t>::max();
}

std::string ServerImpl::metrics_json(const MetricsQuery& q) const {
  // The last snapshot's storage, reused unless another request is using it.
  std::unique_lock<std::mutex> reuse(snapshot_mutex, std::try_to_lock);
  StatsSnapshot fresh;
  StatsSnapshot& snap = reuse.owns_lock() ? last_snapshot : fresh;
  collector.stats().snapshot(snap);
  const CollectorCounters cc = collector.counters();
  const std::vector<ExporterCounters> ec = collector.exporter_counters();
  const std::vector<Event> errors = recent->errors();

  // Rates are per second of the window actually covered: since the server started when
  // that is later than the window's start, so that the first minutes are not diluted.
  const std::uint64_t from = std::max(snap.window_start_unix_ns, started_unix_ns);
  const double seconds = std::max(
      1e-3, static_cast<double>(snap.window_end_unix_ns > from ? snap.window_end_unix_ns - from : 0) / 1e9);

  std::string out;
  std::size_t size = 1024 + errors.size() * 256;
  for (const StatsEntry& e : snap.entries) size += 256 + e.name.size();
  out.reserve(size);  // one allocation: the body is built without copying it again
  JsonWriter w(out);
  w.begin_object();
  w.key("window_start_unix_ns");
  w.value(snap.window_start_unix_ns);
  w.key("window_end_unix_ns");
  w.value(snap.window_end_unix_ns);
  w.key("window_seconds");
  w.value(seconds);
  w.key("series");
  w.begin_array();
  for (const StatsEntry& e : snap.entries) {
    if (q.by_kind && e.kind != q.kind) continue;
    w.begin_object();
    w.key("kind");
    w.value(to_string(e.kind));
    w.key("name");
    w.value(std::string_view(e.name));
    w.member("count", e.count);
    w.member("errors", e.errors);
    // Six decimals (a millionth of the events, of an event per second) rather than the
    // shortest round trip, which is three times slower and seventeen digits long.
    const double error_rate =
        e.count == 0 ? 0.0 : static_cast<double>(e.errors) / static_cast<double>(e.count);
    w.member("error_rate", JsonWriter::fixed(error_rate, 6));
    w.member("rate_per_s", JsonWriter::fixed(static_cast<double>(e.count) / seconds, 6));
    // Whole ns: the percentiles are bucket midpoints, within 0.8 % anyway, and integers
    // print several times faster than shortest-form doubles.
    w.member("p50_ns", whole_ns(e.p50_ns));
    w.member("p90_ns", whole_ns(e.p90_ns));
    w.member("p99_ns", whole_ns(e.p99_ns));
    w.member("max_ns", whole_ns(e.max_ns));
    w.member("mean_ns", whole_ns(e.mean_ns));
    w.end_object();
  }
  w.end_array();
  w.key("stats");
  w.begin_object();
  w.key("overflowed");
  w.value(snap.overflowed);
  w.key("dropped_old");
  w.value(snap.dropped_old);
  w.key("dropped_future");
  w.value(snap.dropped_future);
  w.end_object();

  std::uint64_t dropped = cc.rejected;
  w.key("collector");
  w.begin_object();
  w.key("offered");
  w.value(cc.offered);
  w.key("rejected");
  w.value(cc.rejected);
  w.key("dispatched");
  w.value(cc.dispatched);
  w.key("pre_fork");
  w.value(cc.pre_fork);
  w.key("in_transit");
  w.value(cc.in_transit);
  w.end_object();
  w.key("exporters");
  w.begin_array();
  for (const ExporterCounters& e : ec) {
    dropped += e.dropped;
    w.begin_object();
    w.key("name");
    w.value(e.name);
    w.key("produced");
    w.value(e.produced);
    w.key("sent");
    w.value(e.sent);
    w.key("failed");
    w.value(e.failed);
    w.key("dropped");
    w.value(e.dropped);
    w.key("pending");
    w.value(e.pending);
    w.end_object();
  }
  w.end_array();
  w.key("dropped_events");
  w.value(dropped);

  w.key("recent_errors");
  w.begin_array();
  const std::size_t n = std::min(q.errors, errors.size());
  for (std::size_t i = 0; i < n; ++i) write_event(w, errors[errors.size() - 1 - i]);  // newest first
  w.end_array();
  w.end_object();
  return out;
}

std::string ServerImpl::flame_graph() const {
  const std::vector<Event> spans = recent->spans();
  // A span's frame is its name; its stack the names of the ancestors kept in `spans`
  // (an ancestor that was not kept, or is still open, makes it a root).
  struct Key {
    TraceId trace;
    SpanId span;
    bool operator==(const Key& o) const noexcept {
      return trace.hi == o.trace.hi && trace.lo == o.trace.lo && span == o.span;
    }
  };
  struct Hash {
    std::size_t operator()(const Key& k) const noexcept {
      return std::hash<std::uint64_t>{}(k.trace.lo ^ k.span);
    }
  };
  std::unordered_map<Key, std::size_t, Hash> index;
  index.reserve(spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) index.emplace(Key{spans[i].trace_id, spans[i].span_id}, i);
  std::vector<std::uint64_t> child_ns(spans.size(), 0);
  std::vector<long> parent(spans.size(), -1);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].parent_span_id == 0) continue;
    const auto it = index.find(Key{spans[i].trace_id, spans[i].parent_span_id});
    if (it == index.end() || it->second == i) continue;
    parent[i] = static_cast<long>(it->second);
    child_ns[it->second] += spans[i].duration;
  }
  std::map<std::string, std::uint64_t> stacks;
  std::vector<std::string_view> path;
  std::string stack;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    path.clear();
    // Parent links point at earlier-or-later entries; a depth cap guards against cycles
    // from reused ids.
    for (long j = static_cast<long>(i); j >= 0 && path.size() < 64; j = parent[static_cast<std::size_t>(j)])
      path.emplace_back(spans[static_cast<std::size_t>(j)].name);
    stack.clear();
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
      if (!stack.empty()) stack.push_back(';');
      for (const char c : *it) stack.push_back(c == ';' ? ',' : c);  // ';' separates frames
    }
    const std::uint64_t self = spans[i].duration > child_ns[i] ? spans[i].duration - child_ns[i] : 0;
    if (self > 0) stacks[stack] += self;
  }
  FlameGraphOptions fg;
  fg.title = "Recent spans (" + std::to_string(spans.size()) + ")";
  return render_flame_graph(stacks, fg);
}

void ServerImpl::install_routes() {
  using ::httplib::Request;
  using ::httplib::Response;
  const auto error = [](Response& res, int status, const std::string& message) {
    std::string body;
    JsonWriter w(body);
    w.begin_object();
    w.key("error");
    w.value(message);
    w.end_object();
    res.status = status;
    res.set_content(body, "application/json");
  };

  // Only GET and HEAD are served: any other method gets 405 (with Allow) on a served path,
  // 404 elsewhere.
  const auto refuse_method = [error](const Request& req, Response& res) {
    if (req.path == "/" || req.path == "/metrics.json" || req.path == "/flamegraph.svg") {
      res.set_header("Allow", "GET, HEAD");
      error(res, 405, req.method + " is not allowed here (Allow: GET, HEAD)");
    } else {
      error(res, 404, "not found (served: /, /metrics.json, /flamegraph.svg)");
    }
  };

  server.set_pre_routing_handler([this, error, refuse_method](const Request& req, Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Content-Type-Options", "nosniff");
    if (!options.token.empty() && req.path != "/") {
      const std::string auth = req.get_header_value("Authorization");
      constexpr std::string_view kBearer = "Bearer ";
      const bool ok = auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
                      constant_time_equal(std::string_view(auth).substr(kBearer.size()), options.token);
      if (!ok) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"spyglass\"");
        error(res, 401, "a bearer token is required (Authorization: Bearer <token>)");
        return ::httplib::Server::HandlerResponse::Handled;
      }
    }
    // A request without a body is refused here; one with a body goes on, so that the body
    // is read (or found too large) before the handlers below refuse it, and the connection
    // stays in step.
    if (req.method != "GET" && req.method != "HEAD" && !req.has_header("Content-Length") &&
        !req.has_header("Transfer-Encoding")) {
      refuse_method(req, res);
      return ::httplib::Server::HandlerResponse::Handled;
    }
    return ::httplib::Server::HandlerResponse::Unhandled;
  });
  server.Post(".*", refuse_method);
  server.Put(".*", refuse_method);
  server.Patch(".*", refuse_method);
  server.Delete(".*", refuse_method);
  server.Options(".*", refuse_method);

  server.Get("/metrics\\.json", [this, error](const Request& req, Response& res) {
    MetricsQuery q;
    q.errors = options.recent_errors;
    for (const auto& [key, value] : req.params) {
      if (key == "kind") {
        if (!parse_kind(value, q.kind))
          return error(res, 400, "kind must be request, function, db or custom");
        q.by_kind = true;
      } else if (key == "errors") {
        std::size_t n = 0;
        bool valid = !value.empty() && value.size() <= 9;
        for (const char c : value) {
          valid = valid && c >= '0' && c <= '9';
          if (valid) n = n * 10 + static_cast<std::size_t>(c - '0');
        }
        if (!valid || n > options.recent_errors)
          return error(res, 400,
                       "errors must be a whole number from 0 to " + std::to_string(options.recent_errors));
        q.errors = n;
      } else {
        return error(res, 400, "unknown parameter \"" + key + "\" (known: kind, errors)");
      }
    }
    res.set_content(metrics_json(q), "application/json");
  });

  server.Get("/flamegraph\\.svg", [this, error](const Request& req, Response& res) {
    if (!req.params.empty()) return error(res, 400, "/flamegraph.svg takes no parameter");
    if (options.recent_spans == 0) return error(res, 404, "the flame graph is off (recent_spans = 0)");
    res.set_content(flame_graph(), "image/svg+xml");
  });

  server.Get("/", [error](const Request& req, Response& res) {
    if (!req.params.empty()) return error(res, 400, "/ takes no parameter");
    res.set_content(std::string(page_html()), "text/html; charset=utf-8");
  });

  // Every other error (404 for unknown paths, 400 for malformed requests,
  // 413/414 for oversized ones) gets a short JSON body when the handler set none.
  server.set_error_handler(::httplib::Server::HandlerWithResponse([error](const Request&, Response& res) {
    if (!res.body.empty()) return ::httplib::Server::HandlerResponse::Unhandled;
    const int status = res.status;
    error(res, status,
          status == 404 ? "not found (served: /, /metrics.json, /flamegraph.svg)"
                        : "the request was refused (HTTP " + std::to_string(status) + ")");
    return ::httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([error](const Request&, Response& res, std::exception_ptr) {
    error(res, 500, "internal error; see the application's log");
  });
}

}  // namespace detail

Server::Server(Collector& collector, HttpOptions options) {
  detail::check_options(options);
  const detail::Address addr = detail::parse_address(options.address);
  impl_ = std::make_unique<detail::ServerImpl>(collector, std::move(options));
  auto& s = *impl_;
  const HttpOptions& o = s.options;
  s.server.new_task_queue = [threads = o.threads, max = o.max_connections] {
    return new detail::ElasticPool(threads, max);
  };
  s.server.set_read_timeout(static_cast<time_t>(o.read_timeout.count()), 0);
  s.server.set_write_timeout(static_cast<time_t>(o.write_timeout.count()), 0);
  s.server.set_keep_alive_timeout(static_cast<time_t>(o.keep_alive_timeout.count()));
  s.server.set_payload_max_length(o.max_body_bytes);
  detail::listen_exclusively(s.server);
  s.install_routes();
  int port = 0;
  if (addr.port == 0) {
    port = s.server.bind_to_any_port(addr.host);
  } else {
    port = s.server.bind_to_port(addr.host, addr.port) ? addr.port : -1;
  }
  if (port <= 0) {
    throw std::runtime_error("spyglass http: cannot listen on " + s.options.address + ": " +
                             std::strerror(errno));
  }
  s.port = static_cast<std::uint16_t>(port);
  s.recent = std::make_shared<detail::RecentEvents>(o.recent_errors, o.recent_spans);
  collector.add_exporter(s.recent);
  s.listener = std::thread([&s] {
    if (!s.server.listen_after_bind()) log(LogLevel::error, "http", "the server stopped listening");
    s.listener_done = true;
  });
  // stop() is a no-op until the listener runs: wait for it, so that the destructor
  // always finds it running.
  while (!s.server.is_running() && !s.listener_done) std::this_thread::yield();
}

Server::~Server() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

std::uint16_t Server::port() const noexcept { return impl_->port; }

std::string Server::metrics_json() const {
  detail::MetricsQuery q;
  q.errors = impl_->options.recent_errors;
  return impl_->metrics_json(q);
}

}  // namespace SPYGLASS_NAMESPACE::http
