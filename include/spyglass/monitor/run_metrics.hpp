#pragma once
/// Reading the custom metrics a run appended to its metrics file (spyglass/run_metric.hpp):
/// lines `name value [unit]`, checked and normalised at the run's end.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

/// At most this much of a metrics file is read; the rest is reported and ignored.
inline constexpr std::size_t kMaxRunMetricsBytes = std::size_t{1} << 20;
/// At most this many distinct names are kept per run.
inline constexpr std::size_t kMaxRunMetrics = 1000;

/// Whether `name` can name a custom metric: [A-Za-z_][A-Za-z0-9_.]*, at most 64 characters.
SPYGLASS_API bool valid_run_metric_name(std::string_view name);

/// What a metrics file held.
struct RunMetricsRead {
  std::vector<RunMetric> metrics;     ///< by first appearance; a repeated name keeps its last value
  std::vector<std::string> warnings;  ///< one per refused line or limit ("line 3: ...")
};

/// Parses `text`: a name ([A-Za-z_][A-Za-z0-9_.]*, at most 64 characters, not one of
/// `reserved`), a finite number and an optional unit (s, ms, us, ns -> seconds; B, KiB, MiB,
/// GiB, kB, MB, GB -> bytes), separated by blanks. Blank lines and lines starting with '#'
/// are skipped; any other bad line is a warning naming its number, and the other lines are
/// kept. `truncated` says that `text` is only the first kMaxRunMetricsBytes of the file.
SPYGLASS_API RunMetricsRead parse_run_metrics(std::string_view text, std::span<const std::string> reserved,
                                              bool truncated = false);

/// Reads and parses the file at `path` (at most kMaxRunMetricsBytes of it). A file that
/// cannot be read is one warning.
SPYGLASS_API RunMetricsRead read_run_metrics(const std::string& path, std::span<const std::string> reserved);

}  // namespace SPYGLASS_NAMESPACE::monitor
