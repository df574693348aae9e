// Forecasts: Holt's linear and additive Holt-Winters exponential smoothing.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "internal.hpp"
#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics {

namespace {

// Inverse of the standard normal CDF (Acklam's rational approximation, refined by one
// Halley step against erfc: full double precision).
double normal_quantile(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  double x = 0;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

struct State {
  double level = 0, slope = 0;
  std::vector<double> season;  // indexed by t mod m
};

// Runs the smoother over ys; returns the sum of squared one-step errors and fills
// `fitted` (when given) and the final state.
double smooth(std::span<const double> ys, std::size_t m, double alpha, double beta, double gamma, State& s,
              std::vector<double>* fitted) {
  double sse = 0;
  // Holt starts after the first point, which sets the initial level (its fit is itself).
  const std::size_t first = m == 0 ? 1 : 0;
  if (fitted) {
    fitted->assign(ys.size(), 0.0);
    if (first == 1) (*fitted)[0] = ys[0];
  }
  for (std::size_t t = first; t < ys.size(); ++t) {
    const double seas = m == 0 ? 0.0 : s.season[t % m];
    const double pred = s.level + s.slope + seas;
    if (fitted) (*fitted)[t] = pred;
    const double e = ys[t] - pred;
    sse += e * e;
    const double prev = s.level + s.slope;
    const double lvl = alpha * (ys[t] - seas) + (1 - alpha) * prev;
    s.slope = beta * (lvl - s.level) + (1 - beta) * s.slope;
    if (m != 0) s.season[t % m] = gamma * (ys[t] - prev) + (1 - gamma) * seas;
    s.level = lvl;
  }
  return sse;
}

State initial_state(std::span<const double> ys, std::size_t m) {
  State s;
  if (m == 0) {
    s.level = ys[0];
    s.slope = ys[1] - ys[0];
    return s;
  }
  const auto md = static_cast<double>(m);
  const double first = std::accumulate(ys.begin(), ys.begin() + static_cast<std::ptrdiff_t>(m), 0.0) / md;
  const double second = std::accumulate(ys.begin() + static_cast<std::ptrdiff_t>(m),
                                        ys.begin() + static_cast<std::ptrdiff_t>(2 * m), 0.0) /
                        md;
  s.level = first;
  s.slope = (second - first) / md;
  s.season.resize(m);
  for (std::size_t i = 0; i < m; ++i) s.season[i] = ys[i] - first;
  return s;
}

void check_param(double v, const char* name) {
  if (!std::isnan(v) && !(v > 0 && v < 1))
    throw AnalyticsError(std::string("forecast: ") + name + " must be in (0, 1)");
}

// Least squares on the one-step errors: a grid, then a shrinking pattern search around
// the best point. Parameters already given stay fixed.
void fit(std::span<const double> ys, std::size_t m, HoltParams& p) {
  const State init = initial_state(ys, m);
  const bool fa = std::isnan(p.alpha), fb = std::isnan(p.beta), fg = m != 0 && std::isnan(p.gamma);
  if (m == 0) p.gamma = 0;
  if (!fa && !fb && !fg) return;
  auto sse = [&](double a, double b, double g) {
    State s = init;
    return smooth(ys, m, a, b, g, s, nullptr);
  };
  double best = HUGE_VAL;
  double ba = p.alpha, bb = p.beta, bg = p.gamma;
  // Keeps (a, b, g) when it beats the best so far.
  auto consider = [&](double a, double b, double g) {
    const double v = sse(a, b, g);
    if (v >= best) return false;
    best = v;
    ba = a;
    bb = b;
    bg = g;
    return true;
  };
  const double grid[] = {0.05, 0.15, 0.3, 0.5, 0.7, 0.9};
  for (double a : grid) {
    if (!fa && a != grid[0]) break;
    for (double b : grid) {
      if (!fb && b != grid[0]) break;
      for (double g : grid) {
        if (!fg && g != grid[0]) break;
        consider(fa ? a : p.alpha, fb ? b : p.beta, fg ? g : p.gamma);
      }
    }
  }
  auto clamp01 = [](double v) { return std::clamp(v, 1e-4, 1 - 1e-4); };
  for (double step = 0.05; step > 1e-4; step /= 2) {
    bool moved = true;
    while (moved) {
      moved = false;
      for (int k = 0; k < 3; ++k) {
        if ((k == 0 && !fa) || (k == 1 && !fb) || (k == 2 && !fg)) continue;
        for (double dir : {-1.0, 1.0}) {
          double a = ba, b = bb, g = bg;
          double& v = k == 0 ? a : (k == 1 ? b : g);
          v = clamp01(v + dir * step);
          moved = consider(a, b, g) || moved;
        }
      }
    }
  }
  p.alpha = ba;
  p.beta = bb;
  p.gamma = bg;
}

Forecast run(std::span<const double> ys, std::size_t m, std::size_t horizon, HoltParams p, double coverage) {
  if (!(coverage > 0 && coverage < 1))
    throw AnalyticsError("forecast: the interval's coverage must be in (0, 1)");
  check_param(p.alpha, "alpha");
  check_param(p.beta, "beta");
  if (m != 0) check_param(p.gamma, "gamma");
  fit(ys, m, p);
  Forecast f;
  f.alpha = p.alpha;
  f.beta = p.beta;
  f.gamma = m == 0 ? 0.0 : p.gamma;
  f.season = m;
  f.interval = coverage;
  State s = initial_state(ys, m);
  const double sse = smooth(ys, m, f.alpha, f.beta, f.gamma, s, &f.fitted);
  const std::size_t errors = m == 0 ? ys.size() - 1 : ys.size();
  f.sigma = std::sqrt(sse / static_cast<double>(errors));
  f.level = s.level;
  f.slope = s.slope;
  const double z = normal_quantile(0.5 + coverage / 2);
  double var_sum = 1.0;  // 1 + Σ_{j<h} c_j²
  for (std::size_t h = 1; h <= horizon; ++h) {
    const std::size_t t = ys.size() - 1 + h;
    const double mean_h = s.level + static_cast<double>(h) * s.slope + (m == 0 ? 0.0 : s.season[t % m]);
    const double half = z * f.sigma * std::sqrt(var_sum);
    f.mean.push_back(mean_h);
    f.lower.push_back(mean_h - half);
    f.upper.push_back(mean_h + half);
    // c_j for the next step (j = h): alpha (1 + j beta) + gamma when j is a whole season.
    const double c = f.alpha * (1 + static_cast<double>(h) * f.beta) + (m != 0 && h % m == 0 ? f.gamma : 0.0);
    var_sum += c * c;
  }
  return f;
}

}  // namespace

Forecast holt(std::span<const double> ys, std::size_t horizon, HoltParams p, double level) {
  detail::require_finite(ys, "holt", 3);
  return run(ys, 0, horizon, p, level);
}

Forecast holt_winters(std::span<const double> ys, std::size_t season, std::size_t horizon, HoltParams p,
                      double level) {
  if (season < 2) throw AnalyticsError("holt_winters: the season must be at least 2 points");
  detail::require_finite(ys, "holt_winters", 2 * season);
  return run(ys, season, horizon, p, level);
}

std::optional<std::size_t> steps_to_limit(const Forecast& f, double limit) {
  if (!std::isfinite(limit)) throw AnalyticsError("steps_to_limit: the limit must be finite");
  const bool rising = limit >= f.level;
  for (std::size_t h = 0; h < f.mean.size(); ++h) {
    if (rising ? f.mean[h] >= limit : f.mean[h] <= limit) return h + 1;
  }
  return std::nullopt;
}

std::optional<std::size_t> steps_to_limit(double last, double slope, double limit, std::size_t max_steps) {
  if (!std::isfinite(last) || !std::isfinite(slope) || !std::isfinite(limit))
    throw AnalyticsError("steps_to_limit: the arguments must be finite");
  const double gap = limit - last;
  if (gap == 0) return 0;
  if (slope == 0 || (gap > 0) != (slope > 0)) return std::nullopt;
  const double steps = std::ceil(gap / slope);
  if (steps > static_cast<double>(max_steps)) return std::nullopt;
  return static_cast<std::size_t>(steps);
}

}  // namespace SPYGLASS_NAMESPACE::analytics
