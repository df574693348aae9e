// run(): posix_spawn into a new process group, one poll loop over a signalfd and the
// command's output pipes, sampling on a fixed schedule, limits enforced over the tree.

#include "spyglass/monitor/runner.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "proc_io.hpp"

extern char** environ;

namespace spyglass::inline v0::monitor {

namespace {

using detail::Fd;

std::uint64_t mono_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::int64_t real_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t tv_ns(const timeval& tv) noexcept {
  return static_cast<std::uint64_t>(tv.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(tv.tv_usec) * 1000ULL;
}

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

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // our stdout went away: keep monitoring, drop the copy
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// The command's output: copied through live, the last `keep` bytes retained.
struct Stream {
  Fd fd;
  int out_fd;
  std::string tail;
  bool eof = false;

  void pump(std::size_t keep, bool passthrough) {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // EAGAIN: nothing more now
      }
      if (n == 0) {
        eof = true;
        fd.reset();
        return;
      }
      if (passthrough) write_all(out_fd, buf, static_cast<std::size_t>(n));
      tail.append(buf, static_cast<std::size_t>(n));
      if (tail.size() > 2 * keep + sizeof buf) tail.erase(0, tail.size() - keep);
    }
  }
};

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
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&watched, s);
  sigset_t block = watched;
  sigaddset(&block, SIGTTOU);  // lets us take the terminal back from the command's group
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  struct sigaction ign {
  }, old_pipe{};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe);
  Fd sfd(::signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK));
  const int old_subreaper = [] {
    int v = 0;
    ::prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0);
    return v;
  }();
  // Orphaned grandchildren are re-parented to us, so they stay in the sampled tree and
  // can be killed and reaped.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  const std::uint64_t cpu0 = thread_cpu_ns();

  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  ::pipe2(out_pipe, O_CLOEXEC);
  ::pipe2(err_pipe, O_CLOEXEC);
  Stream out{Fd(out_pipe[0]), STDOUT_FILENO, {}, false};
  Stream err{Fd(err_pipe[0]), STDERR_FILENO, {}, false};
  Fd out_w(out_pipe[1]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (out_w.valid()) posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
  if (err_w.valid()) posix_spawn_file_actions_adddup2(&fa, err_w.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Dispositions the monitor changes go back to default; signals ignored by whoever started
  // us (SIGHUP under nohup, SIGINT for a background job) stay ignored, as with exec.
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGXFSZ);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setsigmask(&attr, &old_mask);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  Sampler sampler = Sampler::children_of_self({.smaps = o.smaps, .tree = true});
  pid_t pid = -1;
  res.start_mono_ns = mono_ns();
  r.start_unix_ns = real_ns();
  const int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  out_w.reset();
  err_w.reset();

  auto restore = [&] {
    ::prctl(PR_SET_CHILD_SUBREAPER, old_subreaper, 0, 0, 0);
    signalfd_siginfo si;
    while (sfd.valid() && ::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  };

  if (rc != 0) {
    r.error = std::strerror(rc);
    r.exit_code = (rc == ENOENT || rc == ENOTDIR) ? 127 : 126;
    r.end_unix_ns = real_ns();
    r.duration_ns = static_cast<std::int64_t>(mono_ns() - res.start_mono_ns);
    restore();
    return res;
  }

  const bool own_tty = ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
  if (own_tty) ::tcsetpgrp(STDIN_FILENO, pid);
  for (Stream* s : {&out, &err}) {
    if (s->fd.valid()) ::fcntl(s->fd.get(), F_SETFL, ::fcntl(s->fd.get(), F_GETFL) | O_NONBLOCK);
  }

  rusage total{};
  std::uint64_t max_rss_kib = 0;
  int status = 0;
  bool child_done = false;
  std::uint64_t child_end = 0;
  std::string reason;
  std::string forwarded;
  bool killing = false, sigkilled = false;
  std::uint64_t kill_deadline = 0;
  const std::uint64_t t0 = res.start_mono_ns;
  std::uint64_t next_sample = t0;
  const std::uint64_t timeout_at =
      o.timeout ? t0 + static_cast<std::uint64_t>(std::max<std::int64_t>(o.timeout->count(), 0)) : 0;

  auto reap = [&]() -> bool {  // false once we have no children at all
    for (;;) {
      int st = 0;
      rusage ru{};
      const pid_t p = ::wait4(-1, &st, WNOHANG, &ru);
      if (p == 0) return true;
      if (p < 0) return errno == EINTR ? true : false;
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
      max_rss_kib = std::max(max_rss_kib, static_cast<std::uint64_t>(ru.ru_maxrss));
      if (p == pid) {
        status = st;
        child_done = true;
        child_end = mono_ns();
      }
    }
  };

  auto signal_tree = [&](int sig) {
    ::kill(-pid, sig);
    sampler.sample();  // fresh list of the tree, including processes that left the group
    for (pid_t p : sampler.pids()) ::kill(p, sig);
  };

  auto begin_kill = [&](const char* why) {
    if (killing) return;
    killing = true;
    reason = why;
    if (o.kill == KillStrategy::immediate || grace == 0) {
      signal_tree(SIGKILL);
      sigkilled = true;
    } else {
      signal_tree(SIGTERM);
      signal_tree(SIGCONT);  // a stopped process cannot act on SIGTERM
      kill_deadline = mono_ns() + grace;
    }
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

  std::uint64_t drain_until = 0;
  for (;;) {
    std::uint64_t now = mono_ns();
    if (!child_done && now >= next_sample) {
      const Sample s = sampler.sample();
      record(s);
      if (o.max_rss_bytes && s.rss_bytes > *o.max_rss_bytes) begin_kill("max-rss");
      if (o.max_cpu_seconds && static_cast<double>(s.cpu_user_ns + s.cpu_sys_ns) / 1e9 > *o.max_cpu_seconds) {
        begin_kill("max-cpu");
      }
      next_sample += interval;
      if (next_sample <= now) next_sample = now + interval;  // fell behind: do not burst
    }
    if (timeout_at != 0 && !killing && now >= timeout_at) begin_kill("timeout");
    if (killing && !sigkilled && now >= kill_deadline) {
      signal_tree(SIGKILL);
      sigkilled = true;
    }
    if (sigkilled) signal_tree(SIGKILL);  // anything forked since the last round

    bool have_children = reap();
    if (child_done) {
      if (killing) {
        // A killed run ends only when no descendant is left.
        if (!have_children) {
          if (!out.eof || !err.eof) {
            out.pump(o.tail_bytes, o.passthrough);
            err.pump(o.tail_bytes, o.passthrough);
          }
          break;
        }
      } else {
        // The command is done; take what it wrote, but do not wait on descendants that
        // still hold the pipes open.
        if (drain_until == 0) drain_until = child_end + 200000000ULL;
        if ((out.eof && err.eof) || now >= drain_until) {
          out.pump(o.tail_bytes, o.passthrough);
          err.pump(o.tail_bytes, o.passthrough);
          break;
        }
      }
    }

    std::uint64_t wake = child_done ? now + std::uint64_t{10000000} : next_sample;
    if (timeout_at != 0 && !killing) wake = std::min(wake, timeout_at);
    if (killing && !sigkilled) wake = std::min(wake, kill_deadline);
    if (sigkilled) wake = std::min(wake, now + std::uint64_t{10000000});
    if (drain_until != 0) wake = std::min(wake, drain_until);
    now = mono_ns();
    const int timeout_ms = wake > now ? static_cast<int>((wake - now + 999999) / 1000000) : 0;

    pollfd pf[3];
    nfds_t n = 0;
    pf[n++] = {sfd.get(), POLLIN, 0};
    const bool watch_out = out.fd.valid(), watch_err = err.fd.valid();
    if (watch_out) pf[n++] = {out.fd.get(), POLLIN, 0};
    if (watch_err) pf[n++] = {err.fd.get(), POLLIN, 0};
    const int pr = ::poll(pf, n, timeout_ms);
    if (pr <= 0) continue;
    if (pf[0].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        const int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) continue;  // reaped at the top of the loop
        if (!child_done) {
          ::kill(-pid, sig);
          if (forwarded.empty()) forwarded = signal_name(sig);
        }
      }
    }
    if (watch_out) out.pump(o.tail_bytes, o.passthrough);
    if (watch_err) err.pump(o.tail_bytes, o.passthrough);
  }

  if (own_tty) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  const Sample last = sampler.sample();  // after every reap: counts the reaped children's work
  record(last);
  restore();

  r.end_unix_ns = real_ns();
  r.duration_ns = static_cast<std::int64_t>((child_end != 0 ? child_end : mono_ns()) - t0);
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.kill_reason = !reason.empty() ? reason : forwarded;
  r.exit_code = !reason.empty() ? 124 : exit_code_from_status(status);
  r.user_cpu_ns = tv_ns(total.ru_utime);
  r.sys_cpu_ns = tv_ns(total.ru_stime);
  r.max_rss_bytes = max_rss_kib * 1024;
  r.read_bytes = static_cast<std::uint64_t>(total.ru_inblock) * 512;
  r.write_bytes = static_cast<std::uint64_t>(total.ru_oublock) * 512;
  r.minflt = static_cast<std::uint64_t>(total.ru_minflt);
  r.majflt = static_cast<std::uint64_t>(total.ru_majflt);
  r.vol_ctx = static_cast<std::uint64_t>(total.ru_nvcsw);
  r.invol_ctx = static_cast<std::uint64_t>(total.ru_nivcsw);
  for (const Sample& s : res.samples) {
    r.peak_tree_rss_bytes = std::max(r.peak_tree_rss_bytes, s.rss_bytes);
    r.peak_threads = std::max(r.peak_threads, s.threads);
    r.peak_processes = std::max(r.peak_processes, s.processes);
    r.rchar = std::max(r.rchar, s.rchar);
    r.wchar = std::max(r.wchar, s.wchar);
  }
  r.monitor_cpu_ns = thread_cpu_ns() - cpu0;
  auto trim = [&](std::string& t) {
    if (t.size() > o.tail_bytes) t.erase(0, t.size() - o.tail_bytes);
  };
  trim(out.tail);
  trim(err.tail);
  r.stdout_tail = std::move(out.tail);
  r.stderr_tail = std::move(err.tail);
  return res;
}

}  // namespace spyglass::inline v0::monitor
