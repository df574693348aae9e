#include "spyglass/session.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "internal.hpp"
#include "spyglass/emitter.hpp"

namespace SPYGLASS_NAMESPACE {
namespace detail {

namespace {
// Routes excluded from recording. Replaced as a whole; retired filters are kept until the
// process ends because a producer may still be reading one (they are tiny).
struct RouteFilter {
  std::vector<std::string> exact;
  std::vector<std::string> prefixes;
};
constinit std::atomic<const RouteFilter*> g_route_filter{nullptr};
std::vector<std::unique_ptr<RouteFilter>>& retired_filters() {
  static auto* v = new std::vector<std::unique_ptr<RouteFilter>>;
  return *v;
}

// Makes every other thread pass a full memory barrier, so that after it returns a thread
// either sees the cleared collector pointer or has its busy flag visible to us. This is
// what lets the hot path get away with a compiler-only fence.
void process_wide_barrier() noexcept {
  static const bool expedited =
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  if (expedited && ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
  if (::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return;
  // No membarrier: give any thread between its flag store and its pointer load far more
  // time than those two instructions take.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}
}  // namespace

bool route_excluded(std::string_view route) noexcept {
  const RouteFilter* f = g_route_filter.load(std::memory_order_acquire);
  if (f == nullptr) return false;
  for (const auto& r : f->exact)
    if (route == r) return true;
  for (const auto& p : f->prefixes)
    if (route.starts_with(p)) return true;
  return false;
}

}  // namespace detail

namespace {
std::atomic<bool> g_session_exists{false};

// OTEL_SDK_DISABLED=true (OpenTelemetry's switch, case-insensitive) or SPYGLASS_DISABLED=1.
bool disabled_by_environment() {
  const auto is = [](const char* v, std::string_view want) {
    if (v == nullptr) return false;
    std::string_view s(v);
    if (s.size() != want.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))) != want[i]) return false;
    return true;
  };
  return is(std::getenv("OTEL_SDK_DISABLED"), "true") || is(std::getenv("SPYGLASS_DISABLED"), "1");
}
}  // namespace

Session::Session(SessionOptions options, std::vector<std::shared_ptr<Exporter>> exporters) {
  bool expected = false;
  if (!g_session_exists.compare_exchange_strong(expected, true)) {
    throw std::logic_error("spyglass::Session: another Session already exists in this process");
  }
  enabled_ = !disabled_by_environment();
  try {
    if (!enabled_) {
      collector_ = std::make_unique<Collector>(options.collector);  // idle: never started
      return;
    }
    set_intern_limits(options.intern);
    set_record_unsampled(options.record_unsampled);
    set_sample_ratio(options.sample_ratio);
    set_parent_based_sampling(options.parent_based);
    if (!options.exclude_routes.empty() || !options.exclude_route_prefixes.empty()) {
      auto filter = std::make_unique<detail::RouteFilter>();
      filter->exact = std::move(options.exclude_routes);
      filter->prefixes = std::move(options.exclude_route_prefixes);
      detail::g_route_filter.store(filter.get(), std::memory_order_release);
      detail::retired_filters().push_back(std::move(filter));
    } else {
      detail::g_route_filter.store(nullptr, std::memory_order_release);
    }
    collector_ = std::make_unique<Collector>(options.collector);
    for (auto& e : exporters) collector_->add_exporter(std::move(e));
  } catch (...) {
    g_session_exists.store(false);
    throw;
  }
  detail::g_default_collector.store(collector_.get(), std::memory_order_release);
}

Session::~Session() {
  if (!enabled_) {
    collector_.reset();
    g_session_exists.store(false);
    return;
  }
  detail::g_default_collector.store(nullptr, std::memory_order_seq_cst);
  detail::process_wide_barrier();
  detail::wait_for_quiescent_threads();
  collector_->shutdown();
  collector_.reset();
  g_session_exists.store(false);
}

Collector* Session::current() noexcept { return detail::g_default_collector.load(std::memory_order_acquire); }

}  // namespace SPYGLASS_NAMESPACE
