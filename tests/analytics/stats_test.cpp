// The statistics of spyglass::analytics against SciPy, NumPy and statsmodels.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "reference.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/detectors.hpp"

namespace an = spyglass::analytics;
using spyglass_test::kExact;
using spyglass_test::near_rel;
using spyglass_test::numbers;
using spyglass_test::reference;

namespace {

std::vector<double> iota_vec(std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return v;
}

void expect_fit(const an::LinearFit& f, simdjson::dom::element ref) {
  EXPECT_TRUE(near_rel(f.slope, double(ref["slope"]), kExact));
  EXPECT_TRUE(near_rel(f.intercept, double(ref["intercept"]), kExact));
  EXPECT_TRUE(near_rel(f.r, double(ref["r"]), kExact));
  EXPECT_TRUE(near_rel(f.r2, double(ref["r"]) * double(ref["r"]), kExact));
  EXPECT_TRUE(near_rel(f.p_value, double(ref["p"]), kExact));
  EXPECT_TRUE(near_rel(f.slope_stderr, double(ref["stderr"]), kExact));
}

// A statistic and its p-value against SciPy's [statistic, pvalue].
void expect_stat_p(double stat, double p, simdjson::dom::element ref) {
  EXPECT_TRUE(near_rel(stat, double(ref.at(0)), kExact));
  EXPECT_TRUE(near_rel(p, double(ref.at(1)), kExact));
}

// The closed-form interval against simulated paths of the same model (400,000 of them:
// the simulation's own error is about 0.3% of the half-width).
void expect_interval(const an::Forecast& f, simdjson::dom::element ref) {
  const auto lo = numbers(ref["sim_lower"]), hi = numbers(ref["sim_upper"]);
  ASSERT_LE(lo.size(), f.lower.size());
  for (std::size_t i = 0; i < lo.size(); ++i) {
    const double half = (hi[i] - lo[i]) / 2;
    EXPECT_NEAR(f.lower[i], lo[i], 0.01 * half) << i;
    EXPECT_NEAR(f.upper[i], hi[i], 0.01 * half) << i;
  }
}

}  // namespace

TEST(AnalyticsDescriptive, MatchesNumPy) {
  const auto ref = reference();
  const auto y = numbers(ref["trend"]);
  EXPECT_TRUE(near_rel(an::mean(y), double(ref["mean"]), kExact));
  EXPECT_TRUE(near_rel(an::variance(y, 1), double(ref["var1"]), kExact));
  EXPECT_TRUE(near_rel(an::variance(y, 0), double(ref["var0"]), kExact));
  EXPECT_TRUE(near_rel(an::median(y), double(ref["median"]), kExact));
  EXPECT_TRUE(near_rel(an::mad(y), double(ref["mad"]), kExact));
  const auto qs = numbers(ref["quantiles"]["q"]);
  const auto vals = numbers(ref["quantiles"]["values"]);
  for (std::size_t i = 0; i < qs.size(); ++i)
    EXPECT_TRUE(near_rel(an::quantile(y, qs[i]), vals[i], kExact)) << qs[i];
  const auto r = an::ranks(y);
  const auto rr = numbers(ref["ranks"]);
  ASSERT_EQ(r.size(), rr.size());
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i], rr[i]) << i;
  const auto s = an::summarize(y);
  EXPECT_EQ(s.count, y.size());
  EXPECT_TRUE(near_rel(s.q1, double(ref["quartiles"].at(0)), kExact));
  EXPECT_TRUE(near_rel(s.q3, double(ref["quartiles"].at(1)), kExact));
  EXPECT_TRUE(near_rel(s.stddev, std::sqrt(double(ref["var1"])), kExact));
}

TEST(AnalyticsDescriptive, BadInputIsAClearError) {
  const std::vector<double> empty;
  const std::vector<double> with_nan = {1.0, std::numeric_limits<double>::quiet_NaN(), 3.0};
  EXPECT_THROW((void)an::mean(empty), an::AnalyticsError);
  try {
    (void)an::median(with_nan);
    FAIL() << "NaN accepted";
  } catch (const an::AnalyticsError& e) {
    EXPECT_NE(std::string(e.what()).find("point 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)an::quantile(std::vector<double>{1, 2}, 1.5), an::AnalyticsError);
  EXPECT_THROW((void)an::variance(std::vector<double>{1}, 1), an::AnalyticsError);
  EXPECT_THROW((void)an::linear_fit(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3}),
               an::AnalyticsError);
  EXPECT_THROW((void)an::linear_fit(std::vector<double>{1, 2, 3}, std::vector<double>{1, 2}),
               an::AnalyticsError);
  EXPECT_THROW((void)an::pearson(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3}),
               an::AnalyticsError);
}

TEST(AnalyticsDistributions, MatchSciPySpecialFunctions) {
  const auto ref = reference();
  for (simdjson::dom::element row : ref["betainc"].get_array()) {
    const auto v = numbers(row);
    EXPECT_TRUE(near_rel(an::incomplete_beta(v[0], v[1], v[2]), v[3], kExact))
        << v[0] << " " << v[1] << " " << v[2];
  }
  for (simdjson::dom::element row : ref["t_two_sided"].get_array()) {
    const auto v = numbers(row);
    EXPECT_TRUE(near_rel(an::student_t_two_sided(v[0], v[1]), v[2], kExact)) << v[0] << " " << v[1];
  }
  for (simdjson::dom::element row : ref["norm_sf"].get_array()) {
    const auto v = numbers(row);
    EXPECT_TRUE(near_rel(an::normal_sf(v[0]), v[1], kExact)) << v[0];
  }
  EXPECT_THROW((void)an::incomplete_beta(-1, 1, 0.5), an::AnalyticsError);
  EXPECT_THROW((void)an::incomplete_beta(1, 1, 1.5), an::AnalyticsError);
}

TEST(AnalyticsTrend, MatchesLinregress) {
  const auto ref = reference();
  const auto y = numbers(ref["trend"]);
  const auto t = numbers(ref["times"]);
  expect_fit(an::linear_fit(iota_vec(y.size()), y), ref["linregress_index"]);
  expect_fit(an::linear_fit(t, y), ref["linregress_time"]);
  const auto tr = an::trend(y, t, 0.05, "run");
  expect_fit(tr.per_index, ref["linregress_index"]);
  ASSERT_TRUE(tr.per_time.has_value());
  expect_fit(*tr.per_time, ref["linregress_time"]);
  EXPECT_TRUE(tr.significant);
  EXPECT_EQ(tr.verdict.rfind("rising +", 0), 0u) << tr.verdict;
  EXPECT_NE(tr.verdict.find("per run over 60 runs"), std::string::npos) << tr.verdict;

  const auto flat = numbers(ref["flat"]);
  const auto ft = an::trend(flat);
  expect_fit(ft.per_index, ref["linregress_flat"]);
  EXPECT_EQ(ft.significant, double(ref["linregress_flat"]["p"]) < 0.05);
  if (!ft.significant) {
    EXPECT_EQ(ft.verdict.rfind("no significant trend", 0), 0u) << ft.verdict;
  }
}

TEST(AnalyticsAnomalies, ScoresMatchSciPy) {
  const auto ref = reference();
  const auto y = numbers(ref["trend"]);
  const auto z = numbers(ref["zscore"]);
  const auto mz = numbers(ref["modified_zscore"]);
  const double q1 = double(ref["quartiles"].at(0)), q3 = double(ref["quartiles"].at(1));
  std::vector<std::size_t> want_z, want_mz, want_iqr;
  for (std::size_t i = 0; i < y.size(); ++i) {
    EXPECT_TRUE(near_rel(an::anomaly_score(y, y[i], an::AnomalyMethod::zscore), z[i], kExact, 1e-12)) << i;
    EXPECT_TRUE(
        near_rel(an::anomaly_score(y, y[i], an::AnomalyMethod::modified_zscore), mz[i], kExact, 1e-12))
        << i;
    if (std::fabs(z[i]) > 3) want_z.push_back(i);
    if (std::fabs(mz[i]) > 3.5) want_mz.push_back(i);
    if (y[i] > q3 + 1.5 * (q3 - q1) || y[i] < q1 - 1.5 * (q3 - q1)) want_iqr.push_back(i);
  }
  auto indices = [](const std::vector<an::Anomaly>& v) {
    std::vector<std::size_t> out;
    for (const auto& a : v) out.push_back(a.index);
    return out;
  };
  const auto got_z = an::anomalies(y, an::AnomalyMethod::zscore);
  const auto got_mz = an::anomalies(y, an::AnomalyMethod::modified_zscore);
  const auto got_iqr = an::anomalies(y, an::AnomalyMethod::iqr);
  EXPECT_EQ(indices(got_z), want_z);
  EXPECT_EQ(indices(got_mz), want_mz);
  EXPECT_EQ(indices(got_iqr), want_iqr);
  // The largest planted outlier (+55 at 50) stands out even against the trend's spread.
  ASSERT_FALSE(got_mz.empty());
  EXPECT_EQ(got_mz.back().index, 50u);
  for (const auto& a : got_iqr) {
    const double expect = a.value > q3 ? (a.value - q3) / (q3 - q1) : (a.value - q1) / (q3 - q1);
    EXPECT_TRUE(near_rel(a.score, expect, kExact)) << a.index;
    EXPECT_EQ(a.method, an::AnomalyMethod::iqr);
  }
}

TEST(AnalyticsAnomalies, ZeroSpread) {
  const std::vector<double> same = {5, 5, 5, 5, 5, 5, 5, 5, 5, 9};
  // MAD is 0: the mean absolute deviation takes over, so the odd point still scores finitely.
  const double s = an::anomaly_score(same, 9, an::AnomalyMethod::modified_zscore);
  EXPECT_TRUE(near_rel(s, 4.0 / (1.253314 * 0.4), kExact));
  const std::vector<double> flat = {5, 5, 5};
  EXPECT_EQ(an::anomaly_score(flat, 5, an::AnomalyMethod::zscore), 0.0);
  // No spread at all: the distance over 1% of the level (over 1 at a level of 0), finite.
  EXPECT_DOUBLE_EQ(an::anomaly_score(flat, 6, an::AnomalyMethod::iqr), 20.0);
  EXPECT_DOUBLE_EQ(an::anomaly_score(flat, 4.5, an::AnomalyMethod::zscore), -10.0);
  EXPECT_DOUBLE_EQ(an::anomaly_score(flat, 7, an::AnomalyMethod::modified_zscore), 40.0);
  const std::vector<double> zero = {0, 0, 0};
  EXPECT_DOUBLE_EQ(an::anomaly_score(zero, -3, an::AnomalyMethod::modified_zscore), -3.0);
  an::EwmaDetector e;
  for (int i = 0; i < 25; ++i) (void)e.update(5);
  EXPECT_DOUBLE_EQ(e.update(6).score, 20.0);
  EXPECT_THROW((void)an::anomalies(flat, an::AnomalyMethod::iqr, -1), an::AnalyticsError);
}

TEST(AnalyticsTwoSample, MannWhitneyMatchesSciPy) {
  const auto ref = reference();
  const auto base = numbers(ref["base"]), cur = numbers(ref["cur"]);
  const auto a = an::mann_whitney_asymptotic(cur, base);
  expect_stat_p(a.u, a.p_value, ref["mwu_asymptotic"]);
  EXPECT_FALSE(a.exact);
  // With ties, "auto" is the asymptotic test as well.
  const auto b = an::mann_whitney(cur, base);
  EXPECT_EQ(b.p_value, a.p_value);

  const auto sx = numbers(ref["small_x"]), sy = numbers(ref["small_y"]);
  const auto e = an::mann_whitney(sx, sy);
  EXPECT_TRUE(e.exact);
  expect_stat_p(e.u, e.p_value, ref["mwu_exact"]);

  const auto mx = numbers(ref["mixed_x"]), my = numbers(ref["mixed_y"]);
  const auto m = an::mann_whitney(mx, my);
  EXPECT_TRUE(m.exact);
  expect_stat_p(m.u, m.p_value, ref["mwu_auto"]);
}

TEST(AnalyticsTwoSample, WelchMatchesSciPy) {
  const auto ref = reference();
  const auto w = an::welch_t(numbers(ref["cur"]), numbers(ref["base"]));
  expect_stat_p(w.t, w.p_value, ref["welch"]);
  EXPECT_THROW((void)an::welch_t(std::vector<double>{1}, std::vector<double>{1, 2}), an::AnalyticsError);
}

TEST(AnalyticsTwoSample, RegressionNeedsSignificanceAndEffect) {
  const auto ref = reference();
  const auto base = numbers(ref["base"]), cur = numbers(ref["cur"]);
  const auto r = an::compare(base, cur);
  EXPECT_EQ(r.mann_whitney.p_value, an::mann_whitney(cur, base).p_value);
  ASSERT_TRUE(r.welch.has_value());
  EXPECT_TRUE(near_rel(r.relative_change, (an::median(cur) - an::median(base)) / an::median(base), kExact));
  EXPECT_EQ(r.regressed, r.mann_whitney.p_value < 0.01 && r.relative_change >= 0.05);
  // A consistent but tiny shift (0.1%) is significant and still not a regression.
  std::vector<double> b2, c2;
  for (int i = 0; i < 40; ++i) {
    b2.push_back(100.0 + 0.01 * i);
    c2.push_back(100.1 + 0.01 * i);
  }
  const auto tiny = an::compare(b2, c2, {.alpha = 0.5, .min_effect = 0.05});
  EXPECT_FALSE(tiny.regressed);
  // The same samples reversed are an improvement only when the effect is large enough.
  const auto big = an::compare(cur, base, {.alpha = 0.5, .min_effect = 0.0});
  EXPECT_TRUE(big.improved);
  EXPECT_FALSE(big.regressed);
}

TEST(AnalyticsCorrelation, MatchesSciPy) {
  const auto ref = reference();
  const auto x = numbers(ref["cx"]), y = numbers(ref["cy"]);
  const auto p = an::pearson(x, y);
  expect_stat_p(p.r, p.p_value, ref["pearson"]);
  const auto s = an::spearman(x, y);
  expect_stat_p(s.r, s.p_value, ref["spearman"]);
}

TEST(AnalyticsForecast, HoltMatchesStatsmodels) {
  const auto ref = reference();
  const auto y = numbers(ref["trend"]);
  const simdjson::dom::element h = ref["holt"];
  const auto f = an::holt(y, 12, {.alpha = double(h["alpha"]), .beta = double(h["beta"])});
  const auto fitted = numbers(h["fitted"]);  // statsmodels was given y[1:]
  ASSERT_EQ(f.fitted.size(), fitted.size() + 1);
  for (std::size_t i = 0; i < fitted.size(); ++i)
    EXPECT_TRUE(near_rel(f.fitted[i + 1], fitted[i], kExact)) << i;
  const auto fc = numbers(h["forecast"]);
  ASSERT_EQ(f.mean.size(), fc.size());
  for (std::size_t i = 0; i < fc.size(); ++i) EXPECT_TRUE(near_rel(f.mean[i], fc[i], kExact)) << i;
  EXPECT_TRUE(near_rel(f.level, double(h["level"]), kExact));
  EXPECT_TRUE(near_rel(f.slope, double(h["slope"]), kExact));
  expect_interval(f, h);
  // Fitted parameters: least squares at least as good as statsmodels' optimiser (0.5%).
  const auto opt = an::holt(y, 1);
  double sse = 0;
  for (std::size_t i = 1; i < y.size(); ++i) sse += (y[i] - opt.fitted[i]) * (y[i] - opt.fitted[i]);
  EXPECT_LE(sse, double(h["optimized_sse"]) * 1.005);
}

TEST(AnalyticsForecast, HoltWintersMatchesStatsmodels) {
  const auto ref = reference();
  const auto y = numbers(ref["seasonal"]);
  const simdjson::dom::element h = ref["hw"];
  const auto m = static_cast<std::size_t>(int64_t(h["season"]));
  const auto f = an::holt_winters(y, m, 24, {double(h["alpha"]), double(h["beta"]), double(h["gamma"])});
  const auto fitted = numbers(h["fitted"]);
  ASSERT_EQ(f.fitted.size(), fitted.size());
  for (std::size_t i = 0; i < fitted.size(); ++i) EXPECT_TRUE(near_rel(f.fitted[i], fitted[i], kExact)) << i;
  const auto fc = numbers(h["forecast"]);
  const auto state = numbers(h["state"]);  // level, trend, then the last m seasonal terms
  for (std::size_t i = 0; i < fc.size(); ++i) {
    if ((i + 1) % m != 0) {
      EXPECT_TRUE(near_rel(f.mean[i], fc[i], kExact)) << i;
    } else {
      // A whole number of seasons ahead statsmodels uses the seasonal term of one season
      // earlier; the forecast equation l + h b + s_T uses the last one, from its states.
      const double want = state[0] + static_cast<double>(i + 1) * state[1] + state.back();
      EXPECT_TRUE(near_rel(f.mean[i], want, kExact)) << i;
    }
  }
  expect_interval(f, h);
  const auto opt = an::holt_winters(y, m, 1);
  double sse = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sse += (y[i] - opt.fitted[i]) * (y[i] - opt.fitted[i]);
  EXPECT_LE(sse, double(h["optimized_sse"]) * 1.005);
  EXPECT_THROW((void)an::holt_winters(std::vector<double>(20, 1.0), 12, 3), an::AnalyticsError);
  EXPECT_THROW((void)an::holt(y, 3, {.alpha = 1.5}), an::AnalyticsError);
}

TEST(AnalyticsForecast, StepsToLimit) {
  std::vector<double> y;
  for (int i = 0; i < 30; ++i) y.push_back(100.0 + 10.0 * i);  // 390 at the end, +10 per step
  const auto f = an::holt(y, 50, {.alpha = 0.5, .beta = 0.5});
  ASSERT_TRUE(an::steps_to_limit(f, 500).has_value());
  EXPECT_EQ(*an::steps_to_limit(f, 500), 11u);  // 390 + 11 * 10 = 500
  EXPECT_FALSE(an::steps_to_limit(f, 5000).has_value());
  EXPECT_EQ(*an::steps_to_limit(390, 10, 2000), 161u);
  EXPECT_FALSE(an::steps_to_limit(390, -1, 2000).has_value());
}

namespace {

// Holt's fit as a plain sequential search, one candidate per pass (the definition the
// library's fit must reproduce exactly: the same grid, the same pattern search).
std::pair<double, double> sequential_holt_fit(const std::vector<double>& y) {
  auto sse = [&](double a, double b) {
    double level = y[0], slope = y[1] - y[0], s = 0;
    for (std::size_t t = 1; t < y.size(); ++t) {
      const double pred = level + slope, e = y[t] - pred;
      s += e * e;
      const double lvl = a * y[t] + (1 - a) * pred;
      slope = b * (lvl - level) + (1 - b) * slope;
      level = lvl;
    }
    return s;
  };
  double best = HUGE_VAL, ba = 0, bb = 0;
  auto consider = [&](double a, double b) {
    const double v = sse(a, b);
    if (v >= best) return false;
    best = v;
    ba = a;
    bb = b;
    return true;
  };
  for (double a : {0.05, 0.15, 0.3, 0.5, 0.7, 0.9})
    for (double b : {0.05, 0.15, 0.3, 0.5, 0.7, 0.9}) consider(a, b);
  for (double step = 0.05; step > 1e-4; step /= 2) {
    for (bool moved = true; moved;) {
      moved = false;
      for (int k = 0; k < 2; ++k) {
        for (double dir : {-1.0, 1.0}) {
          double a = ba, b = bb;
          double& v = k == 0 ? a : b;
          v = std::clamp(v + dir * step, 1e-4, 1 - 1e-4);
          moved = consider(a, b) || moved;
        }
      }
    }
  }
  return {ba, bb};
}

void expect_same_forecast(const an::Forecast& f, const an::Forecast& g) {
  EXPECT_EQ(f.alpha, g.alpha);
  EXPECT_EQ(f.beta, g.beta);
  EXPECT_EQ(f.sigma, g.sigma);
  EXPECT_EQ(f.fitted, g.fitted);
  EXPECT_EQ(f.mean, g.mean);
  EXPECT_EQ(f.lower, g.lower);
  EXPECT_EQ(f.upper, g.upper);
}

}  // namespace

TEST(AnalyticsForecast, HoltFitIsTheSequentialSearchsResult) {
  // Candidates are computed several at a time; the parameters found must be exactly those
  // of trying them one by one, on noise, on a trend and on a level shift.
  std::vector<std::vector<double>> cases = {spyglass_test::noisy(2000, 50.0, 4.0, 21),
                                            spyglass_test::noisy(300, 10.0, 1.0, 22)};
  for (std::size_t i = 0; i < cases[1].size(); ++i) cases[1][i] += 0.05 * static_cast<double>(i);
  cases.push_back(spyglass_test::noisy(500, 100.0, 2.0, 23));
  for (std::size_t i = 250; i < 500; ++i) cases[2][i] += 30;
  for (const auto& y : cases) {
    const auto [a, b] = sequential_holt_fit(y);
    const auto f = an::holt(y, 5);
    EXPECT_EQ(f.alpha, a);
    EXPECT_EQ(f.beta, b);
    expect_same_forecast(f, an::holt(y, 5, {.alpha = a, .beta = b}));
  }
}

TEST(AnalyticsForecast, ExactFitStopsTheSearchWithTheSameResult) {
  // A constant series (a metric a job never uses: 0 every run) has no one-step error
  // for any parameters, so the grid's first candidate is the fit and the search stops
  // there; on a line the errors vanish only where the rounding does (alpha 0.5 here).
  std::vector<double> line;
  for (int i = 0; i < 1000; ++i) line.push_back(3.0 + 2.0 * i);
  for (const auto& y : {std::vector<double>(10000, 0.0), std::vector<double>(10000, 4.2e8), line}) {
    const auto [a, b] = sequential_holt_fit(y);
    const auto f = an::holt(y, 10);
    EXPECT_EQ(f.alpha, a);
    EXPECT_EQ(f.beta, b);
    EXPECT_EQ(f.sigma, 0.0);
    EXPECT_EQ(f.mean.back(), y.back() + 10 * (y[1] - y[0]));
    expect_same_forecast(f, an::holt(y, 10, {.alpha = a, .beta = b}));
  }
  EXPECT_EQ(an::holt(std::vector<double>(50, 0.0), 3).alpha, 0.05);
  // Holt-Winters on a constant series: the same stop at the first candidate.
  const std::vector<double> flat(240, 0.0);
  const auto hw = an::holt_winters(flat, 12, 12);
  EXPECT_EQ(hw.sigma, 0.0);
  EXPECT_EQ(hw.gamma, 0.05);
  expect_same_forecast(hw, an::holt_winters(flat, 12, 12, {0.05, 0.05, 0.05}));
}
