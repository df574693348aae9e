#pragma once
// Human-readable output of the spyglass command: sizes, durations, summaries, charts.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "spyglass/monitor/record.hpp"

namespace SPYGLASS_NAMESPACE::cli {

std::string format_bytes(std::uint64_t bytes);
std::string format_seconds(double seconds);
std::string format_time(std::int64_t unix_ns);
/// `v` with `digits` significant digits (printf %g).
std::string format_number(double v, int digits = 4);
/// `v` in `unit`: "s" as a duration, "B" or "bytes" as a size, else a plain number (6
/// significant digits).
std::string unit_value_text(const std::string& unit, double v);
/// A fraction as a signed percentage: 0.25 -> "+25%".
std::string format_change(double fraction);

/// How a run ended when it did not end by itself: "failed to start: ...", "killed (timeout)",
/// "signal 9"; empty when it exited (whatever its code).
std::string outcome(const monitor::RunRecord& r);

/// The lines printed after a run: totals, descendants left running (`leftover_pids`), and
/// the comparison with `baseline`.
std::string run_summary(const monitor::RunRecord& r, const std::vector<monitor::RunRecord>& baseline,
                        const std::vector<pid_t>& leftover_pids = {});

/// One sparkline row per metric over time, `width` columns.
std::string sample_chart(const std::vector<monitor::Sample>& samples, std::size_t width);

/// The table `spyglass history` prints.
std::string history_table(const std::vector<monitor::RunRecord>& runs);

/// The limits `r` ran under in one line ("timeout 5.00 s, max RSS 500.0 MiB on rss; kill
/// graceful, grace 5.00 s"), "none", or "none recorded" for a run recorded without them.
std::string limits_text(const monitor::RunRecord& r);

/// The details `spyglass show` prints (without the chart).
std::string run_details(const monitor::RunRecord& r);

}  // namespace SPYGLASS_NAMESPACE::cli
