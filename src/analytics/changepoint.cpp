// Change points: PELT on the Gaussian mean-and-variance cost, with a permutation test.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "internal.hpp"
#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

namespace {

// Prefix sums of a standardised series: the cost of any segment in O(1).
class SegmentCost {
 public:
  SegmentCost(std::span<const double> z, double var_floor) : floor_(var_floor) { reset(z); }

  void reset(std::span<const double> z) {
    s1_.assign(z.size() + 1, 0.0);
    s2_.assign(z.size() + 1, 0.0);
    for (std::size_t i = 0; i < z.size(); ++i) {
      s1_[i + 1] = s1_[i] + z[i];
      s2_[i + 1] = s2_[i] + z[i] * z[i];
    }
  }

  // -2 log-likelihood of z[a, b) as one normal segment, up to a constant per point:
  // m ln(variance), the variance floored so that a flat stretch does not cost -infinity.
  [[nodiscard]] double operator()(std::size_t a, std::size_t b) const {
    const double m = static_cast<double>(b - a);
    const double s = s1_[b] - s1_[a];
    const double var = std::max((s2_[b] - s2_[a] - s * s / m) / m, floor_);
    return m * std::log(var);
  }

  // The largest drop in cost from splitting z[a, b) once (segments >= min_seg).
  [[nodiscard]] double best_split_gain(std::size_t a, std::size_t b, std::size_t min_seg) const {
    const double whole = (*this)(a, b);
    double best = -std::numeric_limits<double>::infinity();
    for (std::size_t k = a + min_seg; k + min_seg <= b; ++k)
      best = std::max(best, whole - (*this)(a, k) - (*this)(k, b));
    return best;
  }

 private:
  std::vector<double> s1_, s2_;
  double floor_;
};

double population_stddev(std::span<const double> xs) {
  return xs.size() < 2 ? 0.0 : std::sqrt(variance(xs, 0));
}

}  // namespace

std::vector<ChangePoint> change_points(std::span<const double> xs, const ChangePointOptions& o) {
  if (o.min_segment < 2) throw AnalyticsError("change_points: min_segment must be at least 2");
  if (!(o.alpha > 0 && o.alpha <= 1)) throw AnalyticsError("change_points: alpha must be in (0, 1]");
  if (o.penalty < 0 || !std::isfinite(o.penalty)) throw AnalyticsError("change_points: penalty must be >= 0");
  detail::require_finite(xs, "change_points", 0);
  const std::size_t n = xs.size();
  const std::size_t min_seg = o.min_segment;
  std::vector<ChangePoint> out;
  if (n < 2 * min_seg) return out;

  // Standardise, so that the prefix sums lose no precision to a large offset and the
  // variance floor is relative to the series' own spread.
  const double mu = mean(xs);
  const double sd = std::sqrt(variance(xs, 0));
  if (sd == 0) return out;
  std::vector<double> z(n);
  for (std::size_t i = 0; i < n; ++i) z[i] = (xs[i] - mu) / sd;
  const SegmentCost cost(z, 1e-6);
  const double pen = o.penalty > 0 ? o.penalty : 3.0 * std::log(static_cast<double>(n));

  // PELT: F[t] = min over admissible s of F[s] + C(s, t) + pen, pruning every s that can
  // never be optimal again (F[s] + C(s, t) > F[t]; K = 0 holds for this likelihood cost).
  std::vector<double> f(n + 1, std::numeric_limits<double>::infinity());
  std::vector<std::size_t> last(n + 1, 0);
  f[0] = -pen;
  std::vector<std::size_t> cand;
  std::vector<double> vals;
  for (std::size_t t = min_seg; t <= n; ++t) {
    const std::size_t fresh = t - min_seg;
    if (fresh == 0 || std::isfinite(f[fresh])) cand.push_back(fresh);
    vals.resize(cand.size());
    double best = std::numeric_limits<double>::infinity();
    std::size_t arg = 0;
    for (std::size_t i = 0; i < cand.size(); ++i) {
      vals[i] = f[cand[i]] + cost(cand[i], t);
      if (vals[i] + pen < best) {
        best = vals[i] + pen;
        arg = cand[i];
      }
    }
    f[t] = best;
    last[t] = arg;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < cand.size(); ++i) {
      if (vals[i] <= best) cand[keep++] = cand[i];
    }
    cand.resize(keep);
  }

  std::vector<std::size_t> cuts;  // segment starts, ascending, without 0
  for (std::size_t t = n; t > 0 && last[t] > 0; t = last[t]) cuts.push_back(last[t]);
  std::reverse(cuts.begin(), cuts.end());

  // Significance of each cut: permute its two adjacent segments and compare the best
  // single split of each permutation with the observed best split.
  std::vector<std::size_t> kept;
  std::vector<double> pvals;
  std::mt19937_64 rng(o.seed);
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    const std::size_t a = i == 0 ? 0 : cuts[i - 1];
    const std::size_t b = i + 1 == cuts.size() ? n : cuts[i + 1];
    double p = 0;
    if (o.permutations > 0) {
      const double observed = cost.best_split_gain(a, b, min_seg);
      std::vector<double> seg(z.begin() + static_cast<std::ptrdiff_t>(a),
                              z.begin() + static_cast<std::ptrdiff_t>(b));
      SegmentCost perm_cost(seg, 1e-6);
      std::size_t as_extreme = 0;
      for (std::size_t r = 0; r < o.permutations; ++r) {
        std::shuffle(seg.begin(), seg.end(), rng);
        perm_cost.reset(seg);
        if (perm_cost.best_split_gain(0, seg.size(), min_seg) >= observed) ++as_extreme;
      }
      p = static_cast<double>(as_extreme + 1) / static_cast<double>(o.permutations + 1);
    }
    if (p < o.alpha) {
      kept.push_back(cuts[i]);
      pvals.push_back(p);
    }
  }

  for (std::size_t i = 0; i < kept.size(); ++i) {
    const std::size_t a = i == 0 ? 0 : kept[i - 1];
    const std::size_t b = i + 1 == kept.size() ? n : kept[i + 1];
    const auto before = xs.subspan(a, kept[i] - a);
    const auto after = xs.subspan(kept[i], b - kept[i]);
    ChangePoint c;
    c.index = kept[i];
    c.mean_before = mean(before);
    c.mean_after = mean(after);
    c.stddev_before = population_stddev(before);
    c.stddev_after = population_stddev(after);
    c.relative_change = c.mean_before == 0 ? 0.0 : (c.mean_after - c.mean_before) / std::fabs(c.mean_before);
    c.p_value = pvals[i];
    out.push_back(c);
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::analytics
