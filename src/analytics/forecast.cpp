// Forecasts: Holt's linear and additive Holt-Winters exponential smoothing.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <utility>
#include <vector>

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

// One candidate of the fit: (alpha, beta, gamma).
struct Candidate {
  double a, b, g;
};

constexpr std::size_t kLanes = 4;

// The sums of squared one-step errors of Holt's linear smoother (m = 0) for up to kLanes
// candidates, in one pass over ys: per lane the operations of smooth() in its order (so
// the very same sums; a season term of 0 changes no error), two lanes to an SSE2 vector,
// so that the candidates' serial dependency chains overlap instead of each pass waiting
// on its own.
void holt_sse(std::span<const double> ys, const State& init, std::span<const Candidate> c, double* out) {
  using v2d = double __attribute__((vector_size(16)));
  // Spare lanes repeat the last candidate.
  const auto k = [&](std::size_t l) -> const Candidate& { return c[std::min(l, c.size() - 1)]; };
  const v2d al0 = {k(0).a, k(1).a}, al1 = {k(2).a, k(3).a};
  const v2d be0 = {k(0).b, k(1).b}, be1 = {k(2).b, k(3).b};
  const v2d one = {1, 1}, ral0 = one - al0, ral1 = one - al1, rbe0 = one - be0, rbe1 = one - be1;
  v2d lv0 = {init.level, init.level}, lv1 = lv0, sl0 = {init.slope, init.slope}, sl1 = sl0;
  v2d sse0 = {0, 0}, sse1 = sse0;
  for (std::size_t t = 1; t < ys.size(); ++t) {
    const v2d y = {ys[t], ys[t]};
    const v2d prev0 = lv0 + sl0, prev1 = lv1 + sl1;
    const v2d e0 = y - prev0, e1 = y - prev1;
    sse0 += e0 * e0;
    sse1 += e1 * e1;
    const v2d lvl0 = al0 * y + ral0 * prev0, lvl1 = al1 * y + ral1 * prev1;
    sl0 = be0 * (lvl0 - lv0) + rbe0 * sl0;
    sl1 = be1 * (lvl1 - lv1) + rbe1 * sl1;
    lv0 = lvl0;
    lv1 = lvl1;
  }
  const double sums[kLanes] = {sse0[0], sse0[1], sse1[0], sse1[1]};
  for (std::size_t l = 0; l < c.size(); ++l) out[l] = sums[l];
}

// Least squares on the one-step errors: a grid, then a shrinking pattern search around
// the best point. Parameters already given stay fixed. Candidates are judged one after
// the other as listed, but computed several at a time (holt_sse); a search that reaches
// an error of exactly 0 (a constant series) stops there, as nothing can beat it.
void fit(std::span<const double> ys, std::size_t m, HoltParams& p) {
  const State init = initial_state(ys, m);
  const bool fa = std::isnan(p.alpha), fb = std::isnan(p.beta), fg = m != 0 && std::isnan(p.gamma);
  if (m == 0) p.gamma = 0;
  if (!fa && !fb && !fg) return;
  std::vector<double> sse;
  auto evaluate = [&](std::span<const Candidate> cs) {
    sse.resize(cs.size());
    for (std::size_t i = 0; i < cs.size(); i += m == 0 ? kLanes : 1) {
      if (m == 0) {
        holt_sse(ys, init, cs.subspan(i, std::min(kLanes, cs.size() - i)), &sse[i]);
      } else {
        State s = init;
        sse[i] = smooth(ys, m, cs[i].a, cs[i].b, cs[i].g, s, nullptr);
      }
    }
  };
  double best = HUGE_VAL;
  Candidate at{p.alpha, p.beta, p.gamma};
  // Keeps candidate i of the last evaluation when it beats the best so far.
  std::vector<Candidate> cands;
  auto consider = [&](std::size_t i) {
    if (sse[i] >= best) return false;
    best = sse[i];
    at = cands[i];
    return true;
  };
  const double grid[] = {0.05, 0.15, 0.3, 0.5, 0.7, 0.9};
  for (double a : grid) {
    if (!fa && a != grid[0]) break;
    for (double b : grid) {
      if (!fb && b != grid[0]) break;
      for (double g : grid) {
        if (!fg && g != grid[0]) break;
        cands.push_back({fa ? a : p.alpha, fb ? b : p.beta, fg ? g : p.gamma});
      }
    }
  }
  const std::vector<Candidate> all = cands;
  cands.assign(all.begin(), all.begin() + 1);
  evaluate(cands);
  consider(0);
  if (best != 0) {
    cands.assign(all.begin() + 1, all.end());
    evaluate(cands);
    for (std::size_t i = 0; i < cands.size(); ++i) consider(i);
  }
  // The pattern search's moves in the order it tries them: each parameter fitted, down then up.
  std::vector<std::pair<int, double>> moves;
  for (int k = 0; k < 3; ++k) {
    if ((k == 0 && fa) || (k == 1 && fb) || (k == 2 && fg)) {
      moves.emplace_back(k, -1.0);
      moves.emplace_back(k, 1.0);
    }
  }
  auto clamp01 = [](double v) { return std::clamp(v, 1e-4, 1 - 1e-4); };
  for (double step = 0.05; step > 1e-4 && best != 0; step /= 2) {
    bool moved = true;
    while (moved) {
      moved = false;
      // Each move starts from where the earlier ones of the round left the best point: all
      // are computed from the current one, and those after a move that was kept again.
      std::size_t from = 0;
      while (from < moves.size()) {
        cands.clear();
        for (std::size_t j = from; j < moves.size(); ++j) {
          Candidate c = at;
          double& v = moves[j].first == 0 ? c.a : (moves[j].first == 1 ? c.b : c.g);
          v = clamp01(v + moves[j].second * step);
          cands.push_back(c);
        }
        evaluate(cands);
        std::size_t next = moves.size();
        for (std::size_t i = 0; i < cands.size(); ++i) {
          if (consider(i)) {
            moved = true;
            next = from + i + 1;
            break;
          }
        }
        from = next;
      }
    }
  }
  p.alpha = at.a;
  p.beta = at.b;
  p.gamma = at.g;
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
