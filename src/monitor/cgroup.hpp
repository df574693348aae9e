#pragma once
// A cgroup of its own for one monitored command, so that the kernel accounts the whole
// tree exactly (peak memory, CPU, I/O, process count) and can enforce a memory limit;
// private to the monitor.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

/// The kernel's totals for the cgroup. Figures a controller does not offer stay 0 and
/// their `has_*` flag false.
struct CgroupTotals {
  std::uint64_t peak_memory_bytes = 0;  ///< memory.peak / memory.max_usage_in_bytes
  std::uint64_t user_cpu_ns = 0, sys_cpu_ns = 0;
  std::uint64_t read_bytes = 0, write_bytes = 0;
  std::uint32_t peak_pids = 0;
  std::uint64_t oom_kills = 0;
  bool has_cpu = false, has_io = false, has_pids = false;
};

/// A child cgroup of the caller's own, created for one run and removed by the destructor.
///
/// cgroup v2 is used when its hierarchy has the memory controller (and memory.peak, Linux
/// 5.19), else cgroup v1 when a memory hierarchy is mounted (cpuacct and pids are used
/// when mounted too; v1 has no I/O figure to use). Whatever fails leaves an inactive object whose reason()
/// says why; the caller then samples instead.
class Cgroup {
 public:
  Cgroup() = default;
  /// Creates the cgroup: spyglass-PID-N below the caller's own in each hierarchy it uses.
  static Cgroup create();
  /// An inactive cgroup with `reason`.
  static Cgroup none(std::string reason);

  Cgroup(Cgroup&& o) noexcept;
  Cgroup& operator=(Cgroup&& o) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup() { remove(); }

  [[nodiscard]] bool active() const noexcept { return !dirs_.empty(); }
  /// "cgroup-v2", "cgroup-v1", or "sampled" when inactive.
  [[nodiscard]] const char* source() const noexcept;
  /// Why the cgroup is inactive ("" when active).
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

  /// Sets the kernel's hard memory limit of the tree (no swap beyond it; on v2 an OOM
  /// kill ends the whole cgroup). False with `why` when it cannot.
  bool limit_memory(std::uint64_t bytes, std::string& why);
  /// Moves `pid` (forked, not yet exec'd) into the cgroup. When that fails the cgroup is
  /// removed (reason() says why) and false is returned.
  bool place(pid_t pid);
  /// The current totals; after the tree has gone, the final ones.
  [[nodiscard]] CgroupTotals read() const;
  /// The peak memory so far (one small read).
  [[nodiscard]] std::uint64_t peak_memory() const;
  /// OOM kills in the cgroup so far (one small read).
  [[nodiscard]] std::uint64_t oom_kills() const;
  /// Sends `sig` to every process in the cgroup.
  void signal_all(int sig) const;
  /// Moves what is left in the cgroup back to the caller's cgroups and removes it.
  void remove();

 private:
  struct Dir {
    std::string path;    ///< the cgroup's directory
    std::string parent;  ///< the caller's cgroup in the same hierarchy
  };
  int version_ = 0;
  std::vector<Dir> dirs_;                 ///< v2: one; v1: memory first, then cpuacct, pids
  std::string memory_, cpu_, io_, pids_;  ///< directories with each controller's files
  std::string reason_;
};

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
