#pragma once
/// Streaming detectors of spyglass::analytics: fed one point at a time, each judges a point
/// only against the points before it (no look-ahead), so they work on a live series.
///
/// A detector is not thread-safe; use one per series and thread. Non-finite points throw
/// AnalyticsError and leave the detector unchanged.

#include <cstddef>
#include <deque>
#include <utility>

#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

/// A detector's verdict on one point.
struct Detection {
  bool ready = false;    ///< enough past points to judge (false during the warm-up)
  bool anomaly = false;  ///< the point is flagged
  double score = 0;      ///< the detector's score (signed; 0 while not ready)
};

/// Spikes against an exponentially weighted mean and variance.
class SPYGLASS_API EwmaDetector {
 public:
  /// Parameters; the defaults suit samples of CPU or memory every second or so.
  struct Options {
    double alpha = 0.1;       ///< weight of the newest point, in (0, 1]
    double threshold = 4.0;   ///< flag when |x - mean| > threshold * stddev
    std::size_t warmup = 20;  ///< points learnt (by plain mean and variance) before judging
  };
  /// Throws AnalyticsError for options out of range.
  explicit EwmaDetector(Options o);
  /// With the default options.
  EwmaDetector() : EwmaDetector(Options{}) {}
  /// Scores `x` against the past, then learns it. A flagged point is learnt clamped to
  /// the threshold, so one spike does not blind the detector to the next. After a flat
  /// past (stddev 0) the score is (x - mean) / (1% of |mean|, or 1 when the mean is 0),
  /// finite, as anomaly_score() gives it.
  Detection update(double x);
  /// The current weighted mean.
  [[nodiscard]] double mean() const noexcept { return mean_; }
  /// The current weighted standard deviation.
  [[nodiscard]] double stddev() const noexcept;
  /// The options in force.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

 private:
  Options o_;
  std::size_t n_ = 0;
  double mean_ = 0, var_ = 0;
};

/// Spikes by the modified z-score against a window of the latest points (median and MAD).
class SPYGLASS_API RollingMadDetector {
 public:
  /// Parameters.
  struct Options {
    std::size_t window = 60;  ///< past points kept
    double threshold = 3.5;   ///< flag when |0.6745 (x - median) / MAD| > threshold
    std::size_t warmup = 10;  ///< past points needed before judging (at most window)
  };
  /// Throws AnalyticsError for options out of range.
  explicit RollingMadDetector(Options o);
  /// With the default options.
  RollingMadDetector() : RollingMadDetector(Options{}) {}
  /// Scores `x` against the window (anomaly_score, modified z-score), then adds it.
  Detection update(double x);
  /// The options in force.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

 private:
  Options o_;
  std::deque<double> past_;
};

/// Steady growth (a leak): the least-squares slope over the latest `window` seconds is
/// positive, significant, fits well and adds up to a real growth.
class SPYGLASS_API GrowthDetector {
 public:
  /// Parameters.
  struct Options {
    double window = 60;           ///< seconds of history the slope is fitted over
    double min_r2 = 0.8;          ///< the line must explain this share of the variance
    double min_growth = 0.1;      ///< growth over the window relative to its mean (10%)
    double min_slope = 0;         ///< and at least this many units per second
    double alpha = 0.01;          ///< significance of the slope
    std::size_t min_points = 10;  ///< points in the window before judging
  };
  /// Throws AnalyticsError for options out of range.
  explicit GrowthDetector(Options o);
  /// With the default options.
  GrowthDetector() : GrowthDetector(Options{}) {}
  /// Adds the point (t seconds, strictly increasing; x) and judges the window ending at
  /// it; score is the slope per second. Ready once the window spans `window` seconds.
  Detection update(double t, double x);
  /// The latest fit over the window (n = 0 before the first judgement).
  [[nodiscard]] const LinearFit& fit() const noexcept { return fit_; }
  /// The options in force.
  [[nodiscard]] const Options& options() const noexcept { return o_; }

 private:
  Options o_;
  std::deque<std::pair<double, double>> pts_;
  LinearFit fit_;
};

}  // namespace SPYGLASS_NAMESPACE::analytics
