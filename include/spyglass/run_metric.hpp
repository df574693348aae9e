#pragma once
/// Per-run custom metrics: a program run under `spyglass run` records figures of its own
/// ("items_per_s 1234.5") that the history keeps beside the run's built-in metrics.

#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// The environment variable `spyglass run` sets to the file a run's metrics are appended to.
inline constexpr const char* kRunMetricsEnv = "SPYGLASS_METRICS_FILE";

/// Appends the line `name value [unit]` to the current run's metrics file. One write(2) of
/// the whole line to a file opened with O_APPEND, so lines from several threads and forked
/// processes never interleave. `unit` is empty or one of s, ms, us, ns, B, KiB, MiB, GiB,
/// kB, MB, GB. Returns false (and does nothing) when not run under `spyglass run`, when the
/// name, value or unit cannot make a valid line, or when the write fails. Not on the hot
/// path: it opens the file each call.
SPYGLASS_API bool record_run_metric(std::string_view name, double value, std::string_view unit = {});

}  // namespace SPYGLASS_NAMESPACE
