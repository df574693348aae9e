#pragma once
// The reference values of reference.py (SciPy, NumPy, statsmodels) and helpers to
// compare with them.

#include <gtest/gtest.h>

#include <simdjson.h>
#include <cmath>
#include <string>
#include <vector>

namespace spyglass_test {

/// The parsed output of reference.py, which the build ran once (REFERENCE_JSON).
inline simdjson::dom::element reference() {
  static simdjson::dom::parser parser;
  static const simdjson::dom::element root = parser.load(REFERENCE_JSON);
  return root;
}

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

/// 1e-9 relative: what "exact" means for the statistics.
inline constexpr double kExact = 1e-9;

}  // namespace spyglass_test
