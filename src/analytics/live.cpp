// Live detection over a running tree's samples: spikes and leaks, one finding per episode.

#include "spyglass/monitor/live.hpp"

#include <algorithm>
#include <cmath>

namespace SPYGLASS_NAMESPACE::analytics {

namespace {

GrowthDetector::Options growth_options(const LiveDetector::Options& o) {
  if (!(o.leak_min_bytes >= 0)) throw AnalyticsError("LiveDetector: leak_min_bytes must not be negative");
  GrowthDetector::Options g = o.growth;
  if (g.window > 0 && std::isfinite(g.window))
    g.min_slope = std::max(g.min_slope, o.leak_min_bytes / g.window);
  return g;
}

}  // namespace

LiveDetector::LiveDetector(Options o)
    : o_(o),
      cpu_ewma_(o.ewma),
      rss_ewma_(o.ewma),
      cpu_mad_(o.mad),
      rss_mad_(o.mad),
      growth_(growth_options(o)) {
  if (!(o.warmup >= 0) || !std::isfinite(o.warmup))
    throw AnalyticsError("LiveDetector: warmup must not be negative");
  if (!(o.cpu_min_rise >= 0) || !(o.rss_min_rise >= 0) || !(o.rss_min_ratio >= 0))
    throw AnalyticsError("LiveDetector: minimum rises must not be negative");
}

std::size_t LiveDetector::step(Slot& s, bool flagged, bool goes_on, double t, double value, double score) {
  if (s.open != -1 && !flagged && !goes_on) s.open = -1;  // the episode is over
  if (!flagged) return 0;
  if (s.open >= 0) {  // the episode goes on: keep its strongest point
    LiveFinding& f = findings_[static_cast<std::size_t>(s.open)];
    if (score > f.score) f.t = t, f.value = value, f.score = score;
    return 0;
  }
  if (s.open == kDroppedEpisode) return 0;
  if (findings_.size() >= o_.max_findings) {
    ++dropped_;
    s.open = kDroppedEpisode;  // counted once, not per point
    return 0;
  }
  s.open = static_cast<std::ptrdiff_t>(findings_.size());
  findings_.push_back({t, s.metric, s.kind, s.detector, value, score, t});
  return 1;
}

std::size_t LiveDetector::update(double t, double cpu_pct, double rss_bytes) {
  if (!std::isfinite(t) || !std::isfinite(cpu_pct) || !std::isfinite(rss_bytes)) return 0;
  if (any_ && !(t > last_t_)) return 0;
  any_ = true;
  last_t_ = t;
  const bool judge = t >= o_.warmup;
  std::size_t began = 0;
  if (o_.spikes) {
    // The level a spike must rise above: the EWMA's mean, which a flagged point moves
    // only up to the threshold.
    // A spike lasts while the metric stays half the minimum rise above the level it rose
    // from (the detectors soon learn a lasting burst and stop flagging it, and a burst
    // that gets less CPU for a moment is still the same burst), so one burst is one
    // finding per detector.
    const auto rises = [](double x, double level, double min_rise, double min_ratio) {
      return x - level >= std::max(min_rise, min_ratio * std::fabs(level));
    };
    const auto spike = [&](Slot& s, const Detection& d, double level, double value, double min_rise,
                           double min_ratio) {
      if (!d.ready) return std::size_t{0};
      const bool flagged = judge && d.anomaly && d.score > 0 && rises(value, level, min_rise, min_ratio);
      if (flagged && s.open == -1) s.base = level;
      return step(s, flagged, rises(value, s.base, min_rise / 2, min_ratio / 2), t, value, d.score);
    };
    const double cpu_level = cpu_ewma_.mean(), rss_level = rss_ewma_.mean();
    // Both detectors see every point; the min_rise checks use the level from before it.
    const Detection ce = cpu_ewma_.update(cpu_pct), cm = cpu_mad_.update(cpu_pct);
    const Detection re = rss_ewma_.update(rss_bytes), rm = rss_mad_.update(rss_bytes);
    began += spike(slots_[0], ce, cpu_level, cpu_pct, o_.cpu_min_rise, 0);
    began += spike(slots_[1], cm, cpu_level, cpu_pct, o_.cpu_min_rise, 0);
    began += spike(slots_[2], re, rss_level, rss_bytes, o_.rss_min_rise, o_.rss_min_ratio);
    began += spike(slots_[3], rm, rss_level, rss_bytes, o_.rss_min_rise, o_.rss_min_ratio);
  }
  // The fit is over at most about kLeakPoints points per window: a sample every
  // window / kLeakPoints seconds (the rest would only make each update dearer).
  if (o_.leaks && (!leak_fed_ || t - last_leak_t_ >= o_.growth.window / kLeakPoints)) {
    leak_fed_ = true;
    last_leak_t_ = t;
    const Detection g = growth_.update(t, rss_bytes);
    if (g.ready) began += step(slots_[4], judge && g.anomaly, false, t, rss_bytes, g.score);
  }
  return began;
}

}  // namespace SPYGLASS_NAMESPACE::analytics
