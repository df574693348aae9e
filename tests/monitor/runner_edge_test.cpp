// run() at the edges: a stdout nobody reads, descendants that outlive the command, job
// control on a terminal, and a caller that ignores SIGCHLD.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <simdjson.h>

#include "spyglass/monitor/runner.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

namespace {

// In a forked test child acting as a shell: waits up to 60 s for `job` to change state as
// waitpid's `options` ask (0: exit; WUNTRACED: also a stop) and returns its status; else
// kills the job and ends the child with `late`.
int wait_for_job(pid_t job, int options, int late) {
  int st = 0;
  pid_t w = 0;
  for (int i = 0; i < 6000 && (w = ::waitpid(job, &st, WNOHANG | options)) == 0; ++i) ::usleep(10000);
  if (w != job) {
    ::kill(-job, SIGKILL);
    std::_Exit(late);
  }
  return st;
}

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using spyglass_test::children_of;
using spyglass_test::kWaitLimit;
using spyglass_test::wait_until;

// `spyglass ARGS` with stdout a pipe the test holds and reads only when asked, stderr to a
// file in `dir`.
class Stalled {
 public:
  Stalled(const std::vector<std::string>& argv, const spyglass_test::TempDir& dir) : err_path_(dir / "err") {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    start_ = Clock::now();
    if (::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    read_fd_ = p[0];
  }
  ~Stalled() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (read_fd_ >= 0) ::close(read_fd_);
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] Clock::time_point start() const { return start_; }
  // Reads stdout to EOF, then waits for the exit.
  spyglass_test::Result drain_and_wait() {
    spyglass_test::Result r;
    char buf[65536];
    for (ssize_t n; (n = ::read(read_fd_, buf, sizeof buf)) > 0;)
      r.out.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    r.seconds = since(start_);
    r.err = spyglass_test::slurp(err_path_);
    return r;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string err_path_;
  Clock::time_point start_;
};

bool only_y_lines(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != (i % 2 == 0 ? 'y' : '\n')) return false;
  }
  return true;
}

}  // namespace

// `yes` fills our stdout, which nobody reads. The timeout must still end the command on
// time, and sampling must go on meanwhile. After the run spyglass waits for its reader
// (it does not drop what the command wrote); once the test reads, everything arrives
// intact and the exit status is the timeout's. Without the fix the loop blocks in
// write() and the command is never killed.
TEST(RunnerPassthrough, UnreadStdoutDoesNotStopTheTimeoutOrSampling) {
  spyglass_test::TempDir dir;
  const std::string json = dir / "run.json";
  Stalled s({kSpyglass, "run", "--no-history", "--quiet", "--interval", "50ms", "--timeout", "1s", "--json",
             json, "--", "yes"},
            dir);
  ASSERT_GT(s.pid(), 0);
  ASSERT_TRUE(wait_until([&] { return !children_of(s.pid()).empty(); }, kWaitLimit));
  const pid_t yes = children_of(s.pid()).front();
  EXPECT_TRUE(wait_until([&] { return !spyglass_test::alive(yes); }, kWaitLimit))
      << "the command was not killed while our stdout was full";
  // The run is over, but what yes wrote is still on its way to the unread pipe.
  EXPECT_TRUE(spyglass_test::alive(s.pid()));
  const auto r = s.drain_and_wait();
  EXPECT_EQ(r.exit_code, 124) << r.err;
  EXPECT_GT(r.out.size(), 64u * 1024);  // more than a pipe's worth: some waited in our buffer
  EXPECT_TRUE(only_y_lines(r.out)) << "output was torn or interleaved";
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.load(json);
  EXPECT_EQ(std::string_view(doc["run"]["kill_reason"]), "timeout");
  // On time, as the monitor recorded it: yes dies on the SIGTERM sent at the 1 s timeout.
  const double duration = static_cast<double>(int64_t(doc["run"]["duration_ns"])) / 1e9;
  EXPECT_GE(duration, 1.0);
  EXPECT_LE(duration, 1.0 + spyglass_test::kMonitorSlack);
  // Samples kept coming while our stdout was full: one of the live command saw it blocked,
  // having written more than our stdout pipe and the monitor's 64 KiB buffer hold.
  simdjson::dom::array samples = doc["samples"];
  std::uint64_t blocked_samples = 0;
  for (auto x : samples) {
    if (uint64_t(x["processes"]) > 0 && uint64_t(x["wchar"]) > 128u * 1024) ++blocked_samples;
  }
  EXPECT_GE(blocked_samples, 1u);
}

// While our stdout is full, SIGTERM still reaches the command; a second SIGTERM while
// spyglass waits for its reader after the run makes it give up waiting.
TEST(RunnerPassthrough, SignalsAreForwardedWhileStdoutIsFull) {
  spyglass_test::TempDir dir;
  Stalled s({kSpyglass, "run", "--no-history", "--quiet", "--", "yes"}, dir);
  ASSERT_GT(s.pid(), 0);
  ASSERT_TRUE(wait_until([&] { return !children_of(s.pid()).empty(); }, kWaitLimit));
  const pid_t yes = children_of(s.pid()).front();
  // Let yes fill the pipe and our buffer: its /proc/PID/io wchar passes pipe + buffer.
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string io = spyglass_test::slurp("/proc/" + std::to_string(yes) + "/io");
        const auto pos = io.find("wchar: ");
        return pos != std::string::npos && std::strtoull(io.c_str() + pos + 7, nullptr, 10) > 128u * 1024;
      },
      kWaitLimit));
  ::kill(s.pid(), SIGTERM);
  EXPECT_TRUE(wait_until([&] { return !spyglass_test::alive(yes); }, kWaitLimit))
      << "SIGTERM was not forwarded";
  EXPECT_TRUE(spyglass_test::alive(s.pid()));  // waiting for the reader
  ::kill(s.pid(), SIGTERM);
  EXPECT_TRUE(wait_until([&] { return !spyglass_test::alive(s.pid()); }, kWaitLimit))
      << "did not give up waiting";
  const auto r = s.drain_and_wait();
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_TRUE(only_y_lines(r.out));
}

// The command exits at once, leaving a descendant that holds stdout open for 2.5 s and
// then writes. The timeout (2 s) falls in that drain window, after the command ended: it
// must not fire, so the descendant lives to write its line and the run exits 0.
TEST(Runner, TimeoutDoesNotFireAfterTheCommandExited) {
  mon::RunOptions o;
  o.argv = {"sh", "-c", "(sleep 2.5; echo late) & echo early"};
  o.passthrough = false;
  o.timeout = std::chrono::seconds(2);
  o.drain = std::chrono::seconds(30);  // ends at EOF, when the descendant exits
  const auto r = mon::run(o);
  // Precondition: sh itself ended before the timeout (it takes milliseconds; two seconds
  // leave room for any scheduling delay of a loaded machine).
  ASSERT_LT(r.record.duration_ns, 2000000000) << "sh took longer than the timeout";
  EXPECT_EQ(r.record.exit_code, 0);
  EXPECT_EQ(r.record.kill_reason, "");
  EXPECT_EQ(r.record.stdout_tail, "early\nlate\n");
}

// A library caller that ignores SIGCHLD: the kernel would reap the command itself and
// run() would never see it exit. run() must still return the command's status, and put
// the caller's disposition back.
TEST(Runner, WorksWhenTheCallerIgnoresSigchld) {
  const pid_t p = ::fork();
  if (p == 0) {
    ::alarm(30);  // a hang ends this process (by SIGALRM) instead of the test run
    ::signal(SIGCHLD, SIG_IGN);
    mon::RunOptions o;
    o.argv = {kWorkload, "exit", "3"};
    o.passthrough = false;
    o.interval = std::chrono::milliseconds(20);
    const auto r = mon::run(o);
    struct sigaction now {};
    ::sigaction(SIGCHLD, nullptr, &now);
    std::_Exit(r.record.exit_code == 3 && r.record.error.empty() && now.sa_handler == SIG_IGN ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(p, &st, 0), p);
  ASSERT_FALSE(WIFSIGNALED(st)) << "run() hung (killed by signal " << WTERMSIG(st) << ")";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

// Ctrl-Z on a terminal: the command stops itself with SIGTSTP, as the terminal's
// foreground job. spyglass must notice, take the terminal back and stop itself, so that
// the shell (here a helper that is the session leader of a new pty) sees the job stop
// and can resume it; resumed, the command finishes and its status comes through.
TEST(Runner, StopOnTerminalStopsSpyglassAndResumes) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const std::string slave_name = ::ptsname(master);
  const pid_t shell = ::fork();
  if (shell == 0) {
    // The "shell": session leader with the pty as controlling terminal.
    ::setsid();
    const int tty = ::open(slave_name.c_str(), O_RDWR);
    if (tty < 0) std::_Exit(20);
    const pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, 0);
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(tty, ::getpid());
      ::signal(SIGTTOU, SIG_DFL);
      for (int fd = 0; fd < 3; ++fd) ::dup2(tty, fd);
      ::execl(kSpyglass.c_str(), "spyglass", "run", "--no-history", "--quiet", "--no-pty", "--", "sh", "-c",
              "kill -TSTP $$; echo resumed; exit 3", static_cast<char*>(nullptr));
      std::_Exit(21);
    }
    ::setpgid(job, job);
    const int stop = wait_for_job(job, WUNTRACED, 22);  // 22: spyglass did not stop within 60 s
    if (!WIFSTOPPED(stop) || WSTOPSIG(stop) != SIGTSTP) std::_Exit(23);
    if (::tcgetpgrp(tty) != job) std::_Exit(24);  // spyglass took the terminal back
    ::kill(-job, SIGCONT);                        // what `fg` does; the terminal is the job's already
    const int done = wait_for_job(job, 0, 25);
    std::_Exit(WIFEXITED(done) && WEXITSTATUS(done) == 3 ? 0 : 26);
  }
  // Read the terminal while the helper runs, so that output never blocks it.
  std::string out;
  int st = 0;
  for (;;) {
    pollfd pf{master, POLLIN, 0};
    if (::poll(&pf, 1, 20) > 0 && (pf.revents & POLLIN)) {
      char buf[4096];
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    }
    if (::waitpid(shell, &st, WNOHANG) == shell) break;
  }
  for (pollfd pf{master, POLLIN, 0}; ::poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN);) {
    char buf[4096];
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "20: no pty, 22: never stopped, 23: wrong stop signal, 24: terminal "
                                   "not taken back, 25: never finished, 26: wrong exit status; output: "
                                << out;
  EXPECT_NE(out.find("resumed"), std::string::npos) << out;
}

// In a pipeline on a terminal (`spyglass run -- cmd | less`), the other members share
// spyglass's process group and the terminal must stay with that group: given to the
// command, it would stop `less` at its next keyboard read. The command reports its own
// process group and the terminal's foreground group from /proc/self/stat (fields 5, 8).
TEST(Runner, TerminalStaysWithAPipeline) {
  spyglass_test::TempDir dir;
  const std::string report = dir / "groups";
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const std::string slave_name = ::ptsname(master);
  const pid_t shell = ::fork();
  if (shell == 0) {
    ::setsid();
    const int tty = ::open(slave_name.c_str(), O_RDWR);
    if (tty < 0) std::_Exit(20);
    const pid_t partner = ::fork();  // the pipeline's other member, its group leader
    if (partner == 0) {
      ::setpgid(0, 0);
      ::execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
      std::_Exit(21);
    }
    ::setpgid(partner, partner);
    ::tcsetpgrp(tty, partner);  // the pipeline is the foreground job
    const pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, partner);
      for (int fd = 0; fd < 3; ++fd) ::dup2(tty, fd);
      const std::string script = "cut -d' ' -f5,8 /proc/$$/stat > " + report;
      ::execl(kSpyglass.c_str(), "spyglass", "run", "--no-history", "--quiet", "--no-pty", "--", "sh", "-c",
              script.c_str(), static_cast<char*>(nullptr));
      std::_Exit(22);
    }
    ::setpgid(job, partner);
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 6000 && (w = ::waitpid(job, &st, WNOHANG)) == 0; ++i) ::usleep(10000);
    const bool foreground_kept = ::tcgetpgrp(tty) == partner;
    ::kill(partner, SIGKILL);
    ::waitpid(partner, nullptr, 0);
    if (w != job) {
      ::kill(job, SIGKILL);
      std::_Exit(23);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) std::_Exit(24);
    std::_Exit(foreground_kept ? 0 : 25);
  }
  int st = 0;
  for (;;) {  // keep the terminal drained while the helper runs
    pollfd pf{master, POLLIN, 0};
    if (::poll(&pf, 1, 20) > 0 && (pf.revents & POLLIN)) {
      char buf[4096];
      (void)!::read(master, buf, sizeof buf);
    }
    if (::waitpid(shell, &st, WNOHANG) == shell) break;
  }
  ::close(master);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "23: spyglass did not finish, 24: it failed, 25: terminal not given back";
  std::istringstream groups(spyglass_test::slurp(report));
  pid_t pgrp = 0, foreground = 0;
  ASSERT_TRUE(groups >> pgrp >> foreground) << spyglass_test::slurp(report);
  EXPECT_NE(pgrp, foreground) << "the command was given the pipeline's terminal";
}

namespace {

// `spyglass` on a terminal of the test's own: a pty whose slave is the controlling
// terminal, stdin, stdout and stderr of a new session running spyglass in the foreground.
class OnTerminal {
 public:
  explicit OnTerminal(const std::vector<std::string>& argv, unsigned short rows = 33,
                      unsigned short cols = 77) {
    winsize ws{};
    ws.ws_row = rows;
    ws.ws_col = cols;
    int slave = -1;
    if (::openpty(&master_, &slave, nullptr, nullptr, &ws) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      for (int fd = 0; fd < 3; ++fd) ::dup2(slave, fd);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::_Exit(127);
    }
    ::close(slave);
  }
  ~OnTerminal() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  OnTerminal(const OnTerminal&) = delete;
  OnTerminal& operator=(const OnTerminal&) = delete;

  [[nodiscard]] bool started() const { return pid_ > 0; }
  [[nodiscard]] const std::string& output() const { return out_; }
  void type(const std::string& keys) { (void)!::write(master_, keys.data(), keys.size()); }
  void resize(unsigned short rows, unsigned short cols) {
    winsize ws{};
    ws.ws_row = rows;
    ws.ws_col = cols;
    ::ioctl(master_, TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH to spyglass
  }
  /// Reads the terminal until `text` has appeared (false: the session ended first).
  bool wait_for(const std::string& text) {
    while (out_.find(text) == std::string::npos) {
      if (!read_some(-1)) return false;
    }
    return true;
  }
  /// Reads the terminal until spyglass has exited; returns its exit code.
  int finish() {
    int st = 0;
    for (;;) {
      read_some(20);
      if (::waitpid(pid_, &st, WNOHANG) == pid_) break;
    }
    reaped_ = true;
    while (read_some(0)) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  bool read_some(int timeout_ms) {
    pollfd pf{master_, POLLIN, 0};
    if (::poll(&pf, 1, timeout_ms) <= 0) return timeout_ms >= 0 && timeout_ms != 0;
    char buf[4096];
    const ssize_t n = ::read(master_, buf, sizeof buf);
    if (n <= 0) return false;  // EIO: every slave descriptor is closed
    out_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int master_ = -1;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string out_;
};

}  // namespace

// On a terminal, the command runs on a pseudo-terminal of spyglass's: it sees a terminal on
// stdin/stdout/stderr with the terminal's window size, and its output is still kept.
// --no-pty turns that off.
TEST(RunnerTerminal, CommandSeesATerminalWithOurWindowSize) {
  spyglass_test::TempDir dir;
  const std::string json = dir / "run.json";
  const std::string script =
      "[ -t 1 ] && echo out-tty || echo out-pipe; [ -t 0 ] && echo in-tty; [ -t 2 ] && echo err-tty; stty "
      "size";
  {
    OnTerminal t({kSpyglass, "run", "--no-history", "--quiet", "--json", json, "--", "sh", "-c", script});
    ASSERT_TRUE(t.started());
    EXPECT_EQ(t.finish(), 0) << t.output();
    EXPECT_NE(t.output().find("out-tty\r\nin-tty\r\nerr-tty\r\n33 77\r\n"), std::string::npos) << t.output();
    simdjson::dom::parser p;
    const std::string_view tail = p.load(json)["run"]["stdout_tail"];
    EXPECT_EQ(tail, "out-tty\nin-tty\nerr-tty\n33 77\n");
  }
  {
    OnTerminal t(
        {kSpyglass, "run", "--no-history", "--quiet", "--no-pty", "--json", json, "--", "sh", "-c", script});
    ASSERT_TRUE(t.started());
    EXPECT_EQ(t.finish(), 0) << t.output();
    EXPECT_NE(t.output().find("out-pipe"), std::string::npos) << t.output();
    simdjson::dom::parser p;
    const std::string_view tail = p.load(json)["run"]["stdout_tail"];
    EXPECT_EQ(tail.substr(0, 9), "out-pipe\n");
  }
}

// A new window size reaches the command (SIGWINCH, and the pty's size), and Ctrl-C typed
// on the terminal interrupts the command as in a shell.
TEST(RunnerTerminal, WindowChangesAndCtrlCReachTheCommand) {
  {
    OnTerminal t({kSpyglass, "run", "--no-history", "--quiet", "--", "sh", "-c",
                  "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done"});
    ASSERT_TRUE(t.started());
    ASSERT_TRUE(t.wait_for("ready")) << t.output();
    t.resize(40, 100);
    EXPECT_EQ(t.finish(), 0) << t.output();
    EXPECT_NE(t.output().find("40 100"), std::string::npos) << t.output();
  }
  {
    OnTerminal t({kSpyglass, "run", "--no-history", "--quiet", "--", "sh", "-c",
                  "trap 'echo interrupted; exit 7' INT; echo ready; while :; do sleep 0.05; done"});
    ASSERT_TRUE(t.started());
    ASSERT_TRUE(t.wait_for("ready")) << t.output();
    t.type("\x03");
    EXPECT_EQ(t.finish(), 7) << t.output();
    EXPECT_NE(t.output().find("interrupted"), std::string::npos) << t.output();
  }
}

// Ctrl-Z typed on the terminal while the command runs on spyglass's pty: the command
// stops, spyglass restores the terminal's mode and stops itself, so that the shell (a
// helper leading a session on the test's pty) sees the job stop; `fg` (SIGCONT) resumes
// both and the command's status comes through.
TEST(RunnerTerminal, CtrlZStopsTheJobAndFgResumesIt) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  const pid_t shell = ::fork();
  if (shell == 0) {
    ::close(master);
    ::setsid();
    ::ioctl(slave, TIOCSCTTY, 0);
    const pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, 0);
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(slave, ::getpid());
      ::signal(SIGTTOU, SIG_DFL);
      for (int fd = 0; fd < 3; ++fd) ::dup2(slave, fd);
      ::execl(kSpyglass.c_str(), "spyglass", "run", "--no-history", "--quiet", "--", "sh", "-c",
              "trap 'echo resumed; exit 3' CONT; echo ready; while :; do sleep 0.05; done",
              static_cast<char*>(nullptr));
      std::_Exit(21);
    }
    ::setpgid(job, job);
    const int stop = wait_for_job(job, WUNTRACED, 22);  // 22: spyglass did not stop within 60 s
    if (!WIFSTOPPED(stop) || WSTOPSIG(stop) != SIGTSTP) std::_Exit(23);
    termios t{};
    if (::tcgetattr(slave, &t) != 0 || (t.c_lflag & ICANON) == 0) std::_Exit(24);  // still raw
    ::kill(-job, SIGCONT);
    const int done = wait_for_job(job, 0, 25);
    std::_Exit(WIFEXITED(done) && WEXITSTATUS(done) == 3 ? 0 : 26);
  }
  ::close(slave);
  std::string out;
  bool typed = false;
  int st = 0;
  for (;;) {
    pollfd pf{master, POLLIN, 0};
    if (::poll(&pf, 1, 20) > 0 && (pf.revents & POLLIN)) {
      char buf[4096];
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    }
    if (!typed && out.find("ready") != std::string::npos) {
      typed = ::write(master, "\x1a", 1) == 1;
    }
    if (::waitpid(shell, &st, WNOHANG) == shell) break;
  }
  ::close(master);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0)
      << "22: never stopped, 23: wrong stop signal, 24: terminal left raw, 25: never "
         "finished, 26: wrong exit status; output: "
      << out;
}
