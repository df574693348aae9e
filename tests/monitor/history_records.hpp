#pragma once
// Runs and samples the history tests store, with every field set.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "spyglass/monitor/record.hpp"

namespace history_test {

namespace mon = spyglass::monitor;

inline mon::RunRecord make_run(const std::string& label, std::int64_t start_ns, int exit_code = 0) {
  mon::RunRecord r;
  r.label = label;
  r.command = "/bin/prog";
  r.args = {"--flag", "with \"quotes\"", "ünïcode"};
  r.cwd = "/work";
  r.host = "box";
  r.git_commit = "0123456789abcdef0123456789abcdef01234567";
  r.start_unix_ns = start_ns;
  r.end_unix_ns = start_ns + 1500000000;
  r.duration_ns = 1500000000;
  r.exit_code = exit_code;
  r.user_cpu_ns = 1200000000;
  r.sys_cpu_ns = 300000000;
  r.max_rss_bytes = 64u << 20;
  r.peak_tree_rss_bytes = 80u << 20;
  r.read_bytes = 4096;
  r.write_bytes = 1u << 20;
  r.rchar = 123;
  r.wchar = 456;
  r.peak_threads = 5;
  r.peak_processes = 2;
  r.vol_ctx = 10;
  r.invol_ctx = 3;
  r.minflt = 1000;
  r.majflt = 1;
  r.monitor_cpu_ns = 5000000;
  r.stdout_tail = "out\n";
  r.stderr_tail = "err\n";
  return r;
}

inline std::vector<mon::Sample> make_samples(std::size_t n, std::uint64_t t0) {
  std::vector<mon::Sample> v;
  for (std::size_t i = 0; i < n; ++i) {
    mon::Sample s;
    s.t_ns = t0 + i * 100000000;
    s.processes = 2;
    s.threads = 5;
    s.fds = 7;
    s.cpu_user_ns = i * 1000;
    s.cpu_user_pct = 50.5;
    s.rss_bytes = (i + 1) << 20;
    v.push_back(s);
  }
  return v;
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace history_test
