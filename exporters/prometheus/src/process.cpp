// process_* metrics read straight from /proc, named as the official client libraries
// name them so that standard dashboards work unchanged.

#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include "internal.hpp"
#include "spyglass/exporters/prometheus.hpp"

namespace SPYGLASS_NAMESPACE::prom {

namespace {

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Boot time (Unix seconds) from the btime line of /proc/stat.
std::optional<double> boot_time() {
  const auto stat = read_file("/proc/stat");
  if (!stat) return std::nullopt;
  const auto pos = stat->find("\nbtime ");
  if (pos == std::string::npos) return std::nullopt;
  return std::strtod(stat->c_str() + pos + 7, nullptr);
}

/// The soft "Max open files" limit from /proc/self/limits; +Inf when unlimited.
std::optional<double> max_open_files() {
  const auto limits = read_file("/proc/self/limits");
  if (!limits) return std::nullopt;
  const auto pos = limits->find("Max open files");
  if (pos == std::string::npos) return std::nullopt;
  std::istringstream line(limits->substr(pos + 14));
  std::string soft;
  line >> soft;
  if (soft == "unlimited") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double v = std::strtod(soft.c_str(), &end);
  if (end == soft.c_str()) return std::nullopt;
  return v;
}

/// Entries of /proc/self/fd, not counting the descriptor used to list them.
std::optional<double> open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const std::string own = std::to_string(dirfd(dir));
  double n = 0;
  while (const dirent* entry = readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own) continue;
    n += 1;
  }
  closedir(dir);
  return n;
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  const auto stat = read_file("/proc/self/stat");
  if (!stat) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields start after the
  // last ')'.
  const auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat->substr(close + 1));
  // Fields 3 .. 24 of proc(5); index 0 here is field 3 (state).
  std::vector<std::string> f;
  std::string tok;
  while (f.size() < 22 && fields >> tok) f.push_back(tok);
  if (f.size() < 22) return std::nullopt;
  const auto num = [&](int field) {
    return std::strtod(f[static_cast<std::size_t>(field - 3)].c_str(), nullptr);
  };

  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessStats s;
  s.cpu_seconds = (num(14) + num(15)) / ticks;  // utime + stime
  s.threads = num(20);
  s.virtual_memory_bytes = num(23);
  s.resident_memory_bytes = num(24) * page;
  const auto btime = boot_time();
  if (!btime) return std::nullopt;
  s.start_time_seconds = *btime + num(22) / ticks;
  const auto fds = open_fds();
  const auto max = max_open_files();
  if (!fds || !max) return std::nullopt;
  s.open_fds = *fds;
  s.max_fds = *max;
  return s;
}

namespace detail {

namespace {

::prometheus::MetricFamily single(const char* name, const char* help, ::prometheus::MetricType type,
                                  double value) {
  ::prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  ::prometheus::ClientMetric m;
  if (type == ::prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

std::vector<::prometheus::MetricFamily> ProcessCollectable::Collect() const {
  std::vector<::prometheus::MetricFamily> out;
  const auto s = read_process_stats();
  if (!s) return out;  // no /proc: export nothing rather than zeros
  using ::prometheus::MetricType;
  out.push_back(single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       MetricType::Counter, s->cpu_seconds));
  out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
                       s->resident_memory_bytes));
  out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
                       s->virtual_memory_bytes));
  out.push_back(
      single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, s->open_fds));
  out.push_back(
      single("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, s->max_fds));
  out.push_back(single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                       MetricType::Gauge, s->start_time_seconds));
  out.push_back(
      single("process_threads", "Number of OS threads in the process.", MetricType::Gauge, s->threads));
  return out;
}

}  // namespace detail

}  // namespace SPYGLASS_NAMESPACE::prom
