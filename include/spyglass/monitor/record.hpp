#pragma once
/// The record of one monitored run, as `spyglass run` produces it and History stores it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spyglass/monitor/sampler.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

/// A finding of live detection during a run (`spyglass run --detect`): an episode of a
/// spike or of steady growth, reported at its first sample with its strongest point.
struct RunDetection {
  std::int64_t offset_ns = 0;  ///< from the run's start to the episode's strongest sample
  std::string metric;          ///< "cpu" (tree CPU, percent of one core) or "rss" (tree RSS, bytes)
  std::string kind;            ///< "spike" or "leak"
  double value = 0;            ///< the metric at the strongest point
  double score = 0;            ///< z (ewma), modified z (rolling-mad),
                               ///< or growth in bytes per second (growth)
  std::string detector;        ///< "ewma", "rolling-mad" or "growth"
};

/// The limits a run was given (RunOptions), recorded with it so that its page can show
/// what it ran under. An absent limit is none; runs recorded before limits were kept have
/// none and an empty `kill`.
struct RunLimits {
  std::optional<std::int64_t> timeout_ns;      ///< wall time, stopped time included
  std::optional<std::uint64_t> max_rss_bytes;  ///< on the figure RunRecord::max_rss_source names
  std::optional<double> max_cpu_seconds;       ///< the tree's user+system CPU
  std::string kill;                            ///< how a limit ends the tree: "graceful" or "immediate"
  std::optional<std::int64_t> grace_ns;        ///< SIGTERM to SIGKILL (graceful kills, forwarded signals)
};

/// A figure the run recorded itself (see spyglass/run_metric.hpp), normalised to its unit.
struct RunMetric {
  std::string name;  ///< [A-Za-z_][A-Za-z0-9_.]*, at most 64 characters, never a built-in metric's
  double value = 0;  ///< finite; seconds when unit is "s", bytes when "B"
  std::string unit;  ///< "s", "B" or "" (a plain number)
};

/// One run of a command. Plain data; CPU, faults, context switches and read/write bytes
/// are exact kernel totals (wait4) over every process of the tree that was reaped;
/// max_rss_bytes is the kernel's too (see its note); the peak_* values and rchar/wchar
/// come from the samples.
struct RunRecord {
  std::int64_t id = 0;            ///< assigned by History::insert
  std::string label;              ///< groups runs of the same job
  std::string command;            ///< argv[0] as given
  std::vector<std::string> args;  ///< argv[1..]
  std::string cwd;
  std::string host;
  std::string git_commit;          ///< HEAD when run inside a git work tree, else empty
  std::int64_t start_unix_ns = 0;  ///< CLOCK_REALTIME at spawn
  std::int64_t end_unix_ns = 0;
  std::int64_t duration_ns = 0;  ///< monotonic wall time from spawn to exit
  int exit_code = 0;             ///< what `spyglass run` exits with (coreutils conventions)
  int signal = 0;                ///< signal that ended the command, 0 when it exited
  std::string kill_reason;       ///< "timeout", "max-rss", "max-cpu", "SIGINT", "SIGTERM+SIGKILL"... or empty
  std::string error;             ///< spawn failure ("No such file or directory"...) or empty
  std::uint64_t user_cpu_ns = 0;
  std::uint64_t sys_cpu_ns = 0;
  /// Largest single process (as /usr/bin/time); the command's own peak, not counting the
  /// monitor's memory it was forked with, unless RunOptions::exact_peak could not apply.
  std::uint64_t max_rss_bytes = 0;
  std::uint64_t peak_tree_rss_bytes = 0;  ///< largest sampled RSS sum over the tree
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t rchar = 0;
  std::uint64_t wchar = 0;
  std::uint32_t peak_threads = 0;
  std::uint32_t peak_processes = 0;
  std::uint64_t vol_ctx = 0;
  std::uint64_t invol_ctx = 0;
  std::uint64_t minflt = 0;
  std::uint64_t majflt = 0;
  /// Descendants still running once the command had exited and its output was drained
  /// (or, with RunOptions::kill_leftovers, when they were ended).
  std::uint32_t leftover_processes = 0;
  bool leftovers_killed = false;     ///< whether those were ended (RunOptions::kill_leftovers)
  std::uint64_t monitor_cpu_ns = 0;  ///< CPU spent sampling (the monitor's own overhead)
  /// What measured the tree_* figures: "cgroup-v2" or "cgroup-v1" (the kernel's totals for
  /// the command's own cgroup), or "sampled" (peak RSS sum of the samples; CPU and I/O
  /// from wait4 and the samples).
  std::string tree_source = "sampled";
  std::string tree_source_reason;  ///< why no cgroup measured the tree ("" when one did)
  /// The tree's peak memory: a cgroup's peak charge (anonymous memory, page cache and
  /// kernel memory the tree caused, shared pages once), else peak_tree_rss_bytes.
  std::uint64_t tree_peak_memory_bytes = 0;
  std::uint64_t peak_tree_pss_bytes = 0;  ///< largest sampled PSS sum (0 without smaps)
  std::uint64_t tree_user_cpu_ns = 0;     ///< user CPU of the tree (the cgroup's, else user_cpu_ns)
  std::uint64_t tree_sys_cpu_ns = 0;      ///< system CPU of the tree (the cgroup's, else sys_cpu_ns)
  std::uint64_t tree_read_bytes = 0;      ///< block I/O read (the cgroup's, else read_bytes)
  std::uint64_t tree_write_bytes = 0;     ///< block I/O written (the cgroup's, else write_bytes)
  std::uint32_t tree_peak_processes = 0;  ///< pids.peak of the cgroup, else peak_processes
  /// The figure a memory limit was enforced on: "rss", "pss", "cgroup" or "kernel" (see
  /// RssLimitSource); "" without a limit.
  std::string max_rss_source;
  RunLimits limits;  ///< what the run was allowed (the figures above are what it used)
  /// Live detection's findings, in time order (empty when it was off; History::runs()
  /// loads them only with HistoryQuery::with_detections).
  std::vector<RunDetection> detections;
  /// The custom metrics the run recorded, by name (History reads them with every run, in
  /// one query per read).
  std::vector<RunMetric> metrics;
  std::string stdout_tail;  ///< last bytes of the command's stdout
  std::string stderr_tail;  ///< last bytes of the command's stderr
};

/// Appends `r` as a JSON object. Reentrant.
SPYGLASS_API void write_json(const RunRecord& r, std::string& out);
/// Appends `s` as a JSON object; `t0_ns` is subtracted from the sample time. Reentrant.
SPYGLASS_API void write_json(const Sample& s, std::uint64_t t0_ns, std::string& out);

}  // namespace SPYGLASS_NAMESPACE::monitor
