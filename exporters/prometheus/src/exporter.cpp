// The exporter: event metrics recorded on the collector's thread, served by a
// prometheus-cpp Exposer and pushed by a Pusher.

#include <unistd.h>

#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <prometheus/exposer.h>
#include <prometheus/gateway.h>
#include <prometheus/text_serializer.h>

#include "internal.hpp"
#include "spyglass/exporters/prometheus.hpp"

namespace SPYGLASS_NAMESPACE::prom {

std::vector<double> default_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

namespace detail {

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

namespace {

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

}  // namespace

PushTarget push_target(const PrometheusOptions& options) {
  PushTarget t;
  split_push_url(options.push_url, t.host, t.port);
  t.job = options.push_job;
  t.instance = options.push_instance.empty() ? host_name() : options.push_instance;
  check_group_value("job", t.job);
  check_group_value("instance", t.instance);
  t.interval = options.push_interval;
  if (t.interval.count() <= 0) throw std::invalid_argument("spyglass prometheus: push_interval must be > 0");
  return t;
}

Pusher::Pusher(const PushTarget& target, std::vector<std::weak_ptr<::prometheus::Collectable>> sources)
    : interval_(target.interval) {
  gateway_ = std::make_unique<::prometheus::Gateway>(target.host, target.port, target.job,
                                                     ::prometheus::Labels{{"instance", target.instance}});
  for (auto& s : sources) gateway_->RegisterCollectable(s);
  thread_ = std::thread([this] { run(); });
}

Pusher::~Pusher() { stop(); }

void Pusher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Pusher::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (cv_.wait_for(lock, interval_, [&] { return stopping_; })) break;
    lock.unlock();
    push_now();
    lock.lock();
  }
}

bool Pusher::push_now() {
  std::lock_guard<std::mutex> one_at_a_time(push_mutex_);
  int status = -1;
  try {
    status = gateway_->Push();  // PUT: replaces the whole group
  } catch (const std::exception&) {
    status = -1;
  }
  const bool ok = status >= 200 && status < 300;
  std::lock_guard<std::mutex> lock(mutex_);
  (ok ? counters_.ok : counters_.failed) += 1;
  counters_.last_status = status;
  return ok;
}

PushCounters Pusher::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

}  // namespace detail

struct PrometheusExporter::Server {
  std::unique_ptr<::prometheus::Exposer> exposer;
  std::uint16_t port = 0;
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

}  // namespace

PrometheusExporter::PrometheusExporter(PrometheusOptions options) : options_(std::move(options)) {
  // Every option is checked before the endpoint binds its port or a thread starts.
  if (!options_.listen_address.empty()) check_listen_address(options_.listen_address);
  if (options_.server_threads == 0)
    throw std::invalid_argument("spyglass prometheus: server_threads must be > 0");
  std::optional<detail::PushTarget> push;
  if (!options_.push_url.empty()) push = detail::push_target(options_);
  events_ = std::make_shared<detail::EventMetrics>(options_.buckets, options_.max_names_per_kind,
                                                   options_.collector);
  if (options_.process_metrics) process_ = std::make_shared<detail::ProcessCollectable>();
  if (!options_.registry) options_.registry = std::make_shared<::prometheus::Registry>();

  std::vector<std::weak_ptr<::prometheus::Collectable>> sources{options_.registry, events_};
  if (process_) sources.emplace_back(process_);

  if (!options_.listen_address.empty()) {
    server_ = std::make_unique<Server>();
    try {
      server_->exposer =
          std::make_unique<::prometheus::Exposer>(options_.listen_address, options_.server_threads);
    } catch (const std::exception& e) {
      throw std::runtime_error("spyglass prometheus: cannot serve /metrics on " + options_.listen_address +
                               " (address in use or not available): " + e.what());
    }
    for (auto& s : sources) server_->exposer->RegisterCollectable(s);
    const auto ports = server_->exposer->GetListeningPorts();
    if (!ports.empty()) server_->port = static_cast<std::uint16_t>(ports.front());
  }
  if (push) pusher_ = std::make_unique<detail::Pusher>(*push, std::move(sources));
}

PrometheusExporter::~PrometheusExporter() {
  shutdown();
  server_.reset();  // stop serving before the collectables go
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

void PrometheusExporter::after_fork_child() {
  // The child must not hold the parent's endpoint open: once the parent closes it, a
  // connection to the port would otherwise wait in a backlog no thread accepts from.
  if (server_ && server_->port != 0) detail::close_sockets_on_port(server_->port);
  // Deliberately leaked: their threads stayed in the parent, and a scrape or push that
  // was running at fork() time may have left their locks held.
  static_cast<void>(server_.release());
  static_cast<void>(pusher_.release());
  static_cast<void>(new std::shared_ptr<detail::EventMetrics>(std::move(events_)));
  events_ = std::make_shared<detail::EventMetrics>(options_.buckets, options_.max_names_per_kind,
                                                   options_.collector);
}

const std::shared_ptr<::prometheus::Registry>& PrometheusExporter::registry() const noexcept {
  return options_.registry;
}

std::uint16_t PrometheusExporter::port() const noexcept { return server_ ? server_->port : 0; }

std::vector<::prometheus::MetricFamily> PrometheusExporter::collect() const {
  auto out = options_.registry->Collect();
  auto ev = events_->Collect();
  out.insert(out.end(), std::make_move_iterator(ev.begin()), std::make_move_iterator(ev.end()));
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
