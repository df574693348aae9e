#pragma once
// Parsers of /proc text, free of I/O so that tests and fuzzers can call them on any
// input; private to the monitor.

#include <sys/types.h>

#include <charconv>
#include <cstdint>
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

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
