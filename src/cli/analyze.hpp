#pragma once
// `spyglass detect` and `spyglass analyze --csv`: anomalies, trend, change points and a
// forecast of one series, as text or JSON.

#include <cstddef>
#include <limits>
#include <optional>
#include <string>

#include <vector>

#include "series.hpp"
#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// Options of `spyglass detect`.
struct DetectOptions {
  std::string source;  ///< the CSV file, for the parameters echoed in the output
  std::string time_column, value_column;
  /// ewma, mad, zscore or iqr; ewma by default, the best F1 of `spyglass evaluate`.
  std::string method = "ewma";
  bool offline = false;  ///< score against the whole series instead of the past
  double threshold = std::numeric_limits<double>::quiet_NaN();  ///< NaN: the method's default
  std::size_t window = 60;                                      ///< past points a rolling method keeps
};

/// Options of `spyglass analyze --csv`.
struct AnalyzeOptions {
  /// Source, columns, and the anomaly method, run on the whole series: the robust
  /// modified z-score by default (ewma is past-only, so not available here).
  DetectOptions detect = [] {
    DetectOptions d;
    d.method = "mad";
    return d;
  }();
  std::size_t horizon = 10;     ///< forecast steps
  std::size_t season = 0;       ///< 0: Holt's linear; else Holt-Winters with this season
  std::optional<double> limit;  ///< report when the forecast reaches it
};

/// Options of `spyglass analyze --label`.
struct HistoryAnalyzeOptions {
  std::string label;                 ///< the runs' label
  std::vector<std::string> metrics;  ///< empty: every metric
  AnalyzeOptions analysis;           ///< anomaly method, forecast horizon, limit
  std::size_t latest = 5;            ///< runs compared with the baseline
  std::size_t baseline = 20;         ///< successful, non-anomalous runs before them
};

/// The metric names `--metric` takes: wall, cpu_user, cpu_sys, max_rss, tree_peak_rss,
/// read_bytes, write_bytes.
std::vector<std::string> history_metric_names();

/// Throws InputError for an unknown metric or anomaly method.
void check_history_options(const HistoryAnalyzeOptions& o);

/// Everything `spyglass analyze --label` prints about `runs` (newest first, as History
/// lists them). Only successful runs (exit 0, not killed) count. Throws InputError.
std::string history_report(const std::vector<monitor::RunRecord>& runs, const HistoryAnalyzeOptions& o,
                           bool json);

/// Throws InputError for a method name that does not exist or does not run as asked.
void check_detect_options(const DetectOptions& o);

/// The indices of the points `spyglass detect` flags in `s`.
std::vector<std::size_t> detect_indices(const Series& s, const DetectOptions& o);

/// The anomalies of `s` as `spyglass detect` prints them.
std::string detect_report(const Series& s, const DetectOptions& o, bool json);

/// Everything `spyglass analyze --csv` prints. Throws InputError when `s` is too short.
std::string analyze_report(const Series& s, const AnalyzeOptions& o, bool json);

}  // namespace SPYGLASS_NAMESPACE::cli
