// run() and `spyglass run`: exit codes, output tails, limits, signal forwarding.

#include "spyglass/monitor/runner.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "spyglass/monitor/history.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

namespace {

mon::RunResult run_quiet(std::vector<std::string> argv) {
  mon::RunOptions o;
  o.argv = std::move(argv);
  o.passthrough = false;
  o.interval = std::chrono::milliseconds(20);
  return mon::run(o);
}

}  // namespace

TEST(Runner, PropagatesExitCode) {
  const auto r = run_quiet({kWorkload, "exit", "3"});
  EXPECT_EQ(r.record.exit_code, 3);
  EXPECT_EQ(r.record.signal, 0);
  EXPECT_TRUE(r.record.kill_reason.empty());
  EXPECT_TRUE(r.record.error.empty());
  EXPECT_EQ(r.record.command, kWorkload);
  ASSERT_EQ(r.record.args.size(), 2u);
  EXPECT_EQ(r.record.args[1], "3");
  EXPECT_GE(r.samples.size(), 2u);  // one at spawn, one after the exit
  EXPECT_GT(r.record.max_rss_bytes, 0u);
}

TEST(Runner, SignalDeathIs128PlusSignal) {
  const auto r = run_quiet({kWorkload, "signal", std::to_string(SIGKILL)});
  EXPECT_EQ(r.record.exit_code, 128 + SIGKILL);
  EXPECT_EQ(r.record.signal, SIGKILL);
}

TEST(Runner, MissingCommandIs127AndNotExecutableIs126) {
  const auto missing = run_quiet({"/nonexistent/definitely-not-here"});
  EXPECT_EQ(missing.record.exit_code, 127);
  EXPECT_FALSE(missing.record.error.empty());
  const auto missing_path = run_quiet({"definitely-not-a-command-xyz"});
  EXPECT_EQ(missing_path.record.exit_code, 127);

  spyglass_test::TempDir dir;
  const std::string script = dir / "noexec.sh";
  std::ofstream(script) << "#!/bin/sh\nexit 0\n";  // mode 0644: not executable
  const auto noexec = run_quiet({script});
  EXPECT_EQ(noexec.record.exit_code, 126);
  EXPECT_FALSE(noexec.record.error.empty());
}

TEST(Runner, KeepsTheTailOfStdoutAndStderr) {
  mon::RunOptions o;
  o.argv = {kWorkload, "echo", std::string(1000, 'a') + "END-OUT", "error text"};
  o.passthrough = false;
  o.tail_bytes = 100;
  const auto r = mon::run(o);
  EXPECT_EQ(r.record.exit_code, 0);
  EXPECT_EQ(r.record.stdout_tail.size(), 100u);
  EXPECT_EQ(r.record.stdout_tail.substr(93), "END-OUT");
  EXPECT_EQ(r.record.stderr_tail, "error text");
}

TEST(Runner, CallsOnSampleAndRecordsMonitorCost) {
  mon::RunOptions o;
  o.argv = {"sleep", "0.3"};
  o.passthrough = false;
  o.interval = std::chrono::milliseconds(10);
  int calls = 0;
  o.on_sample = [&](const mon::Sample&) { ++calls; };
  const auto r = mon::run(o);
  EXPECT_EQ(r.record.exit_code, 0);
  // 300 ms at 10 ms: many samples even on a loaded machine, never more than the schedule.
  EXPECT_GE(calls, 5);
  EXPECT_LE(calls, 40);
  EXPECT_GT(r.record.monitor_cpu_ns, 0u);
  EXPECT_GE(r.record.duration_ns, 290000000);
}

// --- limits, through the command, with the run read back from the history ------------

namespace {

struct KillCase {
  std::vector<std::string> limit;  // spyglass options
  std::string mode;                // runaway mode
  std::string reason;
};

struct Killed {
  spyglass_test::Result res;
  mon::RunRecord rec;
  std::vector<mon::Sample> samples;  // t_ns relative to the run's start
  pid_t parent = 0, grandchild = 0;
  // Seconds from the start: the last sample within the limit, the first beyond it (where
  // the kill begins), and the end of the run (every process of the tree reaped).
  double below_s = -1, detect_s = -1, end_s = -1;
};

constexpr double kInterval = 0.05, kGrace = 1.0;

// How late the end of a killed run may be, beyond the interval and the grace period.
// After the kill the loop polls every 10 ms and the kernel frees the ~100 MiB tree in a
// few ms; the rest is the loop's own scheduling delay, a few ms normally and up to
// several hundred ms on a loaded 2-core machine.
constexpr double kSlack = 0.5;

Killed run_runaway(const spyglass_test::TempDir& dir, const KillCase& k, const std::string& strategy) {
  const std::string db = dir / "h.db", pids = dir / "pids";
  std::vector<std::string> argv = {kSpyglass, "run",     "--db", db,       "--interval",
                                   "50ms",    "--grace", "1s",   "--kill", strategy};
  argv.insert(argv.end(), k.limit.begin(), k.limit.end());
  argv.insert(argv.end(), {"--", kWorkload, "runaway", k.mode, pids});
  Killed out;
  out.res = spyglass_test::run(argv, dir.path());
  std::ifstream in(pids);
  in >> out.parent >> out.grandchild;
  auto h = mon::History::open(db, {.create = false});
  const auto runs = h.runs({});
  if (!runs.empty()) {
    out.rec = *h.run(runs.front().id);
    out.samples = h.samples(out.rec.id);
    out.end_s = static_cast<double>(out.rec.end_unix_ns - out.rec.start_unix_ns) / 1e9;
  }
  return out;
}

// Finds where a sampled value first went past `limit`.
template <class F>
void find_crossing(Killed& k, double limit, F value) {
  for (const auto& s : k.samples) {
    const double t = static_cast<double>(s.t_ns) / 1e9;
    if (value(s) > limit) {
      k.detect_s = t;
      return;
    }
    k.below_s = t;
  }
}

void expect_killed(const Killed& k, const std::string& reason) {
  EXPECT_EQ(k.res.exit_code, 124) << k.res.err;
  EXPECT_EQ(k.rec.exit_code, 124);
  EXPECT_EQ(k.rec.kill_reason, reason);
  EXPECT_NE(k.res.err.find("killed (" + reason + ")"), std::string::npos) << k.res.err;
  ASSERT_GT(k.grandchild, 0);
  // The grandchild ignored SIGTERM; it must still be gone when spyglass returns.
  EXPECT_FALSE(spyglass_test::alive(k.grandchild));
  EXPECT_FALSE(spyglass_test::alive(k.parent));
}

// A sampled limit: seen at the first sample past it, which comes at most one interval
// after the last sample within it; the tree is gone `grace` after that (graceful: not
// before, as the grandchild ignores SIGTERM) or at once (immediate).
void expect_sampled_kill(const Killed& k, bool graceful) {
  ASSERT_GE(k.below_s, 0) << "no sample within the limit";
  ASSERT_GE(k.detect_s, 0) << "no sample beyond the limit, yet the run was killed";
  const double grace = graceful ? kGrace : 0.0;
  EXPECT_LE(k.end_s - k.below_s, kInterval + grace + kSlack)
      << "below " << k.below_s << " s, detected " << k.detect_s << " s, ended " << k.end_s << " s";
  if (graceful) {
    EXPECT_GE(k.end_s - k.detect_s, kGrace) << "SIGKILL came before the grace period ended";
  }
}

}  // namespace

TEST(RunLimits, TimeoutKillsTreeGracefully) {
  spyglass_test::TempDir dir;
  const auto k = run_runaway(dir, {{"--timeout", "1s"}, "sleep", "timeout"}, "graceful");
  expect_killed(k, "timeout");
  // The timeout is a deadline of its own (no sampling involved): SIGTERM at 1 s, SIGKILL
  // for the SIGTERM-proof grandchild after the 1 s grace.
  EXPECT_GE(k.end_s, 1.0 + kGrace);
  EXPECT_LE(k.end_s, 1.0 + kGrace + kSlack);
  // The command itself (the runaway parent) dies on SIGTERM right at the timeout; the
  // run lasts until the grandchild is killed after the grace period.
  EXPECT_GE(k.rec.duration_ns, 1000000000);
  EXPECT_LE(k.rec.duration_ns, 1500000000);
  EXPECT_EQ(k.rec.signal, SIGTERM);
}

TEST(RunLimits, TimeoutImmediateSkipsGrace) {
  spyglass_test::TempDir dir;
  const auto k = run_runaway(dir, {{"--timeout", "1s"}, "sleep", "timeout"}, "immediate");
  expect_killed(k, "timeout");
  EXPECT_GE(k.end_s, 1.0);
  EXPECT_LE(k.end_s, 1.0 + kSlack);
  EXPECT_EQ(k.rec.signal, SIGKILL);
}

TEST(RunLimits, MaxRssKillsTree) {
  spyglass_test::TempDir dir;
  auto k = run_runaway(dir, {{"--max-rss", "96M"}, "rss", "max-rss"}, "graceful");
  expect_killed(k, "max-rss");
  find_crossing(k, 96.0 * 1048576, [](const mon::Sample& s) { return static_cast<double>(s.rss_bytes); });
  expect_sampled_kill(k, true);
  // The parent grows 8 MiB per 20 ms sleep from a tree of a few MiB (under 40 MiB even
  // with a sanitizer's runtime in both processes): passing 96 MiB takes at least 7 steps,
  // so 6 sleeps. A limit that fired early (a wrong unit) would show here.
  EXPECT_GE(k.detect_s, 0.12);
  EXPECT_GT(k.rec.peak_tree_rss_bytes, 96u << 20);
  // Killed while growing 8 MiB per 20 ms: it cannot have gone much past the limit.
  EXPECT_LT(k.rec.peak_tree_rss_bytes, 600u << 20);
}

TEST(RunLimits, MaxRssImmediateKillsTreeAtOnce) {
  spyglass_test::TempDir dir;
  auto k = run_runaway(dir, {{"--max-rss", "96M"}, "rss", "max-rss"}, "immediate");
  expect_killed(k, "max-rss");
  find_crossing(k, 96.0 * 1048576, [](const mon::Sample& s) { return static_cast<double>(s.rss_bytes); });
  expect_sampled_kill(k, false);
  EXPECT_GE(k.detect_s, 0.12);
  EXPECT_EQ(k.rec.signal, SIGKILL);
}

TEST(RunLimits, MaxCpuKillsTree) {
  spyglass_test::TempDir dir;
  auto k = run_runaway(dir, {{"--max-cpu", "0.5"}, "cpu", "max-cpu"}, "graceful");
  expect_killed(k, "max-cpu");
  find_crossing(k, 0.5,
                [](const mon::Sample& s) { return static_cast<double>(s.cpu_user_ns + s.cpu_sys_ns) / 1e9; });
  expect_sampled_kill(k, true);
  // One spinning thread cannot pass 0.5 CPU seconds in less than 0.5 s.
  EXPECT_GE(k.detect_s, 0.5);
  EXPECT_GE(k.rec.user_cpu_ns + k.rec.sys_cpu_ns, 500000000u);
  // SIGTERM ends the spinning parent at once; its CPU past the limit is bounded by the
  // interval plus the time to die.
  EXPECT_LT(k.rec.user_cpu_ns + k.rec.sys_cpu_ns, 1000000000u);
}

TEST(RunSignals, SigtermAndSigintAreForwardedToTheGroup) {
  for (const int sig : {SIGTERM, SIGINT}) {
    spyglass_test::TempDir dir;
    const std::string db = dir / "h.db";
    spyglass_test::Child c({kSpyglass, "run", "--db", db, "--", "sleep", "30"}, dir.path());
    // Wait for the run to be under way (its sleep child exists).
    bool started = false;
    for (int i = 0; i < 500 && !started; ++i) {
      std::ifstream ch("/proc/" + std::to_string(c.pid()) + "/task/" + std::to_string(c.pid()) + "/children");
      std::string s;
      started = static_cast<bool>(std::getline(ch, s)) && !s.empty();
      if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(started);
    ::kill(c.pid(), sig);
    const auto r = c.wait();
    EXPECT_EQ(r.exit_code, 128 + sig) << r.err;
    EXPECT_LT(r.seconds, 20.0);
    auto h = mon::History::open(db, {.create = false});
    const auto runs = h.runs({});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].signal, sig);
    EXPECT_EQ(runs[0].kill_reason, sig == SIGTERM ? "SIGTERM" : "SIGINT");
  }
}

TEST(RunCli, ExitCodesOfTheCommand) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  EXPECT_EQ(spyglass_test::run({kSpyglass, "run", "--db", db, "--", kWorkload, "exit", "7"}).exit_code, 7);
  EXPECT_EQ(spyglass_test::run({kSpyglass, "run", "--db", db, "--", kWorkload, "signal", "15"}).exit_code,
            143);
  const auto missing = spyglass_test::run({kSpyglass, "run", "--db", db, "--", "no-such-command-xyz"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.err.find("cannot run 'no-such-command-xyz'"), std::string::npos) << missing.err;
  const auto noexec = spyglass_test::run({kSpyglass, "run", "--db", db, "--", dir.path()});
  EXPECT_EQ(noexec.exit_code, 126);
  // The failed attempts are recorded too.
  auto h = mon::History::open(db, {.create = false});
  const auto runs = h.runs({});
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[1].exit_code, 127);
  EXPECT_FALSE(runs[1].error.empty());
  EXPECT_EQ(runs[0].exit_code, 126);
}

TEST(RunCli, BadOptionsAreClearErrors) {
  spyglass_test::TempDir dir;
  auto r = spyglass_test::run({kSpyglass, "run", "--timeout", "soon", "--", "true"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--timeout: not a duration: 'soon'"), std::string::npos) << r.err;
  r = spyglass_test::run({kSpyglass, "run", "--interval", "1ms", "--", "true"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("at least 10ms"), std::string::npos) << r.err;
  r = spyglass_test::run({kSpyglass, "run", "--max-rss", "12Q", "--", "true"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--max-rss: not a size"), std::string::npos) << r.err;
  r = spyglass_test::run({kSpyglass, "run", "--kill", "gently", "--", "true"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  r = spyglass_test::run({kSpyglass, "run"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("no command given"), std::string::npos) << r.err;
  // Numbers a double holds but the option's integer type does not, and non-numbers that
  // parse as doubles: clear errors, never an undefined conversion.
  const std::pair<std::vector<std::string>, std::string> out_of_range[] = {
      {{"--keep-days", "1e300"}, "--keep-days: out of range: '1e300' (at most 106751 days)"},
      {{"--keep-days", "106752"}, "--keep-days: out of range"},
      {{"--keep-days", "nan"}, "--keep-days: not a number of days"},
      {{"--keep-days", "inf"}, "--keep-days: not a number of days"},
      {{"--max-rss", "1e30G"}, "--max-rss: out of range: '1e30G' (at most 16 EiB)"},
      {{"--max-rss", "17179869184G"}, "--max-rss: out of range"},  // 2^64 bytes
      {{"--tail", "17179869184G"}, "--tail: out of range"},
      {{"--tail", "nan"}, "--tail: not a size"},
      {{"--timeout", "1e300h"}, "--timeout: out of range: '1e300h' (at most 292 years)"},
      {{"--timeout", "2562048h"}, "--timeout: out of range"},
      {{"--grace", "infs"}, "--grace: not a duration"},
      {{"--interval", "1e20"}, "--interval: out of range"},
      {{"--max-cpu", "inf"}, "--max-cpu: not a number of seconds"},
      {{"--keep-runs", "99999999999999999999"}, "--keep-runs: not a valid number"},
  };
  for (const auto& [opts, message] : out_of_range) {
    std::vector<std::string> argv = {kSpyglass, "run"};
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.insert(argv.end(), {"--", "true"});
    r = spyglass_test::run(argv, dir.path());
    EXPECT_EQ(r.exit_code, 125) << opts[0] << " " << opts[1];
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  // The largest values that fit are accepted (the run itself is quick).
  r = spyglass_test::run({kSpyglass, "run", "--no-history", "--quiet", "--keep-days", "106751", "--timeout",
                          "2562047h", "--max-rss", "17179869183G", "--", "true"},
                         dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = spyglass_test::run({kSpyglass, "history", "--limit", "99999999999999999999"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--limit: not a valid number"), std::string::npos) << r.err;
  r = spyglass_test::run({kSpyglass, "frobnicate"}, dir.path());
  EXPECT_EQ(r.exit_code, 2);
  // Nothing ran, so nothing was created.
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out"));
}

TEST(Runner, InheritedIgnoredSignalsStayIgnoredAndSigpipeIsDefault) {
  // In a child process, so that changing dispositions does not touch the test runner.
  const pid_t p = ::fork();
  if (p == 0) {
    ::signal(SIGHUP, SIG_IGN);  // as under nohup
    const auto hup = run_quiet({"sh", "-c", "kill -HUP $$; exit 5"});
    const auto pipe = run_quiet({"sh", "-c", "kill -PIPE $$; exit 5"});
    std::_Exit(hup.record.exit_code == 5 && pipe.record.exit_code == 128 + SIGPIPE ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(p, &st, 0), p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
