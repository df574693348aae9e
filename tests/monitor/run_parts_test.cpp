// The parts of run() on their own: the output pump between real pipes and files (checked
// with cmp and tail), the tree killer on real children (what the kernel says killed them),
// and the signal set-up undone when it ends.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cgroup.hpp"
#include "run_parts.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/monitor/sampler.hpp"
#include "support.hpp"

namespace d = spyglass::monitor::detail;
using spyglass_test::kWaitLimit;
using spyglass_test::run;
using spyglass_test::slurp;
using spyglass_test::TempDir;
using spyglass_test::wait_until;

namespace {

// The read end of a pipe fed by `sh -c script` (its pid in `pid`), non-blocking.
d::Fd from_shell(const std::string& script, pid_t& pid) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return d::Fd();
  pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], STDOUT_FILENO);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  ::fcntl(p[0], F_SETFL, ::fcntl(p[0], F_GETFL) | O_NONBLOCK);
  return d::Fd(p[0]);
}

// Pumps `s` until its source ends and nothing is pending.
void pump_to_end(d::OutputStream& s) {
  ASSERT_TRUE(wait_until(
      [&] {
        s.flush(true);
        s.read_some();
        s.flush(false);
        return s.eof() && !s.has_pending();
      },
      kWaitLimit));
}

int exit_status(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

}  // namespace

// 3 MiB of random bytes, more than any pipe holds, through a pipe into a file: the file
// is the input byte for byte (cmp) and the tail is its last bytes (tail -c).
TEST(OutputPump, PassesEveryByteAndKeepsTheTail) {
  TempDir dir;
  const std::string in = dir / "in", out = dir / "out", tail = dir / "tail";
  ASSERT_EQ(
      run({"sh", "-c", "head -c 3145728 /dev/urandom > " + in + " && tail -c 1000 " + in + " > " + tail})
          .exit_code,
      0);
  pid_t writer = -1;
  const d::Fd sink(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  d::OutputStream s(from_shell("cat " + in, writer), sink.get(), true, 1000);
  pump_to_end(s);
  EXPECT_EQ(exit_status(writer), 0);
  EXPECT_EQ(run({"cmp", in, out}).exit_code, 0);
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.take_tail(), slurp(tail));
}

// A reader that does not keep up holds the pump (it stops reading while output waits); once
// it reads, everything arrives in order (cmp against seq itself).
TEST(OutputPump, SlowReaderHoldsThePumpAndLosesNothing) {
  TempDir dir;
  const std::string want = dir / "want", got = dir / "got";
  ASSERT_EQ(run({"sh", "-c", "seq 1 400000 > " + want}).exit_code, 0);
  int sink[2];
  ASSERT_EQ(::pipe2(sink, O_CLOEXEC), 0);
  d::Fd sink_r(sink[0]), sink_w(sink[1]);
  pid_t writer = -1;
  pid_t reader = -1;
  {
    d::OutputStream s(from_shell("seq 1 400000", writer), sink_w.get(), true, 64);
    ASSERT_TRUE(wait_until(
        [&] {
          s.read_some();
          s.flush(false);
          return !s.room();
        },
        kWaitLimit));
    EXPECT_TRUE(s.has_pending());
    EXPECT_FALSE(s.eof());
    reader = ::fork();
    if (reader == 0) {
      ::dup2(sink[0], STDIN_FILENO);
      ::execlp("sh", "sh", "-c", ("cat > " + got).c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    sink_r.reset();
    pump_to_end(s);
    EXPECT_EQ(s.dropped(), 0u);
    EXPECT_EQ(s.take_tail(), run({"sh", "-c", "tail -c 64 " + want}).out);
  }
  sink_w.reset();  // with the pump's own descriptor gone, cat sees the end
  EXPECT_EQ(exit_status(writer), 0);
  EXPECT_EQ(exit_status(reader), 0);
  EXPECT_EQ(run({"cmp", want, got}).exit_code, 0);
}

// Our side closed (EPIPE): all of it is counted as dropped (wc -c says how much), the
// command's output is still read to its end and its tail kept.
TEST(OutputPump, ClosedReaderCountsWhatWasDropped) {
  int sink[2];
  ASSERT_EQ(::pipe2(sink, O_CLOEXEC), 0);
  ::close(sink[0]);
  const d::Fd sink_w(sink[1]);
  ::signal(SIGPIPE, SIG_IGN);
  pid_t writer = -1;
  d::OutputStream s(from_shell("seq 1 100000", writer), sink_w.get(), true, 7);
  pump_to_end(s);
  EXPECT_EQ(exit_status(writer), 0);
  EXPECT_EQ(std::to_string(s.dropped()) + "\n", run({"sh", "-c", "seq 1 100000 | wc -c"}).out);
  EXPECT_EQ(s.take_tail(), "100000\n");
  ::signal(SIGPIPE, SIG_DFL);
}

// Without passthrough the bytes are only read for the tail; nothing counts as dropped.
TEST(OutputPump, TailOnlyWithoutPassthrough) {
  pid_t writer = -1;
  d::OutputStream s(from_shell("printf 'abcdef'", writer), STDOUT_FILENO, false, 3);
  pump_to_end(s);
  EXPECT_EQ(exit_status(writer), 0);
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.take_tail(), "def");
}

namespace {

// A child in a process group of its own running `script`, started once it wrote a line.
pid_t start_group(const std::string& script) {
  int p[2];
  if (::pipe(p) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(p[1], STDOUT_FILENO);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  char c = 0;
  while (::read(p[0], &c, 1) < 0 && errno == EINTR) {
  }
  ::close(p[0]);
  return pid;
}

// Ticks `k` until `pid` has exited; its wait status.
int tick_until_gone(d::TreeKiller& k, pid_t pid) {
  int st = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        k.tick(spyglass::clock::monotonic_ns());
        return ::waitpid(pid, &st, WNOHANG) == pid;
      },
      kWaitLimit));
  return st;
}

}  // namespace

// SIGTERM ignored: SIGKILL follows once the grace period is over.
TEST(TreeKiller, EscalatesToSigkillAfterTheGracePeriod) {
  const pid_t pid = start_group("trap '' TERM; echo ready; while :; do sleep 1; done");
  ASSERT_GT(pid, 0);
  const d::Cgroup none = d::Cgroup::none("test");
  spyglass::monitor::Sampler sampler(pid);
  d::TreeKiller k(pid, none, sampler, 50'000'000);
  k.begin("timeout", false);
  EXPECT_TRUE(k.killing());
  EXPECT_FALSE(k.sigkilled());
  EXPECT_EQ(k.reason(), "timeout");
  const int st = tick_until_gone(k, pid);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_EQ(WTERMSIG(st), SIGKILL);
  EXPECT_TRUE(k.sigkilled());
}

// A process that ends on SIGTERM is not sent SIGKILL during the grace period; a second
// begin() changes nothing.
TEST(TreeKiller, SigtermIsEnoughWithinTheGracePeriod) {
  const pid_t pid = start_group("echo ready; exec sleep 60");
  ASSERT_GT(pid, 0);
  const d::Cgroup none = d::Cgroup::none("test");
  spyglass::monitor::Sampler sampler(pid);
  d::TreeKiller k(pid, none, sampler, 600'000'000'000);
  k.begin("max-rss", false);
  k.begin("timeout", true);
  EXPECT_EQ(k.reason(), "max-rss");
  const int st = tick_until_gone(k, pid);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_EQ(WTERMSIG(st), SIGTERM);
  EXPECT_FALSE(k.sigkilled());
  EXPECT_GT(k.next_due(0), 0u);
}

// Immediate: SIGKILL at once. A forwarded signal goes as it is, with no reason.
TEST(TreeKiller, ImmediateAndForwarded) {
  const pid_t a = start_group("trap '' TERM; echo ready; while :; do sleep 1; done");
  const d::Cgroup none = d::Cgroup::none("test");
  spyglass::monitor::Sampler sa(a);
  d::TreeKiller ka(a, none, sa, 600'000'000'000);
  ka.begin("max-cpu", true);
  EXPECT_TRUE(ka.sigkilled());
  EXPECT_EQ(WTERMSIG(tick_until_gone(ka, a)), SIGKILL);

  const pid_t b = start_group("echo ready; exec sleep 60");
  spyglass::monitor::Sampler sb(b);
  d::TreeKiller kb(b, none, sb, 600'000'000'000);
  kb.forward(SIGINT);
  EXPECT_TRUE(kb.killing());
  EXPECT_EQ(kb.reason(), "");
  EXPECT_EQ(WTERMSIG(tick_until_gone(kb, b)), SIGINT);
}

// The signal set-up reports a watched signal through its descriptor and, when it ends,
// gives back the mask, SIGPIPE's and SIGCHLD's dispositions and the subreaper flag.
TEST(SignalScope, ReportsSignalsAndRestoresEverything) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old_chld {};
  ::sigaction(SIGCHLD, &ign, &old_chld);
  sigset_t before;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &before);
  {
    sigset_t watched;
    sigemptyset(&watched);
    sigaddset(&watched, SIGUSR1);
    d::SignalScope scope(watched);
    EXPECT_GE(scope.fd(), 0);
    struct sigaction now {};
    ::sigaction(SIGPIPE, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_IGN);
    ::sigaction(SIGCHLD, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
    int sub = 0;
    ::prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
    EXPECT_EQ(sub, 1);
    EXPECT_EQ(scope.next(), 0);
    ::kill(::getpid(), SIGUSR1);  // blocked: waits for the signalfd
    EXPECT_EQ(scope.next(), SIGUSR1);
    EXPECT_EQ(scope.next(), 0);
  }
  sigset_t after;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &after);
  for (int sig : {SIGUSR1, SIGTTOU, SIGINT}) EXPECT_EQ(sigismember(&after, sig), sigismember(&before, sig));
  struct sigaction now {};
  ::sigaction(SIGPIPE, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  ::sigaction(SIGCHLD, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
  int sub = 1;
  ::prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
  EXPECT_EQ(sub, 0);
  ::sigaction(SIGCHLD, &old_chld, nullptr);
}
