#pragma once
// Small helpers for reading /proc files; private to the monitor.

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "proc_parse.hpp"
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
/// A /proc file fills a read as far as it has content, so a read shorter than asked for
/// is its end: one system call per file in the usual case, not two.
inline bool pread_all(int fd, std::string& buf) {
  if (buf.size() < 4096) buf.resize(4096);
  std::size_t n = 0;
  for (;;) {
    if (n == buf.size()) buf.resize(buf.size() * 2);
    const std::size_t want = buf.size() - n;
    const ssize_t r = ::pread(fd, buf.data() + n, want, static_cast<off_t>(n));
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    n += static_cast<std::size_t>(r);
    if (static_cast<std::size_t>(r) < want) break;
  }
  buf.resize(n);
  return true;
}

/// A struct timeval (rusage times) in nanoseconds.
inline std::uint64_t tv_ns(const timeval& tv) noexcept {
  return static_cast<std::uint64_t>(tv.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(tv.tv_usec) * 1000ULL;
}

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
