#pragma once
/// Process-tree sampling from /proc: CPU, memory, I/O, threads, fds, context switches and
/// page faults of a process and all of its descendants.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

/// One observation of a whole process tree. Counters named "cumulative" only grow: work
/// of processes that exited between two samples stays counted (through their parents'
/// child accounting, or their last observed values).
struct Sample {
  std::uint64_t t_ns = 0;         ///< CLOCK_MONOTONIC time of the sample
  std::uint32_t processes = 0;    ///< live processes in the tree
  std::uint32_t threads = 0;      ///< threads over the tree
  std::uint32_t fds = 0;          ///< open file descriptors over the tree
  std::uint64_t cpu_user_ns = 0;  ///< cumulative user CPU time
  std::uint64_t cpu_sys_ns = 0;   ///< cumulative system CPU time
  double cpu_user_pct = 0;        ///< user CPU since the previous sample; 100 = one core
  double cpu_sys_pct = 0;         ///< system CPU since the previous sample; 100 = one core
  std::uint64_t rss_bytes = 0;    ///< resident set size, summed over the tree
  std::uint64_t vms_bytes = 0;    ///< virtual size, summed over the tree
  std::uint64_t pss_bytes = 0;    ///< proportional set size (0 unless smaps is enabled)
  std::uint64_t uss_bytes = 0;    ///< unique set size (0 unless smaps is enabled)
  std::uint64_t read_bytes = 0;   ///< cumulative bytes read from storage
  std::uint64_t write_bytes = 0;  ///< cumulative bytes caused to be written to storage
  std::uint64_t rchar = 0;        ///< cumulative bytes passed to read-like syscalls
  std::uint64_t wchar = 0;        ///< cumulative bytes passed to write-like syscalls
  std::uint64_t vol_ctx = 0;      ///< cumulative voluntary context switches
  std::uint64_t invol_ctx = 0;    ///< cumulative involuntary context switches
  std::uint64_t minflt = 0;       ///< cumulative minor page faults
  std::uint64_t majflt = 0;       ///< cumulative major page faults
};

/// What a Sampler reads besides the always-present counters.
struct SamplerOptions {
  /// Read /proc/PID/smaps_rollup for PSS and USS. Costs a page-table walk per process.
  bool smaps = false;
  /// Follow descendants; false samples the single process only.
  bool tree = true;
};

/// Samples a process tree from /proc, keeping each process's /proc files open and
/// re-reading them with pread(2).
///
/// Not thread-safe: one thread calls sample() at a time. Different Sampler objects are
/// independent. Descendants that are orphaned are followed only while they stay in the
/// tree (when the sampled root is a child subreaper, they do).
class SPYGLASS_API Sampler {
 public:
  /// Samples `pid` and (when options.tree) its descendants. `pid` may be the caller.
  explicit Sampler(pid_t pid, SamplerOptions options = {});
  /// Samples every descendant of the calling process, but not the caller itself. Work
  /// of children the caller has reaped is taken from getrusage(RUSAGE_CHILDREN) (counted
  /// from this call on), so none of it is lost.
  static Sampler children_of_self(SamplerOptions options = {});

  Sampler(Sampler&&) noexcept;
  Sampler& operator=(Sampler&&) noexcept;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  ~Sampler();

  /// Takes one sample. A root that has exited yields a sample with processes == 0 and
  /// the cumulative counters kept from before.
  Sample sample();

  /// The pids seen by the last sample() (root first when it is included).
  [[nodiscard]] std::span<const pid_t> pids() const noexcept;

  /// CPU time the calling thread spent inside sample(), summed over all calls; the
  /// monitor's own overhead.
  [[nodiscard]] std::uint64_t own_cpu_ns() const noexcept;

  /// Number of sample() calls so far.
  [[nodiscard]] std::uint64_t samples_taken() const noexcept;

 private:
  struct Impl;
  explicit Sampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace SPYGLASS_NAMESPACE::monitor
