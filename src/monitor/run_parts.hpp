#pragma once
// The parts of run() that can be read and tested on their own: the signal set-up it
// holds while it runs, the output pump, and the ending of a process tree; private to the
// monitor.

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "proc_io.hpp"
#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::monitor {
class Sampler;
}

namespace SPYGLASS_NAMESPACE::monitor::detail {

class Cgroup;

/// What run() changes in the process while it runs, undone by the destructor: `watched`
/// (plus SIGTTOU) blocked in the calling thread and read from a signalfd instead, SIGPIPE
/// ignored (a closed reader shows as EPIPE), SIGCHLD at its default when the caller
/// ignored it (else the kernel would reap the command behind our back), and the process
/// a child subreaper (orphaned descendants stay in the tree, to be sampled, killed and
/// reaped).
class SignalScope {
 public:
  explicit SignalScope(const sigset_t& watched);
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  ~SignalScope();

  /// The signalfd (non-blocking) that reports the watched signals.
  [[nodiscard]] int fd() const noexcept { return sfd_.get(); }
  /// The caller's signal mask, for the command to start with.
  [[nodiscard]] const sigset_t& old_mask() const noexcept { return old_mask_; }
  /// Reads one pending signal; 0 when none is.
  int next();

 private:
  Fd sfd_;
  sigset_t old_mask_{};
  struct sigaction old_pipe_ {};
  struct sigaction old_chld_ {};
  bool reset_chld_ = false;
  int old_subreaper_ = 0;
};

/// Our stdout or stderr as a destination that never blocks the monitor loop. A pipe, FIFO
/// or terminal is reopened through /proc/self/fd with O_NONBLOCK: a new open file
/// description, so the flags of the one we share with the shell stay as they are. A socket
/// is written with MSG_DONTWAIT. A regular file or block device is written as is (it waits
/// on no reader). When reopening fails and the descriptor is blocking, a write happens only
/// after poll() reported POLLOUT and carries at most PIPE_BUF bytes, which a pipe then
/// takes without blocking. A negative `target` is a sink that takes nothing.
class Sink {
 public:
  explicit Sink(int target);

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  /// True when writes must wait for poll() to report POLLOUT first.
  [[nodiscard]] bool guarded() const noexcept { return guarded_; }

  /// Writes what the sink takes now from `p`; returns the byte count. A failure other than
  /// "full" (EPIPE: the reader went away) marks the sink broken.
  std::size_t write_some(const char* p, std::size_t n);

 private:
  int fd_;
  Fd reopened_;
  bool socket_ = false;
  bool guarded_ = false;
  bool broken_ = false;
};

/// One output stream of the command, pumped without blocking from its pipe (or pty) to a
/// Sink, its last `keep` bytes retained. A read is written straight from the read buffer;
/// what the sink does not take at once stays there, pending, and the pipe is not read
/// again until it has gone out, so a reader that does not keep up slows the command (as it
/// would without us), never the monitor loop. No byte is copied in user space on its way
/// through; only the last `keep` bytes of a read are copied, to the tail. From a pipe to a
/// pipe the bytes are not even read: tee(2) duplicates them into the sink, splice(2)
/// takes them off to /dev/null but for the tail's share.
class OutputStream {
 public:
  /// Most bytes one read takes (and so most bytes pending).
  static constexpr std::size_t kReadMax = 256 * 1024;

  /// Reads `source` (made non-blocking by the caller) into `sink_fd` (-1: no sink) when
  /// `passthrough`, keeping the last `keep` bytes.
  OutputStream(Fd source, int sink_fd, bool passthrough, std::size_t keep);

  [[nodiscard]] bool eof() const noexcept { return eof_; }
  /// The pipe, while it is open.
  [[nodiscard]] int source() const noexcept { return source_.get(); }
  [[nodiscard]] const Sink& sink() const noexcept { return sink_; }
  [[nodiscard]] bool has_pending() const noexcept { return pending_len_ != 0; }
  /// Whether the pump may read now (not held up by pending output).
  [[nodiscard]] bool room() const noexcept;
  /// Bytes read but not passed on (our side closed, or given up).
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
  /// The kept tail (up to `keep` bytes once trimmed).
  std::string take_tail();

  /// Reads what the pipe holds now, at most `budget` bytes, passing it on as far as the
  /// sink takes it, until the pipe is empty or output is pending; returns the byte count
  /// read.
  std::size_t read_some(std::size_t budget = static_cast<std::size_t>(-1));
  /// Reads up to `budget` bytes for the tail only, counting them as dropped (after drop():
  /// run() gave up passing output on).
  std::size_t read_for_tail_only(std::size_t budget);
  /// Passes pending output on as far as our side takes it now. `polled_writable`: poll()
  /// just reported POLLOUT (required for a guarded sink).
  void flush(bool polled_writable);
  /// Gives up what is pending (counted as dropped).
  void drop();

 private:
  bool passing() const noexcept { return passthrough_ && !sink_.broken(); }
  void keep_tail(const char* p, std::size_t n);
  std::size_t read_into(std::size_t budget, bool pass);
  std::size_t tee_some(std::size_t budget);

  Fd source_;
  Sink sink_;
  bool passthrough_;
  std::size_t keep_;
  bool eof_;
  std::string tail_;
  std::size_t pending_off_ = 0, pending_len_ = 0;  // the pending bytes, in buf_
  std::uint64_t dropped_ = 0;
  std::unique_ptr<char[]> buf_;
  bool tee_ok_;  // pipe to pipe: tee(2) passes the bytes on without copying them
  Fd null_;      // /dev/null, where spliced bytes go that the tail does not keep
};

/// Ends a process tree: the command's process group, everything in its cgroup and every
/// process the sampler finds below us. SIGTERM (with SIGCONT: a stopped process cannot act
/// on it) and SIGKILL once the grace period is over, or SIGKILL at once; after SIGKILL it
/// is sent again on each tick, for what was forked meanwhile.
class TreeKiller {
 public:
  TreeKiller(pid_t group, const Cgroup& cg, Sampler& sampler, std::uint64_t grace_ns) noexcept
      : group_(group), cg_(cg), sampler_(sampler), grace_(grace_ns) {}

  /// Sends `sig` to the whole tree now.
  void signal_tree(int sig);
  /// Starts ending the tree (nothing when it is ending already); `why` becomes reason()
  /// unless null. `immediate`: SIGKILL without a grace period.
  void begin(const char* why, bool immediate);
  /// A terminating signal we received: forwarded to the tree as it is; SIGKILL follows
  /// after the grace period unless the tree is ending already.
  void forward(int sig);
  /// Escalates to SIGKILL once the grace period is over, and repeats SIGKILL after it.
  void tick(std::uint64_t now_ns);
  /// When tick() next has something to do (UINT64_MAX: nothing).
  [[nodiscard]] std::uint64_t next_due(std::uint64_t now_ns) const noexcept;

  [[nodiscard]] bool killing() const noexcept { return killing_; }
  [[nodiscard]] bool sigkilled() const noexcept { return sigkilled_; }
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  void start_grace();

  pid_t group_;
  const Cgroup& cg_;
  Sampler& sampler_;
  std::uint64_t grace_;
  bool killing_ = false, sigkilled_ = false;
  std::uint64_t deadline_ = 0;
  std::string reason_;
};

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
