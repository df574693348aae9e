// The history tests that hold for both backends: SQLite (in the monitor tests) and
// PostgreSQL (in the postgres tests, SPYGLASS_PG_BINDIR defined), each checked with its own
// command-line client (sqlite3, psql).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include "history_records.hpp"
#include "spyglass/monitor/history.hpp"
#include "support.hpp"
#ifdef SPYGLASS_PG_BINDIR
#include "../support/postgres_server.hpp"
#endif

namespace mon = spyglass::monitor;
using history_test::make_run;
using history_test::make_samples;
using history_test::now_ns;

namespace {

enum class Backend { sqlite, postgres };

#ifdef SPYGLASS_PG_BINDIR
/// One server per test process, started on first use.
spyglass::test::PostgresServer& pg_server() {
  static spyglass::test::PostgresServer server;
  return server;
}
#endif

class HistoryBackends : public ::testing::TestWithParam<Backend> {
 protected:
  [[nodiscard]] bool pg() const { return GetParam() == Backend::postgres; }

  /// A history location of this test's own: a file, or a fresh PostgreSQL database.
  const std::string& location() {
    if (!location_.empty()) return location_;
#ifdef SPYGLASS_PG_BINDIR
    if (pg()) {
      static int counter = 0;
      const std::string name = "history_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
      const auto made = psql(pg_server().url(), {"CREATE DATABASE " + name});
      EXPECT_EQ(made.exit_code, 0) << made.err;
      location_ = pg_server().url(name);
      return location_;
    }
#endif
    location_ = dir_ / "h.db";
    return location_;
  }

  /// `statements` run by the backend's own client on location(), rows as `a|b` lines.
  spyglass_test::Result peer(const std::vector<std::string>& statements) {
    if (pg()) return psql(location(), statements);
    std::string script;
    for (const auto& s : statements) script += s + ";\n";
    return spyglass_test::run({"sqlite3", location(), script});
  }

  static spyglass_test::Result psql(const std::string& url, const std::vector<std::string>& statements) {
#ifdef SPYGLASS_PG_BINDIR
    std::vector<std::string> argv = {std::string(SPYGLASS_PG_BINDIR) + "/psql",
                                     "-X",
                                     "-A",
                                     "-t",
                                     "-q",
                                     "-v",
                                     "ON_ERROR_STOP=1",
                                     "-d",
                                     url};
    for (const auto& s : statements) {
      argv.push_back("-c");
      argv.push_back(s);
    }
    return spyglass_test::run(argv);
#else
    (void)url;
    (void)statements;
    return {};
#endif
  }

 private:
  spyglass_test::TempDir dir_;
  std::string location_;
};

}  // namespace

TEST_P(HistoryBackends, StoresAndReadsBackEverything) {
  auto h = mon::History::open(location());
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

// What a retry after a lost COMMIT reply asks: the run recorded with the same label, host,
// start, end and duration, and no other.
TEST_P(HistoryBackends, RecordedIdFindsTheSameRunOnly) {
  auto h = mon::History::open(location());
  auto r = make_run("job", 1000);
  EXPECT_FALSE(h.recorded_id(r));
  h.insert(r, make_samples(3, 0), 0);
  auto other = make_run("job", 1000);  // the same label and start, another run
  other.end_unix_ns = r.end_unix_ns + 1;
  h.insert(other, {}, 0);
  mon::RunRecord retry = r;
  retry.id = 0;
  EXPECT_EQ(h.recorded_id(retry), r.id);
  EXPECT_EQ(h.recorded_id(other), other.id);
  for (const auto& change : std::vector<std::function<void(mon::RunRecord&)>>{
           [](mon::RunRecord& x) { x.label = "job2"; }, [](mon::RunRecord& x) { x.host = "elsewhere"; },
           [](mon::RunRecord& x) { x.start_unix_ns += 1; }, [](mon::RunRecord& x) { x.duration_ns += 1; }}) {
    mon::RunRecord x = r;
    change(x);
    EXPECT_FALSE(h.recorded_id(x));
  }
  EXPECT_EQ(peer({"SELECT count(*) FROM runs"}).out, "2\n");
}

TEST_P(HistoryBackends, ListsNewestFirstByLabelWithLimit) {
  auto h = mon::History::open(location());
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

TEST_P(HistoryBackends, ReadsWithoutTheInvocationLeaveOnlyItOut) {
  // What analytics reads: every figure and state of the runs, without command, args, cwd
  // and host (the args cost a query per run).
  auto h = mon::History::open(location());
  for (int i = 0; i < 6; ++i) {
    auto r = make_run("lean", 100 + i, i == 3 ? 2 : 0);
    r.kill_reason = i == 4 ? "timeout" : "";
    r.tree_source = "cgroup-v2";
    r.tree_peak_memory_bytes = 1000u + static_cast<unsigned>(i);
    h.insert(r, {}, 0);
  }
  const auto full = h.runs({.label = "lean", .limit = 10});
  const auto lean = h.runs({.label = "lean", .limit = 10, .with_invocation = false});
  ASSERT_EQ(full.size(), 6u);
  ASSERT_EQ(lean.size(), full.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    EXPECT_TRUE(lean[i].command.empty() && lean[i].args.empty() && lean[i].cwd.empty() &&
                lean[i].host.empty());
    EXPECT_EQ(full[i].command, "/bin/prog");
    EXPECT_EQ(full[i].args.size(), 3u);
    auto want = full[i];
    want.command.clear();
    want.args.clear();
    want.cwd.clear();
    want.host.clear();
    std::string a, b;
    mon::write_json(want, a);
    mon::write_json(lean[i], b);
    EXPECT_EQ(b, a) << i;
  }
  EXPECT_EQ(lean[1].kill_reason, "timeout");
  EXPECT_EQ(lean[2].exit_code, 2);
  EXPECT_EQ(lean[0].tree_peak_memory_bytes, 1005u);
  // The stored rows keep their invocation, as the backend's own client reads them.
  const auto rows = peer({"SELECT command, cwd, host FROM runs WHERE label = 'lean' ORDER BY id LIMIT 1"});
  EXPECT_EQ(rows.out, "/bin/prog|/work|box\n");
}

TEST_P(HistoryBackends, LabelsWithRunCountsNewestFirst) {
  auto h = mon::History::open(location());
  EXPECT_TRUE(h.labels().empty());
  for (const auto& [label, start] : std::vector<std::pair<std::string, std::int64_t>>{
           {"old", 10}, {"new", 20}, {"old", 30}, {"mid", 25}, {"new", 40}, {"new", 35}}) {
    auto r = make_run(label, start);
    h.insert(r, {}, 0);
  }
  const auto labels = h.labels();
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[0].label, "new");
  EXPECT_EQ(labels[0].runs, 3u);
  EXPECT_EQ(labels[0].latest_start_unix_ns, 40);
  EXPECT_EQ(labels[1].label, "old");
  EXPECT_EQ(labels[1].runs, 2u);
  EXPECT_EQ(labels[1].latest_start_unix_ns, 30);
  EXPECT_EQ(labels[2].label, "mid");
  EXPECT_EQ(labels[2].runs, 1u);
}

TEST_P(HistoryBackends, BaselineSkipsFailedAndKilledRuns) {
  auto h = mon::History::open(location());
  auto ok1 = make_run("b", 1), bad = make_run("b", 2, 3), killed = make_run("b", 3), ok2 = make_run("b", 4),
       cur = make_run("b", 5);
  killed.kill_reason = "timeout";
  for (auto* r : {&ok1, &bad, &killed, &ok2, &cur}) h.insert(*r, {}, 0);
  const auto base = h.baseline("b", cur.id, 20);
  ASSERT_EQ(base.size(), 2u);
  EXPECT_EQ(base[0].id, ok2.id);
  EXPECT_EQ(base[1].id, ok1.id);
}

TEST_P(HistoryBackends, NewerSchemaIsRefused) {
  const std::string db = location();
  { auto h = mon::History::open(db); }
  ASSERT_EQ(peer({pg() ? "UPDATE spyglass_meta SET value = '99' WHERE key = 'user_version'"
                       : "PRAGMA user_version=99"})
                .exit_code,
            0);
  try {
    mon::History::open(db);
    FAIL();
  } catch (const mon::HistoryError& e) {
    EXPECT_EQ(e.kind(), mon::HistoryErrorKind::newer_schema);
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

TEST_P(HistoryBackends, MigratesForwardKeepingData) {
  const std::string db = location();
  {
    auto h = mon::History::open(db, {.schema_version = 1});
    EXPECT_EQ(h.schema_version(), 1);
    auto r = make_run("m", 5);
    h.insert(r, make_samples(3, 0), 0);
  }
  const std::string tables_sql =
      pg() ? "SELECT tablename FROM pg_tables WHERE tablename IN ('alerts', 'alert_deliveries', 'baselines', "
             "'run_metrics') ORDER BY tablename"
           : "SELECT name FROM sqlite_master WHERE name IN ('alerts', 'alert_deliveries', 'baselines', "
             "'run_metrics') ORDER BY name";
  auto tables = peer({tables_sql});
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
    // Version 8: no limits were recorded before.
    EXPECT_FALSE(runs[0].limits.timeout_ns || runs[0].limits.max_rss_bytes ||
                 runs[0].limits.max_cpu_seconds || runs[0].limits.grace_ns);
    EXPECT_EQ(runs[0].limits.kill, "");
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
    r.limits = {.timeout_ns = 3000000000,
                .max_rss_bytes = 1u << 30,
                .max_cpu_seconds = 0.5,
                .kill = "immediate",
                .grace_ns = std::nullopt};
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
    EXPECT_EQ(back->limits.timeout_ns, 3000000000);
    EXPECT_EQ(back->limits.max_rss_bytes, 1u << 30);
    EXPECT_EQ(back->limits.max_cpu_seconds, 0.5);
    EXPECT_EQ(back->limits.kill, "immediate");
    EXPECT_FALSE(back->limits.grace_ns);
    EXPECT_EQ(back->stdout_tail, "out\n");  // the tails follow the new columns
    EXPECT_EQ(back->stderr_tail, "err\n");
  }
  tables = peer({tables_sql, pg() ? "SELECT value FROM spyglass_meta WHERE key = 'user_version'"
                                  : "PRAGMA user_version"});
  EXPECT_EQ(tables.out, "alert_deliveries\nalerts\nbaselines\nrun_metrics\n9\n");
  // The backend's own client reads the limits: the migrated run has none (NULL).
  const auto limits =
      peer({"SELECT COALESCE(limit_timeout_ns, -1), limit_max_rss_bytes, limit_max_cpu_seconds, "
            "limit_kill, COALESCE(limit_grace_ns, -1) FROM runs ORDER BY id"});
  EXPECT_EQ(limits.out, "-1||||-1\n3000000000|1073741824|0.5|immediate|-1\n") << limits.err;
}

// A history written before limits were recorded (schema 7): a writer of that version
// stores none, a reader takes it as it is (no limits), a newer writer migrates it.
TEST_P(HistoryBackends, HistoryFromBeforeLimitsIsStillRead) {
  const std::string db = location();
  {
    auto h = mon::History::open(db, {.schema_version = 7});
    auto r = make_run("old", 1);
    r.limits.timeout_ns = 5;  // not stored: schema 7 has no column for it
    h.insert(r, make_samples(2, 0), 0);
  }
  {
    auto ro = mon::History::open(db, {.create = false, .read_only = true});
    EXPECT_EQ(ro.schema_version(), 7);
    const auto back = ro.run(1);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->label, "old");
    EXPECT_FALSE(back->limits.timeout_ns);
    EXPECT_EQ(back->limits.kill, "");
    EXPECT_EQ(back->stdout_tail, "out\n");
    EXPECT_EQ(ro.runs({}).size(), 1u);
  }
  auto h = mon::History::open(db);
  EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
  auto r = make_run("old", 2);
  r.limits.timeout_ns = 7;
  h.insert(r, {}, 0);
  EXPECT_EQ(peer({"SELECT COALESCE(limit_timeout_ns, -1) FROM runs ORDER BY id"}).out, "-1\n7\n");
}

TEST_P(HistoryBackends, PinsOneBaselinePerLabel) {
  const std::string db = location();
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
  const auto q = peer({"SELECT label, run_id FROM baselines"});
  EXPECT_EQ(q.out, "b|" + std::to_string(ids[1]) + "\n");
}

TEST_P(HistoryBackends, ConcurrentWritersLoseNothing) {
  const std::string db = location();
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
  const auto n = peer({"SELECT count(*) FROM samples"});
  EXPECT_EQ(n.out, std::to_string(kProcs * kRuns * 10) + "\n");
}

TEST_P(HistoryBackends, RetentionThinsThenDrops) {
  auto h = mon::History::open(location());
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

TEST_P(HistoryBackends, RetentionByAge) {
  auto h = mon::History::open(location());
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

TEST_P(HistoryBackends, RetentionWithExtremeValuesKeepsEverything) {
  auto h = mon::History::open(location());
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

// An alert with its delivery attempts, stored and listed (by label, since, limit), read
// back by the backend's own client; no value or baseline is NULL there, NaN here.
TEST_P(HistoryBackends, StoresAlertsWithTheirDeliveries) {
  auto h = mon::History::open(location());
  auto r = make_run("job", 1000);
  h.insert(r, {}, 0);
  EXPECT_TRUE(h.alerts({}).empty());
  EXPECT_FALSE(h.last_alert_unix_ns("job", "slow"));
  mon::AlertRecord a;
  a.run_id = r.id;
  a.label = "job";
  a.rule = "slow";
  a.created_unix_ns = 5;
  a.kind = "threshold";
  a.metric = "wall";
  a.severity = "warning";
  a.message = "m";
  a.value = 2.5;
  a.baseline = std::numeric_limits<double>::quiet_NaN();
  a.deliveries = {{"ops", 1, 6, "failed", "HTTP 503"}, {"ops", 2, 7, "delivered", "HTTP 200"}};
  const auto first = h.insert_alert(a);
  EXPECT_EQ(a.id, first);
  mon::AlertRecord b;  // no run, no metric, no deliveries
  b.label = "other";
  b.rule = "spike";
  b.created_unix_ns = 9;
  b.kind = "spike";
  b.severity = "critical";
  b.message = "n";
  b.value = 0;
  b.baseline = 1.25;
  h.insert_alert(b);
  EXPECT_GT(b.id, first);
  EXPECT_EQ(h.last_alert_unix_ns("job", "slow"), 5);
  EXPECT_FALSE(h.last_alert_unix_ns("job", "spike"));

  const auto all = h.alerts({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].rule, "spike");  // newest first
  EXPECT_EQ(all[0].run_id, 0);
  EXPECT_EQ(all[0].metric, "");
  EXPECT_EQ(all[0].value, 0.0);
  EXPECT_EQ(all[0].baseline, 1.25);
  EXPECT_TRUE(all[0].deliveries.empty());
  EXPECT_EQ(all[1].run_id, r.id);
  EXPECT_EQ(all[1].value, 2.5);
  EXPECT_TRUE(std::isnan(all[1].baseline));
  ASSERT_EQ(all[1].deliveries.size(), 2u);
  EXPECT_EQ(all[1].deliveries[0].outcome, "failed");
  EXPECT_EQ(all[1].deliveries[1].attempt, 2);
  EXPECT_EQ(all[1].deliveries[1].unix_ns, 7);
  EXPECT_EQ(all[1].deliveries[1].detail, "HTTP 200");
  const auto job = h.alerts({.label = "job", .since_unix_ns = std::nullopt, .limit = 100});
  ASSERT_EQ(job.size(), 1u);
  EXPECT_EQ(job[0].rule, "slow");
  const auto since = h.alerts({.label = "", .since_unix_ns = 6, .limit = 100});
  ASSERT_EQ(since.size(), 1u);
  EXPECT_EQ(since[0].rule, "spike");
  EXPECT_EQ(h.alerts({.label = "", .since_unix_ns = std::nullopt, .limit = 1}).size(), 1u);
  EXPECT_THROW(mon::History::open(location(), {.create = false, .read_only = true}).insert_alert(b),
               mon::HistoryError);

  const auto q =
      peer({"SELECT a.rule, a.value, CASE WHEN a.baseline IS NULL THEN 'null' ELSE 'set' END, "
            "d.channel, d.attempt, d.outcome, d.detail FROM alerts a JOIN alert_deliveries d ON "
            "d.alert_id = a.id ORDER BY d.attempt"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out, "slow|2.5|null|ops|1|failed|HTTP 503\nslow|2.5|null|ops|2|delivered|HTTP 200\n");
}

// A version 6 history (alerts but no deliveries) is migrated by the next writable open.
TEST_P(HistoryBackends, AlertsOfAVersion6HistoryAfterMigration) {
  {
    auto h = mon::History::open(location(), {.schema_version = 6});
    EXPECT_TRUE(h.alerts({}).empty());
    mon::AlertRecord a;
    a.label = "job";
    EXPECT_THROW(h.insert_alert(a), mon::HistoryError);
  }
  auto h = mon::History::open(location());
  EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
  mon::AlertRecord a;
  a.label = "job";
  a.rule = "r";
  a.kind = "run_failed";
  a.severity = "warning";
  a.created_unix_ns = 1;
  a.deliveries = {{"ops", 1, 2, "abandoned", ""}};
  h.insert_alert(a);
  const auto back = h.alerts({});
  ASSERT_EQ(back.size(), 1u);
  ASSERT_EQ(back[0].deliveries.size(), 1u);
  EXPECT_EQ(back[0].deliveries[0].outcome, "abandoned");
  EXPECT_EQ(back[0].deliveries[0].detail, "");
}

// Custom metrics of a version 7 history's runs after migration: stored per run, read back
// with every listing (one query for them all), as the backend's own client sees them.
TEST_P(HistoryBackends, RunMetricsOfAMigratedVersion7History) {
  {
    auto h = mon::History::open(location(), {.schema_version = 7});
    auto r = make_run("job", 1);
    r.metrics = {{"ignored", 1, ""}};  // no table for it yet: not stored, no failure
    h.insert(r, {}, 0);
  }
  auto h = mon::History::open(location());
  EXPECT_EQ(h.schema_version(), mon::History::kSchemaVersion);
  auto a = make_run("job", 2);
  a.metrics = {{"items_per_s", 1234.5, ""}, {"latency.p99", 0.25, "s"}, {"heap", 2048, "B"}};
  h.insert(a, {}, 0);
  auto b = make_run("other", 3);
  b.metrics = {{"items_per_s", -7.5, ""}};
  h.insert(b, {}, 0);
  auto c = make_run("job", 4);  // recorded none
  h.insert(c, {}, 0);

  const auto q = peer({"SELECT run_id, name, value, unit FROM run_metrics ORDER BY run_id, name"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out,
            pg() ? "2|heap|2048|B\n2|items_per_s|1234.5|\n2|latency.p99|0.25|s\n3|items_per_s|-7.5|\n"
                 : "2|heap|2048.0|B\n2|items_per_s|1234.5|\n2|latency.p99|0.25|s\n3|items_per_s|-7.5|\n");

  const auto names = [](const mon::RunRecord& r) {
    std::string out;
    for (const auto& m : r.metrics) out += m.name + "=" + std::to_string(m.value) + m.unit + ";";
    return out;
  };
  const auto all = h.runs({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(names(all[0]), "");
  EXPECT_EQ(names(all[1]), "items_per_s=-7.500000;");
  EXPECT_EQ(names(all[2]), "heap=2048.000000B;items_per_s=1234.500000;latency.p99=0.250000s;");
  EXPECT_EQ(names(all[3]), "");  // the old run
  const auto job = h.runs({.label = "job", .limit = 2});
  ASSERT_EQ(job.size(), 2u);
  EXPECT_EQ(names(job[1]), names(all[2]));
  EXPECT_EQ(names(*h.run(b.id)), "items_per_s=-7.500000;");
  const auto base = h.baseline("job", c.id, 5);
  ASSERT_EQ(base.size(), 2u);
  EXPECT_EQ(names(base[0]), names(all[2]));
  // A read-only open reads them too; deleting a run deletes its metrics.
  EXPECT_EQ(names(mon::History::open(location(), {.create = false, .read_only = true}).runs({})[2]),
            names(all[2]));
  mon::RetentionPolicy keep;
  keep.keep_last_per_label = 1;
  h.apply_retention(keep);
  EXPECT_EQ(peer({"SELECT count(*) FROM run_metrics"}).out, "1\n");
}

#ifdef SPYGLASS_PG_BINDIR
INSTANTIATE_TEST_SUITE_P(Postgres, HistoryBackends, ::testing::Values(Backend::postgres),
                         [](const auto&) { return std::string("postgres"); });
#else
INSTANTIATE_TEST_SUITE_P(Sqlite, HistoryBackends, ::testing::Values(Backend::sqlite),
                         [](const auto&) { return std::string("sqlite"); });
#endif
