// Change points on series with known shifts.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

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
  // The segmentation alone: whether its permutation test keeps the blip's cuts depends on
  // the draws, and merging is about cuts that were kept.
  const auto raw = an::change_points(xs, {.permutations = 0});
  ASSERT_EQ(raw.size(), 2u);
  const auto m = an::merge_blips(xs, raw);
  EXPECT_TRUE(m.changes.empty()) << raw.size() << " cuts, the first at " << raw[0].index;
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

TEST(AnalyticsChangePoints, EarlyStopOfTheTestKeepsEachCutsPValue) {
  // A low penalty makes candidate cuts in noise as well as at the real shifts. Each cut's
  // test draws its own permutations, and stops only once the cut is sure to be dropped:
  // the cuts kept at alpha 0.05 are exactly those whose p-value is below it when no test
  // stops early (alpha 1), with the same p-values.
  const auto xs = series({{{300, 10.0, 1.0}}, {{200, 10.6, 1.0}}, {{300, 10.0, 3.0}}}, 17);
  const auto all = an::change_points(xs, {.penalty = 4.0, .alpha = 1.0});
  const auto kept = an::change_points(xs, {.penalty = 4.0});
  std::size_t dropped = 0;
  std::vector<std::pair<std::size_t, double>> want;
  for (const auto& c : all) {
    if (c.p_value < 0.05) {
      want.emplace_back(c.index, c.p_value);
    } else {
      ++dropped;
    }
  }
  ASSERT_GE(want.size(), 2u);
  ASSERT_GE(dropped, 1u) << "the series should give a cut the test rejects";
  ASSERT_EQ(kept.size(), want.size());
  for (std::size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i].index, want[i].first) << i;
    EXPECT_EQ(kept[i].p_value, want[i].second) << i;
  }
}

TEST(AnalyticsChangePoints, PermutationsAreSeeded) {
  // The same seed, the same p-values; another seed draws other permutations, and a
  // borderline cut's p-value moves by no more than the test's own sampling error.
  const auto xs = series({{{150, 10.0, 1.0}}, {{150, 10.35, 1.0}}}, 5);
  const an::ChangePointOptions o{.penalty = 2.0, .permutations = 999, .alpha = 1.0};
  const auto a = an::change_points(xs, o);
  const auto b = an::change_points(xs, o);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].p_value, b[i].p_value);
  auto other = o;
  other.seed = 2;
  const auto c = an::change_points(xs, other);
  ASSERT_EQ(c.size(), a.size());
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double p = a[i].p_value, se = std::sqrt(std::max(p * (1 - p), 0.01) / 1000);
    EXPECT_NEAR(c[i].p_value, p, 5 * se) << i;
    differs |= c[i].p_value != p;
  }
  EXPECT_TRUE(differs);
}

namespace {

// The permutation test without any shortcut: every permutation's every cut gets its
// exact gain. The permutations are the library's (splitmix64 from the seed and the cut's
// number, two 32-bit draws per output, Fisher-Yates front to back, in pairs), so the p-values must agree
// exactly with change_points(), whose bounds only skip cuts that cannot reach.
std::vector<double> brute_force_p_values(const std::vector<double>& xs, const std::vector<std::size_t>& cuts,
                                         std::size_t min_seg, std::size_t permutations, std::uint64_t seed) {
  const double mu = an::mean(xs), sd = std::sqrt(an::variance(xs, 0));
  std::vector<double> z;
  for (double x : xs) z.push_back((x - mu) / sd);
  const auto var = [](const std::vector<double>& p1, const std::vector<double>& p2, std::size_t a,
                      std::size_t b) {
    const double n = static_cast<double>(b - a), s = p1[b] - p1[a];
    return std::max((p2[b] - p2[a] - s * s / n) / n, 1e-6);
  };
  const auto sums = [](const std::vector<double>& v, std::vector<double>& p1, std::vector<double>& p2) {
    p1.assign(v.size() + 1, 0.0);
    p2.assign(v.size() + 1, 0.0);
    for (std::size_t i = 0; i < v.size(); ++i) {
      p1[i + 1] = p1[i] + v[i];
      p2[i + 1] = p2[i] + v[i] * v[i];
    }
  };
  std::vector<double> g1, g2, out;
  sums(z, g1, g2);
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    const std::size_t a = i == 0 ? 0 : cuts[i - 1], b = i + 1 == cuts.size() ? z.size() : cuts[i + 1];
    // The observed gain, as the search computes it (from the whole series' sums).
    const auto cost = [&](std::size_t u, std::size_t v) {
      return static_cast<double>(v - u) * std::log(var(g1, g2, u, v));
    };
    double observed = -HUGE_VAL;
    for (std::size_t k = a + min_seg; k + min_seg <= b; ++k)
      observed = std::max(observed, cost(a, b) - cost(a, k) - cost(k, b));
    std::uint64_t state = (seed << 32) ^ i;
    const auto next = [&] {  // splitmix64
      std::uint64_t q = (state += 0x9e3779b97f4a7c15u);
      q = (q ^ (q >> 30)) * 0xbf58476d1ce4e5b9u;
      q = (q ^ (q >> 27)) * 0x94d049bb133111ebu;
      return q ^ (q >> 31);
    };
    const auto below = [&](std::uint32_t r, std::uint64_t n) {  // Lemire's method on 32 bits
      std::uint64_t m = r * n;
      if (static_cast<std::uint32_t>(m) < n) {
        while (static_cast<std::uint32_t>(m) < ((std::uint64_t{1} << 32) - n) % n)
          m = static_cast<std::uint32_t>(next()) * n;
      }
      return static_cast<std::size_t>(m >> 32);
    };
    const std::vector<double> seg(z.begin() + static_cast<std::ptrdiff_t>(a),
                                  z.begin() + static_cast<std::ptrdiff_t>(b));
    std::vector<double> first = seg, second = seg, p1, p2;
    const std::size_t m = seg.size();
    const auto reached = [&](const std::vector<double>& permuted) {
      sums(permuted, p1, p2);
      const double whole = static_cast<double>(m) * std::log(var(p1, p2, 0, m));
      for (std::size_t k = min_seg; k + min_seg <= m; ++k) {
        const double kd = static_cast<double>(k);
        if (whole - kd * std::log(var(p1, p2, 0, k)) -
                (static_cast<double>(m) - kd) * std::log(var(p1, p2, k, m)) >=
            observed)
          return true;
      }
      return false;
    };
    std::size_t extreme = 0;
    // Permutations in pairs, each generator output drawing one place of both (low half
    // first); an odd count leaves the last pair's second unused.
    for (std::size_t r = 0; r < permutations; r += 2) {
      for (std::size_t j = 0; j < m; ++j) {
        const std::uint64_t bits = next();
        const std::size_t ja = j + below(static_cast<std::uint32_t>(bits), m - j);
        const std::size_t jb = j + below(static_cast<std::uint32_t>(bits >> 32), m - j);
        std::swap(first[j], first[ja]);
        std::swap(second[j], second[jb]);
      }
      extreme += reached(first) ? 1u : 0u;
      if (r + 1 < permutations) extreme += reached(second) ? 1u : 0u;
    }
    out.push_back(static_cast<double>(extreme + 1) / static_cast<double>(permutations + 1));
  }
  return out;
}

}  // namespace

TEST(AnalyticsChangePoints, BoundsSkipOnlyCutsThatCannotReach) {
  // Borderline cuts (some permutations as extreme) and clear ones, long enough for the
  // blocks of cuts the bound skips at once: p-values equal to every cut's exact gain.
  const auto xs =
      series({{{400, 10.0, 1.0}}, {{300, 10.25, 1.0}}, {{500, 10.0, 1.6}}, {{300, 13.0, 1.0}}}, 29);
  const auto cps = an::change_points(xs, {.penalty = 3.0, .alpha = 1.0});
  ASSERT_GE(cps.size(), 3u);
  std::vector<std::size_t> cuts;
  for (const auto& c : cps) cuts.push_back(c.index);
  const auto want = brute_force_p_values(xs, cuts, 5, 199, 1);
  bool borderline = false;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    EXPECT_EQ(cps[i].p_value, want[i]) << cps[i].index;
    borderline |= want[i] > 0.05;
  }
  EXPECT_TRUE(borderline) << "the series should have a cut that permutations reach";
}

TEST(AnalyticsChangePoints, BoundsSkipOnlyCutsThatCannotReachInShortSeries) {
  // Alert windows: a few dozen runs, the shift near either end, where the blocks of cuts
  // are a handful each; from clear shifts to ones permutations often reach.
  std::size_t compared = 0, borderline = 0, clear = 0;
  for (std::uint64_t seed = 1; seed <= 80; ++seed) {
    const double n = 30.0 + static_cast<double>(seed % 4 * 10), tail = 5.0 + static_cast<double>(seed % 3);
    const double shift = 0.5 + 0.25 * static_cast<double>(seed % 8);
    const auto xs = seed % 2 == 0 ? series({{{n - tail, 10.0, 1.0}}, {{tail, 10.0 + shift, 1.0}}}, seed)
                                  : series({{{tail, 10.0 + shift, 1.0}}, {{n - tail, 10.0, 1.0}}}, seed);
    const auto cps = an::change_points(xs, {.alpha = 1.0});
    std::vector<std::size_t> cuts;
    for (const auto& c : cps) cuts.push_back(c.index);
    const auto want = brute_force_p_values(xs, cuts, 5, 199, 1);
    for (std::size_t i = 0; i < cps.size(); ++i, ++compared) {
      EXPECT_EQ(cps[i].p_value, want[i]) << seed;
      borderline += want[i] > 0.05 ? 1u : 0u;
      clear += want[i] < 0.01 ? 1u : 0u;
    }
  }
  EXPECT_GE(compared, 40u);
  EXPECT_GE(borderline, 3u);
  EXPECT_GE(clear, 3u);
}
