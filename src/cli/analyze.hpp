#pragma once
// `spyglass detect` and `spyglass analyze --csv`: anomalies, trend, change points and a
// forecast of one series, as text or JSON.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>

#include <vector>

#include "prometheus_source.hpp"
#include "series.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// Options of `spyglass detect`.
struct DetectOptions {
  std::string source;  ///< the CSV file, for the parameters echoed in the output
  std::string time_column, value_column;
  TimeUnit time_unit = TimeUnit::automatic;  ///< how plain numbers in the time column are read
  /// Set when the series comes from a Prometheus range query instead of a CSV file.
  std::optional<PrometheusQuery> prometheus;
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
  AnalyzeOptions analysis;           ///< anomaly method, forecast horizon (its limit is unused)
  /// Per metric, the value (seconds or bytes) the forecast is to reach (`--limit M=V`);
  /// metrics not named have no limit.
  std::vector<std::pair<std::string, double>> limits;
  std::size_t latest = 5;     ///< runs compared with the baseline
  std::size_t baseline = 20;  ///< successful, non-anomalous runs before them
  /// The label's pinned baseline run: the baseline ends with it instead of just before
  /// the latest runs (`spyglass baseline pin`).
  std::optional<std::int64_t> pinned;
};

/// The latest runs of one metric against their baseline.
struct RegressionCheck {
  analytics::Regression result;               ///< the test and the effect
  std::size_t current = 0, baseline = 0;      ///< runs in each sample
  std::optional<std::int64_t> pinned;         ///< the pinned run the baseline ends with
  std::vector<std::size_t> baseline_indices;  ///< the baseline's runs (index into the series)
};

/// One metric over a label's successful runs, oldest first: what `gate` checks.
struct MetricCheck {
  std::vector<std::int64_t> run_ids;                  ///< the runs, oldest first
  std::vector<analytics::ChangePoint> change_points;  ///< significant shifts (index into run_ids)
  std::optional<RegressionCheck> regression;          ///< nullopt: too few runs for both samples
};

/// Which analyses check_metric runs: change points are the costly part.
enum class MetricChecks { regression, change_points, both };

/// Change points and the regression test of metric `name` over `runs` (newest first),
/// exactly as `analyze --label` computes them, or only those `which` names. Throws InputError.
MetricCheck check_metric(std::span<const monitor::RunRecord> runs, const std::string& name,
                         const HistoryAnalyzeOptions& o, MetricChecks which = MetricChecks::both);

/// One metric over a label's successful runs, oldest first, with everything
/// `analyze --label` finds in it: what the pages chart and mark.
struct MetricAnalysis {
  std::vector<std::int64_t> run_ids;  ///< the runs, oldest first
  std::vector<double> values;         ///< the metric of each run (seconds or bytes)
  /// Whether there were enough runs (3) to analyse; the rest is empty when not.
  bool analysed = false;
  analytics::Trend trend;                                 ///< over the runs
  std::vector<std::pair<std::size_t, double>> anomalies;  ///< (index, score), whole-series method
  std::vector<analytics::ChangePoint> change_points;      ///< significant shifts (index into run_ids)
  std::optional<RegressionCheck> regression;              ///< the latest runs against the baseline
};

/// Metric `name` of `runs` (newest first) analysed exactly as `analyze --label` does.
/// Throws InputError for an unknown metric or method.
MetricAnalysis analyze_metric(const std::vector<monitor::RunRecord>& runs, const std::string& name,
                              const HistoryAnalyzeOptions& o);

/// The trend of metric `name` over the successful ones of `runs` (newest first), as
/// `analyze --label` fits it; nullopt with fewer than 3 such runs.
std::optional<analytics::Trend> metric_trend(const std::vector<monitor::RunRecord>& runs,
                                             const std::string& name);

/// The value of metric `name` (one of history_metric_names()) in `r`: seconds, bytes, or
/// a custom metric's plain number; NaN for a custom metric `r` did not record. Throws
/// InputError for a name that is neither built in nor a possible custom metric's.
double history_metric(const monitor::RunRecord& r, const std::string& name);

/// The unit of metric `name`: "s", "bytes", or "" (a plain number). A custom metric's is
/// the one the newest of `runs` (newest first) that recorded it gave; "" when none did.
/// Throws InputError for a name that is neither built in nor a possible custom metric's.
std::string metric_unit(const std::string& name, const std::vector<monitor::RunRecord>& runs = {});

/// A metric's value as text in its unit ("1.25 s", "512.0 MiB", "1234.5"; see metric_unit()).
std::string metric_text(const std::string& name, double v, const std::vector<monitor::RunRecord>& runs = {});

/// Whether a run counts in the analyses: exit 0, not killed by a limit, no error.
bool successful_run(const monitor::RunRecord& r);

/// The metric names `--metric` takes: wall, cpu_user, cpu_sys, max_rss, tree_peak_rss,
/// read_bytes, write_bytes, then the custom metrics any of `runs` recorded, sorted.
std::vector<std::string> history_metric_names(const std::vector<monitor::RunRecord>& runs = {});

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
