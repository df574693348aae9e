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
#include <sys/ptrace.h>
#include <sys/resource.h>
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
#include <optional>
#include <utility>

#include "cgroup.hpp"
#include "proc_io.hpp"
#include "run_parts.hpp"
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
// syscall counts survive exec). One descriptor re-read with pread; after a few yields
// (enough on an idle machine) it sleeps 50 us between reads, so that a child slow to be
// scheduled on a busy machine costs us a few reads, not a core.
void wait_blocked(pid_t pid) {
  const Fd fd = detail::open_ro(("/proc/" + std::to_string(pid) + "/stat").c_str());
  std::string buf;
  for (int i = 0; i < 100000 && fd.valid(); ++i) {
    if (!detail::pread_all(fd.get(), buf)) return;
    const char state = detail::stat_state(buf);
    if (state == 0 || state == 'S') return;
    if (i < 8) {
      ::sched_yield();
    } else {
      const timespec ts{0, 50000};
      ::nanosleep(&ts, nullptr);
    }
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

AllSignalsBlocked::AllSignalsBlocked() noexcept {
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old_);
}

AllSignalsBlocked::~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

int exit_code_from_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

namespace {

using detail::OutputStream;
using detail::SignalScope;
using detail::TreeKiller;

// The signals run() takes through its signalfd.
sigset_t watched_signals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&s, sig);
  return s;
}

std::uint64_t non_negative_ns(std::chrono::nanoseconds d) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
}

// Makes a pipe's read end non-blocking and, best effort, a whole pump read large: fewer
// wake-ups of the monitor and of a command writing a lot.
void prepare_source(int fd) {
  if (fd < 0) return;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) ::fcntl(fd, F_SETPIPE_SZ, 256 * 1024);
}

// One run of one command: started by start(), watched by loop() until it and its tree are
// done, its remaining output passed on by drain_output(), its record completed by
// finish(). The parts that stand alone (signal set-up, output pump, tree killer) are in
// run_parts.hpp.
class Run {
 public:
  Run(const RunOptions& o, RunResult& res)
      : o_(o),
        res_(res),
        r_(res.record),
        signals_(watched_signals()),
        interval_(std::max<std::uint64_t>(non_negative_ns(o.interval), 10000000)),
        grace_(non_negative_ns(o.grace)),
        immediate_(o.kill == KillStrategy::immediate) {}

  // Everything up to the command running; false when it could not start (the record
  // says why).
  bool start();
  void loop();
  void drain_output();
  void finish();

 private:
  void trace_stop(int st);
  bool reap();
  void handle_stop(int sig);
  void record(const Sample& s);
  void read_signals();
  void note_leftovers();
  void sample_and_check_limits(std::uint64_t now);
  void pump(std::uint64_t now);
  int poll_timeout(std::uint64_t now) const;

  const RunOptions& o_;
  RunResult& res_;
  RunRecord& r_;
  SignalScope signals_;
  const std::uint64_t interval_, grace_;
  const bool immediate_;
  std::uint64_t cpu0_ = clock::thread_cpu_ns();

  Pty pty_;
  std::optional<OutputStream> out_, err_;
  detail::Cgroup cg_;
  RssLimitSource limit_source_ = RssLimitSource::rss;
  Spawn sp_;
  std::optional<Sampler> sampler_;
  std::optional<TreeKiller> killer_;
  pid_t pid_ = -1;
  bool own_tty_ = false, relaying_ = false;

  std::uint64_t t0_ = 0, next_sample_ = 0, timeout_at_ = 0, drain_ = 0, drain_until_ = 0;
  rusage total_{};
  std::uint64_t max_rss_kib_ = 0, root_maxrss_kib_ = 0, exit_hwm_kib_ = 0;
  int status_ = 0;
  bool child_done_ = false, status_lost_ = false, listening_ = false, give_up_output_ = false;
  int stopped_by_ = 0;  // the signal that stopped the command, until handled
  std::uint64_t child_end_ = 0;
  std::string forwarded_;
  std::uint32_t leftovers_ = 0;
  bool leftovers_killed_ = false;
};

bool Run::start() {
  // Each of stdout/stderr is a pipe, or the pty when ours is a terminal; with both on the
  // pty, its output is one stream (kept as the stdout tail).
  if (o_.terminal && o_.passthrough) pty_.open();
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (!pty_.on_out()) ::pipe2(out_pipe, O_CLOEXEC);
  if (!pty_.on_err()) ::pipe2(err_pipe, O_CLOEXEC);
  Fd out_w(out_pipe[1]), err_w(err_pipe[1]);
  Fd out_r(out_pipe[0]), err_r(err_pipe[0]);
  if (pty_.on_out()) {
    out_r = pty_.reader();
  } else if (pty_.on_err()) {
    err_r = pty_.reader();
  }
  out_.emplace(std::move(out_r), STDOUT_FILENO, o_.passthrough, o_.tail_bytes);
  err_.emplace(std::move(err_r), STDERR_FILENO, o_.passthrough, o_.tail_bytes);
  ChildIo io;
  io.out = pty_.on_out() ? pty_.slave() : out_w.get();
  io.err = pty_.on_err() ? pty_.slave() : err_w.get();
  if (pty_.active()) io.pty = pty_.slave();
  if (pty_.relays_input()) io.in = pty_.slave();

  // The tree's own cgroup: made before the command exists, which enters it before its
  // exec, so nothing it starts escapes the accounting (or the limit).
  cg_ = o_.cgroup == CgroupMode::off ? detail::Cgroup::none("cgroups were turned off")
                                     : detail::Cgroup::create();
  limit_source_ = o_.max_rss_source;
  std::string limit_why;
  if (o_.max_rss_bytes && limit_source_ == RssLimitSource::kernel) {
    if (!cg_.limit_memory(*o_.max_rss_bytes, limit_why)) limit_source_ = RssLimitSource::rss;
  }

  sp_ = spawn(o_.argv, io, signals_.old_mask(), o_.exact_peak);
  sampler_.emplace(Sampler::children_of_self(
      {.smaps = o_.smaps || (o_.max_rss_bytes && limit_source_ == RssLimitSource::pss), .tree = true}));
  if (sp_.pid > 0 && cg_.active() && !cg_.place(sp_.pid) && limit_source_ == RssLimitSource::kernel) {
    limit_source_ = RssLimitSource::rss;  // not in the cgroup: the limit would not apply
  }
  if (!cg_.active() && limit_source_ == RssLimitSource::cgroup) limit_source_ = RssLimitSource::rss;
  if (o_.max_rss_bytes && limit_source_ != o_.max_rss_source) {
    res_.warnings.push_back(std::string("the memory limit applies to the sampled RSS sum, not the ") +
                            source_name(o_.max_rss_source) +
                            " figure: " + (cg_.active() ? limit_why : cg_.reason()));
  }
  r_.tree_source = cg_.source();
  r_.tree_source_reason = cg_.reason();
  if (o_.max_rss_bytes) r_.max_rss_source = source_name(limit_source_);
  if (o_.timeout) r_.limits.timeout_ns = o_.timeout->count();
  r_.limits.max_rss_bytes = o_.max_rss_bytes;
  r_.limits.max_cpu_seconds = o_.max_cpu_seconds;
  r_.limits.kill = o_.kill == KillStrategy::immediate ? "immediate" : "graceful";
  r_.limits.grace_ns = o_.grace.count();
  res_.start_mono_ns = clock::monotonic_ns();
  r_.start_unix_ns = static_cast<std::int64_t>(clock::realtime_ns());
  sp_.start();
  pid_ = sp_.pid;
  const int rc = sp_.error;
  out_w.reset();
  err_w.reset();
  pty_.close_slave();  // the pty reports its end once the command's tree has closed it

  if (rc != 0) {
    r_.error = std::strerror(rc);
    r_.exit_code = (rc == ENOENT || rc == ENOTDIR) ? 127 : 126;
    r_.duration_ns = static_cast<std::int64_t>(clock::monotonic_ns() - res_.start_mono_ns);
    r_.end_unix_ns = r_.start_unix_ns + r_.duration_ns;
    return false;
  }

  // On a pty the command has a terminal of its own, and ours stays with us.
  own_tty_ = !pty_.active() && ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp() &&
             !shares_process_group();
  if (own_tty_) ::tcsetpgrp(STDIN_FILENO, pid_);
  pty_.make_raw();
  relaying_ = pty_.raw();
  prepare_source(out_->source());
  prepare_source(err_->source());

  killer_.emplace(pid_, cg_, *sampler_, grace_);
  t0_ = res_.start_mono_ns;
  next_sample_ = t0_;
  timeout_at_ = o_.timeout ? t0_ + non_negative_ns(*o_.timeout) : 0;
  drain_ = non_negative_ns(o_.drain);
  return true;
}

// The traced command stopped: at its exit (read its own peak RSS, which its exit status
// cannot tell apart from the copy of our memory map it was forked with), in a group stop
// (leave it stopped, as without us), or for a signal (deliver it).
void Run::trace_stop(int st) {
  const int event = st >> 16, sig = WSTOPSIG(st);
  if (event == PTRACE_EVENT_EXIT) {
    exit_hwm_kib_ = std::max(exit_hwm_kib_, hwm_kib(pid_));
    ::ptrace(PTRACE_CONT, pid_, nullptr, nullptr);
  } else if (event == PTRACE_EVENT_STOP &&
             (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)) {
    if (!listening_) stopped_by_ = sig;
    listening_ = true;
    ::ptrace(PTRACE_LISTEN, pid_, nullptr, nullptr);
  } else {
    listening_ = false;
    const long deliver = event == 0 ? sig : 0;
    ::ptrace(PTRACE_CONT, pid_, nullptr, reinterpret_cast<void*>(deliver));
  }
}

// Collects every child that has changed state; false once we have no children at all.
bool Run::reap() {
  for (;;) {
    int st = 0;
    rusage ru{};
    const pid_t p = ::wait4(-1, &st, WNOHANG | WUNTRACED, &ru);
    if (p == 0) return true;
    if (p < 0) return errno == EINTR;
    if (WIFSTOPPED(st)) {  // still alive; ru is its usage so far, not a final total
      if (p == pid_ && sp_.traced) {
        trace_stop(st);
      } else if (p == pid_) {
        stopped_by_ = WSTOPSIG(st);
      }
      continue;
    }
    total_.ru_utime.tv_sec += ru.ru_utime.tv_sec;
    total_.ru_utime.tv_usec += ru.ru_utime.tv_usec;
    total_.ru_stime.tv_sec += ru.ru_stime.tv_sec;
    total_.ru_stime.tv_usec += ru.ru_stime.tv_usec;
    total_.ru_minflt += ru.ru_minflt;
    total_.ru_majflt += ru.ru_majflt;
    total_.ru_inblock += ru.ru_inblock;
    total_.ru_oublock += ru.ru_oublock;
    total_.ru_nvcsw += ru.ru_nvcsw;
    total_.ru_nivcsw += ru.ru_nivcsw;
    if (p == pid_) {
      root_maxrss_kib_ = static_cast<std::uint64_t>(ru.ru_maxrss);
    } else {
      max_rss_kib_ = std::max(max_rss_kib_, static_cast<std::uint64_t>(ru.ru_maxrss));
    }
    if (p == pid_) {
      status_ = st;
      child_done_ = true;
      child_end_ = clock::monotonic_ns();
    }
  }
}

// The command stopped itself the way a terminal job does (Ctrl-Z, or tty access from the
// background). When it had our terminal, do what a shell does: take the terminal back and
// stop ourselves the same way, so that whoever started us sees the job stop. Once we are
// continued, hand the terminal back if we are in the foreground again and continue the
// command. When we cannot be stopped (no job control: our process group is orphaned, or
// the signal is ignored) the command is continued at once. On a pty the same holds with
// our terminal's mode in place of its ownership: it leaves raw mode while we are stopped,
// and the window may have changed meanwhile.
void Run::handle_stop(int sig) {
  if (!(own_tty_ || pty_.raw()) || killer_->killing() ||
      (sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU)) {
    return;
  }
  if (own_tty_ && ::tcgetpgrp(STDIN_FILENO) == pid_) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  pty_.restore();
  ::kill(::getpid(), sig == SIGTTIN ? SIGTTIN : SIGTSTP);  // SIGTTOU is blocked here
  if (own_tty_ && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp()) ::tcsetpgrp(STDIN_FILENO, pid_);
  pty_.make_raw();
  relaying_ = pty_.raw();
  pty_.sync_size();
  ::kill(-pid_, SIGCONT);
}

void Run::record(const Sample& s) {
  auto& samples = res_.samples;
  samples.push_back(s);
  if (samples.size() > o_.max_samples && o_.max_samples >= 2) {
    // Thin: keep every other sample (the first and the newest always survive).
    std::vector<Sample> kept;
    kept.reserve(samples.size() / 2 + 1);
    for (std::size_t i = 0; i < samples.size(); i += 2) kept.push_back(samples[i]);
    if ((samples.size() - 1) % 2 != 0) kept.push_back(samples.back());
    samples.swap(kept);
  }
  if (o_.on_sample) o_.on_sample(s);
}

// Reads the signalfd. A terminating signal ends the whole tree: it goes to every process
// in it (those that left the group with setsid too), SIGKILL follows for what is left
// after the grace period, and the run ends only once no descendant is left. Once the
// command has ended, or for a second signal, it also means: stop waiting for output to
// go out.
void Run::read_signals() {
  for (int sig; (sig = signals_.next()) != 0;) {
    if (sig == SIGCHLD) continue;  // reaped at the top of the loop
    if (sig == SIGWINCH) {
      pty_.sync_size();
      continue;
    }
    if (child_done_ || !forwarded_.empty()) give_up_output_ = true;
    if (!child_done_ && forwarded_.empty()) forwarded_ = signal_name(sig);
    killer_->forward(sig);
  }
}

// Descendants still running once the command has exited: counted, and ended when asked.
void Run::note_leftovers() {
  leftovers_ = sampler_->sample().processes;
  res_.leftover_pids.assign(sampler_->pids().begin(), sampler_->pids().end());
}

void Run::sample_and_check_limits(std::uint64_t now) {
  const Sample s = sampler_->sample();
  record(s);
  if (o_.max_rss_bytes) {
    std::uint64_t mem = 0;  // kernel: the kernel enforces it; an OOM kill shows below
    if (limit_source_ == RssLimitSource::rss) mem = s.rss_bytes;
    if (limit_source_ == RssLimitSource::pss) mem = s.pss_bytes;
    if (limit_source_ == RssLimitSource::cgroup) mem = cg_.peak_memory();
    if (mem > *o_.max_rss_bytes) killer_->begin("max-rss", immediate_);
  }
  // The kernel killed a process at the limit: the run ends as for any limit.
  if (o_.max_rss_bytes && limit_source_ == RssLimitSource::kernel && cg_.oom_kills() > 0) {
    killer_->begin("max-rss", immediate_);
  }
  if (o_.max_cpu_seconds && static_cast<double>(s.cpu_user_ns + s.cpu_sys_ns) / 1e9 > *o_.max_cpu_seconds) {
    killer_->begin("max-cpu", immediate_);
  }
  next_sample_ += interval_;
  if (next_sample_ <= now) next_sample_ = now + interval_;  // fell behind: do not burst
}

int Run::poll_timeout(std::uint64_t now) const {
  std::uint64_t wake = child_done_ ? now + std::uint64_t{10000000} : next_sample_;
  if (timeout_at_ != 0 && !killer_->killing() && !child_done_) wake = std::min(wake, timeout_at_);
  wake = std::min(wake, killer_->next_due(now));
  if (drain_until_ != 0) wake = std::min(wake, drain_until_);
  now = clock::monotonic_ns();
  return wake > now ? static_cast<int>((wake - now + 999999) / 1000000) : 0;
}

// One wait in poll() for a signal, output, our side taking output, a key, or the next
// thing due, and what it reported handled.
void Run::pump(std::uint64_t now) {
  const int timeout_ms = poll_timeout(now);
  pollfd pf[6];
  nfds_t n = 0;
  pf[n++] = {signals_.fd(), POLLIN, 0};
  const int stdin_slot = relaying_ && !child_done_ ? static_cast<int>(n) : -1;
  if (stdin_slot >= 0) pf[n++] = {STDIN_FILENO, POLLIN, 0};
  int in_slot[2] = {-1, -1}, out_slot[2] = {-1, -1};
  OutputStream* streams[2] = {&*out_, &*err_};
  for (int i = 0; i < 2; ++i) {
    OutputStream& s = *streams[i];
    if (s.source() >= 0 && s.room()) {
      in_slot[i] = static_cast<int>(n);
      pf[n++] = {s.source(), POLLIN, 0};
    }
    if (s.has_pending()) {
      out_slot[i] = static_cast<int>(n);
      pf[n++] = {s.sink().fd(), POLLOUT, 0};
    }
  }
  if (::poll(pf, n, timeout_ms) <= 0) return;
  if (pf[0].revents & POLLIN) read_signals();
  if (stdin_slot >= 0 && pf[stdin_slot].revents != 0) {
    const Pty::Input in = pty_.relay_input(pid_);
    if (in == Pty::Input::ended) relaying_ = false;
    if (in == Pty::Input::suspend && !killer_->killing()) {
      ::kill(-pid_, SIGSTOP);  // cannot be caught: the group is stopped now
      handle_stop(SIGTSTP);    // the job stops, as a shell would see it
      return;
    }
  }
  for (int i = 0; i < 2; ++i) {
    OutputStream& s = *streams[i];
    s.flush(out_slot[i] >= 0 && pf[out_slot[i]].revents != 0);  // make room first
    if (in_slot[i] >= 0 && pf[in_slot[i]].revents != 0) {
      s.read_some();
      s.flush(false);
    }
  }
}

void Run::loop() {
  for (;;) {
    const std::uint64_t now = clock::monotonic_ns();
    if (!child_done_ && now >= next_sample_) sample_and_check_limits(now);
    // Limits apply while the command runs; descendants it leaves behind holding the
    // pipes open are no reason to kill anything.
    if (timeout_at_ != 0 && !killer_->killing() && !child_done_ && now >= timeout_at_) {
      killer_->begin("timeout", immediate_);
    }
    killer_->tick(now);

    const bool have_children = reap();
    if (!have_children && !child_done_) {
      // Someone else collected the command (another thread's waitpid(-1)).
      child_done_ = status_lost_ = true;
      child_end_ = clock::monotonic_ns();
    }
    if (stopped_by_ != 0) {
      handle_stop(std::exchange(stopped_by_, 0));
      continue;  // time passed while we were stopped
    }
    if (child_done_ && !killer_->killing() && o_.max_rss_bytes && limit_source_ == RssLimitSource::kernel &&
        cg_.oom_kills() > 0) {
      killer_->begin("max-rss", immediate_);  // what the OOM kill of the command left
    }
    if (child_done_) {
      if (killer_->killing()) {
        // A killed run ends only when no descendant is left.
        if (!have_children) break;
      } else if (o_.kill_leftovers && have_children) {
        note_leftovers();
        leftovers_killed_ = true;
        killer_->begin(nullptr, immediate_);
        continue;
      } else {
        // The command is done; take what it wrote, but do not wait on descendants that
        // still hold the pipes open.
        if (drain_until_ == 0) drain_until_ = child_end_ + drain_;
        if ((out_->eof() && err_->eof()) || now >= drain_until_ || give_up_output_) break;
      }
    }
    pump(now);
  }
}

// What the command wrote before the run ended is still passed on: what is pending and
// what its pipes hold at this moment (not what descendants it left behind write later).
// Our stdout may be slow to take it; we wait for it as the command itself would have,
// until a terminating signal says to give up (the rest is dropped and counted).
void Run::drain_output() {
  std::size_t budget[2] = {0, 0};
  OutputStream* streams[2] = {&*out_, &*err_};
  for (int i = 0; i < 2; ++i) {
    int queued = 0;
    if (streams[i]->source() >= 0 && ::ioctl(streams[i]->source(), FIONREAD, &queued) == 0 && queued > 0) {
      budget[i] = static_cast<std::size_t>(queued);
    }
  }
  for (;;) {
    if (give_up_output_) {  // keep the rest for the tail only
      for (int i = 0; i < 2; ++i) {
        streams[i]->drop();
        streams[i]->read_for_tail_only(budget[i]);
      }
      return;
    }
    bool done = true;
    pollfd pf[5];
    nfds_t n = 0;
    pf[n++] = {signals_.fd(), POLLIN, 0};
    int out_slot[2] = {-1, -1};
    bool progress = false;
    for (int i = 0; i < 2; ++i) {
      OutputStream& s = *streams[i];
      const std::size_t got = s.read_some(budget[i]);
      budget[i] -= std::min(budget[i], got);
      if (s.eof()) budget[i] = 0;
      s.flush(false);
      if (s.has_pending()) {
        done = false;
        out_slot[i] = static_cast<int>(n);
        pf[n++] = {s.sink().fd(), POLLOUT, 0};
      } else if (budget[i] > 0) {
        if (got == 0) {
          budget[i] = 0;  // the pipe has nothing after all
        } else {
          done = false;  // pending was full and is empty now: read on
          progress = true;
        }
      }
    }
    if (done) return;
    if (progress) continue;
    if (::poll(pf, n, -1) < 0 && errno != EINTR) return;
    if (pf[0].revents & POLLIN) read_signals();
    for (int i = 0; i < 2; ++i) {
      if (out_slot[i] >= 0 && pf[out_slot[i]].revents != 0) streams[i]->flush(true);
    }
  }
}

void Run::finish() {
  if (own_tty_ && ::tcgetpgrp(STDIN_FILENO) == pid_) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  pty_.restore();
  if (!leftovers_killed_) note_leftovers();
  record(sampler_->sample());  // after every reap: counts the reaped children's work
  const bool measured = cg_.active();
  const detail::CgroupTotals ct = cg_.read();
  cg_.remove();  // the tree is gone (what it left running goes on in our cgroup)
  std::string reason = killer_->reason();
  if (reason.empty() && o_.max_rss_bytes && limit_source_ == RssLimitSource::kernel && ct.oom_kills > 0) {
    reason = "max-rss";
  }

  // The run's end on the wall clock is its start plus the monotonic time since: the two
  // clocks are read a moment apart at the start (a preemption between them would show the
  // last sample after the end), and a wall-clock step must not shorten a run.
  r_.end_unix_ns = r_.start_unix_ns + static_cast<std::int64_t>(clock::monotonic_ns() - t0_);
  r_.duration_ns = static_cast<std::int64_t>((child_end_ != 0 ? child_end_ : clock::monotonic_ns()) - t0_);
  r_.signal = WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
  r_.kill_reason = !reason.empty() ? reason : forwarded_;
  if (reason.empty() && !forwarded_.empty() && killer_->sigkilled()) r_.kill_reason += "+SIGKILL";
  r_.leftover_processes = leftovers_;
  r_.leftovers_killed = leftovers_killed_;
  r_.exit_code = !reason.empty() ? 124 : exit_code_from_status(status_);
  if (status_lost_) {
    r_.error = "the command's exit status was collected by another waitpid() in this process";
    r_.exit_code = 125;
  }
  res_.dropped_output_bytes = out_->dropped() + err_->dropped();
  r_.user_cpu_ns = tv_ns(total_.ru_utime);
  r_.sys_cpu_ns = tv_ns(total_.ru_stime);
  // The command's own peak: its exit status's maxrss also holds the copy of our memory
  // map it was forked with; when it is no larger than that copy, the peak at exit is the
  // command's (children it waited for itself, if larger, show in the maxrss).
  if (sp_.traced && exit_hwm_kib_ != 0 && root_maxrss_kib_ <= sp_.pre_exec_hwm_kib + kPreExecSlackKib) {
    root_maxrss_kib_ = exit_hwm_kib_;
  }
  r_.max_rss_bytes = std::max(max_rss_kib_, root_maxrss_kib_) * 1024;
  r_.read_bytes = static_cast<std::uint64_t>(total_.ru_inblock) * 512;
  r_.write_bytes = static_cast<std::uint64_t>(total_.ru_oublock) * 512;
  r_.minflt = static_cast<std::uint64_t>(total_.ru_minflt);
  r_.majflt = static_cast<std::uint64_t>(total_.ru_majflt);
  r_.vol_ctx = static_cast<std::uint64_t>(total_.ru_nvcsw);
  r_.invol_ctx = static_cast<std::uint64_t>(total_.ru_nivcsw);
  for (const Sample& s : res_.samples) {
    r_.peak_tree_rss_bytes = std::max(r_.peak_tree_rss_bytes, s.rss_bytes);
    r_.peak_tree_pss_bytes = std::max(r_.peak_tree_pss_bytes, s.pss_bytes);
    r_.peak_threads = std::max(r_.peak_threads, s.threads);
    r_.peak_processes = std::max(r_.peak_processes, s.processes);
    r_.rchar = std::max(r_.rchar, s.rchar);
    r_.wchar = std::max(r_.wchar, s.wchar);
  }
  // The tree's figures: the kernel's for the cgroup where it has them, else our own.
  r_.tree_peak_memory_bytes = measured ? ct.peak_memory_bytes : r_.peak_tree_rss_bytes;
  r_.tree_user_cpu_ns = ct.has_cpu ? ct.user_cpu_ns : r_.user_cpu_ns;
  r_.tree_sys_cpu_ns = ct.has_cpu ? ct.sys_cpu_ns : r_.sys_cpu_ns;
  r_.tree_read_bytes = ct.has_io ? ct.read_bytes : r_.read_bytes;
  r_.tree_write_bytes = ct.has_io ? ct.write_bytes : r_.write_bytes;
  r_.tree_peak_processes = ct.has_pids ? ct.peak_pids : r_.peak_processes;
  r_.stdout_tail = out_->take_tail();
  r_.stderr_tail = err_->take_tail();
  r_.monitor_cpu_ns = clock::thread_cpu_ns() - cpu0_;
}

}  // namespace

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
  Run run(o, res);
  if (!run.start()) return res;
  run.loop();
  run.drain_output();
  run.finish();
  return res;
}

}  // namespace SPYGLASS_NAMESPACE::monitor
