// Change points: binary segmentation on the Gaussian mean-and-variance cost, with a
// permutation test.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "internal.hpp"
#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

namespace {

constexpr double kVarFloor = 1e-6;  // of a standardised series: a flat stretch costs a finite amount

// Prefix sums of a standardised series: the cost of any segment in O(1).
class SegmentCost {
 public:
  explicit SegmentCost(std::span<const double> z) {
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
    return m * std::log(std::max((s2_[b] - s2_[a] - s * s / m) / m, kVarFloor));
  }

  struct Split {
    double gain = -std::numeric_limits<double>::infinity();  // cost of the whole minus both parts
    std::size_t at = 0;                                      // first point of the second part
  };

  // The split of z[a, b) into two segments of at least min_seg that lowers the cost most.
  [[nodiscard]] Split best_split(std::size_t a, std::size_t b, std::size_t min_seg) const {
    const double whole = (*this)(a, b);
    Split best;
    for (std::size_t k = a + min_seg; k + min_seg <= b; ++k) {
      const double g = whole - (*this)(a, k) - (*this)(k, b);
      if (g > best.gain) best = {g, k};
    }
    return best;
  }

 private:
  std::vector<double> s1_, s2_;
};

// Binary segmentation: split [a, b) where one cut lowers the cost most, if by more than
// `pen`, then each part the same way. The cuts in ascending order; an explicit stack, as a
// series can split off a few points at a time.
std::vector<std::size_t> segment(const SegmentCost& cost, std::size_t n, std::size_t min_seg, double pen) {
  std::vector<std::size_t> cuts;
  std::vector<std::pair<std::size_t, std::size_t>> todo{{0, n}};
  while (!todo.empty()) {
    const auto [a, b] = todo.back();
    todo.pop_back();
    if (b - a < 2 * min_seg) continue;
    const auto s = cost.best_split(a, b, min_seg);
    if (!(s.gain > pen)) continue;
    cuts.push_back(s.at);
    todo.emplace_back(a, s.at);
    todo.emplace_back(s.at, b);
  }
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// The permutations' generator: splitmix64 (Steele, Lea and Flood), a counter through a
// mixing function. Its outputs do not wait on each other, so a shuffle's draws overlap,
// and each gives two 32-bit draws; the same permutations with every standard library
// (std::shuffle's draws are each library's own).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// Uniform in [0, n) from the 32 random bits `r`, 0 < n <= 2^32, without bias: Lemire's
// multiply-and-reject (a division and fresh bits only in the rare case the low half
// lands in the biased range).
std::uint64_t below(std::uint32_t r, std::uint64_t n, SplitMix64& rng) {
  std::uint64_t m = r * n;
  if (static_cast<std::uint32_t>(m) < n) {
    const std::uint64_t threshold = ((std::uint64_t{1} << 32) - n) % n;
    while (static_cast<std::uint32_t>(m) < threshold) m = static_cast<std::uint32_t>(rng.next()) * n;
  }
  return m >> 32;
}

// One permutation of a segment and the prefix sums of its values and squares (m + 1 each).
struct Permuted {
  std::vector<double> values, s1, s2;
};

// Shuffles both permutations' values (the same length) in place, each by its own
// Fisher-Yates pass front to back (each place is final once drawn), and fills their prefix
// sums in the same pass. Two at once, as one shuffle's loads, stores and sums wait on one
// another and two overlap. Each output draws place i of both: its low half for `a`.
void shuffle_pair_with_sums(Permuted& a, Permuted& b, SplitMix64& rng) {
  const std::size_t m = a.values.size();
  for (Permuted* p : {&a, &b}) {
    p->s1.resize(m + 1);
    p->s2.resize(m + 1);
    p->s1[0] = p->s2[0] = 0;
  }
  double *const va = a.values.data(), *const vb = b.values.data();
  double *const a1 = a.s1.data(), *const a2 = a.s2.data(), *const b1 = b.s1.data(), *const b2 = b.s2.data();
  double sa1 = 0, sa2 = 0, sb1 = 0, sb2 = 0;
  for (std::size_t i = 0; i < m; ++i) {
    const std::uint64_t bits = rng.next();
    const std::size_t ja = i + below(static_cast<std::uint32_t>(bits), m - i, rng);
    const std::size_t jb = i + below(static_cast<std::uint32_t>(bits >> 32), m - i, rng);
    const double x = va[ja], y = vb[jb];
    va[ja] = va[i];
    vb[jb] = vb[i];
    va[i] = x;
    vb[i] = y;
    sa1 += x;
    sa2 += x * x;
    sb1 += y;
    sb2 += y * y;
    a1[i + 1] = sa1;
    a2[i + 1] = sa2;
    b1[i + 1] = sb1;
    b2[i + 1] = sb2;
  }
}

// Whether some split of a segment of m points, given by its prefix sums s1, s2 (m + 1
// each), into two parts of at least min_seg gains at least `observed`. The gain of a cut
// at k is k ln(V/v1) + (m-k) ln(V/v2) (V, v1, v2: the floored variances of the whole and
// of the parts), at most V (k/v1 + (m-k)/v2) - m since ln x <= x - 1: logarithms are
// taken only where that bound reaches `observed`, so the answer is the exact one at a
// fraction of the cost.
bool some_split_gains(const Permuted& p, std::size_t min_seg, double observed) {
  const std::vector<double>&s1 = p.s1, &s2 = p.s2;
  const std::size_t m = s1.size() - 1;
  const double md = static_cast<double>(m);
  const double t1 = s1[m], t2 = s2[m];
  const double whole = std::max((t2 - t1 * t1 / md) / md, kVarFloor);
  // Rounding can put the exact gain a hair above the bound where both are about 0.
  const double reach = (observed + md - 1e-9 * (md + std::fabs(observed))) / whole;
  // v1 = A / k^2 with A = k S2 - S1^2 over the left part (floored as the variance is), so
  // k / v1 = k^3 / A; the same for the right part with B: the bound reaches `observed` when
  // k^3 B + (m-k)^3 A >= reach A B, without a division.
  const auto reaches = [&](std::size_t k) {
    const double kd = static_cast<double>(k), rd = md - kd;
    const double l1 = s1[k], l2 = s2[k], r1 = t1 - l1, r2 = t2 - l2;
    const double a = std::max(kd * l2 - l1 * l1, kVarFloor * kd * kd);
    const double b = std::max(rd * r2 - r1 * r1, kVarFloor * rd * rd);
    return kd * kd * kd * b + rd * rd * rd * a >= reach * a * b;
  };
  // Blocks of cuts [k0, k1]: the left part's sum of squares about its mean, SS1 = A / k,
  // never shrinks as k grows and the right part's never grows, so over the block
  // k / v1 = min(k^2 / SS1, k / floor) is at most min(k1^2 / SS1(k0), k1 / floor)
  // = k1^2 k0 / max(A(k0), floor k0 k1), and the same for the right part from k1. Only a
  // block where that reaches `reach` (with a margin far above rounding; compared without
  // a division, as `reaches` does) has its cuts checked one by one, and the exact gain
  // taken where a cut's bound reaches: a permutation of a real change's segments checks
  // a few blocks, not every cut. The bound loosens as (k1/k0)^2 on the left and
  // ((m-k0)/(m-k1))^2 on the right, so a block spans an eighth of the distance to the
  // nearer end: as tight near the ends as in the middle.
  const double block_reach = reach / (1 + 1e-6);
  const auto var = [&](std::size_t a, std::size_t b) {
    const double n = static_cast<double>(b - a);
    const double s = s1[b] - s1[a];
    return std::max((s2[b] - s2[a] - s * s / n) / n, kVarFloor);
  };
  // A cut whose bound reaches: first the tighter ln x <= 2 (sqrt(x) - 1) (ln x = 2 ln
  // sqrt(x)), a few square roots where the exact gain takes two logarithms, and it rules
  // out most cuts the first bound let through; then the exact gain.
  const double margin = 1e-9 * (md + std::fabs(observed));
  double whole_cost = NAN;  // taken once a cut gets that far: most permutations have none
  const auto gains = [&](std::size_t k) {
    const double kd = static_cast<double>(k);
    const double v1 = var(0, k), v2 = var(k, m);
    if (2 * kd * (std::sqrt(whole / v1) - 1) + 2 * (md - kd) * (std::sqrt(whole / v2) - 1) <
        observed - margin)
      return false;
    if (std::isnan(whole_cost)) whole_cost = md * std::log(whole);
    return whole_cost - kd * std::log(v1) - (md - kd) * std::log(v2) >= observed;
  };
  for (std::size_t k0 = min_seg, k1 = 0; k0 + min_seg <= m; k0 = k1 + 1) {
    k1 = std::min(k0 + std::max<std::size_t>(std::min(k0, m - k0) / 8, 4) - 1, m - min_seg);
    const double k0d = static_cast<double>(k0), k1d = static_cast<double>(k1);
    const double l0 = md - k0d, l1 = md - k1d;  // right parts' lengths from k0 and from k1
    const double r1 = t1 - s1[k1], r2 = t2 - s2[k1];
    const double a = std::max(k0d * s2[k0] - s1[k0] * s1[k0], kVarFloor * k0d * k1d);
    const double b = std::max(l1 * r2 - r1 * r1, kVarFloor * l1 * l0);
    if (k1d * k1d * k0d * b + l0 * l0 * l1 * a < block_reach * a * b) continue;
    for (std::size_t k = k0; k <= k1; ++k) {
      if (reaches(k) && gains(k)) return true;
    }
  }
  return false;
}

double population_stddev(std::span<const double> xs) {
  return xs.size() < 2 ? 0.0 : std::sqrt(variance(xs, 0));
}

// The change at `at` between the segments xs[a, at) and xs[at, b).
ChangePoint described(std::span<const double> xs, std::size_t a, std::size_t at, std::size_t b, double p) {
  const auto before = xs.subspan(a, at - a);
  const auto after = xs.subspan(at, b - at);
  ChangePoint c;
  c.index = at;
  c.mean_before = mean(before);
  c.mean_after = mean(after);
  c.stddev_before = population_stddev(before);
  c.stddev_after = population_stddev(after);
  c.relative_change = c.mean_before == 0 ? 0.0 : (c.mean_after - c.mean_before) / std::fabs(c.mean_before);
  c.p_value = p;
  return c;
}

}  // namespace

std::vector<ChangePoint> change_points(std::span<const double> xs, const ChangePointOptions& o) {
  if (o.min_segment < 2) throw AnalyticsError("change_points: min_segment must be at least 2");
  if (!(o.alpha > 0 && o.alpha <= 1)) throw AnalyticsError("change_points: alpha must be in (0, 1]");
  if (o.penalty < 0 || !std::isfinite(o.penalty)) throw AnalyticsError("change_points: penalty must be >= 0");
  detail::require_finite(xs, "change_points", 0);
  // The permutations' bounded draws take 32 bits (a series that long would not fit in memory).
  if (xs.size() > std::numeric_limits<std::uint32_t>::max())
    throw AnalyticsError("change_points: at most 2^32 - 1 points");
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
  const SegmentCost cost(z);
  const double pen = o.penalty > 0 ? o.penalty : 3.0 * std::log(static_cast<double>(n));

  std::vector<std::size_t> cuts = segment(cost, n, min_seg, pen);  // segment starts, without 0
  // A cut found early was placed before its neighbours were known: move each to the best
  // place between them, until none moves (a bounded number of sweeps, should ties swap).
  bool moved = true;
  for (int sweep = 0; moved && sweep < 100; ++sweep) {
    moved = false;
    for (std::size_t i = 0; i < cuts.size(); ++i) {
      const std::size_t a = i == 0 ? 0 : cuts[i - 1];
      const std::size_t b = i + 1 == cuts.size() ? n : cuts[i + 1];
      const std::size_t at = cost.best_split(a, b, min_seg).at;
      moved |= at != cuts[i];
      cuts[i] = at;
    }
  }

  // Significance of each cut: permute its two adjacent segments and compare the best
  // single split of each permutation with the observed best split. Each cut draws from
  // its own generator (the seed and the cut's number), so that a test that stops early
  // changes no other cut's permutations: it stops once as many permutations were as
  // extreme as make p >= alpha, as the cut is then dropped whatever the rest give (a kept
  // cut's p-value always counts all of them).
  std::vector<std::size_t> kept;
  std::vector<double> pvals;
  Permuted first, second;
  const auto p_value = [&](std::size_t as_extreme) {
    return static_cast<double>(as_extreme + 1) / static_cast<double>(o.permutations + 1);
  };
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    const std::size_t a = i == 0 ? 0 : cuts[i - 1];
    const std::size_t b = i + 1 == cuts.size() ? n : cuts[i + 1];
    double p = 0;
    if (o.permutations > 0) {
      const double observed = cost.best_split(a, b, min_seg).gain;
      for (Permuted* q : {&first, &second})
        q->values.assign(z.begin() + static_cast<std::ptrdiff_t>(a),
                         z.begin() + static_cast<std::ptrdiff_t>(b));
      SplitMix64 rng((static_cast<std::uint64_t>(o.seed) << 32) ^ i);
      std::size_t as_extreme = 0;
      // In pairs: permutations 2r and 2r + 1 (the last pair's second unused when the count
      // is odd). A test that stops early may count one permutation more: its cut is dropped
      // either way.
      for (std::size_t r = 0; r < o.permutations && p_value(as_extreme) < o.alpha; r += 2) {
        shuffle_pair_with_sums(first, second, rng);
        if (some_split_gains(first, min_seg, observed)) ++as_extreme;
        if (r + 1 < o.permutations && some_split_gains(second, min_seg, observed)) ++as_extreme;
      }
      p = p_value(as_extreme);
    }
    if (p < o.alpha) {
      kept.push_back(cuts[i]);
      pvals.push_back(p);
    }
  }

  for (std::size_t i = 0; i < kept.size(); ++i) {
    const std::size_t a = i == 0 ? 0 : kept[i - 1];
    const std::size_t b = i + 1 == kept.size() ? n : kept[i + 1];
    out.push_back(described(xs, a, kept[i], b, pvals[i]));
  }
  return out;
}

BlipMerge merge_blips(std::span<const double> xs, const std::vector<ChangePoint>& changes,
                      const BlipOptions& o) {
  if (!(o.threshold > 0)) throw AnalyticsError("merge_blips: threshold must be positive");
  const std::size_t n = xs.size();
  std::vector<std::size_t> cuts;
  std::vector<double> pvals;
  for (const ChangePoint& c : changes) {
    if (c.index == 0 || c.index >= n || (!cuts.empty() && c.index <= cuts.back()))
      throw AnalyticsError("merge_blips: change points must be inside the series and ascending");
    cuts.push_back(c.index);
    pvals.push_back(c.p_value);
  }
  BlipMerge out;
  const auto bound = [&](std::ptrdiff_t j) {  // start of segment j, j in [0, cuts.size() + 1]
    return j <= 0                                         ? std::size_t{0}
           : j > static_cast<std::ptrdiff_t>(cuts.size()) ? n
                                                          : cuts[static_cast<std::size_t>(j - 1)];
  };
  // Merges one blip at a time, then looks again: a merge changes its neighbours' segments.
  for (bool merged = true; merged;) {
    merged = false;
    for (std::size_t j = 0; j <= cuts.size() && !merged; ++j) {  // segment j: [bound(j), bound(j + 1))
      const auto sj = static_cast<std::ptrdiff_t>(j);
      const std::size_t a = bound(sj), b = bound(sj + 1);
      if (b - a > o.max_length || a == b) continue;
      std::vector<double> seg(xs.begin() + static_cast<std::ptrdiff_t>(a),
                              xs.begin() + static_cast<std::ptrdiff_t>(b));
      const double centre = detail::select_quantile(seg, 0.5);
      // Each side that is a change point: whether the blip's median is ordinary there.
      const auto ordinary = [&](std::size_t lo, std::size_t hi) {
        const detail::Reference ref(xs.subspan(lo, hi - lo), AnomalyMethod::modified_zscore);
        return std::fabs(ref.score(centre)) <= o.threshold ? std::optional(ref) : std::nullopt;
      };
      const auto left = j > 0 ? ordinary(bound(sj - 1), a) : std::nullopt;
      const auto right = j < cuts.size() ? ordinary(b, bound(sj + 2)) : std::nullopt;
      if (!left && !right) continue;
      const detail::Reference& ref = left ? *left : *right;
      for (std::size_t i = a; i < b; ++i) {
        if (std::fabs(ref.score(xs[i])) > o.threshold) out.outliers.push_back(i);
      }
      // Cut j - 1 starts the blip, cut j ends it; the right one first, so indices hold.
      if (right) cuts.erase(cuts.begin() + sj), pvals.erase(pvals.begin() + sj);
      if (left) cuts.erase(cuts.begin() + sj - 1), pvals.erase(pvals.begin() + sj - 1);
      merged = true;
    }
  }
  // A cut beside a few outliers, between segments whose robust level and spread agree
  // (medians within half a robust stddev, spreads within a factor 1.5): the outliers made it.
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (std::size_t i = 0; i < cuts.size() && !dropped; ++i) {
      const std::size_t a = i == 0 ? 0 : cuts[i - 1], c = cuts[i], b = i + 1 == cuts.size() ? n : cuts[i + 1];
      const detail::Reference l(xs.subspan(a, c - a), AnomalyMethod::modified_zscore);
      const detail::Reference r(xs.subspan(c, b - c), AnomalyMethod::modified_zscore);
      const double wide = std::max(l.spread, r.spread), narrow = std::min(l.spread, r.spread);
      if (!(std::fabs(l.lo - r.lo) <= 0.5 * wide && wide < 1.5 * narrow)) continue;
      const detail::Reference both(xs.subspan(a, b - a), AnomalyMethod::modified_zscore);
      std::vector<std::size_t> near;
      for (std::size_t k = c - std::min(c - a, o.max_length); k < std::min(b, c + o.max_length); ++k) {
        if (std::fabs(both.score(xs[k])) > o.threshold) near.push_back(k);
      }
      if (near.empty()) continue;
      out.outliers.insert(out.outliers.end(), near.begin(), near.end());
      cuts.erase(cuts.begin() + static_cast<std::ptrdiff_t>(i));
      pvals.erase(pvals.begin() + static_cast<std::ptrdiff_t>(i));
      dropped = true;
    }
  }
  std::sort(out.outliers.begin(), out.outliers.end());
  out.outliers.erase(std::unique(out.outliers.begin(), out.outliers.end()), out.outliers.end());
  for (std::size_t i = 0; i < cuts.size(); ++i)
    out.changes.push_back(
        described(xs, i == 0 ? 0 : cuts[i - 1], cuts[i], i + 1 == cuts.size() ? n : cuts[i + 1], pvals[i]));
  return out;
}

bool is_variance_change(const ChangePoint& c) {
  const double lo = std::min(c.stddev_before, c.stddev_after), hi = std::max(c.stddev_before, c.stddev_after);
  return hi >= 1.5 * lo && hi > 0 && std::fabs(c.mean_after - c.mean_before) < 0.5 * hi;
}

}  // namespace SPYGLASS_NAMESPACE::analytics
