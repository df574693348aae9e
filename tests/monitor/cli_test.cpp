// `spyglass history`, `spyglass show`, --json, and the database as other tools see it.

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "spyglass/monitor/history.hpp"
#include "support.hpp"

namespace mon = spyglass::monitor;
using spyglass_test::kSpyglass;
using spyglass_test::kWorkload;

TEST(Cli, HistoryAndShowAfterTwoRuns) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  for (int i = 0; i < 2; ++i) {
    const auto r = spyglass_test::run(
        {kSpyglass, "run", "--db", db, "--label", "sleepy", "--interval", "20ms", "--", "sleep", "0.3"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("[sleepy] exit 0"), std::string::npos) << r.err;
    const char* expected = i == 0 ? "no previous successful runs" : "vs median of 1 previous run: wall";
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  }
  auto hist = spyglass_test::run({kSpyglass, "history", "--db", db});
  ASSERT_EQ(hist.exit_code, 0) << hist.err;
  EXPECT_NE(hist.out.find("LABEL"), std::string::npos);
  EXPECT_EQ(std::count(hist.out.begin(), hist.out.end(), '\n'), 3);  // header + 2 runs
  EXPECT_NE(hist.out.find("sleepy"), std::string::npos);

  auto js = spyglass_test::run({kSpyglass, "history", "--db", db, "--json", "--limit", "1"});
  ASSERT_EQ(js.exit_code, 0);
  simdjson::dom::parser p;
  simdjson::dom::element arr = p.parse(js.out);
  ASSERT_EQ(simdjson::dom::array(arr).size(), 1u);
  simdjson::dom::element run = arr.at(0);
  EXPECT_EQ(int64_t(run["id"]), 2);
  EXPECT_EQ(std::string_view(run["label"]), "sleepy");
  EXPECT_EQ(std::string_view(run["command"]), "sleep");
  EXPECT_EQ(std::string_view(run["args"].at(0)), "0.3");
  EXPECT_GE(int64_t(run["duration_ns"]), 300000000);  // sleep 0.3 sleeps at least that long

  auto show = spyglass_test::run({kSpyglass, "show", "2", "--db", db});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("run 2  [sleepy]  exit 0"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("CPU |"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("RSS |"), std::string::npos) << show.out;

  auto showj = spyglass_test::run({kSpyglass, "show", "1", "--json", "--db", db});
  ASSERT_EQ(showj.exit_code, 0);
  simdjson::dom::parser p2;
  simdjson::dom::element doc = p2.parse(showj.out);
  EXPECT_EQ(int64_t(doc["run"]["id"]), 1);
  simdjson::dom::array samples = doc["samples"];
  // Every stored sample of the run, as sqlite3 counts them: at least the one at the spawn
  // and the one after the exit.
  const auto stored = spyglass_test::run({"sqlite3", db, "SELECT count(*) FROM samples WHERE run_id = 1;"});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  EXPECT_EQ(std::to_string(samples.size()) + "\n", stored.out);
  EXPECT_GE(samples.size(), 2u);
  // Times relative to the run's start: the first sample is taken before the command ends.
  EXPECT_LE(int64_t(samples.at(0)["t_ns"]), int64_t(doc["run"]["duration_ns"]));
  std::uint64_t peak_rss = 0;
  for (auto x : samples) peak_rss = std::max<std::uint64_t>(peak_rss, uint64_t(x["rss_bytes"]));
  EXPECT_EQ(peak_rss, uint64_t(doc["run"]["peak_tree_rss_bytes"]));

  auto none = spyglass_test::run({kSpyglass, "show", "99", "--db", db});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no run 99"), std::string::npos);
  auto bad = spyglass_test::run({kSpyglass, "show", "abc", "--db", db});
  EXPECT_EQ(bad.exit_code, 125);
  auto missing = spyglass_test::run({kSpyglass, "history", "--db", dir / "absent.db"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos) << missing.err;
}

TEST(Cli, JsonFileHasRunAndSamples) {
  spyglass_test::TempDir dir;
  const std::string json = dir / "run.json";
  const auto r = spyglass_test::run({kSpyglass, "run", "--no-history", "--quiet", "--json", json, "--",
                                     kWorkload, "echo", "hello \"world\"\n", ""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello \"world\"\n");  // passed through
  EXPECT_EQ(r.err, "");                   // --quiet
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.load(json);
  EXPECT_EQ(std::string_view(doc["run"]["stdout_tail"]), "hello \"world\"\n");
  EXPECT_EQ(int64_t(doc["run"]["exit_code"]), 0);
  EXPECT_GE(simdjson::dom::array(doc["samples"]).size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out"));
}

// Every subcommand has --help (exit 0, its usage on stdout), and every usage error exits
// with the same documented code, 125.
TEST(Cli, HelpAndUsageErrorsAreTheSameForEverySubcommand) {
  spyglass_test::TempDir dir;
  for (const std::string sub : {"run", "history", "show", "detect", "analyze", "evaluate"}) {
    for (const std::string help : {"--help", "-h"}) {
      const auto r = spyglass_test::run({kSpyglass, sub, help}, dir.path());
      EXPECT_EQ(r.exit_code, 0) << sub << " " << help << ": " << r.err;
      EXPECT_EQ(r.out.rfind("usage: spyglass " + sub, 0), 0u) << r.out;
      EXPECT_EQ(r.err, "");
    }
    const auto bad = spyglass_test::run({kSpyglass, sub, "--no-such-option"}, dir.path());
    EXPECT_EQ(bad.exit_code, 125) << sub;
    EXPECT_NE(bad.err.find("unknown option --no-such-option"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("spyglass " + sub + " --help"), std::string::npos) << bad.err;
  }
  const auto top = spyglass_test::run({kSpyglass, "--help"}, dir.path());
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("125"), std::string::npos) << top.out;
  EXPECT_EQ(spyglass_test::run({kSpyglass}, dir.path()).exit_code, 125);
  EXPECT_EQ(spyglass_test::run({kSpyglass, "frobnicate"}, dir.path()).exit_code, 125);
  // After the command's name, --help is the command's.
  const auto passed = spyglass_test::run(
      {kSpyglass, "run", "--no-history", "--quiet", "--", "sh", "-c", "echo \"$1\"", "sh", "--help"},
      dir.path());
  EXPECT_EQ(passed.exit_code, 0);
  EXPECT_EQ(passed.out, "--help\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "spyglass-out"));  // nothing ran that records
}

// --timeout 0 is no timeout (as coreutils' timeout); --max-rss 0 is refused.
TEST(Cli, ZeroTimeoutIsNoTimeoutAndZeroMaxRssIsRefused) {
  spyglass_test::TempDir dir;
  const auto r = spyglass_test::run(
      {kSpyglass, "run", "--no-history", "--json", "-", "--timeout", "0", "--", "sleep", "0.2"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"kill_reason\":\"\""), std::string::npos) << r.out;
  const auto z =
      spyglass_test::run({kSpyglass, "run", "--no-history", "--max-rss", "0", "--", "true"}, dir.path());
  EXPECT_EQ(z.exit_code, 125);
  EXPECT_NE(z.err.find("--max-rss: must be more than 0"), std::string::npos) << z.err;
}

// --db in a directory that does not exist: it is created, and that is said once.
TEST(Cli, MissingDatabaseDirectoryIsCreatedAndSaidOnce) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "new/sub/h.db";
  const auto first = spyglass_test::run({kSpyglass, "run", "--quiet", "--db", db, "--", "true"}, dir.path());
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.err, "spyglass: created directory " + dir.path() + "/new/sub for the history\n");
  const auto second = spyglass_test::run({kSpyglass, "run", "--quiet", "--db", db, "--", "true"}, dir.path());
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err, "");
  auto h = spyglass::monitor::History::open(db, {.create = false, .read_only = true});
  EXPECT_EQ(h.runs({}).size(), 2u);
}

TEST(Cli, DefaultDatabaseUnderSpyglassOut) {
  spyglass_test::TempDir dir;
  const auto r = spyglass_test::run({kSpyglass, "run", "--", "true"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "spyglass-out/history.db"));
}

TEST(Cli, Sqlite3ReadsTheDocumentedSchema) {
  // Bytes written by the tree: sh's two lines. A sanitizer's runtime in the workload
  // writes some of its own.
#ifdef __SANITIZE_ADDRESS__
  const std::string kWchar = "wchar >= 8";
#else
  const std::string kWchar = "wchar = 8";
#endif
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  // The workload ends once a sample has seen it, so one sample holds both processes.
  ASSERT_EQ(
      spyglass_test::run({kSpyglass, "run", "--db", db, "--label", "peer", "--interval", "20ms", "--", "sh",
                          "-c", "echo out; echo err >&2; sleep 0.2; '" + kWorkload + "' sampled; exit 4"},
                         dir.path())
          .exit_code,
      4);
  const auto q =
      spyglass_test::run({"sqlite3", db,
                          "PRAGMA user_version; PRAGMA application_id; PRAGMA journal_mode;"
                          "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                          "WHERE type='table' ORDER BY name);"
                          "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                          "WHERE type='index' AND sql IS NOT NULL "
                          "ORDER BY name);"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('runs');"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('samples');"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('alerts');"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('baselines');"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('detections');"
                          "SELECT group_concat(name, ',') FROM pragma_table_info('run_metrics');"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  // The schema documented in history.hpp, column by column.
  EXPECT_EQ(
      q.out,
      "9\n"
      "1397774668\n"  // 0x5350594c
      "wal\n"
      "alert_deliveries,alerts,baselines,detections,run_metrics,runs,samples,spyglass_meta\n"
      "alert_deliveries_alert,alerts_label_created,alerts_label_rule,alerts_run,detections_run,runs_label_"
      "start,"
      "runs_start\n"
      "id,label,command,args,cwd,host,git_commit,start_unix_ns,end_unix_ns,duration_ns,exit_code,signal,"
      "kill_reason,error,user_cpu_ns,sys_cpu_ns,max_rss_bytes,peak_tree_rss_bytes,read_bytes,write_bytes,"
      "rchar,wchar,peak_threads,peak_processes,vol_ctx,invol_ctx,minflt,majflt,monitor_cpu_ns,stdout_tail,"
      "stderr_tail,leftover_processes,leftovers_killed,tree_source,tree_source_reason,tree_peak_memory_bytes,"
      "peak_tree_pss_bytes,tree_user_cpu_ns,tree_sys_cpu_ns,tree_read_bytes,tree_write_bytes,"
      "tree_peak_processes,max_rss_source,limit_timeout_ns,limit_max_rss_bytes,limit_max_cpu_seconds,"
      "limit_kill,limit_grace_ns\n"
      "run_id,t_ns,processes,threads,fds,cpu_user_ns,cpu_sys_ns,cpu_user_pct,cpu_sys_pct,rss_bytes,"
      "vms_bytes,pss_bytes,uss_bytes,read_bytes,write_bytes,rchar,wchar,vol_ctx,invol_ctx,minflt,majflt\n"
      "id,run_id,label,created_unix_ns,kind,metric,severity,value,baseline,message,rule\n"
      "label,run_id,pinned_unix_ns\n"
      "run_id,offset_ns,metric,kind,value,score,detector\n"
      "run_id,name,value,unit\n");
  // The values mean what the documentation says.
  const auto runs = spyglass_test::run(
      {"sqlite3", db,
       "SELECT label, command, json_array_length(args), json_extract(args, '$[0]'), cwd = '" + dir.path() +
           "', host <> '', exit_code, signal, kill_reason IS NULL, error IS NULL, "
           "duration_ns BETWEEN 200000000 AND 60000000000, end_unix_ns - start_unix_ns >= duration_ns, "
           "abs(start_unix_ns / 1000000000 - strftime('%s', 'now')) < 3600, "
           "max_rss_bytes > 0, "
           "peak_tree_rss_bytes = (SELECT max(rss_bytes) FROM samples WHERE run_id = runs.id), "
           "peak_threads = (SELECT max(threads) FROM samples WHERE run_id = runs.id), peak_processes = 2, "
           "minflt > 0, monitor_cpu_ns > 0, " +
           kWchar +
           ", "
           "stdout_tail = 'out' || char(10), stderr_tail = 'err' || char(10), leftover_processes, "
           "leftovers_killed FROM runs;"},
      dir.path());
  EXPECT_EQ(runs.out, "peer|sh|2|-c|1|1|4|0|1|1|1|1|1|1|1|1|1|1|1|1|1|1|0|0\n") << runs.err;
  // Samples: times relative to the start and inside the run (at least the one that saw the
  // workload and the one after the exit); the tree (sh and its child, one thread each) seen with memory and
  // open files; cumulative counters never decrease; no PSS/USS without --smaps.
  const auto samples = spyglass_test::run(
      {"sqlite3", db,
       "SELECT count(*) >= 2, min(t_ns) >= 0, max(t_ns) <= (SELECT end_unix_ns - start_unix_ns FROM runs), "
       "max(processes), max(threads), max(fds) >= 3, max(rss_bytes) > 0, max(vms_bytes) > 0, "
       "max(pss_bytes) + max(uss_bytes), max(cpu_user_pct + cpu_sys_pct) >= 0 FROM samples WHERE run_id = 1;"
       "SELECT count(*) FROM samples a JOIN samples b ON b.run_id = a.run_id AND b.t_ns = (SELECT min(t_ns) "
       "FROM samples WHERE run_id = a.run_id AND t_ns > a.t_ns) WHERE b.cpu_user_ns < a.cpu_user_ns OR "
       "b.minflt < a.minflt OR b.wchar < a.wchar OR b.vol_ctx < a.vol_ctx;"});
  EXPECT_EQ(samples.out, "1|1|1|2|2|1|1|1|0|1\n0\n") << samples.err;
}

// The limits a run was given, as sqlite3 reads them and as show prints them; none is NULL.
TEST(Cli, RunLimitsAreRecorded) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  ASSERT_EQ(
      spyglass_test::run({kSpyglass, "run", "--quiet", "--db", db, "--timeout", "5s", "--max-rss", "500M",
                          "--max-cpu", "2.5", "--kill", "immediate", "--grace", "2s", "--", "true"},
                         dir.path())
          .exit_code,
      0);
  ASSERT_EQ(spyglass_test::run({kSpyglass, "run", "--quiet", "--db", db, "--", "true"}, dir.path()).exit_code,
            0);
  const auto q =
      spyglass_test::run({"sqlite3", db,
                          "SELECT id, limit_timeout_ns, limit_max_rss_bytes, limit_max_cpu_seconds, "
                          "limit_kill, limit_grace_ns, max_rss_source, quote(limit_timeout_ns) "
                          "FROM runs ORDER BY id"},
                         dir.path());
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(
      q.out,
      "1|5000000000|524288000|2.5|immediate|2000000000|rss|5000000000\n2||||graceful|5000000000||NULL\n");
  const auto json = spyglass_test::run({kSpyglass, "show", "1", "--json", "--db", db}, dir.path());
  EXPECT_NE(json.out.find("\"limits\":{\"timeout_ns\":5000000000,\"max_rss_bytes\":524288000,"
                          "\"max_cpu_seconds\":2.5,\"kill\":\"immediate\",\"grace_ns\":2000000000}"),
            std::string::npos)
      << json.out;
  const auto none = spyglass_test::run({kSpyglass, "show", "2", "--json", "--db", db}, dir.path());
  EXPECT_NE(none.out.find("\"limits\":{\"timeout_ns\":null,\"max_rss_bytes\":null,\"max_cpu_seconds\":null,"
                          "\"kill\":\"graceful\",\"grace_ns\":5000000000}"),
            std::string::npos)
      << none.out;
  const auto text = spyglass_test::run({kSpyglass, "show", "1", "--db", db}, dir.path());
  EXPECT_NE(
      text.out.find("limits    timeout 5.00 s, max RSS 500.0 MiB on rss, max CPU 2.50 s; kill immediate, "
                    "grace 2.00 s\n"),
      std::string::npos)
      << text.out;
}

TEST(Cli, TwoConcurrentRunsBothRecorded) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    spyglass_test::Child a(
        {kSpyglass, "run", "--db", db, "--label", "a", "--interval", "10ms", "--", "sleep", "0.2"});
    spyglass_test::Child b(
        {kSpyglass, "run", "--db", db, "--label", "b", "--interval", "10ms", "--", "sleep", "0.2"});
    const auto ra = a.wait();
    const auto rb = b.wait();
    ASSERT_EQ(ra.exit_code, 0) << ra.err;
    ASSERT_EQ(rb.exit_code, 0) << rb.err;
    EXPECT_EQ(ra.err.find("warning"), std::string::npos) << ra.err;
    EXPECT_EQ(rb.err.find("warning"), std::string::npos) << rb.err;
  }
  auto h = mon::History::open(db, {.create = false});
  EXPECT_EQ(h.runs({.label = "a", .limit = 100}).size(), static_cast<std::size_t>(kRounds));
  EXPECT_EQ(h.runs({.label = "b", .limit = 100}).size(), static_cast<std::size_t>(kRounds));
  // Every run kept its samples (at least the one at spawn and the one after exit).
  for (const auto& r : h.runs({.label = "", .limit = 100})) EXPECT_GE(h.samples(r.id).size(), 2u);
}

TEST(Cli, ForeignDatabaseStopsTheRunAndIsUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "notes.db";
  ASSERT_EQ(
      spyglass_test::run({"sqlite3", db, "CREATE TABLE notes(t); INSERT INTO notes VALUES ('keep me');"})
          .exit_code,
      0);
  const std::string before = spyglass_test::slurp(db);
  const std::string marker = dir / "ran";
  const auto r = spyglass_test::run({kSpyglass, "run", "--db", db, "--", "touch", marker});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("not a spyglass history"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_EQ(spyglass_test::slurp(db), before);
  const auto hist = spyglass_test::run({kSpyglass, "history", "--db", db});
  EXPECT_EQ(hist.exit_code, 1);
  EXPECT_EQ(spyglass_test::slurp(db), before);
}

TEST(Cli, FullDiskLosesTheRecordNotTheExitStatus) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  ASSERT_EQ(spyglass_test::run({kSpyglass, "run", "--db", db, "--", "true"}).exit_code, 0);
  // A 16-byte file-size limit makes every write to the WAL fail with EFBIG, as a full
  // disk does.
  const std::size_t size = 16;
  int err_pipe[2];
  ASSERT_EQ(::pipe(err_pipe), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    rlimit lim{static_cast<rlim_t>(size), static_cast<rlim_t>(size)};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    ::dup2(err_pipe[1], 2);  // not a file: the limit would truncate the message
    ::execl(kSpyglass.c_str(), "spyglass", "run", "--db", db.c_str(), "--", kWorkload.c_str(), "exit", "42",
            static_cast<char*>(nullptr));
    std::_Exit(99);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 42);
  ::close(err_pipe[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;)
    err.append(buf, static_cast<std::size_t>(n));
  ::close(err_pipe[0]);
  EXPECT_NE(err.find("warning"), std::string::npos) << err;
  auto h = mon::History::open(db, {.create = false});
  EXPECT_EQ(h.runs({}).size(), 1u);  // only the first run
}

namespace {

// Runs `argv` with stdout and stderr into one pipe, as an unprivileged user when we are
// root (so that file permissions apply).
spyglass_test::Result run_unprivileged(const std::vector<std::string>& argv) {
  spyglass_test::Result r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    if (::geteuid() == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) std::_Exit(97);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(98);
  }
  ::close(p[1]);
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

}  // namespace

// history and show only read: a database file nobody may write, in a directory nobody may
// write (so SQLite cannot create its -shm file either), is read as it is.
TEST(Cli, HistoryAndShowReadAReadOnlyDatabase) {
  spyglass_test::TempDir dir;
  const std::string ro = dir / "ro", db = dir / "ro/h.db";
  std::filesystem::create_directory(ro);
  const auto r = spyglass_test::run({kSpyglass, "run", "--db", db, "--label", "frozen", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  const std::string before = spyglass_test::slurp(db);
  namespace fs = std::filesystem;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(db, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  const auto hist = run_unprivileged({kSpyglass, "history", "--db", db});
  if (hist.exit_code == 98) {
    fs::permissions(ro, fs::perms::owner_all);
    GTEST_SKIP() << "uid 65534 cannot run " << kSpyglass << " (the build tree is not world-readable)";
  }
  EXPECT_EQ(hist.exit_code, 0) << hist.out;
  EXPECT_NE(hist.out.find("frozen"), std::string::npos) << hist.out;
  const auto show = run_unprivileged({kSpyglass, "show", "1", "--db", db});
  EXPECT_EQ(show.exit_code, 0) << show.out;
  EXPECT_NE(show.out.find("run 1  [frozen]  exit 0"), std::string::npos) << show.out;
  // Even with write permission (as the owner), reading changes nothing in the file.
  fs::permissions(ro, fs::perms::owner_all);
  fs::permissions(db, fs::perms::owner_read | fs::perms::owner_write);
  const auto own = spyglass_test::run({kSpyglass, "history", "--db", db});
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(spyglass_test::slurp(db), before);
}

// A foreign database with a hot journal: neither `run` nor `history` may roll the journal
// back into it.
TEST(Cli, HotJournalOfAForeignFileIsLeftAlone) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "notes.db";
  ASSERT_EQ(
      spyglass_test::run({"sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES ('keep me');"}).exit_code,
      0);
  ASSERT_TRUE(spyglass_test::make_hot_journal(db));
  const std::string before = spyglass_test::slurp(db), journal = spyglass_test::slurp(db + "-journal");
  const auto r = spyglass_test::run({kSpyglass, "run", "--db", db, "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // the run goes on, unrecorded
  EXPECT_NE(r.err.find("hot journal"), std::string::npos) << r.err;
  const auto hist = spyglass_test::run({kSpyglass, "history", "--db", db});
  EXPECT_EQ(hist.exit_code, 1);
  EXPECT_NE(hist.err.find("left untouched"), std::string::npos) << hist.err;
  EXPECT_EQ(spyglass_test::slurp(db), before);
  EXPECT_EQ(spyglass_test::slurp(db + "-journal"), journal);
}

// The summary compares with the median of the previous successful runs of the label.
// Three stored runs (odd count): the middle one; then, with the first run of `true` added
// as a fourth (even count), the mean of the two middle ones. A mean, or either middle
// value alone, gives other numbers.
TEST(Cli, SummaryComparesWithTheMedianOfPreviousRuns) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db);
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    const struct {
      double wall, cpu;
      std::uint64_t rss_mib;
    } previous[] = {{10.0, 1.0, 1000}, {1.0, 0.1, 100}, {2.0, 0.2, 200}};
    for (std::size_t i = 0; i < std::size(previous); ++i) {
      mon::RunRecord r;
      r.label = "med";
      r.command = "true";
      r.start_unix_ns = now - static_cast<std::int64_t>(100 - i) * 1000000000;
      r.duration_ns = static_cast<std::int64_t>(previous[i].wall * 1e9);
      r.end_unix_ns = r.start_unix_ns + r.duration_ns;
      r.user_cpu_ns = static_cast<std::uint64_t>(previous[i].cpu * 1e9);
      r.max_rss_bytes = previous[i].rss_mib << 20;
      h.insert(r, {}, 0);
    }
    // Failed and killed runs are not part of the baseline.
    mon::RunRecord failed;
    failed.label = "med";
    failed.command = "true";
    failed.start_unix_ns = now - 50000000000;
    failed.duration_ns = 3000000000;
    failed.exit_code = 1;
    failed.user_cpu_ns = 300000000;
    failed.max_rss_bytes = 300u << 20;
    h.insert(failed, {}, 0);
  }
  // `true` itself takes about a millisecond and 1 ms CPU; its peak RSS is a few MiB (it
  // includes spyglass's own at the spawn, more under a sanitizer). All below each stored
  // value, so as the fourth run it sits at the bottom of the order.
  const auto odd = spyglass_test::run({kSpyglass, "run", "--db", db, "--label", "med", "--", "true"});
  ASSERT_EQ(odd.exit_code, 0) << odd.err;
  EXPECT_NE(odd.err.find("vs median of 3 previous runs: wall 2.00 s ("), std::string::npos) << odd.err;
  EXPECT_NE(odd.err.find(")  cpu 200 ms ("), std::string::npos) << odd.err;
  EXPECT_NE(odd.err.find(")  peak RSS 200.0 MiB ("), std::string::npos) << odd.err;
  const auto even = spyglass_test::run({kSpyglass, "run", "--db", db, "--label", "med", "--", "true"});
  ASSERT_EQ(even.exit_code, 0) << even.err;
  EXPECT_NE(even.err.find("vs median of 4 previous runs: wall 1.50 s ("), std::string::npos) << even.err;
  EXPECT_NE(even.err.find(")  cpu 150 ms ("), std::string::npos) << even.err;
  EXPECT_NE(even.err.find(")  peak RSS 150.0 MiB ("), std::string::npos) << even.err;
}

namespace {

// The levels (0-8) of one chart row of `spyglass show`: a space is 0, U+2581..U+2588 are
// 1..8.
std::vector<int> chart_row(const std::string& text, const std::string& name) {
  const std::string head = "  " + name + " |";
  const auto start = text.find(head);
  if (start == std::string::npos) return {};
  std::vector<int> levels;
  for (std::size_t i = start + head.size(); i < text.size() && text[i] != '|';) {
    if (text[i] == ' ') {
      levels.push_back(0);
      ++i;
    } else if (i + 2 < text.size() && text.compare(i, 2, "\xE2\x96") == 0) {
      levels.push_back(static_cast<unsigned char>(text[i + 2]) - 0x80);
      i += 3;
    } else {
      return {};
    }
  }
  return levels;
}

// The CPU percentage the CPU row of `spyglass show` says is its peak ("| peak 21%").
double chart_cpu_peak(const std::string& text) {
  const auto row = text.find("  CPU |");
  const auto at = text.find("| peak ", row == std::string::npos ? 0 : row + 7);
  if (row == std::string::npos || at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + 7, nullptr);
}

}  // namespace

// A run that is busy first (0.5 s of CPU on one thread) and then idle (0.8 s): the CPU row
// of the chart is high at the start and empty at the end. Where the busy part ends depends
// on the share of a core the machine leaves the busy thread, so the test finds it in the
// stored samples (the first one showing the final CPU total) and places it on the chart's
// time axis (column = share of the time from the first to the last sample).
TEST(Cli, ShowChartsBusyThenIdle) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  const auto r = spyglass_test::run(
      {kSpyglass, "run", "--db", db, "--interval", "50ms", "--", kWorkload, "busyidle", "0.5", "0.8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto show = spyglass_test::run({kSpyglass, "show", "1", "--db", db});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const auto cpu = chart_row(show.out, "CPU");
  const auto samples = mon::History::open(db, {.create = false}).samples(1);
  ASSERT_GE(samples.size(), 2u);
  const std::size_t n = std::min<std::size_t>(60, samples.size());
  ASSERT_EQ(cpu.size(), n) << show.out;
  const std::uint64_t t0 = samples.front().t_ns, t1 = samples.back().t_ns;
  auto column = [&](std::uint64_t t) {
    const double f = t1 > t0 ? static_cast<double>(t - t0) / static_cast<double>(t1 - t0) : 0;
    return std::min(n - 1, static_cast<std::size_t>(f * static_cast<double>(n)));
  };
  auto total = [](const mon::Sample& s) { return s.cpu_user_ns + s.cpu_sys_ns; };
  // The samples of the live tree (the one after the exit only catches up with wait4).
  std::vector<mon::Sample> live;
  for (const auto& s : samples) {
    if (s.processes > 0) live.push_back(s);
  }
  ASSERT_FALSE(live.empty());
  const std::uint64_t burnt = total(live.back());
  std::size_t busy_end = 0;  // the first live sample with the final total: the burn is over
  while (total(live[busy_end]) != burnt) ++busy_end;
  ASSERT_GE(total(live.back()) - total(live.front()), 400000000u) << "the burn was not sampled";
  const std::size_t last_busy_column = column(live[busy_end].t_ns);
  std::vector<bool> has_sample(n, false);
  for (const auto& s : samples) has_sample[column(s.t_ns)] = true;
  // Idle: every column after the one where the burn ended shows no CPU, from the first
  // one a sample falls in (an empty column repeats the one before it).
  ASSERT_LT(last_busy_column, n - 1) << "no column after the busy part\n" << show.out;
  bool idle_seen = false;
  for (std::size_t c = last_busy_column + 1; c < n; ++c) {
    idle_seen = idle_seen || has_sample[c];
    if (idle_seen) {
      EXPECT_EQ(cpu[c], 0) << "column " << c << " is after the busy part\n" << show.out;
    }
  }
  EXPECT_TRUE(idle_seen) << show.out;
  // Busy: the row peaks (level 8) in the busy part, and its peak is at least the average
  // CPU of the live part of the run, in percent of one core (printed rounded).
  const auto top = std::find(cpu.begin(), cpu.end(), 8);
  ASSERT_NE(top, cpu.end()) << show.out;
  EXPECT_LE(static_cast<std::size_t>(top - cpu.begin()), last_busy_column) << show.out;
  const double average = 100.0 * static_cast<double>(burnt - total(live.front())) /
                         static_cast<double>(live.back().t_ns - live.front().t_ns);
  EXPECT_GE(chart_cpu_peak(show.out) + 0.5, average) << show.out;
  const auto rss = chart_row(show.out, "RSS");
  EXPECT_EQ(rss.size(), n) << show.out;
}
