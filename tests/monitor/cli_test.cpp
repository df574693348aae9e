// `spyglass history`, `spyglass show`, --json, and the database as other tools see it.

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <simdjson.h>

#include "spyglass/monitor/history.hpp"
#include "test_util.hpp"

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
  EXPECT_GE(int64_t(run["duration_ns"]), 290000000);

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
  EXPECT_GE(samples.size(), 3u);  // 300 ms at 20 ms, at least a few even when loaded
  EXPECT_LT(uint64_t(samples.at(0)["t_ns"]), 1000000000u);  // relative to the run's start
  std::uint64_t peak_rss = 0;  // the very first sample may catch the child inside exec
  for (auto x : samples) peak_rss = std::max<std::uint64_t>(peak_rss, uint64_t(x["rss_bytes"]));
  EXPECT_GT(peak_rss, 0u);

  auto none = spyglass_test::run({kSpyglass, "show", "99", "--db", db});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no run 99"), std::string::npos);
  auto bad = spyglass_test::run({kSpyglass, "show", "abc", "--db", db});
  EXPECT_EQ(bad.exit_code, 2);
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

TEST(Cli, DefaultDatabaseUnderSpyglassOut) {
  spyglass_test::TempDir dir;
  const auto r = spyglass_test::run({kSpyglass, "run", "--", "true"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "spyglass-out/history.db"));
}

TEST(Cli, Sqlite3ReadsTheDocumentedSchema) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  ASSERT_EQ(
      spyglass_test::run({kSpyglass, "run", "--db", db, "--label", "peer", "--", kWorkload, "exit", "4"})
          .exit_code,
      4);
  const auto q = spyglass_test::run({"sqlite3", db,
                                     "PRAGMA user_version; PRAGMA application_id; PRAGMA journal_mode;"
                                     "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                                     "WHERE type='table' ORDER BY name);"
                                     "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
                                     "WHERE type='index' AND sql IS NOT NULL "
                                     "ORDER BY name);"
                                     "SELECT label, exit_code, signal IS NULL OR signal = 0, "
                                     "json_array_length(args), json_extract(args, '$[1]') "
                                     "FROM runs;"
                                     "SELECT count(*) > 1, min(t_ns) < (SELECT duration_ns FROM runs WHERE "
                                     "id = 1) FROM samples WHERE run_id = 1;"
                                     "SELECT group_concat(name, ',') FROM pragma_table_info('alerts');"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out,
            "2\n"
            "1397774668\n"  // 0x5350594c
            "wal\n"
            "alerts,runs,samples,spyglass_meta\n"
            "alerts_label_created,alerts_run,runs_label_start,runs_start\n"
            "peer|4|1|2|4\n"
            "1|1\n"
            "id,run_id,label,created_unix_ns,kind,metric,severity,value,baseline,message\n");
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
