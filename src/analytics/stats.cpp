// Descriptive statistics, distributions, trend, anomalies, two-sample tests, correlation.

#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "internal.hpp"
#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

namespace detail {

void require_finite(std::span<const double> xs, const char* what, std::size_t min_size) {
  if (xs.size() < min_size) {
    throw AnalyticsError(std::string(what) + ": needs at least " + std::to_string(min_size) +
                         " points, got " + std::to_string(xs.size()));
  }
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!std::isfinite(xs[i])) {
      throw AnalyticsError(std::string(what) + ": point " + std::to_string(i) + " is not a finite number");
    }
  }
}

void require_same_size(std::span<const double> a, std::span<const double> b, const char* what) {
  if (a.size() != b.size()) {
    throw AnalyticsError(std::string(what) + ": the two series differ in length (" +
                         std::to_string(a.size()) + " and " + std::to_string(b.size()) + ")");
  }
}

std::vector<double> sorted(std::span<const double> xs) {
  std::vector<double> v(xs.begin(), xs.end());
  std::sort(v.begin(), v.end());
  return v;
}

double sorted_quantile(const std::vector<double>& v, double q) {
  // NumPy "linear": position q (n - 1) between the two closest ranks.
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

// NumPy's linear quantile of `v` in any order, found by selection rather than a sort
// (a rolling detector does this for every point); rearranges `v`.
double select_quantile(std::vector<double>& v, double q) {
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  const auto at = v.begin() + static_cast<std::ptrdiff_t>(lo);
  std::nth_element(v.begin(), at, v.end());
  const double a = *at;
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(at + 1, v.end());  // the next order statistic
  return a + (b - a) * frac;
}

std::string format_number(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

}  // namespace detail

using detail::require_finite;

// ---------------------------------------------------------------------------------------
// Descriptive

double mean(std::span<const double> xs) {
  require_finite(xs, "mean", 1);
  // Two passes: the second corrects the first's rounding (as numpy's pairwise sum nearly does).
  double m = std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
  double c = 0;
  for (double x : xs) c += x - m;
  return m + c / static_cast<double>(xs.size());
}

double variance(std::span<const double> xs, int ddof) {
  if (ddof < 0) throw AnalyticsError("variance: ddof must not be negative");
  require_finite(xs, "variance", static_cast<std::size_t>(ddof) + 1);
  const double m = mean(xs);
  double ss = 0, c = 0;
  for (double x : xs) {
    ss += (x - m) * (x - m);
    c += x - m;
  }
  const double n = static_cast<double>(xs.size());
  return (ss - c * c / n) / (n - ddof);
}

double quantile(std::span<const double> xs, double q) {
  if (!(q >= 0 && q <= 1)) throw AnalyticsError("quantile: q must be in [0, 1]");
  require_finite(xs, "quantile", 1);
  std::vector<double> v(xs.begin(), xs.end());
  return detail::select_quantile(v, q);
}

double median(std::span<const double> xs) { return quantile(xs, 0.5); }

namespace {

// The median absolute deviation from `med`; `v` holds the values and is overwritten.
double mad_around(std::vector<double>& v, double med) {
  for (double& x : v) x = std::fabs(x - med);
  return detail::select_quantile(v, 0.5);
}

}  // namespace

double mad(std::span<const double> xs) {
  require_finite(xs, "mad", 1);
  std::vector<double> v(xs.begin(), xs.end());
  const double med = detail::select_quantile(v, 0.5);
  return mad_around(v, med);
}

std::vector<double> ranks(std::span<const double> xs) {
  require_finite(xs, "ranks", 0);
  std::vector<std::size_t> order(xs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return xs[a] < xs[b]; });
  std::vector<double> r(xs.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && xs[order[j + 1]] == xs[order[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = avg;
    i = j + 1;
  }
  return r;
}

Summary summarize(std::span<const double> xs) {
  require_finite(xs, "summarize", 1);
  auto v = detail::sorted(xs);
  Summary s;
  s.count = xs.size();
  s.mean = mean(xs);
  s.stddev = xs.size() > 1 ? std::sqrt(variance(xs, 1)) : 0.0;
  s.min = v.front();
  s.max = v.back();
  s.q1 = detail::sorted_quantile(v, 0.25);
  s.median = detail::sorted_quantile(v, 0.5);
  s.q3 = detail::sorted_quantile(v, 0.75);
  s.mad = mad_around(v, s.median);
  return s;
}

// ---------------------------------------------------------------------------------------
// Distributions

namespace {

// Continued fraction of I_x(a, b) by the modified Lentz method (Numerical Recipes 6.4);
// converges quickly for x < (a + 1) / (a + b + 2).
double beta_cf(double a, double b, double x) {
  constexpr double kTiny = 1e-300;
  constexpr double kEps = 1e-16;
  double c = 1.0;
  double d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return h;
}

// ln Γ(x) for x > 0. lgamma_r where the C library has it: std::lgamma stores the sign in
// the global signgam, a data race between threads.
double log_gamma(double x) {
#if defined(__GLIBC__)
  int sign = 0;
  return ::lgamma_r(x, &sign);
#else
  return std::lgamma(x);
#endif
}

// I_x(a, b) given both x and 1 - x, so that callers which know 1 - x exactly (a tail
// probability) lose no precision to the subtraction.
double ibeta(double a, double b, double x, double xc) {
  if (x <= 0) return 0;
  if (xc <= 0) return 1;
  // log(xc) rather than log1p(-x): callers pass 1 - x exactly, which matters near x = 1.
  const double front =
      std::exp(log_gamma(a + b) - log_gamma(a) - log_gamma(b) + a * std::log(x) + b * std::log(xc));
  if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_cf(a, b, x) / a;
  return 1.0 - front * beta_cf(b, a, xc) / b;
}

// I_xc(b, a) = 1 - I_x(a, b), computed directly when small.
double ibetac(double a, double b, double x, double xc) {
  if (xc <= 0) return 0;
  if (x <= 0) return 1;
  return ibeta(b, a, xc, x);
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !std::isfinite(a) || !std::isfinite(b))
    throw AnalyticsError("incomplete_beta: a and b must be positive");
  if (!(x >= 0 && x <= 1)) throw AnalyticsError("incomplete_beta: x must be in [0, 1]");
  return ibeta(a, b, x, 1.0 - x);
}

double student_t_two_sided(double t, double df) {
  if (!(df > 0)) throw AnalyticsError("student_t_two_sided: df must be positive");
  if (std::isnan(t)) throw AnalyticsError("student_t_two_sided: t is NaN");
  if (std::isinf(t)) return 0.0;
  const double t2 = t * t;
  // P(|T| >= |t|) = I_{df/(df+t²)}(df/2, 1/2); 1 - x = t²/(df+t²) exactly.
  const double x = df / (df + t2);
  const double xc = t2 / (df + t2);
  if (x < 0.5) return ibeta(df / 2.0, 0.5, x, xc);
  return ibetac(0.5, df / 2.0, xc, x);  // = 1 - I_xc(1/2, df/2) = I_x(df/2, 1/2)
}

double normal_sf(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

// ---------------------------------------------------------------------------------------
// Trend

namespace {

// Centred sums of a paired sample (two passes, so a large offset costs no precision).
struct Moments {
  double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
};

Moments paired_moments(std::span<const double> xs, std::span<const double> ys, const char* what) {
  detail::require_same_size(xs, ys, what);
  require_finite(xs, (std::string(what) + " (x)").c_str(), 3);
  require_finite(ys, (std::string(what) + " (y)").c_str(), 3);
  Moments m;
  m.mx = mean(xs);
  m.my = mean(ys);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double dx = xs[i] - m.mx, dy = ys[i] - m.my;
    m.sxx += dx * dx;
    m.syy += dy * dy;
    m.sxy += dx * dy;
  }
  return m;
}

// Two-sided p-value of a correlation coefficient r over n pairs (t with n - 2 df).
double correlation_p(double r, std::size_t n) {
  if (std::fabs(r) == 1.0) return 0.0;
  const double df = static_cast<double>(n) - 2.0;
  return student_t_two_sided(r * std::sqrt(df / ((1.0 - r) * (1.0 + r))), df);
}

}  // namespace

LinearFit linear_fit(std::span<const double> xs, std::span<const double> ys) {
  const Moments m = paired_moments(xs, ys, "linear_fit");
  if (m.sxx == 0) throw AnalyticsError("linear_fit: all x values are equal");
  LinearFit f;
  f.n = xs.size();
  f.slope = m.sxy / m.sxx;
  f.intercept = m.my - f.slope * m.mx;
  f.r = m.syy == 0 ? 0.0 : std::clamp(m.sxy / std::sqrt(m.sxx * m.syy), -1.0, 1.0);
  f.r2 = f.r * f.r;
  f.p_value = correlation_p(f.r, f.n);
  f.slope_stderr = std::sqrt((1.0 - f.r2) * m.syy / m.sxx / (static_cast<double>(f.n) - 2.0));
  return f;
}

Trend trend(std::span<const double> ys, std::span<const double> times, double alpha,
            const std::string& unit) {
  if (!(alpha > 0 && alpha < 1)) throw AnalyticsError("trend: alpha must be in (0, 1)");
  require_finite(ys, "trend", 3);
  std::vector<double> idx(ys.size());
  std::iota(idx.begin(), idx.end(), 0.0);
  Trend t;
  t.per_index = linear_fit(idx, ys);
  if (!times.empty()) t.per_time = linear_fit(times, ys);
  const double m = mean(ys);
  t.relative_slope = m == 0 ? 0.0 : t.per_index.slope / std::fabs(m);
  t.significant = t.per_index.p_value < alpha;
  const std::string n = std::to_string(ys.size()) + " " + unit + "s";
  std::string pct =
      (t.relative_slope >= 0 ? "+" : "") + detail::format_number(100.0 * t.relative_slope, 3) + "%";
  const std::string fit = "R² " + detail::format_number(t.per_index.r2, 2) + ", p " +
                          detail::format_number(t.per_index.p_value, 2);
  if (t.significant) {
    t.verdict = std::string(t.per_index.slope > 0 ? "rising " : "falling ") + pct + " per " + unit +
                " over " + n + " (" + fit + ")";
  } else {
    t.verdict = "no significant trend over " + n + " (" + pct + " per " + unit + ", " + fit + ")";
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// Anomalies

const char* to_string(AnomalyMethod m) {
  switch (m) {
    case AnomalyMethod::iqr: return "iqr";
    case AnomalyMethod::zscore: return "zscore";
    case AnomalyMethod::modified_zscore: return "mad";
  }
  return "?";
}

double default_threshold(AnomalyMethod m) {
  switch (m) {
    case AnomalyMethod::iqr: return 1.5;
    case AnomalyMethod::zscore: return 3.0;
    case AnomalyMethod::modified_zscore: return 3.5;
  }
  return 3.0;
}

namespace detail {

Reference::Reference(std::span<const double> xs, AnomalyMethod m) : method(m) {
  require_finite(xs, "anomaly reference", 1);
  std::vector<double> v(xs.begin(), xs.end());
  switch (m) {
    case AnomalyMethod::iqr:
      lo = select_quantile(v, 0.25);
      hi = select_quantile(v, 0.75);
      spread = hi - lo;
      break;
    case AnomalyMethod::zscore:
      lo = hi = analytics::mean(xs);
      spread = std::sqrt(variance(xs, 0));
      break;
    case AnomalyMethod::modified_zscore: {
      lo = hi = select_quantile(v, 0.5);
      double sum_ad = 0;
      for (double& x : v) {
        x = std::fabs(x - lo);
        sum_ad += x;
      }
      const double mad_v = select_quantile(v, 0.5);
      if (mad_v > 0) {
        spread = mad_v / 0.6745;
      } else {
        // Iglewicz & Hoaglin: with MAD 0 use the mean absolute deviation, scaled to the
        // normal stddev (1.253314 meanAD).
        spread = 1.253314 * sum_ad / static_cast<double>(v.size());
      }
      break;
    }
  }
}

double Reference::score(double x) const {
  double d = 0;
  if (x > hi) {
    d = x - hi;
  } else if (x < lo) {
    d = x - lo;
  } else if (method != AnomalyMethod::iqr) {
    d = x - lo;
  }
  if (d == 0) return 0;
  return d / (spread > 0 ? spread : flat_spread(std::max(std::fabs(lo), std::fabs(hi))));
}

double flat_spread(double centre) {
  const double s = 0.01 * std::fabs(centre);
  return s > 0 ? s : 1.0;
}

}  // namespace detail

double anomaly_score(std::span<const double> reference, double x, AnomalyMethod m) {
  if (!std::isfinite(x)) throw AnalyticsError("anomaly_score: the point is not a finite number");
  return detail::Reference(reference, m).score(x);
}

std::vector<Anomaly> anomalies(std::span<const double> xs, AnomalyMethod m, double threshold) {
  if (std::isnan(threshold)) threshold = default_threshold(m);
  if (!(threshold > 0)) throw AnalyticsError("anomalies: the threshold must be positive");
  const detail::Reference ref(xs, m);
  std::vector<Anomaly> out;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double s = ref.score(xs[i]);
    if (std::fabs(s) > threshold) out.push_back({i, xs[i], s, m});
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Two-sample tests

namespace {

// P(U >= k) for sample sizes m and n without ties: the exact null distribution by the
// recursion on the largest observation (it is in x with probability m/(m+n) and then
// beats all n of y). Probabilities, not counts, so nothing overflows.
double mann_whitney_exact_sf(std::size_t m, std::size_t n, double u) {
  const std::size_t top = m * n;
  // p[j][k]: P(U = k) for sizes (j, current n).
  std::vector<std::vector<double>> p(m + 1, std::vector<double>(top + 1, 0.0));
  for (auto& row : p) row[0] = 1.0;  // n = 0: U is 0
  for (std::size_t nn = 1; nn <= n; ++nn) {
    for (std::size_t j = 1; j <= m; ++j) {
      const double wy = static_cast<double>(nn) / static_cast<double>(j + nn);
      const double wx = static_cast<double>(j) / static_cast<double>(j + nn);
      for (std::size_t k = j * nn + 1; k-- > 0;) {
        const double from_x = k >= nn ? p[j - 1][k - nn] : 0.0;
        p[j][k] = wy * p[j][k] + wx * from_x;
      }
    }
  }
  const auto k0 = static_cast<std::size_t>(std::ceil(u));
  // Sum the smaller tail for precision; the distribution is symmetric about mn/2.
  double s = 0;
  if (k0 > top) return 0;
  for (std::size_t k = 0; k <= top - k0; ++k) s += p[m][k];  // P(U <= mn - k0) = P(U >= k0)
  return s;
}

struct UStats {
  double u1 = 0, u2 = 0, tie_term = 0;
  bool ties = false;
};

UStats u_statistics(std::span<const double> x, std::span<const double> y) {
  std::vector<double> all(x.begin(), x.end());
  all.insert(all.end(), y.begin(), y.end());
  const auto r = ranks(all);
  const double n1 = static_cast<double>(x.size()), n2 = static_cast<double>(y.size());
  double r1 = 0;
  for (std::size_t i = 0; i < x.size(); ++i) r1 += r[i];
  UStats s;
  s.u1 = r1 - n1 * (n1 + 1) / 2;
  s.u2 = n1 * n2 - s.u1;
  auto v = detail::sorted(all);
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j < v.size() && v[j] == v[i]) ++j;
    const double t = static_cast<double>(j - i);
    if (t > 1) s.ties = true;
    s.tie_term += t * t * t - t;
    i = j;
  }
  return s;
}

MannWhitney asymptotic(const UStats& s, double n1, double n2) {
  MannWhitney r;
  r.u = s.u1;
  const double n = n1 + n2;
  const double sd = std::sqrt(n1 * n2 / 12.0 * ((n + 1) - s.tie_term / (n * (n - 1))));
  if (sd == 0) return r;  // every value equal: no evidence either way
  const double z = (std::max(s.u1, s.u2) - n1 * n2 / 2.0 - 0.5) / sd;
  r.p_value = std::clamp(2.0 * normal_sf(z), 0.0, 1.0);
  return r;
}

void check_two_samples(std::span<const double> x, std::span<const double> y, const char* what,
                       std::size_t min) {
  require_finite(x, (std::string(what) + " (first sample)").c_str(), min);
  require_finite(y, (std::string(what) + " (second sample)").c_str(), min);
}

}  // namespace

MannWhitney mann_whitney_asymptotic(std::span<const double> x, std::span<const double> y) {
  check_two_samples(x, y, "mann_whitney", 1);
  return asymptotic(u_statistics(x, y), static_cast<double>(x.size()), static_cast<double>(y.size()));
}

MannWhitney mann_whitney(std::span<const double> x, std::span<const double> y) {
  check_two_samples(x, y, "mann_whitney", 1);
  const UStats s = u_statistics(x, y);
  const std::size_t small = std::min(x.size(), y.size());
  // SciPy's rule (either sample at most 8, no ties); the exact table also stays small.
  if (small <= 8 && !s.ties && x.size() * y.size() <= 8000) {
    MannWhitney r;
    r.u = s.u1;
    r.exact = true;
    r.p_value = std::clamp(2.0 * mann_whitney_exact_sf(x.size(), y.size(), std::max(s.u1, s.u2)), 0.0, 1.0);
    return r;
  }
  return asymptotic(s, static_cast<double>(x.size()), static_cast<double>(y.size()));
}

WelchT welch_t(std::span<const double> x, std::span<const double> y) {
  check_two_samples(x, y, "welch_t", 2);
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  const double vx = variance(x, 1) / nx, vy = variance(y, 1) / ny;
  const double diff = mean(x) - mean(y);
  WelchT w;
  const double se2 = vx + vy;
  if (se2 == 0) {
    // Both samples constant: equal means are no evidence, different ones are certain.
    w.t = diff == 0 ? 0.0 : std::copysign(HUGE_VAL, diff);
    w.df = nx + ny - 2;
    w.p_value = diff == 0 ? 1.0 : 0.0;
    return w;
  }
  w.t = diff / std::sqrt(se2);
  w.df = se2 * se2 / (vx * vx / (nx - 1) + vy * vy / (ny - 1));
  w.p_value = student_t_two_sided(w.t, w.df);
  return w;
}

Regression compare(std::span<const double> baseline, std::span<const double> current,
                   const RegressionOptions& o) {
  if (!(o.alpha > 0 && o.alpha < 1)) throw AnalyticsError("compare: alpha must be in (0, 1)");
  if (!(o.min_effect >= 0)) throw AnalyticsError("compare: min_effect must not be negative");
  Regression r;
  r.mann_whitney = mann_whitney(current, baseline);
  if (baseline.size() >= 2 && current.size() >= 2) r.welch = welch_t(current, baseline);
  r.baseline_median = median(baseline);
  r.current_median = median(current);
  const double diff = r.current_median - r.baseline_median;
  r.relative_change = r.baseline_median != 0 ? diff / std::fabs(r.baseline_median)
                                             : (diff == 0 ? 0.0 : std::copysign(HUGE_VAL, diff));
  const bool significant = r.mann_whitney.p_value < o.alpha;
  r.regressed = significant && r.relative_change >= o.min_effect;
  r.improved = significant && r.relative_change <= -o.min_effect;
  return r;
}

// ---------------------------------------------------------------------------------------
// Correlation

Correlation pearson(std::span<const double> x, std::span<const double> y) {
  const Moments m = paired_moments(x, y, "pearson");
  if (m.sxx == 0 || m.syy == 0) throw AnalyticsError("pearson: an input is constant, so r is undefined");
  Correlation c;
  c.n = x.size();
  c.r = std::clamp(m.sxy / std::sqrt(m.sxx) / std::sqrt(m.syy), -1.0, 1.0);
  c.p_value = correlation_p(c.r, c.n);
  return c;
}

Correlation spearman(std::span<const double> x, std::span<const double> y) {
  detail::require_same_size(x, y, "spearman");
  return pearson(ranks(x), ranks(y));
}

}  // namespace SPYGLASS_NAMESPACE::analytics
