// The tree measured by its own cgroup: checked against what each process reports of
// itself, psutil's PSS and GNU time; the cgroup leaves nothing behind; the kernel enforces
// a memory limit; without a cgroup the run says it sampled, and why. What this machine
// cannot do (no writable cgroup with a memory controller) is skipped with the reason.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <utility>

#include <simdjson.h>

#include "spyglass/monitor/runner.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

namespace {

std::vector<std::uint64_t> numbers(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::uint64_t> out;
  for (std::uint64_t v; in >> v;) out.push_back(v);
  return out;
}

// The mount points of every cgroup hierarchy.
std::vector<std::string> cgroup_mounts() {
  std::vector<std::string> points;
  std::istringstream mi(spyglass_test::slurp("/proc/self/mountinfo"));
  for (std::string line; std::getline(mi, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    const auto dash = line.find(" - ");
    if (dash != std::string::npos && line.compare(dash + 3, 6, "cgroup") == 0) points.push_back(point);
  }
  return points;
}

// The cgroup paths of a /proc/PID/cgroup text, those that hold `part` only.
std::vector<std::string> cgroup_paths(const std::string& proc_cgroup, const std::string& part = "") {
  std::vector<std::string> paths;
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    const auto c = line.find(':', line.find(':') + 1);
    if (c != std::string::npos && line.find(part, c) != std::string::npos)
      paths.push_back(line.substr(c + 1));
  }
  return paths;
}

// The directories the cgroups named in a /proc/PID/cgroup text for spyglass have under
// every cgroup mount (the test runs in the same cgroups as spyglass).
std::vector<std::string> cgroup_dirs(const std::string& proc_cgroup) {
  std::vector<std::string> dirs;
  for (const auto& p : cgroup_paths(proc_cgroup, "/spyglass-")) {
    for (const auto& m : cgroup_mounts()) dirs.push_back(m + p);
  }
  return dirs;
}

// The cgroups the spyglass process `pid` made (spyglass-PID-N) that still exist: they are
// children of our own cgroups.
std::vector<std::string> cgroups_of(pid_t pid) {
  std::vector<std::string> found;
  const std::string prefix = "spyglass-" + std::to_string(pid) + "-";
  for (const auto& p : cgroup_paths(spyglass_test::slurp("/proc/self/cgroup"))) {
    for (const auto& m : cgroup_mounts()) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(m + p, ec)) {
        if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
      }
    }
  }
  return found;
}

bool any_exists(const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    if (std::filesystem::exists(d)) return true;
  }
  return false;
}

}  // namespace

// Children that hold their memory at the same moment only briefly: the kernel's peak of
// the cgroup holds them all, however the samples fall. Each child reports how much its
// own anonymous memory grew (RssAnon, from its /proc/self/status while it held it); all
// that was held at once, so the cgroup's peak is at least the sum. (VmHWM would also
// count the shared libraries' file pages, which the page cache charged to whoever read
// them first, not to this cgroup.)
TEST(Cgroup, PeakHoldsChildrenThatOverlapBriefly) {
  constexpr int kChildren = 4, kMiB = 24;
  mon::RunOptions o;
  o.argv = {kWorkload, "overlap", std::to_string(kChildren), std::to_string(kMiB)};
  o.passthrough = false;
  const auto res = mon::run(o);
  const mon::RunRecord& r = res.record;
  if (r.tree_source == "sampled") GTEST_SKIP() << "no cgroup: " << r.tree_source_reason;
  ASSERT_EQ(r.exit_code, 0) << r.stderr_tail;
  const auto grown = numbers(r.stdout_tail);
  ASSERT_EQ(grown.size(), static_cast<std::size_t>(kChildren)) << r.stdout_tail;
  std::uint64_t sum = 0;
  for (const auto g : grown) {
    EXPECT_GE(g, kMiB * 1024u);
    sum += g * 1024;
  }
  EXPECT_GE(r.tree_peak_memory_bytes, sum) << "sampled RSS sum peak " << r.peak_tree_rss_bytes;
  EXPECT_GE(r.tree_peak_processes, static_cast<std::uint32_t>(kChildren + 1));
}

// A forked tree sharing its copy-on-write pages: every process's RSS counts them, the
// cgroup charged them once and PSS divides them among the sharers. The PSS sum of the
// sample that saw the whole tree agrees with psutil's memory_full_info().pss sum over
// the same processes, taken right after it while they all wait.
TEST(Cgroup, SharedPagesCountOnceInTheCgroupPeakAndThePssSum) {
  spyglass_test::TempDir dir;
  constexpr int kChildren = 4, kMiB = 64;
  mon::RunOptions o;
  o.argv = {kWorkload, "cow", std::to_string(kMiB), std::to_string(kChildren), dir.path()};
  o.passthrough = false;
  o.smaps = true;
  o.interval = std::chrono::milliseconds(20);
  mon::Sample seen{};
  double psutil_pss = -1;
  bool released = false, settled = false;
  o.on_sample = [&](const mon::Sample& s) {
    if (released || s.processes != kChildren + 1) return;
    const auto pids = numbers(spyglass_test::slurp(dir / "pids"));
    if (pids.size() != kChildren + 1) return;
    // The pids were written before this sample was taken only if they were there at the
    // one before: from then on every process only waits.
    if (!std::exchange(settled, true)) return;
    std::vector<std::string> cmd = {"/usr/bin/python3", "-c",
                                    "import sys, psutil\n"
                                    "print(sum(psutil.Process(int(p)).memory_full_info().pss "
                                    "for p in sys.argv[1:]))"};
    for (const auto p : pids) cmd.push_back(std::to_string(p));
    psutil_pss = std::strtod(spyglass_test::run_piped(cmd).out.c_str(), nullptr);
    seen = s;
    std::ofstream(dir / "release").put('\n');
    released = true;
  };
  const auto res = mon::run(o);
  const mon::RunRecord& r = res.record;
  ASSERT_EQ(r.exit_code, 0) << r.stderr_tail;
  ASSERT_TRUE(released);
  const double shared = kMiB * 1048576.0;
  // Every process maps the shared pages: the RSS sum counts them kChildren + 1 times.
  EXPECT_GE(static_cast<double>(seen.rss_bytes), (kChildren + 1) * shared);
  EXPECT_GE(static_cast<double>(seen.pss_bytes), shared);
  EXPECT_LT(static_cast<double>(seen.pss_bytes), 0.4 * static_cast<double>(seen.rss_bytes));
  EXPECT_NEAR(static_cast<double>(seen.pss_bytes), psutil_pss, 0.02 * psutil_pss + 512 * 1024);
  EXPECT_GE(r.peak_tree_pss_bytes, seen.pss_bytes);
  if (r.tree_source == "sampled") GTEST_SKIP() << "no cgroup: " << r.tree_source_reason;
  EXPECT_GE(static_cast<double>(r.tree_peak_memory_bytes), shared);
  EXPECT_LT(static_cast<double>(r.tree_peak_memory_bytes), 0.4 * static_cast<double>(r.peak_tree_rss_bytes));
}

// The limit on the figure asked for: a forked tree whose RSS sum is five times its memory
// is killed by --max-rss on the RSS sum, and spared on the PSS sum or the cgroup's peak.
TEST(Cgroup, MaxRssOnPssOrTheCgroupSparesATreeThatSharesItsPages) {
  constexpr int kChildren = 4, kMiB = 64;
  for (const auto source :
       {mon::RssLimitSource::rss, mon::RssLimitSource::pss, mon::RssLimitSource::cgroup}) {
    spyglass_test::TempDir dir;
    mon::RunOptions o;
    o.argv = {kWorkload, "cow", std::to_string(kMiB), std::to_string(kChildren), dir.path()};
    o.passthrough = false;
    o.interval = std::chrono::milliseconds(20);
    o.kill = mon::KillStrategy::immediate;
    o.max_rss_bytes = std::uint64_t{3 * kMiB} << 20;  // above the shared pages, below five copies
    o.max_rss_source = source;
    int settled = 0;
    o.on_sample = [&](const mon::Sample& s) {  // two samples of the whole tree, then let it end
      if (s.processes == kChildren + 1 &&
          numbers(spyglass_test::slurp(dir / "pids")).size() == kChildren + 1 && ++settled == 2) {
        std::ofstream(dir / "release").put('\n');
      }
    };
    const auto r = mon::run(o).record;
    if (source == mon::RssLimitSource::cgroup && r.tree_source == "sampled") {
      GTEST_SKIP() << "no cgroup: " << r.tree_source_reason;
    }
    const std::string name = r.max_rss_source;
    if (source == mon::RssLimitSource::rss) {
      EXPECT_EQ(r.kill_reason, "max-rss") << name;
      EXPECT_EQ(r.exit_code, 124) << name;
    } else {
      EXPECT_EQ(r.kill_reason, "") << name;
      EXPECT_EQ(r.exit_code, 0) << name;
      EXPECT_GE(settled, 2) << name;  // it ran until released
    }
    EXPECT_EQ(name, source == mon::RssLimitSource::rss   ? "rss"
                    : source == mon::RssLimitSource::pss ? "pss"
                                                         : "cgroup");
  }
}

// The tree's CPU time from the cgroup against GNU time's user + system for the whole
// `spyglass run` (less the monitor's own sampling; its start-up is a few ms of the 5%).
TEST(Cgroup, TreeCpuAgreesWithGnuTime) {
  spyglass_test::TempDir dir;
  const std::string time_out = dir / "time.txt";
  const auto r = spyglass_test::run_piped({"/usr/bin/time", "-f", "%U %S", "-o", time_out, kSpyglass, "run",
                                           "--no-history", "--quiet", "--json", "-", "--", kWorkload, "calib",
                                           "8", "1.2", "2", "0", dir.path()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  simdjson::dom::parser p;
  simdjson::dom::element run = p.parse(r.out)["run"];
  if (std::string_view(run["tree_source"]) == "sampled") {
    GTEST_SKIP() << "no cgroup: " << std::string_view(run["tree_source_reason"]);
  }
  const auto t = spyglass_test::slurp(time_out);
  const double gnu = std::strtod(t.c_str(), nullptr) + std::strtod(t.c_str() + t.find(' '), nullptr);
  const double own = static_cast<double>(uint64_t(run["monitor_cpu_ns"])) / 1e9;
  const double tree =
      static_cast<double>(uint64_t(run["tree_user_cpu_ns"]) + uint64_t(run["tree_sys_cpu_ns"])) / 1e9;
  EXPECT_NEAR(tree, gnu - own, 0.05 * gnu) << t;
  EXPECT_GE(tree, 1.2 * 0.97);
}

// The cgroup is gone once the run is: after a command that ends, one that cannot start,
// one that leaves a process running (which goes on in our cgroup), a timeout, and a
// SIGTERM to spyglass.
TEST(Cgroup, RemovedAfterTheRunAndAfterSigterm) {
  spyglass_test::TempDir dir;
  {
    const auto r = spyglass_test::run(
        {kSpyglass, "run", "--no-history", "--quiet", "--", "cat", "/proc/self/cgroup"}, dir.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto dirs = cgroup_dirs(r.out);
    if (dirs.empty()) GTEST_SKIP() << "no cgroup for the command: " << r.out;
    EXPECT_FALSE(any_exists(dirs)) << r.out;
  }
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"--", "/nonexistent/program"},
           {"--timeout", "50ms", "--", "sleep", "60"},
       }) {
    std::vector<std::string> argv = {kSpyglass, "run", "--no-history", "--quiet"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    spyglass_test::Child c(argv, dir.path());
    const pid_t pid = c.pid();
    const auto r = c.wait();
    EXPECT_EQ(r.exit_code, cmd.size() == 2 ? 127 : 124) << r.err;
    EXPECT_EQ(cgroups_of(pid), std::vector<std::string>{}) << cmd.back();
  }
  {
    const std::string pidfile = dir / "left";
    spyglass_test::Child c(
        {kSpyglass, "run", "--no-history", "--quiet", "--", "sh", "-c", "sleep 60 & echo $! > " + pidfile},
        dir.path());
    const pid_t pid = c.pid();
    EXPECT_EQ(c.wait().exit_code, 0);
    EXPECT_EQ(cgroups_of(pid), std::vector<std::string>{});
    const auto left = static_cast<pid_t>(std::atoi(spyglass_test::slurp(pidfile).c_str()));
    ASSERT_GT(left, 0);
    EXPECT_TRUE(spyglass_test::alive(left));
    EXPECT_EQ(cgroup_paths(spyglass_test::slurp("/proc/" + std::to_string(left) + "/cgroup"), "/spyglass-"),
              std::vector<std::string>{});
    ::kill(left, SIGKILL);
  }
  const std::string file = dir / "cg";
  spyglass_test::Child c(
      {kSpyglass, "run", "--no-history", "--quiet", "--grace", "10s", "--", "sh", "-c",
       "cat /proc/self/cgroup > " + file + ".tmp && mv " + file + ".tmp " + file + " && exec sleep 60"},
      dir.path());
  ASSERT_TRUE(
      spyglass_test::wait_until([&] { return std::filesystem::exists(file); }, spyglass_test::kWaitLimit));
  const auto dirs = cgroup_dirs(spyglass_test::slurp(file));
  EXPECT_TRUE(any_exists(dirs));  // while it runs
  EXPECT_FALSE(cgroups_of(c.pid()).empty());
  ::kill(c.pid(), SIGTERM);
  const pid_t pid = c.pid();
  const auto r = c.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
  EXPECT_FALSE(any_exists(dirs));
  EXPECT_EQ(cgroups_of(pid), std::vector<std::string>{});
}

// --max-rss enforced by the kernel: the cgroup's hard limit stops a process that keeps
// growing (it never gets past the limit, which sampling cannot promise), the OOM kill
// is reported as the limit's, and its descendant that ignores SIGTERM goes too.
TEST(Cgroup, KernelEnforcedMaxRssKillsAGrowingProcess) {
  spyglass_test::TempDir dir;
  const std::string pidfile = dir / "pids";
  const auto r = spyglass_test::run_piped({kSpyglass, "run", "--no-history", "--quiet", "--json", "-",
                                           "--max-rss", "48M", "--max-rss-source", "kernel", "--kill",
                                           "immediate", "--", kWorkload, "runaway", "rss", pidfile});
  simdjson::dom::parser p;
  simdjson::dom::element run = p.parse(r.out)["run"];
  if (std::string_view(run["tree_source"]) == "sampled") {
    GTEST_SKIP() << "no cgroup: " << std::string_view(run["tree_source_reason"]);
  }
  EXPECT_EQ(r.exit_code, 124);
  EXPECT_EQ(std::string_view(run["kill_reason"]), "max-rss");
  EXPECT_EQ(std::string_view(run["max_rss_source"]), "kernel");
  EXPECT_EQ(int64_t(run["signal"]), SIGKILL);
  // The peak may pass the limit by the few pages being charged when it was hit.
  EXPECT_LE(uint64_t(run["tree_peak_memory_bytes"]), (48u << 20) + 16 * 4096);
  EXPECT_GE(uint64_t(run["tree_peak_memory_bytes"]), 40u << 20);
  const auto pids = numbers(spyglass_test::slurp(pidfile));
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_FALSE(spyglass_test::alive(static_cast<pid_t>(pids[1])));
}

// Without a cgroup (forced here) the run says it sampled the tree and why, in the summary,
// the JSON and the history; a limit asked of the kernel falls back to the sampled RSS sum
// with a warning, and still kills.
TEST(Cgroup, FallsBackToSamplingWithTheReason) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db", pidfile = dir / "pids";
  const auto r = spyglass_test::run({kSpyglass,
                                     "run",
                                     "--db",
                                     db,
                                     "--json",
                                     dir / "run.json",
                                     "--cgroup",
                                     "off",
                                     "--max-rss",
                                     "24M",
                                     "--max-rss-source",
                                     "kernel",
                                     "--kill",
                                     "immediate",
                                     "--interval",
                                     "20ms",
                                     "--",
                                     kWorkload,
                                     "runaway",
                                     "rss",
                                     pidfile},
                                    dir.path());
  EXPECT_EQ(r.exit_code, 124) << r.err;
  EXPECT_NE(r.err.find("warning: the memory limit applies to the sampled RSS sum, not the kernel figure"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("tree (sampled)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sampled: cgroups were turned off"), std::string::npos) << r.err;
  simdjson::dom::parser p;
  simdjson::dom::element run = p.load(dir / "run.json")["run"];
  EXPECT_EQ(std::string_view(run["tree_source"]), "sampled");
  EXPECT_EQ(std::string_view(run["max_rss_source"]), "rss");
  EXPECT_EQ(std::string_view(run["kill_reason"]), "max-rss");
  EXPECT_EQ(uint64_t(run["tree_peak_memory_bytes"]), uint64_t(run["peak_tree_rss_bytes"]));
  const auto q = spyglass_test::run(
      {"sqlite3", db, "SELECT tree_source, tree_source_reason, max_rss_source, kill_reason FROM runs;"});
  EXPECT_EQ(q.out, "sampled|cgroups were turned off|rss|max-rss\n") << q.err;
  const auto pids = numbers(spyglass_test::slurp(pidfile));
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_FALSE(spyglass_test::alive(static_cast<pid_t>(pids[1])));
}

// An unprivileged spyglass cannot create a cgroup: it samples, says why, and enforces a
// limit asked of the kernel on the sampled RSS sum instead.
TEST(Cgroup, WithoutPermissionItSamplesAndSaysWhy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, to run spyglass as nobody";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv";
  const auto r =
      spyglass_test::run_piped({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                kSpyglass, "run", "--no-history", "--quiet", "--json", "-", "--max-rss", "1G",
                                "--max-rss-source", "kernel", "--", "true"});
  ASSERT_EQ(r.exit_code, 0);
  simdjson::dom::parser parser;
  simdjson::dom::element run = parser.parse(r.out)["run"];
  EXPECT_EQ(std::string_view(run["tree_source"]), "sampled");
  const std::string_view why = run["tree_source_reason"];
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(std::string_view(run["max_rss_source"]), "rss");
  EXPECT_EQ(uint64_t(run["tree_peak_memory_bytes"]), uint64_t(run["peak_tree_rss_bytes"]));
}

// Bad values of the new options are usage errors, and nothing runs.
TEST(Cgroup, BadOptionsAreUsageErrors) {
  spyglass_test::TempDir dir;
  const std::string marker = dir / "ran";
  for (const std::vector<std::string>& opts : std::vector<std::vector<std::string>>{
           {"--cgroup", "maybe"},
           {"--max-rss", "1G", "--max-rss-source", "vss"},
           {"--max-rss-source", "pss"},
       }) {
    std::vector<std::string> cmd = {kSpyglass, "run", "--no-history"};
    cmd.insert(cmd.end(), opts.begin(), opts.end());
    cmd.insert(cmd.end(), {"--", "touch", marker});
    const auto r = spyglass_test::run(cmd, dir.path());
    EXPECT_EQ(r.exit_code, 125) << opts[0];
    EXPECT_NE(r.err.find(opts.size() == 2 ? opts[0] : "--max-rss-source"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(marker));
}
