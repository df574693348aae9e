#pragma once
// The reference values of reference.py (SciPy, NumPy, statsmodels), helpers to compare
// with them, and reproducible noise.

#include <gtest/gtest.h>

#include <simdjson.h>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace spyglass_test {

#ifdef REFERENCE_JSON
/// The parsed output of reference.py, which the build ran once (REFERENCE_JSON).
inline simdjson::dom::element reference() {
  static simdjson::dom::parser parser;
  static const simdjson::dom::element root = parser.load(REFERENCE_JSON);
  return root;
}
#endif

/// An array of numbers as a vector.
inline std::vector<double> numbers(simdjson::dom::element e) {
  std::vector<double> v;
  for (simdjson::dom::element x : e.get_array()) v.push_back(double(x));
  return v;
}

/// |actual - expected| <= rel * max(|expected|, tiny): relative agreement.
inline ::testing::AssertionResult near_rel(double actual, double expected, double rel, double tiny = 1e-300) {
  const double tol = rel * std::max(std::fabs(expected), tiny);
  if (std::fabs(actual - expected) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "actual " << actual << " vs expected " << expected << " (relative error "
         << std::fabs(actual - expected) / std::max(std::fabs(expected), tiny) << ", allowed " << rel << ")";
}

/// `n` points of level + normal noise with stddev `sd`, from a fixed generator
/// (Box-Muller on mt19937_64, so the series is the same with every standard library).
inline std::vector<double> noisy(std::size_t n, double level, double sd, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> v;
  for (std::size_t i = 0; i < n; ++i) {
    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = static_cast<double>(rng() >> 11) / 9007199254740992.0;
    v.push_back(level + sd * std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2));
  }
  return v;
}

/// 1e-9 relative: what "exact" means for the statistics.
inline constexpr double kExact = 1e-9;

}  // namespace spyglass_test
