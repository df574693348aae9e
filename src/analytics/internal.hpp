#pragma once
// Helpers shared by the analytics sources (not installed).

#include <span>
#include <string>
#include <vector>

#include "spyglass/monitor/analytics.hpp"

namespace SPYGLASS_NAMESPACE::analytics::detail {

/// Throws AnalyticsError naming `what` unless `xs` has `min_size` points, all finite.
void require_finite(std::span<const double> xs, const char* what, std::size_t min_size);
/// Throws AnalyticsError naming `what` unless both series have the same length.
void require_same_size(std::span<const double> a, std::span<const double> b, const char* what);
/// A sorted copy.
std::vector<double> sorted(std::span<const double> xs);
/// NumPy's linear quantile of an already sorted, non-empty vector.
double sorted_quantile(const std::vector<double>& v, double q);
/// The same of a non-empty vector in any order, by selection (O(n)); rearranges `v`.
double select_quantile(std::vector<double>& v, double q);
/// `v` with `digits` significant digits (%g).
std::string format_number(double v, int digits);

/// The spread a score divides by when the reference has none (all its points equal, a
/// flat past): 1% of the centre's magnitude, or 1 when the centre is 0 as well. The score
/// stays finite and says how far the point is from the flat level in hundredths of it, so
/// a point 5% off scores 5.
double flat_spread(double centre);

/// A reference sample reduced to what a method scores against: centre (lo == hi) or
/// quartiles, and the spread that divides the distance.
struct Reference {
  Reference(std::span<const double> xs, AnomalyMethod m);
  /// Signed score of `x`; with a spread of 0, divided by flat_spread() of the centre.
  [[nodiscard]] double score(double x) const;
  AnomalyMethod method;
  double lo = 0, hi = 0, spread = 0;
};

}  // namespace SPYGLASS_NAMESPACE::analytics::detail
