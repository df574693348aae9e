// run(): fork + exec into a new process group, one poll loop over a signalfd and the
// command's output pipes, sampling on a fixed schedule, limits enforced over the tree.

#include "spyglass/monitor/runner.hpp"

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>

#include "cgroup.hpp"
#include "proc_io.hpp"
#include "spyglass/clock.hpp"

extern char** environ;

namespace SPYGLASS_NAMESPACE::monitor {

namespace {

using detail::Fd;
using detail::tv_ns;

std::string read_small(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// HEAD of the git work tree containing `dir`, read from the repository files so that no
// git process is spawned. Empty when there is none.
std::string git_head(std::filesystem::path dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (; !dir.empty(); dir = dir.parent_path()) {
    const fs::path dotgit = dir / ".git";
    fs::path gitdir;
    if (fs::is_directory(dotgit, ec)) {
      gitdir = dotgit;
    } else if (fs::is_regular_file(dotgit, ec)) {
      const std::string line = read_small(dotgit);  // "gitdir: PATH" in worktrees/submodules
      if (line.rfind("gitdir: ", 0) != 0) return {};
      gitdir = fs::path(line.substr(8));
      if (gitdir.is_relative()) gitdir = dir / gitdir;
    }
    if (!gitdir.empty()) {
      fs::path common = gitdir;
      const std::string c = read_small(gitdir / "commondir");
      if (!c.empty()) common = fs::path(c).is_relative() ? gitdir / c : fs::path(c);
      std::string head = read_small(gitdir / "HEAD");
      if (head.rfind("ref: ", 0) != 0) return head;
      const std::string ref = head.substr(5);
      for (const fs::path& base : {gitdir, common}) {
        const std::string h = read_small(base / ref);
        if (!h.empty()) return h;
      }
      std::ifstream packed(common / "packed-refs");
      std::string line;
      while (std::getline(packed, line)) {
        if (line.size() > 41 && line.compare(41, std::string::npos, ref) == 0) return line.substr(0, 40);
      }
      return {};
    }
    if (dir == dir.parent_path()) break;
  }
  return {};
}

// Our stdout or stderr as a destination that never blocks the monitor loop. A pipe, FIFO
// or terminal is reopened through /proc/self/fd with O_NONBLOCK: a new open file
// description, so the flags of the one we share with the shell stay as they are. A socket
// is written with MSG_DONTWAIT. A regular file or block device is written as is (it waits
// on no reader). When reopening fails and the descriptor is blocking, a write happens only
// after poll() reported POLLOUT and carries at most PIPE_BUF bytes, which a pipe then
// takes without blocking.
class Sink {
 public:
  explicit Sink(int target) : fd_(target) {
    struct stat st {};
    if (::fstat(target, &st) != 0) {
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

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  /// True when writes must wait for poll() to report POLLOUT first.
  [[nodiscard]] bool guarded() const noexcept { return guarded_; }

  /// Writes what the sink takes now from `p`; returns the byte count. A failure other than
  /// "full" (EPIPE: the reader went away) marks the sink broken.
  std::size_t write_some(const char* p, std::size_t n) {
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

 private:
  int fd_;
  Fd reopened_;
  bool socket_ = false;
  bool guarded_ = false;
  bool broken_ = false;
};

// Output read from the command but not yet taken by our stdout/stderr, per stream. When it
// is full the command's pipe is not read, so a reader that does not keep up slows the
// command (as it would without spyglass), never the monitor loop.
constexpr std::size_t kPendingMax = 64 * 1024;

// The command's output: copied through without blocking, the last `keep` bytes retained.
struct Stream {
  Fd fd;
  Sink sink;
  std::string tail;
  std::string pending;
  bool eof = false;
  std::uint64_t dropped = 0;  // bytes not passed through (our side closed, or given up)

  Stream(Fd f, int out_fd) : fd(std::move(f)), sink(out_fd), eof(!fd.valid()) {}

  [[nodiscard]] bool passing(bool passthrough) const { return passthrough && !sink.broken(); }
  [[nodiscard]] bool room(bool passthrough) const {
    return !passing(passthrough) || pending.size() < kPendingMax;
  }

  // Reads what the pipe holds now, at most `budget` bytes and no more than `pending` has
  // room for; returns the byte count.
  std::size_t read_some(std::size_t keep, bool passthrough,
                        std::size_t budget = std::numeric_limits<std::size_t>::max()) {
    char buf[65536];
    std::size_t total = 0;
    while (fd.valid() && total < budget && room(passthrough)) {
      std::size_t want = std::min(sizeof buf, budget - total);
      if (passing(passthrough)) want = std::min(want, kPendingMax - pending.size());
      const ssize_t n = ::read(fd.get(), buf, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EIO) {  // a pseudo-terminal whose every slave descriptor is closed
          eof = true;
          fd.reset();
        }
        break;  // EAGAIN: nothing more now
      }
      if (n == 0) {
        eof = true;
        fd.reset();
        break;
      }
      const auto len = static_cast<std::size_t>(n);
      total += len;
      if (passing(passthrough)) {
        pending.append(buf, len);
      } else if (passthrough) {
        dropped += len;
      }
      tail.append(buf, len);
      if (tail.size() > 2 * keep + sizeof buf) tail.erase(0, tail.size() - keep);
    }
    return total;
  }

  // Passes pending output on as far as our side takes it now. `polled_writable`: poll()
  // just reported POLLOUT (required for a guarded sink).
  void flush(bool polled_writable) {
    if (pending.empty() || (sink.guarded() && !polled_writable)) return;
    const std::size_t n = sink.write_some(pending.data(), pending.size());
    pending.erase(0, n);
    if (sink.broken()) drop();
  }

  void drop() {
    dropped += pending.size();
    pending.clear();
  }
};

// Whether another process is in our process group. A shell puts the members of a pipeline
// in one group (`spyglass run -- cmd | less`); giving the terminal to the command would
// take it from the others, and `less` would stop on its next keyboard read.
bool shares_process_group() {
  const pid_t self = ::getpid(), group = ::getpgrp();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return false;
  bool shared = false;
  std::string buf;
  while (const dirent* e = ::readdir(proc)) {
    pid_t p = 0;
    const char* end = e->d_name + std::strlen(e->d_name);
    if (std::from_chars(e->d_name, end, p).ptr != end || p == self) continue;
    const Fd fd = detail::open_ro(("/proc/" + std::string(e->d_name) + "/stat").c_str());
    detail::StatFields st;
    if (!fd.valid() || !detail::pread_all(fd.get(), buf) || !detail::parse_stat(buf, st)) continue;
    const pid_t pgrp = st.pgrp;
    if (pgrp == group) {
      shared = true;
      break;
    }
  }
  ::closedir(proc);
  return shared;
}

// The command's path as execvp() would find it: argv[0] itself when it holds a '/',
// else the first executable regular file of that name in $PATH. Returns 0 or the errno a
// failed exec would give (ENOENT, or EACCES when only non-executable files were found).
int find_program(const std::string& name, std::string& path) {
  if (name.empty()) return ENOENT;
  if (name.find('/') != std::string::npos) {
    path = name;
    return 0;
  }
  const char* env = ::getenv("PATH");
  std::string_view dirs = env != nullptr ? env : "/bin:/usr/bin";
  int err = ENOENT;
  for (;;) {
    const auto colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    std::string candidate = dir.empty() ? name : std::string(dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) {
        path = std::move(candidate);
        return 0;
      }
      err = EACCES;
    }
    if (colon == std::string_view::npos) return err;
    dirs.remove_prefix(colon + 1);
  }
}

// A set-user-ID, set-group-ID or file-capability program: exec under ptrace would drop
// its privileges, so such a command is never traced.
bool privileged(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) != 0) return true;
  return ::getxattr(path.c_str(), "security.capability", nullptr, 0) > 0;
}

// A program that runs LeakSanitizer (AddressSanitizer builds): at its exit LSan attaches
// to the program's threads with ptrace, which fails, and fails the program, when it is
// traced already. Found by the runtime's names in the file (its messages when linked in,
// the library's name when loaded); a file too large to scan quickly counts as not.
bool uses_leak_sanitizer(const std::string& path) {
  const Fd fd = detail::open_ro(path.c_str());
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_size <= 0 || st.st_size > (1LL << 30)) return false;
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (map == MAP_FAILED) return false;
  bool found = false;
  for (const std::string_view needle : {"LeakSanitizer", "libasan.so", "liblsan.so", "libclang_rt.asan"}) {
    if (::memmem(map, size, needle.data(), needle.size()) != nullptr) {
      found = true;
      break;
    }
  }
  ::munmap(map, size);
  return found;
}

// VmHWM of `pid` in KiB: the peak RSS of its current memory map; 0 when unreadable.
std::uint64_t hwm_kib(pid_t pid) {
  const Fd fd = detail::open_ro(("/proc/" + std::to_string(pid) + "/status").c_str());
  std::string buf;
  if (!fd.valid() || !detail::pread_all(fd.get(), buf)) return 0;
  return detail::field_u64(buf, "VmHWM:");
}

// Waits (briefly: the child has a few system calls to make) until the forked child sleeps
// in its read of the go pipe, so that its memory is as exec will find it. Signalling
// readiness through a pipe instead would count in the command's I/O (rchar, wchar and
// syscall counts survive exec).
void wait_blocked(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::string buf;
  for (int i = 0; i < 100000; ++i) {
    const Fd fd = detail::open_ro(path.c_str());
    if (!fd.valid() || !detail::pread_all(fd.get(), buf)) return;
    const auto rp = buf.rfind(')');
    if (rp == std::string::npos || rp + 2 >= buf.size() || buf[rp + 2] == 'S') return;
    ::sched_yield();
  }
}

// The forked command before its exec may have grown its copy of our memory map by a few
// stack pages after we read its VmHWM.
constexpr std::uint64_t kPreExecSlackKib = 64;

// Where the command's standard descriptors go (-1: inherited), and the pseudo-terminal
// that becomes its controlling terminal (-1: none; it gets a process group of its own).
struct ChildIo {
  int in = -1, out = -1, err = -1, pty = -1;
};

// Runs in the forked child: only async-signal-safe calls. Waits for `go` to close, so
// that the parent can attach first, then execs.
[[noreturn]] void exec_child(const char* path, char* const* argv, const ChildIo& io, int go, int status,
                             int parents_go, int parents_status, const sigset_t& mask) {
  ::close(parents_go);  // else our read of `go` would never see its end
  ::close(parents_status);
  if (io.pty >= 0) {  // a session of its own, as a terminal emulator's shell has
    ::setsid();
    ::ioctl(io.pty, TIOCSCTTY, 0);
  } else {
    ::setpgid(0, 0);
  }
  for (const auto& [fd, target] :
       {std::pair{io.in, STDIN_FILENO}, std::pair{io.out, STDOUT_FILENO}, std::pair{io.err, STDERR_FILENO}}) {
    if (fd < 0) continue;
    if (fd == target) {
      ::fcntl(fd, F_SETFD, 0);
    } else {
      ::dup2(fd, target);
    }
  }
  // Dispositions the monitor changes go back to default; signals ignored by whoever
  // started us (SIGHUP under nohup, SIGINT for a background job) stay ignored, as with exec.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::sigaction(SIGXFSZ, &dfl, nullptr);
  char c = 0;
  // From here on raw system calls: a sanitizer's wrappers would grow our memory after the
  // parent read its high-water mark.
  while (::syscall(SYS_read, go, &c, 1) < 0 && errno == EINTR) {
  }
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, _NSIG / 8);
  ::syscall(SYS_execve, path, argv, environ);
  const int e = errno;
  [[maybe_unused]] const ssize_t n = ::write(status, &e, sizeof e);
  ::_exit(127);
}

// The command's process: forked (a copy of our memory map, not vfork's shared one, so it
// can wait for us to attach before it execs) and exec'd by start().
struct Spawn {
  pid_t pid = -1;
  int error = 0;        ///< errno of a start that failed (no process is left then)
  bool traced = false;  ///< attached with PTRACE_SEIZE; its exit stops once for us
  std::uint64_t pre_exec_hwm_kib = 0;
  Fd go;      ///< closing it lets the child exec
  Fd status;  ///< errno of a failed exec, or EOF once the exec succeeded

  // Lets the child exec and waits until it has (or has failed to).
  void start() {
    if (pid < 0) return;
    ssize_t n = 0;
    if (traced) {
      wait_blocked(pid);
      pre_exec_hwm_kib = hwm_kib(pid);
    }
    go.reset();
    int e = 0;
    while ((n = ::read(status.get(), &e, sizeof e)) < 0 && errno == EINTR) {
    }
    status.reset();
    if (n != static_cast<ssize_t>(sizeof e)) return;
    error = e;
    for (int st = 0;;) {  // the child exits by itself; traced, it stops at its exit first
      const pid_t w = ::waitpid(pid, &st, __WALL);
      if (w < 0 && errno == EINTR) continue;
      if (w != pid || !WIFSTOPPED(st)) break;
      ::ptrace(PTRACE_CONT, pid, nullptr, nullptr);
    }
    pid = -1;
  }
};

Spawn spawn(const std::vector<std::string>& args, const ChildIo& io, const sigset_t& mask, bool trace) {
  Spawn sp;
  std::string path;
  if ((sp.error = find_program(args.empty() ? std::string() : args[0], path)) != 0) return sp;
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int go[2] = {-1, -1}, status[2] = {-1, -1};
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(status, O_CLOEXEC) != 0) {
    sp.error = errno;
    for (int fd : {go[0], go[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return sp;
  }
  Fd go_r(go[0]), status_w(status[1]);
  sp.go = Fd(go[1]);
  sp.status = Fd(status[0]);
  const pid_t pid = ::_Fork();  // no atfork handlers: the child only execs
  if (pid < 0) {
    sp.error = errno;
    return sp;
  }
  if (pid == 0) {
    exec_child(path.c_str(), argv.data(), io, go_r.get(), status_w.get(), sp.go.get(), sp.status.get(), mask);
  }
  sp.pid = pid;
  if (trace && !privileged(path) && !uses_leak_sanitizer(path)) {
    sp.traced = ::ptrace(PTRACE_SEIZE, pid, nullptr, PTRACE_O_TRACEEXIT) == 0;
  }
  return sp;
}

// A pseudo-terminal for the command, so that it sees a terminal where we have one
// (`[ -t 1 ]`, colours, progress bars, line buffering). Keystrokes reach it through the
// pty (our terminal in raw mode), so Ctrl-C and Ctrl-Z act on it as in a shell.
class Pty {
 public:
  /// Opens one when our stdout or stderr is a terminal; false otherwise.
  bool open() {
    on_out_ = ::isatty(STDOUT_FILENO) == 1;
    on_err_ = ::isatty(STDERR_FILENO) == 1;
    if (!on_out_ && !on_err_) return false;
    tty_ = on_out_ ? STDOUT_FILENO : STDERR_FILENO;
    master_ = Fd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    char name[128];
    if (!master_.valid() || ::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0 ||
        ::ptsname_r(master_.get(), name, sizeof name) != 0) {
      return fail();
    }
    slave_ = Fd(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave_.valid()) return fail();
    termios t{};
    if (::tcgetattr(tty_, &t) == 0) {
      t.c_oflag &= ~static_cast<tcflag_t>(ONLCR);  // our terminal turns LF into CR LF itself
      ::tcsetattr(slave_.get(), TCSANOW, &t);
    }
    sync_size();
    // Keystrokes go through the pty only when the terminal is ours to read: stdin is it,
    // we are its foreground group and alone in it (not `spyglass run ... | less`).
    on_in_ =
        ::isatty(STDIN_FILENO) == 1 && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp() && !shares_process_group();
    return true;
  }

  [[nodiscard]] bool active() const noexcept { return master_.valid(); }
  [[nodiscard]] bool on_out() const noexcept { return active() && on_out_; }
  [[nodiscard]] bool on_err() const noexcept { return active() && on_err_; }
  [[nodiscard]] bool relays_input() const noexcept { return active() && on_in_; }
  [[nodiscard]] int slave() const noexcept { return slave_.get(); }
  /// A descriptor of the master to read the command's output from.
  [[nodiscard]] Fd reader() const { return Fd(::fcntl(master_.get(), F_DUPFD_CLOEXEC, 0)); }
  void close_slave() { slave_.reset(); }

  /// Gives the pty our terminal's window size (the kernel sends SIGWINCH to the command).
  void sync_size() {
    winsize ws{};
    if (master_.valid() && ::ioctl(tty_, TIOCGWINSZ, &ws) == 0) ::ioctl(master_.get(), TIOCSWINSZ, &ws);
  }

  /// Raw mode on our terminal while we are its foreground group: every key goes to the
  /// pty, whose own settings decide what Ctrl-C or Ctrl-Z mean. Output processing stays.
  void make_raw() {
    if (!relays_input() || raw_ || ::tcgetpgrp(STDIN_FILENO) != ::getpgrp()) return;
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios t = saved_;
    ::cfmakeraw(&t);
    t.c_oflag = saved_.c_oflag;
    raw_ = ::tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0;
  }
  void restore() {
    if (raw_) ::tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_);
    raw_ = false;
  }
  [[nodiscard]] bool raw() const noexcept { return raw_; }

  /// What relay_input() saw.
  enum class Input { more, ended, suspend };

  /// Copies what stdin holds now to the pty. The suspend key (Ctrl-Z) is taken out when
  /// it would signal `leader`'s own group: that group leads the pty's session, so it has
  /// no parent in its session and the kernel discards SIGTSTP for it; the caller stops it
  /// instead. Other foreground groups (the jobs of a shell run under us) get it as usual.
  Input relay_input(pid_t leader) {
    char buf[4096];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return Input::ended;
    if (n < 0) return Input::more;
    termios t{};
    const bool intercept = ::tcgetpgrp(master_.get()) == leader && ::tcgetattr(master_.get(), &t) == 0 &&
                           (t.c_lflag & ISIG) != 0 && t.c_cc[VSUSP] != _POSIX_VDISABLE;
    Input result = Input::more;
    std::size_t len = static_cast<std::size_t>(n);
    if (intercept) {
      char* end = std::remove(buf, buf + len, static_cast<char>(t.c_cc[VSUSP]));
      if (end != buf + len) result = Input::suspend;
      len = static_cast<std::size_t>(end - buf);
    }
    for (std::size_t done = 0; done < len;) {
      const ssize_t w = ::write(master_.get(), buf + done, len - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;  // the pty's input queue is full: the rest of these keys is lost
      done += static_cast<std::size_t>(w);
    }
    return result;
  }

  Pty() = default;
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;
  ~Pty() { restore(); }

 private:
  bool fail() {
    master_.reset();
    slave_.reset();
    return false;
  }

  Fd master_, slave_;
  int tty_ = -1;
  bool on_out_ = false, on_err_ = false, on_in_ = false, raw_ = false;
  termios saved_{};
};

const char* source_name(RssLimitSource s) {
  switch (s) {
    case RssLimitSource::rss: return "rss";
    case RssLimitSource::pss: return "pss";
    case RssLimitSource::cgroup: return "cgroup";
    case RssLimitSource::kernel: return "kernel";
  }
  return "rss";
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    default: return "signal";
  }
}

}  // namespace

int exit_code_from_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

RunResult run(const RunOptions& o) {
  RunResult res;
  RunRecord& r = res.record;
  r.label = o.label;
  std::error_code ec;
  r.cwd = std::filesystem::current_path(ec).string();
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) r.host = host;
  r.git_commit = git_head(r.cwd);
  if (o.argv.empty()) {
    r.error = "no command given";
    r.exit_code = 125;
    return res;
  }
  r.command = o.argv[0];
  r.args.assign(o.argv.begin() + 1, o.argv.end());
  const std::uint64_t interval = static_cast<std::uint64_t>(std::max<std::int64_t>(
      o.interval.count(), std::chrono::nanoseconds(std::chrono::milliseconds(10)).count()));
  const std::uint64_t grace = static_cast<std::uint64_t>(std::max<std::int64_t>(o.grace.count(), 0));

  // Signals arrive through a signalfd, so they are blocked for this thread; the command
  // gets the original mask and default dispositions back.
  sigset_t watched, old_mask;
  sigemptyset(&watched);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&watched, s);
  sigset_t block = watched;
  sigaddset(&block, SIGTTOU);  // lets us take the terminal back from the command's group
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  struct sigaction ign {
  }, old_pipe{};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe);
  // A caller that ignores SIGCHLD (or sets SA_NOCLDWAIT) would have the kernel reap the
  // command behind our back: the default disposition is restored for the duration.
  struct sigaction old_chld {};
  ::sigaction(SIGCHLD, nullptr, &old_chld);
  const bool reset_chld = old_chld.sa_handler == SIG_IGN || (old_chld.sa_flags & SA_NOCLDWAIT) != 0;
  if (reset_chld) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGCHLD, &dfl, nullptr);
  }
  Fd sfd(::signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK));
  const int old_subreaper = [] {
    int v = 0;
    ::prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0);
    return v;
  }();
  // Orphaned grandchildren are re-parented to us, so they stay in the sampled tree and
  // can be killed and reaped.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  const std::uint64_t cpu0 = clock::thread_cpu_ns();

  // Each of stdout/stderr is a pipe, or the pty when ours is a terminal; with both on the
  // pty, its output is one stream (kept as the stdout tail).
  Pty pty;
  if (o.terminal && o.passthrough) pty.open();
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (!pty.on_out()) ::pipe2(out_pipe, O_CLOEXEC);
  if (!pty.on_err()) ::pipe2(err_pipe, O_CLOEXEC);
  Fd out_w(out_pipe[1]), err_w(err_pipe[1]);
  Fd out_r(out_pipe[0]), err_r(err_pipe[0]);
  if (pty.on_out()) {
    out_r = pty.reader();
  } else if (pty.on_err()) {
    err_r = pty.reader();
  }
  Stream out{std::move(out_r), o.passthrough ? STDOUT_FILENO : -1};  // -1: no sink at all
  Stream err{std::move(err_r), o.passthrough ? STDERR_FILENO : -1};
  ChildIo io;
  io.out = pty.on_out() ? pty.slave() : out_w.get();
  io.err = pty.on_err() ? pty.slave() : err_w.get();
  if (pty.active()) io.pty = pty.slave();
  if (pty.relays_input()) io.in = pty.slave();

  // The tree's own cgroup: made before the command exists, which enters it before its
  // exec, so nothing it starts escapes the accounting (or the limit).
  detail::Cgroup cg = o.cgroup == CgroupMode::off ? detail::Cgroup::none("cgroups were turned off")
                                                  : detail::Cgroup::create();
  RssLimitSource limit_source = o.max_rss_source;
  std::string limit_why;
  if (o.max_rss_bytes && limit_source == RssLimitSource::kernel) {
    if (!cg.limit_memory(*o.max_rss_bytes, limit_why)) limit_source = RssLimitSource::rss;
  }

  Spawn sp = spawn(o.argv, io, old_mask, o.exact_peak);
  Sampler sampler = Sampler::children_of_self(
      {.smaps = o.smaps || (o.max_rss_bytes && limit_source == RssLimitSource::pss), .tree = true});
  if (sp.pid > 0 && cg.active() && !cg.place(sp.pid) && limit_source == RssLimitSource::kernel) {
    limit_source = RssLimitSource::rss;  // not in the cgroup: the limit would not apply
  }
  if (!cg.active() && limit_source == RssLimitSource::cgroup) limit_source = RssLimitSource::rss;
  if (o.max_rss_bytes && limit_source != o.max_rss_source) {
    res.warnings.push_back(std::string("the memory limit applies to the sampled RSS sum, not the ") +
                           source_name(o.max_rss_source) +
                           " figure: " + (cg.active() ? limit_why : cg.reason()));
  }
  r.tree_source = cg.source();
  r.tree_source_reason = cg.reason();
  if (o.max_rss_bytes) r.max_rss_source = source_name(limit_source);
  res.start_mono_ns = clock::monotonic_ns();
  r.start_unix_ns = static_cast<std::int64_t>(clock::realtime_ns());
  sp.start();
  const pid_t pid = sp.pid;
  const int rc = sp.error;
  out_w.reset();
  err_w.reset();
  pty.close_slave();  // the pty reports its end once the command's tree has closed it

  auto restore = [&] {
    ::prctl(PR_SET_CHILD_SUBREAPER, old_subreaper, 0, 0, 0);
    signalfd_siginfo si;
    while (sfd.valid() && ::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    if (reset_chld) ::sigaction(SIGCHLD, &old_chld, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  };

  if (rc != 0) {
    r.error = std::strerror(rc);
    r.exit_code = (rc == ENOENT || rc == ENOTDIR) ? 127 : 126;
    r.duration_ns = static_cast<std::int64_t>(clock::monotonic_ns() - res.start_mono_ns);
    r.end_unix_ns = r.start_unix_ns + r.duration_ns;
    restore();
    return res;
  }

  // On a pty the command has a terminal of its own, and ours stays with us.
  const bool own_tty = !pty.active() && ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp() &&
                       !shares_process_group();
  if (own_tty) ::tcsetpgrp(STDIN_FILENO, pid);
  pty.make_raw();
  bool relaying = pty.raw();
  for (Stream* s : {&out, &err}) {
    if (s->fd.valid()) ::fcntl(s->fd.get(), F_SETFL, ::fcntl(s->fd.get(), F_GETFL) | O_NONBLOCK);
  }

  rusage total{};
  std::uint64_t max_rss_kib = 0;
  int status = 0;
  bool child_done = false, status_lost = false;
  int stopped_by = 0;  // the signal that stopped the command, until handled
  std::uint64_t child_end = 0;
  std::string reason;
  std::string forwarded;
  bool killing = false, sigkilled = false;
  std::uint64_t kill_deadline = 0;
  const std::uint64_t t0 = res.start_mono_ns;
  std::uint64_t next_sample = t0;
  const std::uint64_t timeout_at =
      o.timeout ? t0 + static_cast<std::uint64_t>(std::max<std::int64_t>(o.timeout->count(), 0)) : 0;
  const std::uint64_t drain = static_cast<std::uint64_t>(std::max<std::int64_t>(o.drain.count(), 0));

  // The traced command stopped: at its exit (read its own peak RSS, which its exit status
  // cannot tell apart from the copy of our memory map it was forked with), in a group
  // stop (leave it stopped, as without us), or for a signal (deliver it).
  std::uint64_t root_maxrss_kib = 0, exit_hwm_kib = 0;
  bool listening = false;
  auto trace_stop = [&](int st) {
    const int event = st >> 16, sig = WSTOPSIG(st);
    if (event == PTRACE_EVENT_EXIT) {
      exit_hwm_kib = std::max(exit_hwm_kib, hwm_kib(pid));
      ::ptrace(PTRACE_CONT, pid, nullptr, nullptr);
    } else if (event == PTRACE_EVENT_STOP &&
               (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
      if (!listening) stopped_by = sig;
      listening = true;
      ::ptrace(PTRACE_LISTEN, pid, nullptr, nullptr);
    } else {
      listening = false;
      const long deliver = event == 0 ? sig : 0;
      ::ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(deliver));
    }
  };

  auto reap = [&]() -> bool {  // false once we have no children at all
    for (;;) {
      int st = 0;
      rusage ru{};
      const pid_t p = ::wait4(-1, &st, WNOHANG | WUNTRACED, &ru);
      if (p == 0) return true;
      if (p < 0) return errno == EINTR ? true : false;
      if (WIFSTOPPED(st)) {  // still alive; ru is its usage so far, not a final total
        if (p == pid && sp.traced) {
          trace_stop(st);
        } else if (p == pid) {
          stopped_by = WSTOPSIG(st);
        }
        continue;
      }
      total.ru_utime.tv_sec += ru.ru_utime.tv_sec;
      total.ru_utime.tv_usec += ru.ru_utime.tv_usec;
      total.ru_stime.tv_sec += ru.ru_stime.tv_sec;
      total.ru_stime.tv_usec += ru.ru_stime.tv_usec;
      total.ru_minflt += ru.ru_minflt;
      total.ru_majflt += ru.ru_majflt;
      total.ru_inblock += ru.ru_inblock;
      total.ru_oublock += ru.ru_oublock;
      total.ru_nvcsw += ru.ru_nvcsw;
      total.ru_nivcsw += ru.ru_nivcsw;
      if (p == pid) {
        root_maxrss_kib = static_cast<std::uint64_t>(ru.ru_maxrss);
      } else {
        max_rss_kib = std::max(max_rss_kib, static_cast<std::uint64_t>(ru.ru_maxrss));
      }
      if (p == pid) {
        status = st;
        child_done = true;
        child_end = clock::monotonic_ns();
      }
    }
  };

  auto signal_tree = [&](int sig) {
    ::kill(-pid, sig);
    cg.signal_all(sig);  // everything in the cgroup, wherever it went in the process tree
    sampler.sample();    // fresh list of the tree, including processes that left the group
    for (pid_t p : sampler.pids()) ::kill(p, sig);
  };

  // Ends the tree: SIGTERM (and SIGCONT: a stopped process cannot act on it) now and
  // SIGKILL after the grace period, or SIGKILL at once. `why` becomes the kill reason;
  // nullptr leaves the command's own status as the outcome.
  auto begin_kill = [&](const char* why, bool immediate) {
    if (killing) return;
    killing = true;
    if (why != nullptr) reason = why;
    if (immediate || grace == 0) {
      signal_tree(SIGKILL);
      sigkilled = true;
    } else {
      signal_tree(SIGTERM);
      signal_tree(SIGCONT);
      kill_deadline = clock::monotonic_ns() + grace;
    }
  };
  const bool immediate = o.kill == KillStrategy::immediate;

  // The command stopped itself the way a terminal job does (Ctrl-Z, or tty access from
  // the background). When it had our terminal, do what a shell does: take the terminal
  // back and stop ourselves the same way, so that whoever started us sees the job stop.
  // Once we are continued, hand the terminal back if we are in the foreground again and
  // continue the command. When we cannot be stopped (no job control: our process group
  // is orphaned, or the signal is ignored) the command is continued at once.
  // On a pty the same holds with our terminal's mode in place of its ownership: it leaves
  // raw mode while we are stopped, and the window may have changed meanwhile.
  auto handle_stop = [&](int sig) {
    if (!(own_tty || pty.raw()) || killing || (sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU)) return;
    if (own_tty && ::tcgetpgrp(STDIN_FILENO) == pid) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    pty.restore();
    ::kill(::getpid(), sig == SIGTTIN ? SIGTTIN : SIGTSTP);  // SIGTTOU is blocked here
    if (own_tty && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) ::tcsetpgrp(STDIN_FILENO, pid);
    pty.make_raw();
    relaying = pty.raw();
    pty.sync_size();
    ::kill(-pid, SIGCONT);
  };

  auto record = [&](const Sample& s) {
    res.samples.push_back(s);
    if (res.samples.size() > o.max_samples && o.max_samples >= 2) {
      // Thin: keep every other sample (the first and the newest always survive).
      std::vector<Sample> kept;
      kept.reserve(res.samples.size() / 2 + 1);
      for (std::size_t i = 0; i < res.samples.size(); i += 2) kept.push_back(res.samples[i]);
      if ((res.samples.size() - 1) % 2 != 0) kept.push_back(res.samples.back());
      res.samples.swap(kept);
    }
    if (o.on_sample) o.on_sample(s);
  };

  // Reads the signalfd. A terminating signal ends the whole tree: it goes to every
  // process in it (those that left the group with setsid too), SIGKILL follows for what
  // is left after the grace period, and the run ends only once no descendant is left.
  // Once the command has ended, or for a second signal, it also means: stop waiting for
  // output to go out.
  bool give_up_output = false;
  auto read_signals = [&] {
    signalfd_siginfo si;
    while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      const int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) continue;  // reaped at the top of the loop
      if (sig == SIGWINCH) {
        pty.sync_size();
        continue;
      }
      if (child_done || !forwarded.empty()) give_up_output = true;
      if (!child_done && forwarded.empty()) forwarded = signal_name(sig);
      signal_tree(sig);
      if (!killing) {
        killing = true;
        if (grace == 0) {
          signal_tree(SIGKILL);
          sigkilled = true;
        } else {
          kill_deadline = clock::monotonic_ns() + grace;
        }
      }
    }
  };

  // Descendants still running once the command has exited: counted, and ended when asked.
  std::uint32_t leftovers = 0;
  bool leftovers_killed = false;
  auto note_leftovers = [&] {
    leftovers = sampler.sample().processes;
    res.leftover_pids.assign(sampler.pids().begin(), sampler.pids().end());
  };

  std::uint64_t drain_until = 0;
  for (;;) {
    std::uint64_t now = clock::monotonic_ns();
    if (!child_done && now >= next_sample) {
      const Sample s = sampler.sample();
      record(s);
      if (o.max_rss_bytes) {
        std::uint64_t mem = 0;  // kernel: the kernel enforces it; an OOM kill shows below
        if (limit_source == RssLimitSource::rss) mem = s.rss_bytes;
        if (limit_source == RssLimitSource::pss) mem = s.pss_bytes;
        if (limit_source == RssLimitSource::cgroup) mem = cg.peak_memory();
        if (mem > *o.max_rss_bytes) begin_kill("max-rss", immediate);
      }
      // The kernel killed a process at the limit: the run ends as for any limit.
      if (o.max_rss_bytes && limit_source == RssLimitSource::kernel && cg.oom_kills() > 0) {
        begin_kill("max-rss", immediate);
      }
      if (o.max_cpu_seconds && static_cast<double>(s.cpu_user_ns + s.cpu_sys_ns) / 1e9 > *o.max_cpu_seconds) {
        begin_kill("max-cpu", immediate);
      }
      next_sample += interval;
      if (next_sample <= now) next_sample = now + interval;  // fell behind: do not burst
    }
    // Limits apply while the command runs; descendants it leaves behind holding the
    // pipes open are no reason to kill anything.
    if (timeout_at != 0 && !killing && !child_done && now >= timeout_at) begin_kill("timeout", immediate);
    if (killing && !sigkilled && now >= kill_deadline) {
      signal_tree(SIGKILL);
      sigkilled = true;
    }
    if (sigkilled) signal_tree(SIGKILL);  // anything forked since the last round

    const bool have_children = reap();
    if (!have_children && !child_done) {
      // Someone else collected the command (another thread's waitpid(-1)).
      child_done = status_lost = true;
      child_end = clock::monotonic_ns();
    }
    if (stopped_by != 0) {
      handle_stop(std::exchange(stopped_by, 0));
      continue;  // time passed while we were stopped
    }
    if (child_done && !killing && o.max_rss_bytes && limit_source == RssLimitSource::kernel &&
        cg.oom_kills() > 0) {
      begin_kill("max-rss", immediate);  // what the OOM kill of the command left
    }
    if (child_done) {
      if (killing) {
        // A killed run ends only when no descendant is left.
        if (!have_children) break;
      } else if (o.kill_leftovers && have_children) {
        note_leftovers();
        leftovers_killed = true;
        begin_kill(nullptr, immediate);
        continue;
      } else {
        // The command is done; take what it wrote, but do not wait on descendants that
        // still hold the pipes open.
        if (drain_until == 0) drain_until = child_end + drain;
        if ((out.eof && err.eof) || now >= drain_until || give_up_output) break;
      }
    }

    std::uint64_t wake = child_done ? now + std::uint64_t{10000000} : next_sample;
    if (timeout_at != 0 && !killing && !child_done) wake = std::min(wake, timeout_at);
    if (killing && !sigkilled) wake = std::min(wake, kill_deadline);
    if (sigkilled) wake = std::min(wake, now + std::uint64_t{10000000});
    if (drain_until != 0) wake = std::min(wake, drain_until);
    now = clock::monotonic_ns();
    const int timeout_ms = wake > now ? static_cast<int>((wake - now + 999999) / 1000000) : 0;

    pollfd pf[6];
    nfds_t n = 0;
    pf[n++] = {sfd.get(), POLLIN, 0};
    const int stdin_slot = relaying && !child_done ? static_cast<int>(n) : -1;
    if (stdin_slot >= 0) pf[n++] = {STDIN_FILENO, POLLIN, 0};
    int in_slot[2] = {-1, -1}, out_slot[2] = {-1, -1};
    Stream* streams[2] = {&out, &err};
    for (int i = 0; i < 2; ++i) {
      Stream& s = *streams[i];
      if (s.fd.valid() && s.room(o.passthrough)) {
        in_slot[i] = static_cast<int>(n);
        pf[n++] = {s.fd.get(), POLLIN, 0};
      }
      if (!s.pending.empty()) {
        out_slot[i] = static_cast<int>(n);
        pf[n++] = {s.sink.fd(), POLLOUT, 0};
      }
    }
    const int pr = ::poll(pf, n, timeout_ms);
    if (pr <= 0) continue;
    if (pf[0].revents & POLLIN) read_signals();
    if (stdin_slot >= 0 && pf[stdin_slot].revents != 0) {
      const Pty::Input in = pty.relay_input(pid);
      if (in == Pty::Input::ended) relaying = false;
      if (in == Pty::Input::suspend && !killing) {
        ::kill(-pid, SIGSTOP);  // cannot be caught: the group is stopped now
        handle_stop(SIGTSTP);   // the job stops, as a shell would see it
        continue;
      }
    }
    for (int i = 0; i < 2; ++i) {
      Stream& s = *streams[i];
      const bool writable = out_slot[i] >= 0 && pf[out_slot[i]].revents != 0;
      s.flush(writable);  // make room first
      if (in_slot[i] >= 0 && pf[in_slot[i]].revents != 0) {
        s.read_some(o.tail_bytes, o.passthrough);
        s.flush(false);
      }
    }
  }

  // What the command wrote before the run ended is still passed on: what is pending and
  // what its pipes hold at this moment (not what descendants it left behind write later).
  // Our stdout may be slow to take it; we wait for it as the command itself would have,
  // until a terminating signal says to give up (the rest is dropped and counted).
  {
    std::size_t budget[2] = {0, 0};
    Stream* streams[2] = {&out, &err};
    for (int i = 0; i < 2; ++i) {
      int queued = 0;
      if (streams[i]->fd.valid() && ::ioctl(streams[i]->fd.get(), FIONREAD, &queued) == 0 && queued > 0) {
        budget[i] = static_cast<std::size_t>(queued);
      }
    }
    for (;;) {
      if (give_up_output) {  // keep the rest for the tail only
        for (int i = 0; i < 2; ++i) {
          streams[i]->drop();
          streams[i]->dropped += streams[i]->read_some(o.tail_bytes, false, budget[i]);
        }
        break;
      }
      bool done = true;
      pollfd pf[5];
      nfds_t n = 0;
      pf[n++] = {sfd.get(), POLLIN, 0};
      int out_slot[2] = {-1, -1};
      bool progress = false;
      for (int i = 0; i < 2; ++i) {
        Stream& s = *streams[i];
        const std::size_t got = s.read_some(o.tail_bytes, o.passthrough, budget[i]);
        budget[i] -= std::min(budget[i], got);
        if (s.eof) budget[i] = 0;
        s.flush(false);
        if (!s.pending.empty()) {
          done = false;
          out_slot[i] = static_cast<int>(n);
          pf[n++] = {s.sink.fd(), POLLOUT, 0};
        } else if (budget[i] > 0) {
          if (got == 0) {
            budget[i] = 0;  // the pipe has nothing after all
          } else {
            done = false;  // pending was full and is empty now: read on
            progress = true;
          }
        }
      }
      if (done) break;
      if (progress) continue;
      if (::poll(pf, n, -1) < 0 && errno != EINTR) break;
      if (pf[0].revents & POLLIN) read_signals();
      for (int i = 0; i < 2; ++i) {
        if (out_slot[i] >= 0 && pf[out_slot[i]].revents != 0) streams[i]->flush(true);
      }
    }
  }

  if (own_tty && ::tcgetpgrp(STDIN_FILENO) == pid) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  pty.restore();
  if (!leftovers_killed) note_leftovers();
  const Sample last = sampler.sample();  // after every reap: counts the reaped children's work
  record(last);
  const bool measured = cg.active();
  const detail::CgroupTotals ct = cg.read();
  cg.remove();  // the tree is gone (what it left running goes on in our cgroup)
  if (reason.empty() && o.max_rss_bytes && limit_source == RssLimitSource::kernel && ct.oom_kills > 0) {
    reason = "max-rss";
  }
  restore();

  // The run's end on the wall clock is its start plus the monotonic time since: the two
  // clocks are read a moment apart at the start (a preemption between them would show the
  // last sample after the end), and a wall-clock step must not shorten a run.
  r.end_unix_ns = r.start_unix_ns + static_cast<std::int64_t>(clock::monotonic_ns() - t0);
  r.duration_ns = static_cast<std::int64_t>((child_end != 0 ? child_end : clock::monotonic_ns()) - t0);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.kill_reason = !reason.empty() ? reason : forwarded;
  if (reason.empty() && !forwarded.empty() && sigkilled) r.kill_reason += "+SIGKILL";
  r.leftover_processes = leftovers;
  r.leftovers_killed = leftovers_killed;
  r.exit_code = !reason.empty() ? 124 : exit_code_from_status(status);
  if (status_lost) {
    r.error = "the command's exit status was collected by another waitpid() in this process";
    r.exit_code = 125;
  }
  res.dropped_output_bytes = out.dropped + err.dropped;
  r.user_cpu_ns = tv_ns(total.ru_utime);
  r.sys_cpu_ns = tv_ns(total.ru_stime);
  // The command's own peak: its exit status's maxrss also holds the copy of our memory
  // map it was forked with; when it is no larger than that copy, the peak at exit is the
  // command's (children it waited for itself, if larger, show in the maxrss).
  if (sp.traced && exit_hwm_kib != 0 && root_maxrss_kib <= sp.pre_exec_hwm_kib + kPreExecSlackKib) {
    root_maxrss_kib = exit_hwm_kib;
  }
  r.max_rss_bytes = std::max(max_rss_kib, root_maxrss_kib) * 1024;
  r.read_bytes = static_cast<std::uint64_t>(total.ru_inblock) * 512;
  r.write_bytes = static_cast<std::uint64_t>(total.ru_oublock) * 512;
  r.minflt = static_cast<std::uint64_t>(total.ru_minflt);
  r.majflt = static_cast<std::uint64_t>(total.ru_majflt);
  r.vol_ctx = static_cast<std::uint64_t>(total.ru_nvcsw);
  r.invol_ctx = static_cast<std::uint64_t>(total.ru_nivcsw);
  for (const Sample& s : res.samples) {
    r.peak_tree_rss_bytes = std::max(r.peak_tree_rss_bytes, s.rss_bytes);
    r.peak_tree_pss_bytes = std::max(r.peak_tree_pss_bytes, s.pss_bytes);
    r.peak_threads = std::max(r.peak_threads, s.threads);
    r.peak_processes = std::max(r.peak_processes, s.processes);
    r.rchar = std::max(r.rchar, s.rchar);
    r.wchar = std::max(r.wchar, s.wchar);
  }
  // The tree's figures: the kernel's for the cgroup where it has them, else our own.
  r.tree_peak_memory_bytes = measured ? ct.peak_memory_bytes : r.peak_tree_rss_bytes;
  r.tree_user_cpu_ns = ct.has_cpu ? ct.user_cpu_ns : r.user_cpu_ns;
  r.tree_sys_cpu_ns = ct.has_cpu ? ct.sys_cpu_ns : r.sys_cpu_ns;
  r.tree_read_bytes = ct.has_io ? ct.read_bytes : r.read_bytes;
  r.tree_write_bytes = ct.has_io ? ct.write_bytes : r.write_bytes;
  r.tree_peak_processes = ct.has_pids ? ct.peak_pids : r.peak_processes;
  r.monitor_cpu_ns = clock::thread_cpu_ns() - cpu0;
  auto trim = [&](std::string& t) {
    if (t.size() > o.tail_bytes) t.erase(0, t.size() - o.tail_bytes);
  };
  trim(out.tail);
  trim(err.tail);
  r.stdout_tail = std::move(out.tail);
  r.stderr_tail = std::move(err.tail);
  return res;
}

}  // namespace SPYGLASS_NAMESPACE::monitor
