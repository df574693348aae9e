// run() and `spyglass run`: exit codes, output tails, limits, signal forwarding.

#include "spyglass/monitor/runner.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "spyglass/clock.hpp"
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
}

// Without exact_peak, max_rss_bytes is the kernel's peak RSS of the largest reaped
// process: in a process whose only child was the command, exactly what
// getrusage(RUSAGE_CHILDREN) reports.
TEST(Runner, MaxRssWithoutTracingIsTheKernelsMaxrss) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    mon::RunOptions o;
    o.argv = {kWorkload, "exit", "0"};
    o.passthrough = false;
    o.exact_peak = false;
    const auto r = mon::run(o);
    rusage ru{};
    ::getrusage(RUSAGE_CHILDREN, &ru);
    const std::uint64_t v[2] = {r.record.max_rss_bytes, static_cast<std::uint64_t>(ru.ru_maxrss) * 1024};
    std::_Exit(::write(p[1], v, sizeof v) == static_cast<ssize_t>(sizeof v) ? 0 : 1);
  }
  ::close(p[1]);
  std::uint64_t v[2] = {0, 0};
  const ssize_t n = ::read(p[0], v, sizeof v);
  ::close(p[0]);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof v));
  EXPECT_EQ(v[0], v[1]);
  EXPECT_GT(v[1], 0u);  // the kernel's own value: a running program has pages
}

// A traced command may trace its own children (strace, a debugger running its program).
TEST(Runner, CommandThatTracesItsChildRuns) {
  if (::access("/usr/bin/strace", X_OK) != 0) GTEST_SKIP() << "strace is not installed";
  const auto r = run_quiet({"/usr/bin/strace", "-f", "-o", "/dev/null", "sh", "-c", "exit 4"});
  EXPECT_EQ(r.record.exit_code, 4);
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

// The command runs until the tenth sample: on_sample itself ends it, so how many samples
// there are does not depend on how busy the machine is.
TEST(Runner, CallsOnSampleAndRecordsMonitorCost) {
  constexpr std::size_t kEndAt = 10;
  constexpr std::uint64_t kIntervalNs = 10000000;
  mon::RunOptions o;
  o.argv = {"sleep", "600"};
  o.passthrough = false;
  o.interval = std::chrono::nanoseconds(kIntervalNs);
  std::size_t calls = 0;
  std::vector<pid_t> ended;
  o.on_sample = [&](const mon::Sample&) {
    // run() is called on this thread, so the command is this thread's child.
    if (++calls == kEndAt) {
      ended = spyglass_test::children_of(::getpid());
      for (const pid_t c : ended) ::kill(c, SIGTERM);
    }
  };
  const std::uint64_t cpu_before = spyglass::clock::thread_cpu_ns();
  const auto r = mon::run(o);
  const std::uint64_t cpu_spent = spyglass::clock::thread_cpu_ns() - cpu_before;
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(r.record.exit_code, 128 + SIGTERM);
  EXPECT_EQ(r.record.signal, SIGTERM);
  EXPECT_EQ(r.record.kill_reason, "");
  // One call per recorded sample: kEndAt while the command lived (maybe one more before
  // its exit was seen), then the one after the exit.
  EXPECT_EQ(calls, r.samples.size());
  ASSERT_GE(r.samples.size(), kEndAt + 1);
  for (std::size_t i = 0; i < kEndAt; ++i) EXPECT_EQ(r.samples[i].processes, 1u) << "sample " << i;
  EXPECT_EQ(r.samples.back().processes, 0u);
  // Never more than the schedule: sample i of the run is at least i intervals after the
  // start, however late the loop runs.
  for (std::size_t i = 0; i + 1 < r.samples.size(); ++i) {
    EXPECT_GE(r.samples[i].t_ns - r.start_mono_ns, i * kIntervalNs) << "sample " << i;
  }
  // The command was alive at the sample that ended it.
  EXPECT_GE(static_cast<std::uint64_t>(r.record.duration_ns), r.samples[kEndAt - 1].t_ns - r.start_mono_ns);
  // The monitor's own CPU is part of what this thread spent in run().
  EXPECT_GT(r.record.monitor_cpu_ns, 0u);
  EXPECT_LE(r.record.monitor_cpu_ns, cpu_spent);
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
  // Seconds from the start, as the monitor recorded them: the last sample within the
  // limit, the first beyond it (where the kill begins), the end of the command (when it
  // was reaped) and the sample after the run (taken once every process of the tree was
  // reaped: the end of the kill).
  double below_s = -1, detect_s = -1, command_end_s = -1, end_s = -1;
  double below_value = -1;  // the limited value at below_s
};

constexpr double kInterval = 0.05, kGrace = 1.0;

constexpr double kSlack = spyglass_test::kMonitorSlack;

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
    out.command_end_s = static_cast<double>(out.rec.duration_ns) / 1e9;
    if (!out.samples.empty()) out.end_s = static_cast<double>(out.samples.back().t_ns) / 1e9;
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
    k.below_value = value(s);
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
  // The sample after the run saw no process left.
  ASSERT_FALSE(k.samples.empty());
  EXPECT_EQ(k.samples.back().processes, 0u);
}

// A sampled limit: seen at the first sample past it, which comes one interval after the
// last sample within it; the kill begins there: the command (which dies on SIGTERM) ends
// at once, and the tree is gone `grace` after that (graceful: not before, as the
// grandchild ignores SIGTERM) or at once (immediate).
void expect_sampled_kill(const Killed& k, bool graceful) {
  ASSERT_GE(k.below_s, 0) << "no sample within the limit";
  ASSERT_GE(k.detect_s, 0) << "no sample beyond the limit, yet the run was killed";
  const std::string times = "below " + std::to_string(k.below_s) + " s, detected " +
                            std::to_string(k.detect_s) + " s, command ended " +
                            std::to_string(k.command_end_s) + " s, tree gone " + std::to_string(k.end_s) +
                            " s";
  EXPECT_LE(k.detect_s - k.below_s, kInterval + kSlack) << times;
  // The command was part of the sample that saw the limit passed.
  EXPECT_GE(k.command_end_s, k.detect_s) << times;
  EXPECT_LE(k.command_end_s - k.detect_s, kSlack) << times;
  const double grace = graceful ? kGrace : 0.0;
  EXPECT_GE(k.end_s - k.detect_s, grace) << "SIGKILL came before the grace period ended; " << times;
  EXPECT_LE(k.end_s - k.detect_s, grace + kSlack) << times;
}

}  // namespace

TEST(RunLimits, TimeoutKillsTreeGracefully) {
  spyglass_test::TempDir dir;
  const auto k = run_runaway(dir, {{"--timeout", "1s"}, "sleep", "timeout"}, "graceful");
  expect_killed(k, "timeout");
  // The timeout is a deadline of its own (no sampling involved): SIGTERM at 1 s, which
  // ends the command (the runaway parent) at once; SIGKILL for the SIGTERM-proof
  // grandchild after the 1 s grace.
  EXPECT_GE(k.command_end_s, 1.0);
  EXPECT_LE(k.command_end_s, 1.0 + kSlack);
  EXPECT_GE(k.end_s, 1.0 + kGrace);
  EXPECT_LE(k.end_s, 1.0 + kGrace + kSlack);
  EXPECT_EQ(k.rec.signal, SIGTERM);
}

TEST(RunLimits, TimeoutImmediateSkipsGrace) {
  spyglass_test::TempDir dir;
  const auto k = run_runaway(dir, {{"--timeout", "1s"}, "sleep", "timeout"}, "immediate");
  expect_killed(k, "timeout");
  EXPECT_GE(k.command_end_s, 1.0);
  EXPECT_LE(k.command_end_s, 1.0 + kSlack);
  EXPECT_GE(k.end_s, 1.0);
  EXPECT_LE(k.end_s, 1.0 + kSlack);
  EXPECT_EQ(k.rec.signal, SIGKILL);
}

namespace {

constexpr double kRssLimit = 96.0 * 1048576;

double tree_rss(const mon::Sample& s) { return static_cast<double>(s.rss_bytes); }

// The run's peak tree RSS is the largest sampled one, which passed the limit.
void expect_rss_peak(const Killed& k) {
  std::uint64_t peak = 0;
  for (const auto& s : k.samples) peak = std::max(peak, s.rss_bytes);
  EXPECT_EQ(k.rec.peak_tree_rss_bytes, peak);
  EXPECT_GT(static_cast<double>(peak), kRssLimit);
}

}  // namespace

TEST(RunLimits, MaxRssKillsTree) {
  spyglass_test::TempDir dir;
  auto k = run_runaway(dir, {{"--max-rss", "96M"}, "rss", "max-rss"}, "graceful");
  expect_killed(k, "max-rss");
  find_crossing(k, kRssLimit, tree_rss);
  expect_sampled_kill(k, true);
  // The parent grows 8 MiB per 20 ms sleep from a tree of a few MiB (under 40 MiB even
  // with a sanitizer's runtime in both processes): passing 96 MiB takes at least 7 steps,
  // so 6 sleeps. A limit that fired early (a wrong unit) would show here.
  EXPECT_GE(k.detect_s, 0.12);
  expect_rss_peak(k);
  EXPECT_EQ(k.rec.signal, SIGTERM);
}

TEST(RunLimits, MaxRssImmediateKillsTreeAtOnce) {
  spyglass_test::TempDir dir;
  auto k = run_runaway(dir, {{"--max-rss", "96M"}, "rss", "max-rss"}, "immediate");
  expect_killed(k, "max-rss");
  find_crossing(k, kRssLimit, tree_rss);
  expect_sampled_kill(k, false);
  EXPECT_GE(k.detect_s, 0.12);
  expect_rss_peak(k);
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
  const double cpu = static_cast<double>(k.rec.user_cpu_ns + k.rec.sys_cpu_ns) / 1e9;
  EXPECT_GT(cpu, 0.5);
  // The exact total (wait4) against the samples: after the last sample within the limit
  // the one spinning thread ran at most until the command ended (SIGTERM ends it). The
  // sampled value may lag by two clock ticks (user and system are truncated apart); the
  // sleeping grandchild adds a few ms at most.
  EXPECT_LE(cpu, k.below_value + (k.command_end_s - k.below_s) + 0.05)
      << "below " << k.below_value << " CPU s at " << k.below_s << " s, command ended " << k.command_end_s
      << " s";
  EXPECT_EQ(k.rec.signal, SIGTERM);
}

TEST(RunSignals, SigtermAndSigintAreForwardedToTheGroup) {
  for (const int sig : {SIGTERM, SIGINT}) {
    spyglass_test::TempDir dir;
    const std::string db = dir / "h.db";
    spyglass_test::Child c({kSpyglass, "run", "--db", db, "--", "sleep", "30"}, dir.path());
    // Wait for the run to be under way (its sleep child exists).
    ASSERT_TRUE(spyglass_test::wait_until([&] { return !spyglass_test::children_of(c.pid()).empty(); },
                                          spyglass_test::kWaitLimit));
    ::kill(c.pid(), sig);
    const auto r = c.wait();
    EXPECT_EQ(r.exit_code, 128 + sig) << r.err;
    auto h = mon::History::open(db, {.create = false});
    const auto runs = h.runs({});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].signal, sig);
    EXPECT_EQ(runs[0].kill_reason, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    EXPECT_LT(runs[0].duration_ns, 30000000000) << "the signal did not cut the sleep short";
  }
}

namespace {

pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  pid_t p = 0;
  in >> p;
  return p;
}

}  // namespace

// A terminating signal to spyglass ends the whole tree, descendants that ignore it and
// those that left the process group (setsid) included: SIGKILL after --grace, and
// spyglass exits only once they are gone.
TEST(RunSignals, TerminatingSignalEndsTheWholeTree) {
  for (const int sig : {SIGTERM, SIGINT, SIGHUP}) {
    spyglass_test::TempDir dir;
    const std::string a = dir / "a.pid", b = dir / "b.pid", json = dir / "run.json";
    const std::string stubborn = "trap '' TERM INT HUP; echo $$ > ";
    const std::string script = "sh -c \"" + stubborn + a + "; exec sleep 42\" & setsid sh -c \"" + stubborn +
                               b + "; exec sleep 42\" & wait";
    spyglass_test::Child c({kSpyglass, "run", "--no-history", "--quiet", "--grace", "300ms", "--json", json,
                            "--", "sh", "-c", script},
                           dir.path());
    ASSERT_TRUE(spyglass_test::wait_until([&] { return read_pid(a) > 0 && read_pid(b) > 0; },
                                          spyglass_test::kWaitLimit));
    const pid_t pa = read_pid(a), pb = read_pid(b);
    ASSERT_TRUE(spyglass_test::alive(pa));
    ASSERT_TRUE(spyglass_test::alive(pb));
    ::kill(c.pid(), sig);
    const auto r = c.wait();
    EXPECT_EQ(r.exit_code, 128 + sig) << r.err;
    EXPECT_FALSE(spyglass_test::alive(pa)) << "signal " << sig;
    EXPECT_FALSE(spyglass_test::alive(pb)) << "signal " << sig;
    const std::string rec = spyglass_test::slurp(json);
    const std::string name = sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP";
    EXPECT_NE(rec.find("\"kill_reason\":\"" + name + "+SIGKILL\""), std::string::npos) << rec;
    ::kill(pa, SIGKILL);  // in case the test failed: leave nothing behind either
    ::kill(pb, SIGKILL);
  }
}

// Descendants still running when the command exits are reported; --kill-leftovers ends
// them.
TEST(RunSignals, LeftoverDescendantsAreReportedAndKilledWhenAsked) {
  for (const bool kill : {false, true}) {
    spyglass_test::TempDir dir;
    const std::string pidfile = dir / "s.pid", json = dir / "run.json";
    std::vector<std::string> argv = {kSpyglass, "run", "--no-history", "--grace", "1s", "--json", json};
    if (kill) argv.push_back("--kill-leftovers");
    for (const char* a : {"--", "sh", "-c"}) argv.emplace_back(a);
    argv.push_back("sleep 31 & echo $! > " + pidfile + "; echo done");
    const auto r = spyglass_test::run(argv, dir.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const pid_t p = read_pid(pidfile);
    ASSERT_GT(p, 0);
    const std::string rec = spyglass_test::slurp(json);
    EXPECT_NE(rec.find("\"leftover_processes\":1,"), std::string::npos) << rec;
    EXPECT_NE(rec.find(std::string("\"leftovers_killed\":") + (kill ? "true" : "false")), std::string::npos)
        << rec;
    EXPECT_NE(r.err.find("pid " + std::to_string(p)), std::string::npos) << r.err;
    EXPECT_EQ(spyglass_test::alive(p), !kill);
    ::kill(p, SIGKILL);
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
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--limit: not a valid number"), std::string::npos) << r.err;
  r = spyglass_test::run({kSpyglass, "frobnicate"}, dir.path());
  EXPECT_EQ(r.exit_code, 125);
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
