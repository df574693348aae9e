// The exporter: event metrics recorded on the collector's stage thread, served by a
// civetweb endpoint and pushed by a Pusher over libcurl, every wait bounded.

#include <civetweb.h>
#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <prometheus/text_serializer.h>

#include "internal.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE::prom {

std::vector<double> default_buckets() {
  return {1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01,
          0.02, 0.05, 0.1,  0.2,  0.5,  1.0,  2.0,  5.0,  10.0, 20.0, 50.0, 60.0};
}

namespace detail {

namespace {

constexpr std::string_view kSource = "prometheus";

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

void check_group_value(const char* what, const std::string& v) {
  if (v.empty() || v.find('/') != std::string::npos)
    throw std::invalid_argument(std::string("spyglass prometheus: push ") + what + " \"" + v +
                                "\" must be non-empty and contain no '/'");
}

/// Percent-encodes a grouping-key value for a URL path segment.
std::string path_segment(const std::string& v) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::steady_clock::time_point from_ns(std::int64_t ns) noexcept {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

void split_push_url(const std::string& url, std::string& host, std::string& port) {
  const auto bad = [&](const char* why) {
    return std::invalid_argument("spyglass prometheus: push_url \"" + url + "\" " + why +
                                 " (expected http://host:port)");
  };
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) throw bad("has no scheme");
  const std::string proto = url.substr(0, scheme);
  if (proto != "http" && proto != "https") throw bad("is not http or https");
  std::string rest = url.substr(scheme + 3);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) throw bad("has a path");
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find(']', colon) != std::string::npos) {
    if (rest.empty()) throw bad("has no host");
    host = url.substr(0, scheme + 3) + rest;
    port = proto == "https" ? "443" : "80";
    return;
  }
  port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5) throw bad("has no valid port");
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) throw bad("has no valid port");
  }
  if (std::stoul(port) == 0 || std::stoul(port) > 65535) throw bad("has no valid port");
  if (colon == 0) throw bad("has no host");
  host = url.substr(0, scheme + 3) + rest.substr(0, colon);
}

PushTarget push_target(const PrometheusOptions& options) {
  std::string host;
  std::string port;
  split_push_url(options.push_url, host, port);
  const std::string instance = options.push_instance.empty() ? host_name() : options.push_instance;
  check_group_value("job", options.push_job);
  check_group_value("instance", instance);
  PushTarget t;
  t.url = host + ":" + port + "/metrics/job/" + path_segment(options.push_job) + "/instance/" +
          path_segment(instance);
  t.interval = options.push_interval;
  if (t.interval.count() <= 0) throw std::invalid_argument("spyglass prometheus: push_interval must be > 0");
  t.timeout = options.push_timeout;
  if (t.timeout.count() <= 0) throw std::invalid_argument("spyglass prometheus: push_timeout must be > 0");
  return t;
}

Pusher::Pusher(PushTarget target, std::function<std::string()> render)
    : target_(std::move(target)), render_(std::move(render)), cut_ns_(kNoDeadline) {
  init_curl_once();
}

void Pusher::start() {
  thread_ = std::thread([this] { run(); });
}

Pusher::~Pusher() { stop(); }

void Pusher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  wake_transfer();
  if (thread_.joinable()) thread_.join();
}

void Pusher::cut_at(std::chrono::steady_clock::time_point deadline) noexcept {
  const std::int64_t ns = to_ns(deadline);
  std::int64_t cur = cut_ns_.load(std::memory_order_relaxed);
  while (ns < cur && !cut_ns_.compare_exchange_weak(cur, ns, std::memory_order_release)) {
  }
  wake_transfer();
}

void Pusher::wake_transfer() noexcept {
  std::lock_guard<std::mutex> lock(transfer_mutex_);  // held only around pointer updates
  if (transfer_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(transfer_));
}

void Pusher::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_.load(std::memory_order_acquire)) {
    if (cv_.wait_for(lock, target_.interval, [&] { return stopping_.load(std::memory_order_acquire); }))
      break;
    lock.unlock();
    push_now(true);
    lock.lock();
  }
}

bool Pusher::push_now(bool periodic) {
  std::lock_guard<std::mutex> one_at_a_time(push_mutex_);
  if (periodic && stopping_.load(std::memory_order_acquire)) return false;
  // The timeout covers the whole push, the rendering of the exposition included.
  const auto started = std::chrono::steady_clock::now();
  const auto own_limit = started + target_.timeout;
  const std::string body = render_();

  CURL* easy = curl_easy_init();
  CURLM* multi = curl_multi_init();
  std::string failure;
  long status = 0;
  if (easy == nullptr || multi == nullptr) {
    failure = "libcurl could not be initialised";
  } else {
    curl_slist* headers =
        curl_slist_append(nullptr, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
    // No "Expect: 100-continue": the body follows the headers at once, rather than after
    // a second spent waiting for an answer the Pushgateway does not send.
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(easy, CURLOPT_URL, target_.url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");  // PUT replaces the whole group
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(own_limit - std::chrono::steady_clock::now());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<std::int64_t>(remaining.count(), 1)));
    curl_easy_setopt(
        easy, CURLOPT_WRITEFUNCTION, +[](char*, std::size_t size, std::size_t n, void*) { return size * n; });
    curl_multi_add_handle(multi, easy);
    {
      std::lock_guard<std::mutex> lock(transfer_mutex_);
      transfer_ = multi;
    }
    int running = 1;
    while (running != 0) {
      if (curl_multi_perform(multi, &running) != CURLM_OK) {
        failure = "libcurl multi interface failed";
        break;
      }
      if (running == 0) break;
      const auto limit = std::min(own_limit, from_ns(cut_ns_.load(std::memory_order_acquire)));
      const auto now = std::chrono::steady_clock::now();
      if (periodic && stopping_.load(std::memory_order_acquire)) {
        failure = "abandoned at shutdown (the final push supersedes it)";
        break;
      }
      if (now >= limit) {
        failure = limit < own_limit ? "cut short by shutdown" : "timed out";
        failure +=
            " after " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - started).count()) +
            " ms";
        break;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(limit - now).count() + 1;
      curl_multi_poll(multi, nullptr, 0, static_cast<int>(std::min<std::int64_t>(wait, 1000)), nullptr);
    }
    {
      std::lock_guard<std::mutex> lock(transfer_mutex_);
      transfer_ = nullptr;
    }
    if (failure.empty()) {
      int left = 0;
      CURLcode rc = CURLE_OK;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
      }
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        failure = "timed out after " +
                  std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count()) +
                  " ms";
      } else if (rc != CURLE_OK) {
        failure = curl_easy_strerror(rc);
      } else {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status >= 300) failure = "answered HTTP " + std::to_string(status);
      }
    }
    curl_multi_remove_handle(multi, easy);
    curl_slist_free_all(headers);
  }
  if (easy != nullptr) curl_easy_cleanup(easy);
  if (multi != nullptr) curl_multi_cleanup(multi);

  const bool ok = failure.empty();
  std::uint64_t failures = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    (ok ? counters_.ok : counters_.failed) += 1;
    counters_.last_status = status > 0 ? static_cast<int>(status) : -1;
    failures = counters_.failed;
  }
  if (!ok) {
    log(LogLevel::warning, kSource,
        "push to " + target_.url + " failed: " + failure + " (" + std::to_string(failures) +
            " failed so far)");
  }
  return ok;
}

PushCounters Pusher::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

}  // namespace detail

/// The /metrics endpoint: a civetweb server with a handler that serves scrape().
struct PrometheusExporter::Server {
  mg_context* context = nullptr;
  std::uint16_t port = 0;
  ~Server() {
    if (context != nullptr) mg_stop(context);  // workers finish within request_timeout
  }
};

namespace {

void check_listen_address(const std::string& address) {
  const auto colon = address.rfind(':');
  const auto bad = [&] {
    return std::invalid_argument("spyglass prometheus: listen_address \"" + address +
                                 "\" is not host:port (e.g. 127.0.0.1:9464)");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() || colon + 6 < address.size())
    throw bad();
  for (std::size_t i = colon + 1; i < address.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(address[i]))) throw bad();
  }
  if (std::stoul(address.substr(colon + 1)) > 65535) throw bad();
}

int serve_metrics(mg_connection* conn, void* data) {
  const auto* exporter = static_cast<const PrometheusExporter*>(data);
  const mg_request_info* request = mg_get_request_info(conn);
  const bool head = request != nullptr && std::strcmp(request->request_method, "HEAD") == 0;
  if (request == nullptr || (!head && std::strcmp(request->request_method, "GET") != 0)) {
    mg_send_http_error(conn, 405, "%s", "Only GET and HEAD are served here.\n");
    return 405;
  }
  std::string body;
  try {
    body = exporter->scrape();
  } catch (const std::exception& e) {
    log(LogLevel::warning, "prometheus", std::string("scrape failed: ") + e.what());
    mg_send_http_error(conn, 500, "%s", "The scrape failed; see the application's log.\n");
    return 500;
  }
  {
    // civetweb formats the Date header with gmtime(), whose buffer all threads share:
    // the handler's headers are sent one at a time so that two scrapes never race on it.
    static std::mutex headers_mutex;
    std::lock_guard<std::mutex> lock(headers_mutex);
    mg_send_http_ok(conn, "text/plain; version=0.0.4; charset=utf-8", static_cast<long long>(body.size()));
  }
  if (!head) mg_write(conn, body.data(), body.size());
  return 200;
}

int civetweb_log(const mg_connection*, const char* message) {
  log(LogLevel::info, "prometheus endpoint", message != nullptr ? message : "");
  return 1;  // handled: civetweb writes nothing to stderr
}

}  // namespace

PrometheusExporter::PrometheusExporter(PrometheusOptions options) : options_(std::move(options)) {
  // Every option is checked before the endpoint binds its port or a thread starts.
  if (!options_.listen_address.empty()) check_listen_address(options_.listen_address);
  if (options_.server_threads == 0)
    throw std::invalid_argument("spyglass prometheus: server_threads must be > 0");
  if (options_.request_timeout.count() <= 0)
    throw std::invalid_argument("spyglass prometheus: request_timeout must be > 0");
  std::optional<detail::PushTarget> push;
  if (!options_.push_url.empty()) push = detail::push_target(options_);
  // Made before the endpoint starts (whose scrapes read it) and started last, once the
  // exporter is whole (its pushes scrape).
  if (push) pusher_ = std::make_unique<detail::Pusher>(std::move(*push), [this] { return scrape(); });
  events_ = std::make_shared<detail::EventMetrics>(options_.buckets, options_.max_series, options_.collector);
  if (options_.process_metrics) process_ = std::make_shared<detail::ProcessCollectable>();
  if (!options_.registry) options_.registry = std::make_shared<::prometheus::Registry>();

  if (!options_.listen_address.empty()) {
    static std::once_flag civetweb_init;
    std::call_once(civetweb_init, [] { mg_init_library(0); });
    server_ = std::make_unique<Server>();
    const std::string threads = std::to_string(options_.server_threads);
    const std::string timeout = std::to_string(options_.request_timeout.count());
    const char* config[] = {"listening_ports",
                            options_.listen_address.c_str(),
                            "num_threads",
                            threads.c_str(),
                            "request_timeout_ms",
                            timeout.c_str(),
                            "enable_keep_alive",
                            "no",
                            nullptr};
    mg_callbacks callbacks{};
    callbacks.log_message = civetweb_log;
    mg_init_data init{};
    init.callbacks = &callbacks;
    init.configuration_options = config;
    char error_text[256] = {};
    unsigned error_code = 0;
    mg_error_data error{&error_code, error_text, sizeof(error_text)};
    server_->context = mg_start2(&init, &error);
    if (server_->context == nullptr) {
      server_.reset();
      throw std::runtime_error("spyglass prometheus: cannot serve /metrics on " + options_.listen_address +
                               " (address in use or not available): " + error_text);
    }
    mg_set_request_handler(server_->context, "/metrics$", serve_metrics, this);
    mg_server_port ports[4] = {};
    if (mg_get_server_ports(server_->context, 4, ports) > 0)
      server_->port = static_cast<std::uint16_t>(ports[0].port);
  }
  if (pusher_) pusher_->start();
}

PrometheusExporter::~PrometheusExporter() {
  shutdown();
  server_.reset();  // stop serving before the metrics go
}

bool PrometheusExporter::export_batch(std::span<const Event> events) {
  events_->record(events);
  return true;
}

void PrometheusExporter::shutdown() {
  if (shut_down_.exchange(true)) return;
  events_->freeze_collector();
  if (pusher_) {
    pusher_->stop();
    pusher_->push_now();
  }
}

std::chrono::milliseconds PrometheusExporter::shutdown_timeout() const {
  return (pusher_ ? options_.push_timeout : std::chrono::milliseconds(0)) + std::chrono::seconds(1);
}

void PrometheusExporter::begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept {
  if (pusher_) pusher_->cut_at(deadline);
}

void PrometheusExporter::after_fork_child() {
  // The child must not hold the parent's endpoint open: once the parent closes it, a
  // connection to the port would otherwise wait in a backlog no thread accepts from.
  if (server_ && server_->port != 0) detail::close_sockets_on_port(server_->port);
  // Deliberately leaked: their threads stayed in the parent, and a scrape or push that
  // was running at fork() time may have left their locks held.
  static_cast<void>(server_.release());
  static_cast<void>(pusher_.release());
  static_cast<void>(new std::shared_ptr<detail::EventMetrics>(std::move(events_)));
  events_ = std::make_shared<detail::EventMetrics>(options_.buckets, options_.max_series, options_.collector);
}

const std::shared_ptr<::prometheus::Registry>& PrometheusExporter::registry() const noexcept {
  return options_.registry;
}

std::uint16_t PrometheusExporter::port() const noexcept { return server_ ? server_->port : 0; }

std::vector<::prometheus::MetricFamily> PrometheusExporter::collect() const {
  auto out = options_.registry->Collect();
  auto ev = events_->Collect();
  out.insert(out.end(), std::make_move_iterator(ev.begin()), std::make_move_iterator(ev.end()));
  if (pusher_) {
    ::prometheus::MetricFamily f;
    f.name = "spyglass_prometheus_push_failures_total";
    f.help = "Pushes to the Pushgateway that failed (connection error, timeout or non-2xx answer).";
    f.type = ::prometheus::MetricType::Counter;
    f.metric.emplace_back().counter.value = static_cast<double>(pusher_->counters().failed);
    out.push_back(std::move(f));
  }
  if (process_) {
    auto pr = process_->Collect();
    out.insert(out.end(), std::make_move_iterator(pr.begin()), std::make_move_iterator(pr.end()));
  }
  return out;
}

std::string PrometheusExporter::scrape() const { return ::prometheus::TextSerializer().Serialize(collect()); }

bool PrometheusExporter::push() { return pusher_ ? pusher_->push_now() : false; }

PushCounters PrometheusExporter::push_counters() const {
  return pusher_ ? pusher_->counters() : PushCounters{};
}

std::uint64_t PrometheusExporter::series_overflow() const noexcept { return events_->overflow(); }

}  // namespace SPYGLASS_NAMESPACE::prom
