#pragma once
// Small helpers for reading /proc files; private to the monitor.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

/// An owned file descriptor.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

inline Fd open_ro(const char* path, int extra = 0) noexcept {
  return Fd(::open(path, O_RDONLY | O_CLOEXEC | extra));
}

/// Reads the whole file from offset 0 with pread (procfs regenerates the content), into
/// `buf` (grown as needed). Returns false when the read fails (e.g. the process is gone).
inline bool pread_all(int fd, std::string& buf) {
  if (buf.size() < 4096) buf.resize(4096);
  std::size_t n = 0;
  for (;;) {
    if (n == buf.size()) buf.resize(buf.size() * 2);
    const ssize_t r = ::pread(fd, buf.data() + n, buf.size() - n, static_cast<off_t>(n));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
  }
  buf.resize(n);
  return true;
}

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

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
