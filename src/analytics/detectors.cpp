// Streaming detectors: EWMA, rolling MAD, steady growth.

#include "spyglass/monitor/detectors.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "internal.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

namespace {

void require_point(double x, const char* what) {
  if (!std::isfinite(x)) throw AnalyticsError(std::string(what) + ": the point is not a finite number");
}

}  // namespace

EwmaDetector::EwmaDetector(Options o) : o_(o) {
  if (!(o.alpha > 0 && o.alpha <= 1)) throw AnalyticsError("EwmaDetector: alpha must be in (0, 1]");
  if (!(o.threshold > 0)) throw AnalyticsError("EwmaDetector: threshold must be positive");
  if (o.warmup < 2) throw AnalyticsError("EwmaDetector: warmup must be at least 2 points");
}

double EwmaDetector::stddev() const noexcept { return std::sqrt(var_); }

Detection EwmaDetector::update(double x) {
  require_point(x, "EwmaDetector");
  Detection d;
  if (n_ < o_.warmup) {
    // Welford's running mean and (population) variance until the weights take over.
    ++n_;
    const double delta = x - mean_;
    mean_ += delta / static_cast<double>(n_);
    var_ += (delta * (x - mean_) - var_) / static_cast<double>(n_);
    return d;
  }
  d.ready = true;
  const double sd = std::sqrt(var_);
  const double diff = x - mean_;
  d.score = diff == 0 ? 0.0 : diff / (sd > 0 ? sd : detail::flat_spread(mean_));
  d.anomaly = std::fabs(d.score) > o_.threshold;
  // Learn a flagged point only up to the threshold (a flat past learns it whole, or
  // the detector would never accept a new level).
  const double learnt = d.anomaly && sd > 0 ? mean_ + std::copysign(o_.threshold * sd, diff) : x;
  const double ld = learnt - mean_;
  const double incr = o_.alpha * ld;
  mean_ += incr;
  var_ = (1 - o_.alpha) * (var_ + ld * incr);
  ++n_;
  return d;
}

RollingMadDetector::RollingMadDetector(Options o) : o_(o) {
  if (o.window < 3) throw AnalyticsError("RollingMadDetector: window must be at least 3 points");
  if (!(o.threshold > 0)) throw AnalyticsError("RollingMadDetector: threshold must be positive");
  if (o.warmup < 3 || o.warmup > o.window)
    throw AnalyticsError("RollingMadDetector: warmup must be between 3 and the window");
}

Detection RollingMadDetector::update(double x) {
  require_point(x, "RollingMadDetector");
  Detection d;
  if (past_.size() >= o_.warmup) {
    const std::vector<double> ref(past_.begin(), past_.end());
    d.ready = true;
    d.score = detail::Reference(ref, AnomalyMethod::modified_zscore).score(x);
    d.anomaly = std::fabs(d.score) > o_.threshold;
  }
  past_.push_back(x);
  if (past_.size() > o_.window) past_.pop_front();
  return d;
}

GrowthDetector::GrowthDetector(Options o) : o_(o) {
  if (!(o.window > 0) || !std::isfinite(o.window))
    throw AnalyticsError("GrowthDetector: window must be positive");
  if (!(o.min_r2 >= 0 && o.min_r2 <= 1)) throw AnalyticsError("GrowthDetector: min_r2 must be in [0, 1]");
  if (!(o.min_growth >= 0)) throw AnalyticsError("GrowthDetector: min_growth must not be negative");
  if (!(o.min_slope >= 0)) throw AnalyticsError("GrowthDetector: min_slope must not be negative");
  if (!(o.alpha > 0 && o.alpha < 1)) throw AnalyticsError("GrowthDetector: alpha must be in (0, 1)");
  if (o.min_points < 3) throw AnalyticsError("GrowthDetector: min_points must be at least 3");
}

Detection GrowthDetector::update(double t, double x) {
  require_point(t, "GrowthDetector (time)");
  require_point(x, "GrowthDetector");
  if (!pts_.empty() && !(t > pts_.back().first))
    throw AnalyticsError("GrowthDetector: times must increase (got " + detail::format_number(t, 17) +
                         " after " + detail::format_number(pts_.back().first, 17) + ")");
  pts_.emplace_back(t, x);
  // Keep the newest points spanning `window` seconds, plus the one just before, so that
  // the window is covered from its start.
  while (pts_.size() > 1 && pts_[1].first <= t - o_.window) pts_.pop_front();
  Detection d;
  if (pts_.size() < o_.min_points || t - pts_.front().first < o_.window) return d;
  std::vector<double> ts, xs;
  ts.reserve(pts_.size());
  xs.reserve(pts_.size());
  for (const auto& [pt, px] : pts_) {
    ts.push_back(pt - t);  // relative times keep the fit exact for epoch timestamps
    xs.push_back(px);
  }
  d.ready = true;
  fit_ = linear_fit(ts, xs);
  d.score = fit_.slope;
  const double m = std::fabs(mean(xs));
  const double growth = fit_.slope * (ts.back() - ts.front());
  d.anomaly = fit_.slope > o_.min_slope && fit_.r2 >= o_.min_r2 && fit_.p_value < o_.alpha &&
              (m == 0 ? growth > 0 : growth / m >= o_.min_growth);
  return d;
}

}  // namespace SPYGLASS_NAMESPACE::analytics
