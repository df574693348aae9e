#pragma once
// Parsers of /proc text, free of I/O so that tests and fuzzers can call them on any
// input; private to the monitor.

#include <sys/types.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

/// Parses the leading unsigned decimal of `s` (after spaces/tabs); 0 when there is none.
inline std::uint64_t parse_u64(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  std::uint64_t v = 0;
  std::from_chars(s.data() + i, s.data() + s.size(), v);
  return v;
}

/// Value of the line "`key` N" in a "key: value" /proc file; `key` includes the colon and
/// must match at the start of a line. 0 when absent.
inline std::uint64_t field_u64(std::string_view text, std::string_view key) noexcept {
  std::size_t pos = 0;
  while ((pos = text.find(key, pos)) != std::string_view::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return parse_u64(text.substr(pos + key.size()));
    pos += key.size();
  }
  return 0;
}

/// The fields of /proc/PID/stat the monitor uses.
struct StatFields {
  pid_t ppid = 0;
  pid_t pgrp = 0;
  std::uint64_t minflt = 0, cminflt = 0, majflt = 0, cmajflt = 0;
  std::uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;
  std::uint64_t threads = 0, starttime = 0, vsize = 0, rss_pages = 0;
};

/// Parses /proc/PID/stat into `f`. The command name sits in parentheses and may contain
/// anything (spaces, ')', newlines), so fields are counted from the last ')'. False when
/// the text is not a stat line (fields are then partly filled).
inline bool parse_stat(std::string_view s, StatFields& f) {
  const auto rp = s.rfind(')');
  if (rp == std::string_view::npos) return false;
  s.remove_prefix(rp + 1);
  int field = 2;  // the ')' ends field 2
  std::size_t i = 0;
  while (i < s.size() && field < 24) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\n') ++j;
    ++field;
    const std::string_view tok = s.substr(i, j - i);
    // cutime/cstime are signed in the kernel's format; negative values never occur in
    // practice and are clamped to 0 by parse_u64 failing on the '-'.
    switch (field) {
      case 4: f.ppid = static_cast<pid_t>(parse_u64(tok)); break;
      case 5: f.pgrp = static_cast<pid_t>(parse_u64(tok)); break;
      case 10: f.minflt = parse_u64(tok); break;
      case 11: f.cminflt = parse_u64(tok); break;
      case 12: f.majflt = parse_u64(tok); break;
      case 13: f.cmajflt = parse_u64(tok); break;
      case 14: f.utime = parse_u64(tok); break;
      case 15: f.stime = parse_u64(tok); break;
      case 16: f.cutime = parse_u64(tok); break;
      case 17: f.cstime = parse_u64(tok); break;
      case 20: f.threads = parse_u64(tok); break;
      case 22: f.starttime = parse_u64(tok); break;
      case 23: f.vsize = parse_u64(tok); break;
      case 24: f.rss_pages = parse_u64(tok); break;
      default: break;
    }
    i = j;
  }
  return field >= 24;
}

/// The state letter of a /proc/PID/stat line ('R', 'S', 'D', 'Z', ...): the field after
/// the last ')'. 0 when the text has none.
inline char stat_state(std::string_view s) noexcept {
  const auto rp = s.rfind(')');
  if (rp == std::string_view::npos || rp + 2 >= s.size()) return 0;
  return s[rp + 2];
}

/// Calls f(name) for each entry of a getdents64 buffer of `n` bytes (linux_dirent64: ino 8,
/// off 8, reclen 2, type 1, then the NUL-terminated name). A record that is too short,
/// runs past the buffer or has no NUL in it ends the walk.
template <typename F>
void for_each_dirent64(const char* buf, std::size_t n, F&& f) {
  constexpr std::size_t kName = 19;
  for (std::size_t off = 0; off + kName < n;) {
    unsigned short reclen = 0;
    std::memcpy(&reclen, buf + off + 16, sizeof reclen);
    if (reclen <= kName || reclen > n - off) return;
    const char* name = buf + off + kName;
    if (std::memchr(name, 0, reclen - kName) == nullptr) return;
    f(name);
    off += reclen;
  }
}

/// Appends every decimal number in `s` (a /proc/PID/task/TID/children list) to `out`.
inline void parse_pids(std::string_view s, std::vector<pid_t>& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] < '0' || s[i] > '9')) ++i;
    if (i >= s.size()) break;
    std::size_t j = i;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    out.push_back(static_cast<pid_t>(parse_u64(s.substr(i, j - i))));
    i = j;
  }
}

/// Sum over the lines of a cgroup v2 io.stat ("MAJ:MIN rbytes=N wbytes=N ...") of the
/// value after `key` ("rbytes=", "wbytes="), one per device.
inline std::uint64_t sum_io_stat(std::string_view text, std::string_view key) noexcept {
  std::uint64_t sum = 0;
  for (std::size_t pos = 0; (pos = text.find(key, pos)) != std::string_view::npos; pos += key.size()) {
    if (pos == 0 || text[pos - 1] == ' ') sum += parse_u64(text.substr(pos + key.size()));
  }
  return sum;
}

/// Whether the space-separated list `list` ("cpu io memory pids") or comma-separated one
/// ("rw,cpu,cpuacct") holds `word`.
inline bool has_word(std::string_view list, std::string_view word) noexcept {
  for (std::size_t i = 0; i <= list.size();) {
    std::size_t j = i;
    while (j < list.size() && list[j] != ' ' && list[j] != ',' && list[j] != '\n') ++j;
    if (list.substr(i, j - i) == word) return true;
    i = j + 1;
  }
  return false;
}

/// From /proc/PID/cgroup, the path of the process's cgroup in the hierarchy that holds
/// `controller` ("memory"), or in the cgroup v2 hierarchy (the "0::" line) when
/// `controller` is empty. False when there is no such line.
inline bool cgroup_path(std::string_view text, std::string_view controller, std::string& path) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const auto c1 = line.find(':');
    const auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, c1), list = line.substr(c1 + 1, c2 - c1 - 1);
    if (controller.empty() ? (id == "0" && list.empty()) : has_word(list, controller)) {
      path = std::string(line.substr(c2 + 1));
      return true;
    }
  }
  return false;
}

/// A cgroup file system mount from /proc/self/mountinfo.
struct CgroupMount {
  std::string root;   ///< the cgroup the mount shows at its top ("/" unless namespaced)
  std::string point;  ///< where it is mounted
};

/// Finds in /proc/self/mountinfo the cgroup v1 mount whose options hold `controller`, or
/// the cgroup2 mount when `controller` is empty. Mount points with escaped characters
/// (a space is "\040") are skipped.
inline bool find_cgroup_mount(std::string_view text, std::string_view controller, CgroupMount& m) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    std::string_view f[6];
    std::size_t i = 0, n = 0;
    for (; n < 6 && i < line.size(); ++n) {
      const auto sp = line.find(' ', i);
      f[n] = line.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
      i = sp == std::string_view::npos ? line.size() : sp + 1;
    }
    const auto dash = line.find(" - ");
    if (n < 6 || dash == std::string_view::npos) continue;
    std::string_view tail = line.substr(dash + 3);
    const auto s1 = tail.find(' ');
    const std::string_view fstype = tail.substr(0, s1);
    const auto s2 = s1 == std::string_view::npos ? s1 : tail.find(' ', s1 + 1);
    const std::string_view super = s2 == std::string_view::npos ? std::string_view() : tail.substr(s2 + 1);
    const bool match =
        controller.empty() ? fstype == "cgroup2" : fstype == "cgroup" && has_word(super, controller);
    if (!match || f[3].find('\\') != std::string_view::npos || f[4].find('\\') != std::string_view::npos) {
      continue;
    }
    m.root = std::string(f[3]);
    m.point = std::string(f[4]);
    return true;
  }
  return false;
}

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
