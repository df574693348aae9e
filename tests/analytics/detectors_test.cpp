// Streaming detectors: each point judged against its past only.

#include "spyglass/monitor/detectors.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "reference.hpp"

namespace an = spyglass::analytics;
using spyglass_test::kExact;
using spyglass_test::near_rel;
using spyglass_test::noisy;
using spyglass_test::numbers;
using spyglass_test::reference;

namespace {

template <class D>
std::vector<std::size_t> flagged(D det, const std::vector<double>& xs) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (det.update(xs[i]).anomaly) out.push_back(i);
  }
  return out;
}

}  // namespace

TEST(AnalyticsDetectors, RollingMadMatchesSciPyOnThePastWindow) {
  const auto ref = reference();
  const auto xs = numbers(ref["rolling"]);
  an::RollingMadDetector det({.window = 30, .threshold = 3.5, .warmup = 10});
  std::size_t i = 0;
  for (simdjson::dom::element want : ref["rolling_scores"].get_array()) {
    const auto d = det.update(xs[i]);
    if (want.is_null()) {
      EXPECT_FALSE(d.ready) << i;
    } else {
      ASSERT_TRUE(d.ready) << i;
      EXPECT_TRUE(near_rel(d.score, double(want), kExact, 1e-12)) << i;
      EXPECT_EQ(d.anomaly, std::fabs(double(want)) > 3.5) << i;
    }
    ++i;
  }
  EXPECT_EQ(i, xs.size());
}

TEST(AnalyticsDetectors, EwmaFlagsSpikesOnly) {
  auto xs = noisy(400, 50.0, 2.0, 5);
  xs[100] += 30;
  xs[101] += 25;  // a second spike right after the first is still seen
  xs[300] -= 30;
  EXPECT_EQ(flagged(an::EwmaDetector{}, xs), (std::vector<std::size_t>{100, 101, 300}));
  EXPECT_TRUE(flagged(an::EwmaDetector{}, noisy(2000, 50.0, 2.0, 6)).size() <= 2);
}

TEST(AnalyticsDetectors, EwmaAdoptsANewLevel) {
  auto xs = noisy(200, 10.0, 1.0, 8);
  for (std::size_t i = 100; i < xs.size(); ++i) xs[i] += 20;
  const auto f = flagged(an::EwmaDetector{}, xs);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f.front(), 100u);
  EXPECT_LT(f.back(), 160u);  // the shifted level becomes normal again
}

TEST(AnalyticsDetectors, NoLookAhead) {
  // Changing the future changes no verdict about the past.
  const auto a = noisy(300, 5.0, 1.0, 9);
  auto b = a;
  for (std::size_t i = 150; i < b.size(); ++i) b[i] = 1000.0 - b[i];
  an::EwmaDetector ea, eb;
  an::RollingMadDetector ma, mb;
  for (std::size_t i = 0; i < 150; ++i) {
    const auto x = ea.update(a[i]), y = eb.update(b[i]);
    EXPECT_EQ(x.score, y.score);
    EXPECT_EQ(ma.update(a[i]).score, mb.update(b[i]).score);
  }
}

TEST(AnalyticsDetectors, GrowthFindsALeakAndNotNoise) {
  // RSS in MiB sampled every 0.5 s: flat and noisy for a minute, then growing 0.5 MiB/s.
  const auto noise = noisy(600, 0.0, 2.0, 10);
  an::GrowthDetector leak({.window = 30});
  std::optional<double> first;
  for (std::size_t i = 0; i < noise.size(); ++i) {
    const double t = 1764547200.0 + 0.5 * static_cast<double>(i);  // epoch seconds
    const double grow = i < 120 ? 0.0 : 0.5 * (0.5 * static_cast<double>(i - 120));
    const auto d = leak.update(t, 100.0 + grow + noise[i]);
    if (d.anomaly && !first) first = 0.5 * static_cast<double>(i);
  }
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(*first, 60.0);   // not before the growth starts
  EXPECT_LT(*first, 130.0);  // and within about two windows of it
  EXPECT_NEAR(leak.fit().slope, 0.5, 0.05);

  an::GrowthDetector flat({.window = 30});
  for (std::size_t i = 0; i < noise.size(); ++i) {
    EXPECT_FALSE(flat.update(0.5 * static_cast<double>(i), 100.0 + noise[i]).anomaly) << i;
  }
}

TEST(AnalyticsDetectors, BadInput) {
  EXPECT_THROW(an::EwmaDetector({.alpha = 0}), an::AnalyticsError);
  EXPECT_THROW(an::RollingMadDetector({.window = 10, .threshold = 3.5, .warmup = 20}), an::AnalyticsError);
  an::EwmaDetector e;
  EXPECT_THROW(e.update(NAN), an::AnalyticsError);
  an::GrowthDetector g;
  g.update(10, 1);
  EXPECT_THROW(g.update(10, 2), an::AnalyticsError);  // time did not advance
  EXPECT_NO_THROW(g.update(11, 2));                   // and the detector still works
}
