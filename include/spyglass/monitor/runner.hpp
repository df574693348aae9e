#pragma once
/// Runs a command under the monitor: spawn, sample, enforce limits, collect exact totals.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "spyglass/monitor/record.hpp"
#include "spyglass/monitor/sampler.hpp"

namespace spyglass::inline v0::monitor {

/// How a limit ends the tree.
enum class KillStrategy {
  graceful,   ///< SIGTERM to every process, SIGKILL to what is left after the grace period
  immediate,  ///< SIGKILL to every process at once
};

/// What to run and how to watch it.
struct RunOptions {
  std::vector<std::string> argv;  ///< command and arguments; argv[0] is looked up in PATH
  std::string label;              ///< copied into the record
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);  ///< >= 10 ms
  std::optional<std::chrono::nanoseconds> timeout;
  std::optional<std::uint64_t> max_rss_bytes;  ///< limit on the tree's summed RSS
  std::optional<double> max_cpu_seconds;       ///< limit on the tree's user+system CPU
  KillStrategy kill = KillStrategy::graceful;
  std::chrono::nanoseconds grace = std::chrono::seconds(5);
  std::size_t tail_bytes = 64 * 1024;            ///< how much of stdout/stderr to keep, each
  bool passthrough = true;                       ///< copy the command's output to our stdout/stderr
  bool smaps = false;                            ///< sample PSS/USS too
  std::size_t max_samples = 20000;               ///< beyond this, every other sample is dropped
  std::function<void(const Sample&)> on_sample;  ///< called on the runner's thread
};

/// The outcome of run().
struct RunResult {
  RunRecord record;
  std::vector<Sample> samples;  ///< sample times are CLOCK_MONOTONIC
  std::uint64_t start_mono_ns = 0;
};

/// Returns the exit code for a wait status, as coreutils does: the code, or 128+signal.
SPYGLASS_API int exit_code_from_status(int status) noexcept;

/// Spawns options.argv in its own process group and monitors it until it exits.
///
/// Blocks the calling thread. While it runs, the calling process is a child subreaper, reaps
/// every child it has (so call it from a process that owns no other children, such as the
/// `spyglass` command), and SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in the calling
/// thread and forwarded to the command's process group. When a limit kills the run, no
/// descendant outlives it. A command that cannot be started yields exit code 127 (not
/// found) or 126 (not executable) and the reason in record.error.
SPYGLASS_API RunResult run(const RunOptions& options);

}  // namespace spyglass::inline v0::monitor
