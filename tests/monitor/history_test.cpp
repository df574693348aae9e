#include "spyglass/monitor/history.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <set>

#include "support.hpp"

namespace mon = spyglass::monitor;

namespace {

mon::RunRecord make_run(const std::string& label, std::int64_t start_ns, int exit_code = 0) {
  mon::RunRecord r;
  r.label = label;
  r.command = "/bin/prog";
  r.args = {"--flag", "with \"quotes\"", "ünïcode"};
  r.cwd = "/work";
  r.host = "box";
  r.git_commit = "0123456789abcdef0123456789abcdef01234567";
  r.start_unix_ns = start_ns;
  r.end_unix_ns = start_ns + 1500000000;
  r.duration_ns = 1500000000;
  r.exit_code = exit_code;
  r.user_cpu_ns = 1200000000;
  r.sys_cpu_ns = 300000000;
  r.max_rss_bytes = 64u << 20;
  r.peak_tree_rss_bytes = 80u << 20;
  r.read_bytes = 4096;
  r.write_bytes = 1u << 20;
  r.rchar = 123;
  r.wchar = 456;
  r.peak_threads = 5;
  r.peak_processes = 2;
  r.vol_ctx = 10;
  r.invol_ctx = 3;
  r.minflt = 1000;
  r.majflt = 1;
  r.monitor_cpu_ns = 5000000;
  r.stdout_tail = "out\n";
  r.stderr_tail = "err\n";
  return r;
}

std::vector<mon::Sample> make_samples(std::size_t n, std::uint64_t t0) {
  std::vector<mon::Sample> v;
  for (std::size_t i = 0; i < n; ++i) {
    mon::Sample s;
    s.t_ns = t0 + i * 100000000;
    s.processes = 2;
    s.threads = 5;
    s.fds = 7;
    s.cpu_user_ns = i * 1000;
    s.cpu_user_pct = 50.5;
    s.rss_bytes = (i + 1) << 20;
    v.push_back(s);
  }
  return v;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST(History, StoresAndReadsBackEverything) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
  auto r = make_run("job", 1000);
  const auto samples = make_samples(5, 777);
  const auto id = h.insert(r, samples, 777);
  EXPECT_EQ(r.id, id);
  const auto back = h.run(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->label, "job");
  EXPECT_EQ(back->args, r.args);
  EXPECT_EQ(back->git_commit, r.git_commit);
  EXPECT_EQ(back->duration_ns, r.duration_ns);
  EXPECT_EQ(back->max_rss_bytes, r.max_rss_bytes);
  EXPECT_EQ(back->peak_tree_rss_bytes, r.peak_tree_rss_bytes);
  EXPECT_EQ(back->write_bytes, r.write_bytes);
  EXPECT_EQ(back->peak_threads, 5u);
  EXPECT_EQ(back->monitor_cpu_ns, r.monitor_cpu_ns);
  EXPECT_EQ(back->stdout_tail, "out\n");
  EXPECT_EQ(back->stderr_tail, "err\n");
  const auto s = h.samples(id);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].t_ns, 0u);  // relative to the run's start
  EXPECT_EQ(s[4].t_ns, 400000000u);
  EXPECT_EQ(s[4].rss_bytes, 5u << 20);
  EXPECT_DOUBLE_EQ(s[2].cpu_user_pct, 50.5);
  EXPECT_FALSE(h.run(id + 1));
}

TEST(History, ListsNewestFirstByLabelWithLimit) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  for (int i = 0; i < 10; ++i) {
    auto r = make_run(i % 2 == 0 ? "even" : "odd", 1000 + i);
    h.insert(r, {}, 0);
  }
  const auto all = h.runs({.label = "", .limit = 100});
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[0].start_unix_ns, 1009);
  const auto even = h.runs({.label = "even", .limit = 3});
  ASSERT_EQ(even.size(), 3u);
  EXPECT_EQ(even[0].start_unix_ns, 1008);
  EXPECT_EQ(even[2].start_unix_ns, 1004);
  EXPECT_TRUE(even[0].stdout_tail.empty());  // tails only on request
  EXPECT_TRUE(h.runs({.label = "none"}).empty());
}

TEST(History, BaselineSkipsFailedAndKilledRuns) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  auto ok1 = make_run("b", 1), bad = make_run("b", 2, 3), killed = make_run("b", 3), ok2 = make_run("b", 4),
       cur = make_run("b", 5);
  killed.kill_reason = "timeout";
  for (auto* r : {&ok1, &bad, &killed, &ok2, &cur}) h.insert(*r, {}, 0);
  const auto base = h.baseline("b", cur.id, 20);
  ASSERT_EQ(base.size(), 2u);
  EXPECT_EQ(base[0].id, ok2.id);
  EXPECT_EQ(base[1].id, ok1.id);
}

TEST(History, ForeignSqliteFileIsRefusedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "other.db";
  ASSERT_EQ(spyglass_test::run({"sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);"}).exit_code,
            0);
  const std::string before = spyglass_test::slurp(db);
  try {
    mon::History::open(db);
    FAIL() << "opened a foreign database";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::foreign);
    EXPECT_NE(std::string(e.what()).find("not a spyglass history"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(db), std::string::npos);
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
  EXPECT_FALSE(std::filesystem::exists(db + "-wal"));
}

TEST(History, NonSqliteFileIsRefusedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "notes.txt";
  std::ofstream(db) << "these are my notes, not a database\n";
  const std::string before = spyglass_test::slurp(db);
  try {
    mon::History::open(db);
    FAIL() << "opened a text file";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::not_a_database);
    EXPECT_NE(std::string(e.what()).find("not an SQLite database"), std::string::npos) << e.what();
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
}

TEST(History, CorruptFileIsReportedAndUntouched) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db);
    for (int i = 0; i < 50; ++i) {
      auto r = make_run("c", i);
      h.insert(r, make_samples(20, 0), 0);
    }
  }  // the last connection checkpoints the WAL into the main file
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  // Overwrite the schema page's b-tree (page 1 after the 100-byte header) with garbage.
  std::string bytes = spyglass_test::slurp(db);
  ASSERT_GT(bytes.size(), 8192u);
  for (std::size_t i = 100; i < 4096; ++i) bytes[i] = static_cast<char>(0xA5);
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  try {
    mon::History::open(db);
    FAIL() << "opened a corrupt database";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::corrupt) << e.what();
    EXPECT_NE(std::string(e.what()).find("left untouched"), std::string::npos) << e.what();
  }
  EXPECT_EQ(spyglass_test::slurp(db), bytes);
}

TEST(History, NewerSchemaIsRefused) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  { auto h = mon::History::open(db); }
  ASSERT_EQ(spyglass_test::run({"sqlite3", db, "PRAGMA user_version=99;"}).exit_code, 0);
  try {
    mon::History::open(db);
    FAIL();
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::newer_schema);
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

TEST(History, MigratesForwardKeepingData) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db, {.schema_version = 1});
    EXPECT_EQ(h.schema_version(), 1);
    auto r = make_run("m", 5);
    h.insert(r, make_samples(3, 0), 0);
  }
  auto tables = spyglass_test::run({"sqlite3", db, "SELECT name FROM sqlite_master WHERE name='alerts';"});
  EXPECT_EQ(tables.out, "");
  {
    auto h = mon::History::open(db);
    EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
    const auto runs = h.runs({});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(h.samples(runs[0].id).size(), 3u);
    EXPECT_EQ(runs[0].leftover_processes, 0u);  // a column added by version 3, empty for old runs
    // Version 5: older runs were sampled, their tree figures are their own columns'.
    EXPECT_EQ(runs[0].tree_source, "sampled");
    EXPECT_EQ(runs[0].tree_peak_memory_bytes, 80u << 20);
    EXPECT_EQ(runs[0].tree_user_cpu_ns, 1200000000u);
    EXPECT_EQ(runs[0].tree_write_bytes, 1u << 20);
    EXPECT_EQ(runs[0].tree_peak_processes, 2u);
    EXPECT_EQ(runs[0].max_rss_source, "");
    auto r = make_run("m", 6);
    r.leftover_processes = 2;
    r.leftovers_killed = true;
    r.tree_source = "cgroup-v1";
    r.tree_peak_memory_bytes = 7;
    r.peak_tree_pss_bytes = 8;
    r.tree_user_cpu_ns = 9;
    r.tree_sys_cpu_ns = 10;
    r.tree_read_bytes = 11;
    r.tree_write_bytes = 12;
    r.tree_peak_processes = 13;
    r.max_rss_source = "kernel";
    h.insert(r, make_samples(1, 0), 0);
    const auto back = h.run(r.id);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->leftover_processes, 2u);
    EXPECT_TRUE(back->leftovers_killed);
    EXPECT_EQ(back->tree_source, "cgroup-v1");
    EXPECT_EQ(back->tree_source_reason, "");
    EXPECT_EQ(back->tree_peak_memory_bytes + back->peak_tree_pss_bytes + back->tree_user_cpu_ns +
                  back->tree_sys_cpu_ns + back->tree_read_bytes + back->tree_write_bytes,
              7u + 8 + 9 + 10 + 11 + 12);
    EXPECT_EQ(back->tree_peak_processes, 13u);
    EXPECT_EQ(back->max_rss_source, "kernel");
    EXPECT_EQ(back->stdout_tail, "out\n");  // the tails follow the new columns
    EXPECT_EQ(back->stderr_tail, "err\n");
  }
  tables = spyglass_test::run({"sqlite3", db,
                               "SELECT name FROM sqlite_master WHERE name IN ('alerts', 'alert_deliveries', "
                               "'baselines') ORDER BY name; PRAGMA user_version;"});
  EXPECT_EQ(tables.out, "alert_deliveries\nalerts\nbaselines\n7\n");
}

TEST(History, PinsOneBaselinePerLabel) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db, {.schema_version = 3});
    auto r = make_run("a", 1);
    h.insert(r, {}, 0);
  }
  // An older schema read as it is has no pins; a writer migrates it.
  EXPECT_TRUE(mon::History::open(db, {.create = false, .read_only = true}).pinned_baselines().empty());
  auto h = mon::History::open(db);
  std::vector<std::int64_t> ids;
  for (const char* label : {"a", "b"}) {
    auto r = make_run(label, 2);
    ids.push_back(h.insert(r, {}, 0));
  }
  EXPECT_FALSE(h.pin_baseline(999).has_value());
  const auto p = h.pin_baseline(1);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->label, "a");
  ASSERT_TRUE(h.pin_baseline(ids[0]).has_value());  // replaces the pin of "a"
  ASSERT_TRUE(h.pin_baseline(ids[1]).has_value());
  const auto pins = h.pinned_baselines();
  ASSERT_EQ(pins.size(), 2u);
  EXPECT_EQ(pins[0].label, "a");
  EXPECT_EQ(pins[0].run_id, ids[0]);
  EXPECT_EQ(pins[1].run_id, ids[1]);
  EXPECT_EQ(h.pinned_baselines("b").size(), 1u);
  EXPECT_THROW(mon::History::open(db, {.read_only = true}).pin_baseline(1), mon::HistoryError);
  EXPECT_TRUE(h.unpin_baseline("a"));
  EXPECT_FALSE(h.unpin_baseline("a"));
  EXPECT_TRUE(h.pinned_baselines("a").empty());
  const auto q = spyglass_test::run({"sqlite3", db, "SELECT label, run_id FROM baselines;"});
  EXPECT_EQ(q.out, "b|" + std::to_string(ids[1]) + "\n");
}

TEST(History, ConcurrentWritersLoseNothing) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  constexpr int kProcs = 4, kRuns = 30;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t k = ::fork();
    if (k == 0) {
      try {
        // Every writer creates/migrates the file itself: the creation race is covered too.
        auto h = mon::History::open(db);
        for (int i = 0; i < kRuns; ++i) {
          auto r = make_run("w" + std::to_string(p), i);
          h.insert(r, make_samples(10, 0), 0);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer %d: %s\n", p, e.what());
        std::_Exit(1);
      }
      std::_Exit(0);
    }
    kids.push_back(k);
  }
  for (pid_t k : kids) {
    int st = 0;
    ::waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  auto h = mon::History::open(db);
  const auto runs = h.runs({.label = "", .limit = 1000});
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(kProcs * kRuns));
  std::set<std::int64_t> ids;
  for (const auto& r : runs) ids.insert(r.id);
  EXPECT_EQ(ids.size(), runs.size());
  const auto n = spyglass_test::run({"sqlite3", db, "SELECT count(*) FROM samples;"});
  EXPECT_EQ(n.out, std::to_string(kProcs * kRuns * 10) + "\n");
}

TEST(History, RetentionThinsThenDrops) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  const std::int64_t now = now_ns();
  std::vector<std::int64_t> a_ids;
  for (int i = 0; i < 10; ++i) {
    auto r = make_run("a", now - (10 - i) * 1000000000LL);  // i = 9 is the newest
    h.insert(r, make_samples(50, 0), 0);
    a_ids.push_back(r.id);
  }
  for (int i = 0; i < 3; ++i) {
    auto r = make_run("b", now - i * 1000000000LL);
    h.insert(r, make_samples(50, 0), 0);
  }
  const auto res = h.apply_retention({.keep_last_per_label = 4, .max_age_days = std::nullopt, .thin_to = 10});
  EXPECT_EQ(res.runs_deleted, 6u);
  EXPECT_EQ(h.runs({.label = "a", .limit = 100}).size(), 4u);
  EXPECT_EQ(h.runs({.label = "b", .limit = 100}).size(), 3u);
  EXPECT_FALSE(h.run(a_ids[5]));
  // Newest two of "a" keep every sample; the older two kept are thinned to <= 10.
  EXPECT_EQ(h.samples(a_ids[9]).size(), 50u);
  EXPECT_EQ(h.samples(a_ids[8]).size(), 50u);
  const auto thinned = h.samples(a_ids[7]);
  EXPECT_LE(thinned.size(), 10u);
  EXPECT_GE(thinned.size(), 5u);
  EXPECT_EQ(thinned.back().t_ns, 49ULL * 100000000);  // the end of the run survives
  EXPECT_EQ(thinned.front().t_ns, 0u);
  EXPECT_EQ(h.samples(a_ids[6]).size(), thinned.size());
  // Thinned: a's ranks 3-4 and b's rank 3; dropped: a's ranks 5-10.
  EXPECT_EQ(h.samples(h.runs({.label = "b", .limit = 3}).back().id).size(), thinned.size());
  EXPECT_EQ(res.samples_deleted, 6u * 50 + 3 * (50 - thinned.size()));
}

TEST(History, RetentionByAge) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  const std::int64_t day = 86400LL * 1000000000LL;
  const std::int64_t now = now_ns();
  auto old = make_run("x", now - 10 * day), mid = make_run("x", now - 3 * day),
       young = make_run("x", now - day / 2);
  for (auto* r : {&old, &mid, &young}) h.insert(*r, make_samples(40, 0), 0);
  const auto res =
      h.apply_retention({.keep_last_per_label = std::nullopt, .max_age_days = 4.0, .thin_to = 8});
  EXPECT_EQ(res.runs_deleted, 1u);
  EXPECT_FALSE(h.run(old.id));
  EXPECT_LE(h.samples(mid.id).size(), 8u);  // older than half the window: thinned
  EXPECT_EQ(h.samples(young.id).size(), 40u);
}

TEST(History, MissingFileWithoutCreateIsAnError) {
  spyglass_test::TempDir dir;
  EXPECT_THROW(mon::History::open(dir / "absent.db", {.create = false}), mon::HistoryError);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent.db"));
}

TEST(History, ReadOnlyOpenWritesNothing) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  {
    auto h = mon::History::open(db, {.schema_version = 1});  // an older, still readable schema
    auto r = make_run("old", 5);
    h.insert(r, make_samples(3, 0), 0);
  }
  ASSERT_FALSE(std::filesystem::exists(db + "-wal"));
  const std::string before = spyglass_test::slurp(db);
  {
    auto h = mon::History::open(db, {.create = false, .read_only = true});
    EXPECT_EQ(h.schema_version(), 1);  // read as it is, not migrated
    const auto runs = h.runs({});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].label, "old");
    EXPECT_EQ(h.samples(runs[0].id).size(), 3u);
    auto r = make_run("new", 6);
    EXPECT_THROW(h.insert(r, {}, 0), mon::HistoryError);
    EXPECT_THROW(h.apply_retention({.keep_last_per_label = 0, .max_age_days = 0.0, .thin_to = 2}),
                 mon::HistoryError);
  }
  EXPECT_EQ(spyglass_test::slurp(db), before);
  const auto q = spyglass_test::run({"sqlite3", db, "PRAGMA user_version; SELECT count(*) FROM runs;"});
  EXPECT_EQ(q.out, "1\n1\n");
}

TEST(History, ReadOnlyOpenOfAnEmptyFileFindsNoRuns) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "empty.db";
  std::ofstream{db};
  auto h = mon::History::open(db, {.create = false, .read_only = true});
  EXPECT_TRUE(h.runs({}).empty());
  EXPECT_FALSE(h.run(1));
  EXPECT_TRUE(h.samples(1).empty());
  EXPECT_EQ(std::filesystem::file_size(db), 0u);
  EXPECT_THROW(mon::History::open(dir / "absent.db", {.create = true, .read_only = true}), mon::HistoryError);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent.db"));
}

// A foreign database next to a hot journal (its writer was killed mid-transaction): any
// read through a writable connection would roll the journal back into the file. Opening
// it for a history must refuse and change neither file.
TEST(History, HotJournalOfAForeignFileIsNotRolledBack) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "other.db";
  ASSERT_EQ(
      spyglass_test::run({"sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES ('keep me');"}).exit_code,
      0);
  ASSERT_TRUE(spyglass_test::make_hot_journal(db));
  const std::string before = spyglass_test::slurp(db), journal = spyglass_test::slurp(db + "-journal");
  for (const bool read_only : {false, true}) {
    try {
      mon::History::open(db, {.create = false, .read_only = read_only});
      FAIL() << "opened a foreign database with a hot journal";
    } catch (const mon::HistoryError& e) {
      EXPECT_NE(std::string(e.what()).find("left untouched"), std::string::npos) << e.what();
    }
    EXPECT_EQ(spyglass_test::slurp(db), before);
    EXPECT_EQ(spyglass_test::slurp(db + "-journal"), journal);
  }
}

TEST(History, ReadOnlyOpenOfATooOldSchemaSaysHowToMigrate) {
  spyglass_test::TempDir dir;
  const std::string db = dir / "h.db";
  // Ours (application_id) but from before version 1: only a writer can bring it forward.
  ASSERT_EQ(spyglass_test::run({"sqlite3", db, "PRAGMA application_id=1397774668; CREATE TABLE runs(id);"})
                .exit_code,
            0);
  try {
    mon::History::open(db, {.create = false, .read_only = true});
    FAIL() << "read a schema older than the oldest readable one";
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::older_schema);
    EXPECT_NE(std::string(e.what()).find("schema version 0 is too old"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("spyglass run --db"), std::string::npos) << e.what();
  }
}

// Ages and counts beyond what the database's integers hold mean "keep everything"; a NaN
// or negative age is no rule at all. None of them is an undefined conversion.
TEST(History, RetentionWithExtremeValuesKeepsEverything) {
  spyglass_test::TempDir dir;
  auto h = mon::History::open(dir / "h.db");
  const std::int64_t day = 86400LL * 1000000000LL;
  auto old = make_run("x", now_ns() - 1000 * day);
  h.insert(old, make_samples(10, 0), 0);
  for (const double days :
       {1e300, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(), -1.0}) {
    const auto res = h.apply_retention(
        {.keep_last_per_label = std::numeric_limits<std::size_t>::max(), .max_age_days = days, .thin_to = 2});
    EXPECT_EQ(res.runs_deleted, 0u) << days;
    EXPECT_EQ(res.samples_deleted, 0u) << days;
  }
  EXPECT_EQ(h.samples(old.id).size(), 10u);
}
