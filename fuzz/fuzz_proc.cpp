// The monitor's /proc and cgroup file parsers never crash or over-read on any text; and a stat line parses
// to its numbers whatever the command name in it holds (spaces, ')', newlines), since the
// name is the only field a process controls.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proc_parse.hpp"

namespace d = spyglass::monitor::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy, so that AddressSanitizer sees a read one past the end.
  auto buf = std::make_unique<char[]>(size == 0 ? 1 : size);
  if (size != 0) std::memcpy(buf.get(), data, size);
  const std::string_view in(buf.get(), size);

  d::StatFields any;
  (void)d::parse_stat(in, any);
  std::vector<pid_t> pids;
  d::parse_pids(in, pids);
  if (pids.size() > size) std::abort();  // at most one number per byte
  (void)d::stat_state(in);
  std::size_t names = 0;
  d::for_each_dirent64(in.data(), in.size(), [&](const char* name) {
    if (name < in.data() || name >= in.data() + in.size()) std::abort();
    ++names;
  });
  if (names > size / 20) std::abort();  // a record is at least 20 bytes
  (void)d::field_u64(in, "VmHWM:");
  (void)d::parse_u64(in);
  (void)d::sum_io_stat(in, "rbytes=");
  (void)d::has_word(in, "memory");
  std::string path;
  (void)d::cgroup_path(in, "memory", path);
  (void)d::cgroup_path(in, "", path);
  d::CgroupMount m;
  (void)d::find_cgroup_mount(in, "memory", m);
  (void)d::find_cgroup_mount(in, "", m);

  const std::string line = "4242 (" + std::string(in) +
                           ") S 7 9 9 0 -1 4194560 11 12 13 14 15 16 17 18 20 0 3 0 19 "
                           "8192 21 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  d::StatFields f;
  if (!d::parse_stat(line, f)) std::abort();
  if (f.ppid != 7 || f.pgrp != 9 || f.minflt != 11 || f.cminflt != 12 || f.majflt != 13 || f.cmajflt != 14 ||
      f.utime != 15 || f.stime != 16 || f.cutime != 17 || f.cstime != 18 || f.threads != 3 ||
      f.starttime != 19 || f.vsize != 8192 || f.rss_pages != 21) {
    std::abort();
  }
  return 0;
}
