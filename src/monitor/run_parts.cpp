#include "run_parts.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "cgroup.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/monitor/sampler.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

SignalScope::SignalScope(const sigset_t& watched) {
  sigset_t block = watched;
  sigaddset(&block, SIGTTOU);  // lets us take the terminal back from the command's group
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask_);
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe_);
  ::sigaction(SIGCHLD, nullptr, &old_chld_);
  reset_chld_ = old_chld_.sa_handler == SIG_IGN || (old_chld_.sa_flags & SA_NOCLDWAIT) != 0;
  if (reset_chld_) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, nullptr);
  }
  sfd_ = Fd(::signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK));
  ::prctl(PR_GET_CHILD_SUBREAPER, &old_subreaper_, 0, 0, 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

SignalScope::~SignalScope() {
  ::prctl(PR_SET_CHILD_SUBREAPER, old_subreaper_, 0, 0, 0);
  while (next() != 0) {
  }
  ::sigaction(SIGPIPE, &old_pipe_, nullptr);
  if (reset_chld_) ::sigaction(SIGCHLD, &old_chld_, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

int SignalScope::next() {
  signalfd_siginfo si;
  if (!sfd_.valid() || ::read(sfd_.get(), &si, sizeof si) != static_cast<ssize_t>(sizeof si)) return 0;
  return static_cast<int>(si.ssi_signo);
}

Sink::Sink(int target) : fd_(target) {
  struct stat st {};
  if (target < 0 || ::fstat(target, &st) != 0) {
    broken_ = true;
    return;
  }
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) return;
  if (S_ISSOCK(st.st_mode)) {
    socket_ = true;
    return;
  }
  const std::string link = "/proc/self/fd/" + std::to_string(target);
  reopened_ = Fd(::open(link.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (reopened_.valid()) {
    fd_ = reopened_.get();
  } else if ((::fcntl(target, F_GETFL) & O_NONBLOCK) == 0) {
    guarded_ = true;
  }
}

std::size_t Sink::write_some(const char* p, std::size_t n) {
  if (broken_) return 0;
  std::size_t done = 0;
  while (done < n) {
    const std::size_t len = guarded_ ? std::min<std::size_t>(n - done, PIPE_BUF) : n - done;
    const ssize_t w =
        socket_ ? ::send(fd_, p + done, len, MSG_DONTWAIT | MSG_NOSIGNAL) : ::write(fd_, p + done, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) broken_ = true;
      break;
    }
    done += static_cast<std::size_t>(w);
    if (guarded_) break;  // one write per POLLOUT
  }
  return done;
}

namespace {
bool is_pipe(int fd) {
  struct stat st {};
  return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}
}  // namespace

OutputStream::OutputStream(Fd source, int sink_fd, bool passthrough, std::size_t keep)
    : source_(std::move(source)),
      sink_(passthrough ? sink_fd : -1),
      passthrough_(passthrough),
      keep_(keep),
      eof_(!source_.valid()),
      tee_ok_(passthrough && !sink_.broken() && !sink_.guarded() && is_pipe(source_.get()) &&
              is_pipe(sink_.fd())) {}

bool OutputStream::room() const noexcept { return !passing() || !has_pending(); }

std::string OutputStream::take_tail() {
  if (tail_.size() > keep_) tail_.erase(0, tail_.size() - keep_);
  return std::move(tail_);
}

void OutputStream::keep_tail(const char* p, std::size_t n) {
  if (keep_ == 0) return;
  if (n >= keep_) {  // only the end of a large read can survive
    tail_.assign(p + (n - keep_), keep_);
    return;
  }
  tail_.append(p, n);
  if (tail_.size() > 2 * keep_) tail_.erase(0, tail_.size() - keep_);
}

std::size_t OutputStream::read_some(std::size_t budget) { return read_into(budget, true); }

std::size_t OutputStream::read_for_tail_only(std::size_t budget) { return read_into(budget, false); }

std::size_t OutputStream::read_into(std::size_t budget, bool pump) {
  if (!buf_) buf_ = std::make_unique<char[]>(kReadMax);
  if (!pump) drop();  // the buffer is read into: nothing may wait in it
  std::size_t total = 0;
  while (source_.valid() && total < budget && room()) {
    if (pump && passing() && tee_ok_) {
      const std::size_t teed = tee_some(budget - total);
      if (teed != 0) {
        total += teed;
        continue;
      }
    }
    const ssize_t n = ::read(source_.get(), buf_.get(), std::min(kReadMax, budget - total));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EIO) {  // a pseudo-terminal whose every slave descriptor is closed
        eof_ = true;
        source_.reset();
      }
      break;  // EAGAIN: nothing more now
    }
    if (n == 0) {
      eof_ = true;
      source_.reset();
      break;
    }
    const auto len = static_cast<std::size_t>(n);
    total += len;
    keep_tail(buf_.get(), len);
    if (pump && passing()) {
      const std::size_t done = sink_.guarded() ? 0 : sink_.write_some(buf_.get(), len);
      pending_off_ = done;
      pending_len_ = len - done;
      if (sink_.broken()) drop();
    } else if (!pump || passthrough_) {
      dropped_ += len;
    }
  }
  return total;
}

std::size_t OutputStream::tee_some(std::size_t budget) {
  const ssize_t t = ::tee(source_.get(), sink_.fd(), std::min(kReadMax, budget), SPLICE_F_NONBLOCK);
  if (t <= 0) {
    // EAGAIN: the pipe is empty or the sink full; the read path tells which (and waits
    // for the sink with output pending). 0: the end, which the read path sees too.
    if (t < 0 && errno != EAGAIN && errno != EINTR) tee_ok_ = false;
    return 0;
  }
  // The bytes are in the sink; take them off the pipe: all but the tail's share into
  // /dev/null, the rest read for the tail.
  const auto len = static_cast<std::size_t>(t);
  std::size_t skip = len > keep_ ? len - keep_ : 0;
  if (skip != 0 && !null_.valid()) null_ = Fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  while (skip != 0 && null_.valid()) {
    const ssize_t n = ::splice(source_.get(), nullptr, null_.get(), nullptr, skip, SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    skip -= static_cast<std::size_t>(n);
  }
  for (std::size_t left = (len > keep_ ? keep_ : len) + skip; left != 0;) {
    const ssize_t n = ::read(source_.get(), buf_.get(), std::min(kReadMax, left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // cannot happen: the bytes were in the pipe
    left -= static_cast<std::size_t>(n);
    keep_tail(buf_.get(), static_cast<std::size_t>(n));
  }
  return len;
}

void OutputStream::flush(bool polled_writable) {
  if (!has_pending() || (sink_.guarded() && !polled_writable)) return;
  const std::size_t n = sink_.write_some(buf_.get() + pending_off_, pending_len_);
  pending_off_ += n;
  pending_len_ -= n;
  if (sink_.broken()) drop();
}

void OutputStream::drop() {
  dropped_ += pending_len_;
  pending_off_ = pending_len_ = 0;
}

void TreeKiller::signal_tree(int sig) {
  ::kill(-group_, sig);
  cg_.signal_all(sig);  // everything in the cgroup, wherever it went in the process tree
  sampler_.sample();    // fresh list of the tree, including processes that left the group
  for (pid_t p : sampler_.pids()) ::kill(p, sig);
}

void TreeKiller::start_grace() {
  killing_ = true;
  if (grace_ == 0) {
    signal_tree(SIGKILL);
    sigkilled_ = true;
  } else {
    deadline_ = clock::monotonic_ns() + grace_;
  }
}

void TreeKiller::begin(const char* why, bool immediate) {
  if (killing_) return;
  if (why != nullptr) reason_ = why;
  if (immediate || grace_ == 0) {
    killing_ = true;
    signal_tree(SIGKILL);
    sigkilled_ = true;
    return;
  }
  signal_tree(SIGTERM);
  signal_tree(SIGCONT);
  start_grace();
}

void TreeKiller::forward(int sig) {
  signal_tree(sig);
  if (!killing_) start_grace();
}

void TreeKiller::tick(std::uint64_t now_ns) {
  if (killing_ && !sigkilled_ && now_ns >= deadline_) {
    signal_tree(SIGKILL);
    sigkilled_ = true;
  }
  if (sigkilled_) signal_tree(SIGKILL);  // anything forked since the last round
}

std::uint64_t TreeKiller::next_due(std::uint64_t now_ns) const noexcept {
  if (sigkilled_) return now_ns + 10000000;
  if (killing_) return deadline_;
  return std::numeric_limits<std::uint64_t>::max();
}

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
