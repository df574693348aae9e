// The metrics file of a run: parsed line by line, each bad line reported, the good kept.

#include "spyglass/monitor/run_metrics.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>

namespace SPYGLASS_NAMESPACE::monitor {

namespace {

struct Unit {
  std::string_view text;
  double factor;
  const char* normal;
};

constexpr Unit kUnits[] = {
    {"s", 1, "s"},    {"ms", 1e-3, "s"},    {"us", 1e-6, "s"},       {"ns", 1e-9, "s"},
    {"B", 1, "B"},    {"KiB", 1024.0, "B"}, {"MiB", 1048576.0, "B"}, {"GiB", 1073741824.0, "B"},
    {"kB", 1e3, "B"}, {"MB", 1e6, "B"},     {"GB", 1e9, "B"},
};

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// Why `line` is not a metric, or "" when it is (then `m` holds it).
std::string parse_line(std::string_view line, std::span<const std::string> reserved, RunMetric& m) {
  const auto f = fields(line);
  if (f.size() < 2 || f.size() > 3) return "expected 'name value [unit]'";
  if (!valid_run_metric_name(f[0])) {
    return "name '" + std::string(f[0]) + "' is not [A-Za-z_][A-Za-z0-9_.]* of at most 64 characters";
  }
  if (std::find(reserved.begin(), reserved.end(), f[0]) != reserved.end()) {
    return "name '" + std::string(f[0]) + "' is a built-in metric";
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(f[1].data(), f[1].data() + f[1].size(), v);
  if (ec != std::errc() || end != f[1].data() + f[1].size() || !std::isfinite(v)) {
    return "value '" + std::string(f[1]) + "' is not a finite number";
  }
  m.name = std::string(f[0]);
  m.value = v;
  m.unit.clear();
  if (f.size() == 3) {
    const auto u =
        std::find_if(std::begin(kUnits), std::end(kUnits), [&](const Unit& x) { return x.text == f[2]; });
    if (u == std::end(kUnits)) {
      return "unit '" + std::string(f[2]) + "' is not one of s, ms, us, ns, B, KiB, MiB, GiB, kB, MB, GB";
    }
    m.value = v * u->factor;
    m.unit = u->normal;
    if (!std::isfinite(m.value)) return "value '" + std::string(f[1]) + "' overflows in " + u->normal;
  }
  return {};
}

}  // namespace

bool valid_run_metric_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  const auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!alpha(n.front())) return false;
  return std::all_of(n.begin(), n.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9') || c == '.'; });
}

RunMetricsRead parse_run_metrics(std::string_view text, std::span<const std::string> reserved,
                                 bool truncated) {
  RunMetricsRead out;
  std::size_t number = 0;
  bool over = false;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    // A last line cut by the size limit is not read as a whole one.
    if (nl == std::string_view::npos && truncated) break;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto f = line.find_first_not_of(" \t");
    if (f == std::string_view::npos || line[f] == '#') continue;
    RunMetric m;
    const std::string why = parse_line(line, reserved, m);
    if (!why.empty()) {
      out.warnings.push_back("line " + std::to_string(number) + ": " + why);
      continue;
    }
    auto it = std::find_if(out.metrics.begin(), out.metrics.end(),
                           [&](const RunMetric& x) { return x.name == m.name; });
    if (it != out.metrics.end()) {
      *it = std::move(m);  // the last value wins
    } else if (out.metrics.size() < kMaxRunMetrics) {
      out.metrics.push_back(std::move(m));
    } else if (!over) {
      over = true;
      out.warnings.push_back("line " + std::to_string(number) + ": more than " +
                             std::to_string(kMaxRunMetrics) + " names; this and later new names are ignored");
    }
  }
  if (truncated) {
    out.warnings.push_back("only the first " + std::to_string(kMaxRunMetricsBytes) + " bytes were read (" +
                           std::to_string(number) + " lines); the rest is ignored");
  }
  return out;
}

RunMetricsRead read_run_metrics(const std::string& path, std::span<const std::string> reserved) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {{}, {"cannot read: " + std::string(std::strerror(errno))}};
  std::string text(kMaxRunMetricsBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  const bool truncated = text.size() > kMaxRunMetricsBytes;
  if (truncated) text.resize(kMaxRunMetricsBytes);
  return parse_run_metrics(text, reserved, truncated);
}

}  // namespace SPYGLASS_NAMESPACE::monitor
