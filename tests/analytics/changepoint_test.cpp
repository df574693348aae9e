// Change points on series with known shifts.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "reference.hpp"
#include "spyglass/monitor/analytics.hpp"

namespace an = spyglass::analytics;

namespace {

// Segments of (length, mean, sd), the noise from one fixed generator.
std::vector<double> series(std::initializer_list<std::array<double, 3>> segs, std::uint64_t seed) {
  std::size_t n = 0;
  for (const auto& s : segs) n += static_cast<std::size_t>(s[0]);
  const auto unit = spyglass_test::noisy(n, 0.0, 1.0, seed);
  std::vector<double> v;
  for (const auto& s : segs) {
    for (int i = 0; i < static_cast<int>(s[0]); ++i) v.push_back(s[1] + s[2] * unit[v.size()]);
  }
  return v;
}

}  // namespace

TEST(AnalyticsChangePoints, FindsALevelShift) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const auto xs = series({{{120, 10.0, 1.0}}, {{80, 12.3, 1.0}}}, seed);
    const auto cps = an::change_points(xs);
    ASSERT_EQ(cps.size(), 1u) << "seed " << seed;
    EXPECT_NEAR(static_cast<double>(cps[0].index), 120.0, 3.0) << "seed " << seed;
    EXPECT_LT(cps[0].p_value, 0.01);
    EXPECT_NEAR(cps[0].relative_change, 0.23, 0.05);
  }
}

TEST(AnalyticsChangePoints, FindsAVarianceShift) {
  const auto xs = series({{{150, 50.0, 1.0}}, {{150, 50.0, 5.0}}}, 11);
  const auto cps = an::change_points(xs);
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_NEAR(static_cast<double>(cps[0].index), 150.0, 8.0);
  EXPECT_NEAR(cps[0].stddev_before, 1.0, 0.25);
  EXPECT_NEAR(cps[0].stddev_after, 5.0, 1.0);
  EXPECT_LT(cps[0].p_value, 0.01);
}

TEST(AnalyticsChangePoints, FindsSeveralShifts) {
  const auto xs = series({{{100, 5.0, 0.5}}, {{100, 8.0, 0.5}}, {{100, 6.0, 0.5}}, {{100, 6.0, 2.0}}}, 3);
  const auto cps = an::change_points(xs);
  ASSERT_EQ(cps.size(), 3u);
  const double truth[] = {100, 200, 300};
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(static_cast<double>(cps[i].index), truth[i], 6.0) << i;
}

TEST(AnalyticsChangePoints, FindsShiftsInALongStableHistory) {
  // 10,000 runs, long stretches without change: the case where an exact search is slowest.
  const auto xs =
      series({{{4000, 100.0, 5.0}}, {{3000, 112.0, 5.0}}, {{2990, 112.0, 12.0}}, {{10, 160.0, 5.0}}}, 7);
  const auto cps = an::change_points(xs);
  ASSERT_EQ(cps.size(), 3u);
  const double truth[] = {4000, 7000, 9990};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(static_cast<double>(cps[i].index), truth[i], 15.0) << i;
    EXPECT_LT(cps[i].p_value, 0.01) << i;
  }
  EXPECT_NEAR(cps[0].relative_change, 0.12, 0.01);
  EXPECT_NEAR(cps[1].stddev_after / cps[1].stddev_before, 12.0 / 5.0, 0.2);
}

TEST(AnalyticsChangePoints, NoiseAloneHasNone) {
  std::size_t found = 0;
  for (std::uint64_t seed = 100; seed < 120; ++seed)
    found += an::change_points(series({{{300, 20.0, 2.0}}}, seed)).size();
  EXPECT_LE(found, 1u);  // 20 stationary series: at most one false alarm
  EXPECT_TRUE(an::change_points(series({{{10000, 20.0, 2.0}}}, 5)).empty());
}

TEST(AnalyticsChangePoints, EdgeCases) {
  EXPECT_TRUE(an::change_points(std::vector<double>{}).empty());
  EXPECT_TRUE(an::change_points(std::vector<double>(50, 3.0)).empty());
  EXPECT_THROW((void)an::change_points(std::vector<double>{1, NAN, 2}), an::AnalyticsError);
  EXPECT_THROW((void)an::change_points(std::vector<double>(20, 1.0), {.min_segment = 1}), an::AnalyticsError);
}

// The test of a cut stops once p >= alpha is certain, and each cut draws its own
// permutations: on many seeded series, the cuts kept at alpha 0.05 are exactly those whose
// full test (alpha 1: nothing stops early) gives p < 0.05, with the same p-values.
TEST(AnalyticsChangePoints, EarlyStopKeepsTheVerdicts) {
  std::size_t kept = 0, dropped = 0;
  for (std::uint64_t seed = 1; seed <= 150; ++seed) {
    const double shift = static_cast<double>(seed % 7) * 0.25, spread = seed % 5 == 0 ? 2.0 : 1.0;
    const auto len = static_cast<double>(10 + seed % 40);
    const auto xs = series({{{len, 10.0, 1.0}}, {{30, 10.0 + shift, spread}}, {{len, 10.0, 1.0}}}, seed);
    // A low penalty for every other series: more cuts, many of them noise the test drops.
    const double pen = seed % 2 == 0 ? 2.0 : 0.0;
    const auto full = an::change_points(xs, {.penalty = pen, .alpha = 1.0});
    const auto quick = an::change_points(xs, {.penalty = pen});
    std::vector<std::pair<std::size_t, double>> want, got;
    for (const auto& c : full) {
      if (c.p_value < 0.05) want.emplace_back(c.index, c.p_value);
    }
    for (const auto& c : quick) got.emplace_back(c.index, c.p_value);
    EXPECT_EQ(got, want) << "seed " << seed;
    kept += want.size();
    dropped += full.size() - want.size();
  }
  EXPECT_GT(kept, 50u) << dropped;  // both verdicts were reached
  EXPECT_GT(dropped, 20u) << kept;
}

// One outlier in a long series is cut out as a short segment (two "changes"); merged back,
// it is one outlier and no change, while a real shift beside it stays, and so does a short
// stretch at a level of its own.
TEST(AnalyticsChangePoints, MergesShortBlipsIntoTheirNeighbours) {
  auto xs = series({{{500, 10.0, 1.0}}}, 3);
  xs[300] += 40;
  const auto raw = an::change_points(xs);
  const auto m = an::merge_blips(xs, raw);
  EXPECT_TRUE(m.changes.empty()) << raw.size() << " cuts, the first at " << (raw.empty() ? 0 : raw[0].index);
  EXPECT_EQ(m.outliers, std::vector<std::size_t>{300});

  auto step = series({{{250, 10.0, 1.0}}, {{250, 16.0, 1.0}}}, 4);
  step[400] += 40;
  const auto s = an::merge_blips(step, an::change_points(step));
  ASSERT_EQ(s.changes.size(), 1u);
  EXPECT_NEAR(static_cast<double>(s.changes[0].index), 250.0, 3.0);
  EXPECT_NEAR(s.changes[0].mean_after, 16.0 + 40.0 / 250, 0.3);  // described with the blip merged
  EXPECT_NE(std::find(s.outliers.begin(), s.outliers.end(), 400u), s.outliers.end());

  const auto regime = series({{{200, 10.0, 1.0}}, {{8, 30.0, 1.0}}, {{200, 10.0, 1.0}}}, 5);
  const auto r = an::merge_blips(regime, an::change_points(regime));
  EXPECT_EQ(r.changes.size(), 2u);
  EXPECT_TRUE(r.outliers.empty());

  std::vector<an::ChangePoint> unordered(2);
  unordered[0].index = 5;
  unordered[1].index = 3;
  EXPECT_THROW((void)an::merge_blips(xs, unordered), an::AnalyticsError);
}

// A change of spread alone is told from a change of level.
TEST(AnalyticsChangePoints, TellsAVarianceChangeFromALevelChange) {
  const auto var = series({{{200, 10.0, 0.2}}, {{200, 10.0, 2.0}}}, 6);
  const auto v = an::change_points(var);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(an::is_variance_change(v[0]));
  const auto lvl = series({{{200, 10.0, 1.0}}, {{200, 14.0, 1.0}}}, 6);
  const auto l = an::change_points(lvl);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_FALSE(an::is_variance_change(l[0]));
}
