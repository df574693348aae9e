// CPU time of threads of this process, by thread name, for the per-event cost of the
// collector's and the stages' threads (named sg-collector and sg-<exporter>).
#pragma once

#include <time.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace bench {

/// CPU time (ns) of the calling thread.
inline std::uint64_t this_thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// CPU time (ns) of the thread `tid` of this process: the kernel's per-thread CPU clock,
/// addressed by thread id (the clockid encoding glibc's pthread_getcpuclockid uses:
/// ~tid << 3 | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED), so no pthread_t is needed.
inline std::uint64_t thread_cpu_ns(pid_t tid) {
  const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6U);
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Summed CPU time (ns) of this process's threads named `name` (/proc/self/task/*/comm).
inline std::uint64_t named_threads_cpu_ns(std::string_view name) {
  std::uint64_t total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != name) continue;
    total += thread_cpu_ns(static_cast<pid_t>(std::stol(task.path().filename().string())));
  }
  return total;
}

}  // namespace bench
