#pragma once
// `spyglass evaluate`: the detectors scored on labelled synthetic series.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// Options of `spyglass evaluate`.
struct EvaluateOptions {
  std::uint64_t seed = 1;     ///< of the generated series
  std::size_t per_kind = 20;  ///< series of each kind
  std::size_t length = 1000;  ///< points per series (before missing points are dropped)
  std::vector<std::string> methods = {"mad", "ewma", "zscore", "iqr"};  ///< detect methods scored
};

/// The table (or JSON) of precision, recall and F1 per method, overall and per kind.
std::string evaluate_report(const EvaluateOptions& o, bool json);

}  // namespace SPYGLASS_NAMESPACE::cli
