// History on SQLite (validation before any write, WAL, forward migrations keyed by
// user_version, one IMMEDIATE transaction per write) or PostgreSQL (the same migrations
// under an advisory lock, one transaction per write). The SQL is written once, in SQLite's
// spelling; history_db.hpp translates it.

#include "spyglass/monitor/history.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "history_db.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

namespace {

// The limits each run was given (RunLimits); earlier runs have none recorded (NULL).
constexpr const char* kRunLimitsMigration = R"sql(
ALTER TABLE runs ADD COLUMN limit_timeout_ns INTEGER;
ALTER TABLE runs ADD COLUMN limit_max_rss_bytes INTEGER;
ALTER TABLE runs ADD COLUMN limit_max_cpu_seconds REAL;
ALTER TABLE runs ADD COLUMN limit_kill TEXT;
ALTER TABLE runs ADD COLUMN limit_grace_ns INTEGER;
)sql";

// The custom metrics each run recorded (its primary key is the index reads use).
constexpr const char* kRunMetricsMigration = R"sql(
CREATE TABLE run_metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL, value REAL NOT NULL, unit TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, name)) WITHOUT ROWID;
)sql";

// Forward migrations: kMigrations[i] takes the schema from version i to i + 1.
constexpr const char* kMigrations[] = {
    // 0 -> 1: runs and samples.
    R"sql(
CREATE TABLE spyglass_meta(key TEXT PRIMARY KEY, value TEXT);
INSERT INTO spyglass_meta(key, value) VALUES ('application', 'spyglass history');
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  label TEXT NOT NULL,
  command TEXT NOT NULL,
  args TEXT NOT NULL DEFAULT '[]',
  cwd TEXT, host TEXT, git_commit TEXT,
  start_unix_ns INTEGER NOT NULL, end_unix_ns INTEGER, duration_ns INTEGER,
  exit_code INTEGER, signal INTEGER, kill_reason TEXT, error TEXT,
  user_cpu_ns INTEGER, sys_cpu_ns INTEGER, max_rss_bytes INTEGER, peak_tree_rss_bytes INTEGER,
  read_bytes INTEGER, write_bytes INTEGER, rchar INTEGER, wchar INTEGER,
  peak_threads INTEGER, peak_processes INTEGER, vol_ctx INTEGER, invol_ctx INTEGER,
  minflt INTEGER, majflt INTEGER, monitor_cpu_ns INTEGER,
  stdout_tail TEXT, stderr_tail TEXT);
CREATE INDEX runs_label_start ON runs(label, start_unix_ns);
CREATE INDEX runs_start ON runs(start_unix_ns);
CREATE TABLE samples(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  t_ns INTEGER NOT NULL,
  processes INTEGER, threads INTEGER, fds INTEGER,
  cpu_user_ns INTEGER, cpu_sys_ns INTEGER, cpu_user_pct REAL, cpu_sys_pct REAL,
  rss_bytes INTEGER, vms_bytes INTEGER, pss_bytes INTEGER, uss_bytes INTEGER,
  read_bytes INTEGER, write_bytes INTEGER, rchar INTEGER, wchar INTEGER,
  vol_ctx INTEGER, invol_ctx INTEGER, minflt INTEGER, majflt INTEGER,
  PRIMARY KEY (run_id, t_ns)) WITHOUT ROWID;
)sql",
    // 1 -> 2: alerts, written by the analytics.
    R"sql(
CREATE TABLE alerts(
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
  label TEXT NOT NULL,
  created_unix_ns INTEGER NOT NULL,
  kind TEXT NOT NULL, metric TEXT, severity TEXT,
  value REAL, baseline REAL, message TEXT);
CREATE INDEX alerts_label_created ON alerts(label, created_unix_ns);
CREATE INDEX alerts_run ON alerts(run_id);
)sql",
    // 2 -> 3: descendants the command left running.
    R"sql(
ALTER TABLE runs ADD COLUMN leftover_processes INTEGER;
ALTER TABLE runs ADD COLUMN leftovers_killed INTEGER;
)sql",
    // 3 -> 4: a baseline run pinned per label.
    R"sql(
CREATE TABLE baselines(
  label TEXT PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  pinned_unix_ns INTEGER NOT NULL);
)sql",
    // 4 -> 5: what measured the tree (a cgroup or samples), its figures, and the figure a
    // memory limit was enforced on. Earlier runs were all sampled.
    R"sql(
ALTER TABLE runs ADD COLUMN tree_source TEXT NOT NULL DEFAULT 'sampled';
ALTER TABLE runs ADD COLUMN tree_source_reason TEXT;
ALTER TABLE runs ADD COLUMN tree_peak_memory_bytes INTEGER;
ALTER TABLE runs ADD COLUMN peak_tree_pss_bytes INTEGER;
ALTER TABLE runs ADD COLUMN tree_user_cpu_ns INTEGER;
ALTER TABLE runs ADD COLUMN tree_sys_cpu_ns INTEGER;
ALTER TABLE runs ADD COLUMN tree_read_bytes INTEGER;
ALTER TABLE runs ADD COLUMN tree_write_bytes INTEGER;
ALTER TABLE runs ADD COLUMN tree_peak_processes INTEGER;
ALTER TABLE runs ADD COLUMN max_rss_source TEXT;
UPDATE runs SET tree_peak_memory_bytes = peak_tree_rss_bytes, tree_user_cpu_ns = user_cpu_ns,
  tree_sys_cpu_ns = sys_cpu_ns, tree_read_bytes = read_bytes, tree_write_bytes = write_bytes,
  tree_peak_processes = peak_processes;
)sql",
    // 5 -> 6: what live detection found during each run.
    R"sql(
CREATE TABLE detections(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  offset_ns INTEGER NOT NULL,
  metric TEXT NOT NULL, kind TEXT NOT NULL, value REAL, score REAL, detector TEXT NOT NULL);
CREATE INDEX detections_run ON detections(run_id, offset_ns);
)sql",
    // 6 -> 7: the rule behind each alert, and every delivery attempt's outcome.
    R"sql(
ALTER TABLE alerts ADD COLUMN rule TEXT;
CREATE TABLE alert_deliveries(
  alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  channel TEXT NOT NULL, attempt INTEGER NOT NULL, unix_ns INTEGER NOT NULL,
  outcome TEXT NOT NULL, detail TEXT);
CREATE INDEX alert_deliveries_alert ON alert_deliveries(alert_id, attempt);
CREATE INDEX alerts_label_rule ON alerts(label, rule, created_unix_ns);
)sql",
    kRunLimitsMigration,
    kRunMetricsMigration,
};
static_assert(std::size(kMigrations) == History::kSchemaVersion);

// The schema version a migration of kMigrations brings (wherever it sits in the list).
constexpr int version_after(std::string_view migration) {
  for (std::size_t i = 0; i < std::size(kMigrations); ++i) {
    if (kMigrations[i] == migration) return static_cast<int>(i) + 1;
  }
  return 0;
}
constexpr int kRunLimitsVersion = version_after(kRunLimitsMigration);
static_assert(kRunLimitsVersion > 0);
constexpr int kRunMetricsVersion = version_after(kRunMetricsMigration);
static_assert(kRunMetricsVersion > 0);

// The limit columns, as insert() writes them (NULL: no such limit); run_columns() reads
// NULL as -1, which no limit ever is.
constexpr const char* kLimitColumns =
    "limit_timeout_ns, limit_max_rss_bytes, limit_max_cpu_seconds, limit_kill, "
    "limit_grace_ns";

constexpr const char* kRunColumns =
    "id, label, command, args, cwd, host, git_commit, start_unix_ns, end_unix_ns, duration_ns, exit_code, "
    "signal, kill_reason, error, user_cpu_ns, sys_cpu_ns, max_rss_bytes, peak_tree_rss_bytes, read_bytes, "
    "write_bytes, rchar, wchar, peak_threads, peak_processes, vol_ctx, invol_ctx, minflt, majflt, "
    "monitor_cpu_ns";

// The columns after kRunColumns that read_run() reads; constants for an older schema
// that a read-only open reads as it is.
std::string run_columns(int version) {
  return std::string(kRunColumns) +
         (version >= 3 ? ", leftover_processes, leftovers_killed" : ", 0 AS leftover_processes, 0") +
         (version >= 5 ? ", tree_source, tree_source_reason, tree_peak_memory_bytes, peak_tree_pss_bytes, "
                         "tree_user_cpu_ns, tree_sys_cpu_ns, tree_read_bytes, tree_write_bytes, "
                         "tree_peak_processes, max_rss_source"
                       : ", 'sampled', NULL, peak_tree_rss_bytes, 0, user_cpu_ns, sys_cpu_ns, read_bytes, "
                         "write_bytes, peak_processes, NULL") +
         (version >= kRunLimitsVersion
              ? ", COALESCE(limit_timeout_ns, -1), COALESCE(limit_max_rss_bytes, -1), "
                "COALESCE(limit_max_cpu_seconds, -1), limit_kill, COALESCE(limit_grace_ns, -1)"
              : ", -1, -1, -1, NULL, -1");
}

// Where a history lives (a file name, or a URL without its password) and the connection
// to it; the one place that turns a database failure into a HistoryError.
struct Conn {
  std::unique_ptr<detail::Db> db;
  std::string location;

  [[noreturn]] void fail(const detail::DbFailure& e, const char* what) const {
    const HistoryErrorKind k = e.kind();
    std::string msg = "history database " + location + ": " + what + ": " + e.what();
    if (k == HistoryErrorKind::corrupt || k == HistoryErrorKind::not_a_database) {
      msg += " (the file was left untouched)";
    }
    throw HistoryError(k, msg);
  }
  [[nodiscard]] detail::Dialect dialect() const { return db->dialect(); }
  void exec(const std::string& sql, const char* what) {
    try {
      db->exec(detail::translate(sql, dialect()));
    } catch (const detail::DbFailure& e) {
      fail(e, what);
    }
  }
};

// A statement, its SQL in SQLite's spelling (translated for the connection). Calls map to
// the sqlite3 ones: failures throw HistoryError naming `what`; step() is
// sqlite3_step() == SQLITE_ROW, run() a step that returns no row, reset() sqlite3_reset(),
// changes() sqlite3_changes().
class Stmt {
 public:
  Stmt(Conn& c, const std::string& sql, const char* what) : c_(c), what_(what) {
    guard([&] { s_ = c.db->prepare(detail::translate(sql, c.dialect())); });
  }
  void bind(int i, std::int64_t v) { s_->bind_i64(i, v); }
  void bind(int i, std::uint64_t v) { s_->bind_i64(i, static_cast<std::int64_t>(v)); }
  void bind(int i, int v) { s_->bind_i64(i, v); }
  void bind(int i, std::uint32_t v) { s_->bind_i64(i, v); }
  void bind(int i, double v) { s_->bind_f64(i, v); }
  void bind(int i, const std::string& v) { s_->bind_text(i, v); }
  void bind_null(int i) { s_->bind_null(i); }
  void bind_null_if_empty(int i, const std::string& v) {
    if (v.empty()) {
      s_->bind_null(i);
    } else {
      bind(i, v);
    }
  }
  void bind_null_if_nan(int i, double v) {
    if (std::isnan(v)) {
      s_->bind_null(i);
    } else {
      bind(i, v);
    }
  }
  bool step() {
    bool row = false;
    guard([&] { row = s_->step(); });
    return row;
  }
  void run() { step(); }
  void reset() { s_->reset(); }
  std::int64_t changes() { return s_->changes(); }
  std::int64_t i64(int c) { return s_->i64(c); }
  std::uint64_t u64(int c) { return static_cast<std::uint64_t>(s_->i64(c)); }
  double f64(int c) { return s_->f64(c); }
  std::string text(int c) { return s_->text(c); }

 private:
  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (const detail::DbFailure& e) {
      c_.fail(e, what_);
    }
  }
  Conn& c_;
  const char* what_;
  std::unique_ptr<detail::DbStatement> s_;
};

// args are stored as a JSON array so the sqlite3 CLI (json_each) can read them.
std::string args_json(const std::vector<std::string>& args) {
  std::string out;
  JsonWriter w(out);
  w.begin_array();
  for (const auto& a : args) w.value(a);
  w.end_array();
  return out;
}

// What parse_args() runs, prepared once per query rather than once per run read: the
// database's own JSON parser.
const char* args_sql(Conn& db) {
  return db.dialect() == detail::Dialect::sqlite ? "SELECT value FROM json_each(?)"
                                                 : "SELECT json_array_elements_text(CAST(? AS json))";
}

// Reads back what args_json wrote, with a statement prepared from args_sql().
std::vector<std::string> parse_args(Stmt& s, const std::string& json) {
  std::vector<std::string> out;
  s.bind(1, json);
  while (s.step()) out.push_back(s.text(0));
  s.reset();
  return out;
}

}  // namespace

struct History::Impl {
  Conn db;
  std::string path;
  int version = 0;
  bool empty = false;  // read-only and nothing recorded yet: every query finds nothing
  bool read_only = false;

  [[nodiscard]] bool postgres() const { return db.dialect() == detail::Dialect::postgres; }

  void check_writable() const {
    if (read_only)
      throw HistoryError(HistoryErrorKind::io, "history database " + path + ": opened read-only");
  }

  // Writing `what` needs schema `v` or later (an older history opened without migrating).
  void require_version(int v, const char* what) const {
    if (version < v) {
      throw HistoryError(HistoryErrorKind::io, "history database " + path + ": schema version " +
                                                   std::to_string(version) + " has no " + what);
    }
  }

  void exec(const char* sql, const char* what) { db.exec(sql, what); }

  std::int64_t scalar(const char* sql, const char* what) {
    Stmt s(db, sql, what);
    return s.step() ? s.i64(0) : 0;
  }

  // Begins a write transaction. SQLite: IMMEDIATE (the write lock now, waiting on
  // busy_timeout), so that concurrent writers queue instead of failing on lock upgrade.
  // PostgreSQL: rows are locked as they are written; serialize() queues whole operations.
  struct Tx {
    Impl& h;
    bool done = false;
    explicit Tx(Impl& impl) : h(impl) {
      h.exec(h.postgres() ? "BEGIN" : "BEGIN IMMEDIATE", "begin transaction");
    }
    void commit() {
      h.exec("COMMIT", "commit");
      done = true;
    }
    ~Tx() {
      if (!done) {
        try {
          h.db.db->exec("ROLLBACK");
        } catch (const detail::DbFailure&) {  // a lost connection rolls back by itself
        }
      }
    }
  };

  // Within a transaction, waits for every other writer doing the same `what` to commit
  // (PostgreSQL; SQLite's IMMEDIATE transactions already run one at a time).
  void serialize(std::int64_t what) {
    if (!postgres()) return;
    Stmt s(db, "SELECT pg_advisory_xact_lock(?)", "lock the history");
    s.bind(1, what);
    s.run();
  }
  static constexpr std::int64_t kMigrationLock = kApplicationId;
  static constexpr std::int64_t kRetentionLock = kApplicationId + std::int64_t{1};

  // Opens `name` with `flags` as the connection (a failure closes it and throws). Without
  // the connection's mutex: a History is used by one thread at a time (see its doc), and
  // SQLite would otherwise lock and unlock it on every column read.
  void open_sqlite(const std::string& name, int flags) {
    db.db.reset();
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(name.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string why = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
      sqlite3_close_v2(raw);
      db.fail(
          detail::DbFailure(
              (rc & 0xff) == SQLITE_NOTADB ? HistoryErrorKind::not_a_database : HistoryErrorKind::io, why),
          "cannot open");
    }
    sqlite3_extended_result_codes(raw, 1);
    db.db = detail::sqlite_db(raw);
  }
  sqlite3* sqlite() { return detail::sqlite_handle(*db.db); }

  // Opens `p` for reading only, through a URI so that no SQLite open flag can make it
  // writable. A WAL database whose -wal and -shm files neither exist nor can be created
  // (a read-only directory) is opened immutable: with no -shm there is no writer, and
  // without a -wal file everything is in the main file. (A writer that starts while such a
  // reader runs could be seen half-way; it would need write access we do not have.)
  void open_read_only(const std::string& p) {
    std::string uri = "file:";
    for (const char ch : p) {
      const auto c = static_cast<unsigned char>(ch);
      if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_' || c == '~') {
        uri += ch;
      } else {
        static const char* kHex = "0123456789ABCDEF";
        uri += '%';
        uri += kHex[c >> 4];
        uri += kHex[c & 15];
      }
    }
    for (const char* extra : {"?mode=ro", "?mode=ro&immutable=1"}) {
      open_sqlite(uri + extra, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
      const int probe =
          sqlite3_exec(sqlite(), "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      struct stat wal {};
      const bool wal_has_data = ::stat((p + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
      if ((probe != SQLITE_READONLY_CANTINIT && probe != SQLITE_READONLY_DIRECTORY) || wal_has_data) break;
    }
  }

  // Refuses a database that is not a spyglass history this build can use. Returns whether
  // the database is still empty.
  bool check_schema(const std::string& p, bool reading_only, bool ours, bool fresh, const char* what) {
    if (!ours && !fresh) {
      throw HistoryError(HistoryErrorKind::foreign,
                         "history database " + p + ": " + what + " that is not a spyglass history (" +
                             (postgres() ? "nothing was changed" : "the file was left untouched") + ")");
    }
    if (version > kSchemaVersion) {
      throw HistoryError(HistoryErrorKind::newer_schema,
                         "history database " + p + ": schema version " + std::to_string(version) +
                             " was written by a newer spyglass (this one reads up to " +
                             std::to_string(kSchemaVersion) + ")");
    }
    if (reading_only && !fresh && version < kMinReadableSchemaVersion) {
      throw HistoryError(HistoryErrorKind::older_schema,
                         "history database " + p + ": schema version " + std::to_string(version) +
                             " is too old to read as it is; record a run into it (spyglass run --db " + p +
                             ") to migrate it to version " + std::to_string(kSchemaVersion));
    }
    return fresh;
  }

  // Reads application_id, the table count and user_version in one read transaction (so
  // that a concurrent creator's commit cannot fall between the reads and make a half-seen
  // fresh file look foreign) and checks them.
  bool validate(const std::string& p, bool reading_only) {
    exec("BEGIN", "begin read");
    const std::int64_t app_id = scalar("PRAGMA application_id", "read application_id");
    const std::int64_t tables = scalar("SELECT count(*) FROM sqlite_master", "read schema");
    version = static_cast<int>(scalar("PRAGMA user_version", "read user_version"));
    exec("COMMIT", "end read");
    const bool fresh = app_id == 0 && tables == 0 && version == 0;
    return check_schema(p, reading_only, app_id == kApplicationId, fresh, "an SQLite database");
  }

  // PostgreSQL: the history is spyglass_meta's rows; a database with a runs table but no
  // spyglass_meta is someone else's. Each statement sees every commit before it, so a
  // creator's tables appear all at once.
  bool validate_postgres(bool reading_only) {
    // One statement (one snapshot: a creator's tables appear together) on pg_tables, not
    // to_regclass(): a catalog cache may still miss a table that another writer created
    // while this one waited for the migration lock.
    bool has_meta = false, has_runs = false;
    {
      Stmt s(db,
             "SELECT count(*) FILTER (WHERE tablename = 'spyglass_meta'), count(*) FILTER (WHERE tablename = "
             "'runs') FROM pg_tables WHERE schemaname = current_schema()",
             "read schema");
      if (s.step()) {
        has_meta = s.i64(0) != 0;
        has_runs = s.i64(1) != 0;
      }
    }
    bool ours = false;
    version = 0;
    if (has_meta) {
      Stmt s(db, "SELECT key, value FROM spyglass_meta WHERE key IN ('application', 'user_version')",
             "read user_version");
      while (s.step()) {
        if (s.text(0) == "application") ours = s.text(1) == "spyglass history";
        if (s.text(0) == "user_version") version = std::atoi(s.text(1).c_str());
      }
    }
    return check_schema(path, reading_only, ours, !has_meta && !has_runs,
                        "a PostgreSQL database with tables");
  }

  void open_postgres(const std::string& url, const Options& o) {
    path = detail::redact_url(url);
    db.location = path;
    try {
      db.db = detail::postgres_db(url);
    } catch (const detail::DbFailure& e) {
      throw HistoryError(e.kind(), "history database " + path + ": " + e.what());
    }
    if (o.read_only) exec("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "open read-only");
    empty = validate_postgres(o.read_only);
    if (o.read_only) return;
    if (empty && !o.create) {
      throw HistoryError(HistoryErrorKind::io, "history database " + path + ": holds no spyglass history");
    }
    if (version < o.schema_version) {
      // Writers on many machines may start at once: one migrates, the others wait here and
      // then find the new version.
      Tx tx(*this);
      serialize(kMigrationLock);
      validate_postgres(false);
      for (int v = version; v < o.schema_version; ++v) exec(kMigrations[v], "migrate schema");
      if (version < o.schema_version) {
        Stmt s(db,
               "INSERT INTO spyglass_meta(key, value) VALUES ('user_version', ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               "set schema version");
        s.bind(1, std::to_string(o.schema_version));
        s.run();
        version = o.schema_version;
      }
      tx.commit();
    }
    empty = false;
  }

  void open(const std::string& p, const Options& o) {
    if (detail::is_postgres_url(p)) return open_postgres(p, o);
    path = p;
    db.location = p;
    struct stat st {};
    const bool exists = ::stat(p.c_str(), &st) == 0;
    if (!exists && (!o.create || o.read_only))
      throw HistoryError(HistoryErrorKind::io, "history database " + p + ": no such file");
    if (exists && S_ISDIR(st.st_mode)) {
      throw HistoryError(HistoryErrorKind::io, "history database " + p + ": is a directory");
    }
    if (exists && st.st_size > 0) {
      // Checked before SQLite sees the file, so nothing at all is written to a foreign one.
      char magic[16] = {};
      std::ifstream in(p, std::ios::binary);
      in.read(magic, sizeof magic);
      if (!in || std::memcmp(magic, "SQLite format 3", 16) != 0) {
        throw HistoryError(
            HistoryErrorKind::not_a_database,
            "history database " + p + ": not an SQLite database (the file was left untouched)");
      }
    }
    if (exists) {
      // An existing file is checked through a read-only connection first: a foreign or
      // corrupt one is never opened for writing, so SQLite cannot change it in any way
      // (not even by rolling back a hot journal it finds next to it).
      open_read_only(p);
      sqlite3_busy_timeout(sqlite(), o.busy_timeout_ms);
      try {
        empty = validate(p, o.read_only);
      } catch (const HistoryError&) {
        if (sqlite3_extended_errcode(sqlite()) != SQLITE_READONLY_ROLLBACK) throw;
        throw HistoryError(HistoryErrorKind::io,
                           "history database " + p + ": a process died in the middle of a write (" + p +
                               "-journal is a hot journal) and only a writer can roll it back; open it "
                               "with sqlite3 once if it is yours (the file was left untouched)");
      }
      if (o.read_only) return;
    }
    open_sqlite(p, SQLITE_OPEN_READWRITE | (o.create ? SQLITE_OPEN_CREATE : 0));
    sqlite3_busy_timeout(sqlite(), o.busy_timeout_ms);
    validate(p, false);  // again: another process may have created the file meanwhile
    {
      // Two processes switching a new file to WAL at once: SQLite answers one of them
      // SQLITE_BUSY at once, without the busy handler (it would deadlock), so the switch
      // is retried here until the busy timeout.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.busy_timeout_ms);
      for (;;) {
        sqlite3_stmt* s = nullptr;
        int rc = sqlite3_prepare_v2(sqlite(), "PRAGMA journal_mode=WAL", -1, &s, nullptr);
        if (rc == SQLITE_OK) rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc == SQLITE_ROW) break;
        const int primary = rc & 0xff;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) ||
            std::chrono::steady_clock::now() >= deadline) {
          db.fail(detail::DbFailure(HistoryErrorKind::io, sqlite3_errmsg(sqlite())), "enable WAL");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    exec("PRAGMA foreign_keys=ON", "enable foreign keys");
    exec("PRAGMA synchronous=NORMAL", "set synchronous");  // durable at checkpoints in WAL mode

    if (version < o.schema_version) {
      Tx tx(*this);
      // Another process may have migrated while we waited for the lock.
      version = static_cast<int>(scalar("PRAGMA user_version", "read user_version"));
      for (int v = version; v < o.schema_version; ++v) exec(kMigrations[v], "migrate schema");
      if (version < o.schema_version) {
        const std::string set = "PRAGMA application_id=" + std::to_string(kApplicationId) +
                                "; PRAGMA user_version=" + std::to_string(o.schema_version);
        exec(set.c_str(), "set schema version");
        version = o.schema_version;
      }
      tx.commit();
    }
    empty = false;
  }

  // Returns the number of columns read. Without `args` the command, its args, cwd and host
  // stay empty (their columns skipped): parsing the args is a query of its own per run.
  int read_run(Stmt& s, RunRecord& r, Stmt* args) {
    int c = 0;
    r.id = s.i64(c++);
    r.label = s.text(c++);
    if (args != nullptr) {
      r.command = s.text(c++);
      r.args = parse_args(*args, s.text(c++));
      r.cwd = s.text(c++);
      r.host = s.text(c++);
    } else {
      c += 4;
    }
    r.git_commit = s.text(c++);
    r.start_unix_ns = s.i64(c++);
    r.end_unix_ns = s.i64(c++);
    r.duration_ns = s.i64(c++);
    r.exit_code = static_cast<int>(s.i64(c++));
    r.signal = static_cast<int>(s.i64(c++));
    r.kill_reason = s.text(c++);
    r.error = s.text(c++);
    r.user_cpu_ns = s.u64(c++);
    r.sys_cpu_ns = s.u64(c++);
    r.max_rss_bytes = s.u64(c++);
    r.peak_tree_rss_bytes = s.u64(c++);
    r.read_bytes = s.u64(c++);
    r.write_bytes = s.u64(c++);
    r.rchar = s.u64(c++);
    r.wchar = s.u64(c++);
    r.peak_threads = static_cast<std::uint32_t>(s.u64(c++));
    r.peak_processes = static_cast<std::uint32_t>(s.u64(c++));
    r.vol_ctx = s.u64(c++);
    r.invol_ctx = s.u64(c++);
    r.minflt = s.u64(c++);
    r.majflt = s.u64(c++);
    r.monitor_cpu_ns = s.u64(c++);
    r.leftover_processes = static_cast<std::uint32_t>(s.u64(c++));
    r.leftovers_killed = s.i64(c++) != 0;
    r.tree_source = s.text(c++);
    r.tree_source_reason = s.text(c++);
    r.tree_peak_memory_bytes = s.u64(c++);
    r.peak_tree_pss_bytes = s.u64(c++);
    r.tree_user_cpu_ns = s.u64(c++);
    r.tree_sys_cpu_ns = s.u64(c++);
    r.tree_read_bytes = s.u64(c++);
    r.tree_write_bytes = s.u64(c++);
    r.tree_peak_processes = static_cast<std::uint32_t>(s.u64(c++));
    r.max_rss_source = s.text(c++);
    const auto present = [](auto v) -> std::optional<decltype(v)> {
      if (v < 0) return std::nullopt;
      return v;
    };
    r.limits.timeout_ns = present(s.i64(c++));
    const auto rss = s.i64(c++);
    if (rss >= 0) r.limits.max_rss_bytes = static_cast<std::uint64_t>(rss);
    r.limits.max_cpu_seconds = present(s.f64(c++));
    r.limits.kill = s.text(c++);
    r.limits.grace_ns = present(s.i64(c++));
    return c;
  }

  // The detections of run `id`, in time order (none before schema 6).
  std::vector<RunDetection> read_detections(std::int64_t id) {
    std::vector<RunDetection> out;
    if (version < 6) return out;
    Stmt s(db,
           "SELECT offset_ns, metric, kind, value, score, detector FROM detections WHERE run_id = ? "
           "ORDER BY offset_ns, rowid",
           "query detections");
    s.bind(1, id);
    while (s.step()) {
      out.push_back({s.i64(0), s.text(1), s.text(2), s.f64(3), s.f64(4), s.text(5)});
    }
    return out;
  }

  // The custom metrics of the runs `sql` (bound by `bind`) selects, into `out`: one query
  // for them all, whatever the number of runs.
  void read_metrics(const std::string& sql, const std::function<void(Stmt&)>& bind,
                    std::vector<RunRecord>& out) {
    const std::string q =
        "SELECT run_id, name, value, unit FROM run_metrics WHERE run_id IN (SELECT id FROM (" + sql +
        ") AS listed) ORDER BY run_id, name";
    Stmt s(db, q, "query run metrics");
    bind(s);
    std::unordered_map<std::int64_t, RunRecord*> by_id;
    by_id.reserve(out.size());
    for (RunRecord& r : out) by_id.emplace(r.id, &r);
    while (s.step()) {
      const auto it = by_id.find(s.i64(0));
      if (it != by_id.end()) it->second->metrics.push_back({s.text(1), s.f64(2), s.text(3)});
    }
  }

  std::vector<RunRecord> query_runs(const std::string& sql, const std::function<void(Stmt&)>& bind,
                                    bool tails, bool detections = false, bool invocation = true,
                                    std::size_t limit = 0) {
    Stmt s(db, sql.c_str(), "query runs");
    bind(s);
    std::optional<Stmt> args;
    if (invocation) args.emplace(db, args_sql(db), "read args");
    std::vector<RunRecord> out;
    // Room for the rows the query may return, up to 10,000 (a limit may mean "all"): a long
    // read then moves no record and faults its memory in once (40% fewer page faults).
    out.reserve(std::min<std::size_t>(limit, 10000));
    while (s.step()) {
      RunRecord r;
      const int c = read_run(s, r, args ? &*args : nullptr);
      if (tails) {
        r.stdout_tail = s.text(c);
        r.stderr_tail = s.text(c + 1);
      }
      out.push_back(std::move(r));
    }
    if (version >= kRunMetricsVersion && !out.empty()) read_metrics(sql, bind, out);
    if (detections) {
      for (RunRecord& r : out) r.detections = read_detections(r.id);
    }
    return out;
  }
};

History::History(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
History::History(History&&) noexcept = default;
History& History::operator=(History&&) noexcept = default;
History::~History() = default;

History History::open(const std::string& path, Options options) {
  if (options.schema_version < 1 || options.schema_version > kSchemaVersion) {
    throw HistoryError(HistoryErrorKind::io, "history database " + path + ": unknown schema version " +
                                                 std::to_string(options.schema_version));
  }
  auto impl = std::make_unique<Impl>();
  impl->read_only = options.read_only;
  impl->open(path, options);
  return History(std::move(impl));
}

int History::schema_version() const { return impl_->version; }

const std::string& History::location() const { return impl_->path; }

std::int64_t History::insert(RunRecord& r, std::span<const Sample> samples, std::uint64_t t0_ns) {
  Impl& h = *impl_;
  h.check_writable();
  Impl::Tx tx(h);
  std::int64_t id = 0;
  {
    // Older schemas (tests) lack the later columns.
    std::string columns =
        "label, command, args, cwd, host, git_commit, start_unix_ns, end_unix_ns, duration_ns, exit_code, "
        "signal, kill_reason, error, user_cpu_ns, sys_cpu_ns, max_rss_bytes, peak_tree_rss_bytes, "
        "read_bytes, "
        "write_bytes, rchar, wchar, peak_threads, peak_processes, vol_ctx, invol_ctx, minflt, majflt, "
        "monitor_cpu_ns, stdout_tail, stderr_tail";
    if (h.version >= 3) columns += ", leftover_processes, leftovers_killed";
    if (h.version >= 5) {
      columns +=
          ", tree_source, tree_source_reason, tree_peak_memory_bytes, peak_tree_pss_bytes, tree_user_cpu_ns, "
          "tree_sys_cpu_ns, tree_read_bytes, tree_write_bytes, tree_peak_processes, max_rss_source";
    }
    if (h.version >= kRunLimitsVersion) columns += std::string(", ") + kLimitColumns;
    std::string marks = "?";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == ',') marks += ",?";
    }
    const std::string sql = "INSERT INTO runs(" + columns + ") VALUES (" + marks + ") RETURNING id";
    Stmt s(h.db, sql.c_str(), "insert run");
    int i = 1;
    s.bind(i++, r.label);
    s.bind(i++, r.command);
    s.bind(i++, args_json(r.args));
    s.bind(i++, r.cwd);
    s.bind(i++, r.host);
    s.bind_null_if_empty(i++, r.git_commit);
    s.bind(i++, r.start_unix_ns);
    s.bind(i++, r.end_unix_ns);
    s.bind(i++, r.duration_ns);
    s.bind(i++, r.exit_code);
    s.bind(i++, r.signal);
    s.bind_null_if_empty(i++, r.kill_reason);
    s.bind_null_if_empty(i++, r.error);
    s.bind(i++, r.user_cpu_ns);
    s.bind(i++, r.sys_cpu_ns);
    s.bind(i++, r.max_rss_bytes);
    s.bind(i++, r.peak_tree_rss_bytes);
    s.bind(i++, r.read_bytes);
    s.bind(i++, r.write_bytes);
    s.bind(i++, r.rchar);
    s.bind(i++, r.wchar);
    s.bind(i++, r.peak_threads);
    s.bind(i++, r.peak_processes);
    s.bind(i++, r.vol_ctx);
    s.bind(i++, r.invol_ctx);
    s.bind(i++, r.minflt);
    s.bind(i++, r.majflt);
    s.bind(i++, r.monitor_cpu_ns);
    s.bind(i++, r.stdout_tail);
    s.bind(i++, r.stderr_tail);
    if (h.version >= 3) {
      s.bind(i++, r.leftover_processes);
      s.bind(i++, static_cast<std::int64_t>(r.leftovers_killed ? 1 : 0));
    }
    if (h.version >= 5) {
      s.bind(i++, r.tree_source.empty() ? std::string("sampled") : r.tree_source);
      s.bind_null_if_empty(i++, r.tree_source_reason);
      s.bind(i++, r.tree_peak_memory_bytes);
      s.bind(i++, r.peak_tree_pss_bytes);
      s.bind(i++, r.tree_user_cpu_ns);
      s.bind(i++, r.tree_sys_cpu_ns);
      s.bind(i++, r.tree_read_bytes);
      s.bind(i++, r.tree_write_bytes);
      s.bind(i++, r.tree_peak_processes);
      s.bind_null_if_empty(i++, r.max_rss_source);
    }
    if (h.version >= kRunLimitsVersion) {
      const RunLimits& l = r.limits;
      const auto opt = [&](const auto& v) {
        if (v) {
          s.bind(i++, *v);
        } else {
          s.bind_null(i++);
        }
      };
      opt(l.timeout_ns);
      opt(l.max_rss_bytes);
      opt(l.max_cpu_seconds);
      s.bind_null_if_empty(i++, l.kill);
      opt(l.grace_ns);
    }
    if (s.step()) id = s.i64(0);
  }
  if (h.version >= 6 && !r.detections.empty()) {
    Stmt s(h.db,
           "INSERT INTO detections(run_id, offset_ns, metric, kind, value, score, detector) "
           "VALUES (?,?,?,?,?,?,?)",
           "insert detections");
    for (const RunDetection& d : r.detections) {
      s.reset();
      s.bind(1, id);
      s.bind(2, d.offset_ns);
      s.bind(3, d.metric);
      s.bind(4, d.kind);
      s.bind(5, d.value);
      s.bind(6, d.score);
      s.bind(7, d.detector);
      s.run();
    }
  }
  if (h.version >= kRunMetricsVersion && !r.metrics.empty()) {
    // A repeated name keeps its last value, as the metrics file reads.
    Stmt s(h.db,
           "INSERT INTO run_metrics(run_id, name, value, unit) VALUES (?,?,?,?) "
           "ON CONFLICT(run_id, name) DO UPDATE SET value = excluded.value, unit = excluded.unit",
           "insert run metrics");
    for (const RunMetric& m : r.metrics) {
      s.reset();
      s.bind(1, id);
      s.bind(2, m.name);
      s.bind(3, m.value);
      s.bind(4, m.unit);
      s.run();
    }
  }
  {
    Stmt s(h.db,
           "INSERT INTO samples(run_id, t_ns, processes, threads, fds, cpu_user_ns, cpu_sys_ns, "
           "cpu_user_pct, cpu_sys_pct, rss_bytes, vms_bytes, pss_bytes, uss_bytes, read_bytes, write_bytes, "
           "rchar, wchar, vol_ctx, invol_ctx, minflt, majflt) VALUES "
           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, t_ns) DO NOTHING",
           "insert samples");
    for (const Sample& x : samples) {
      s.reset();
      int i = 1;
      s.bind(i++, id);
      s.bind(i++, x.t_ns >= t0_ns ? x.t_ns - t0_ns : std::uint64_t{0});
      s.bind(i++, x.processes);
      s.bind(i++, x.threads);
      s.bind(i++, x.fds);
      s.bind(i++, x.cpu_user_ns);
      s.bind(i++, x.cpu_sys_ns);
      s.bind(i++, x.cpu_user_pct);
      s.bind(i++, x.cpu_sys_pct);
      s.bind(i++, x.rss_bytes);
      s.bind(i++, x.vms_bytes);
      s.bind(i++, x.pss_bytes);
      s.bind(i++, x.uss_bytes);
      s.bind(i++, x.read_bytes);
      s.bind(i++, x.write_bytes);
      s.bind(i++, x.rchar);
      s.bind(i++, x.wchar);
      s.bind(i++, x.vol_ctx);
      s.bind(i++, x.invol_ctx);
      s.bind(i++, x.minflt);
      s.bind(i++, x.majflt);
      s.run();
    }
  }
  tx.commit();
  r.id = id;
  return id;
}

std::vector<RunRecord> History::runs(const HistoryQuery& q) {
  if (impl_->empty) return {};
  std::string where;
  if (!q.label.empty()) where += " WHERE label = ?1";
  if (q.since_unix_ns) where += (where.empty() ? " WHERE" : " AND") + std::string(" start_unix_ns >= ?3");
  std::string sql = "SELECT " + run_columns(impl_->version) +
                    (q.with_tails ? ", stdout_tail, stderr_tail" : "") + " FROM runs" + where +
                    " ORDER BY start_unix_ns DESC, id DESC LIMIT ?2";
  return impl_->query_runs(
      sql,
      [&](Stmt& s) {
        if (!q.label.empty()) s.bind(1, q.label);
        s.bind(2, static_cast<std::int64_t>(q.limit));
        if (q.since_unix_ns) s.bind(3, *q.since_unix_ns);
      },
      q.with_tails, q.with_detections, q.with_invocation, q.limit);
}

std::optional<std::int64_t> History::recorded_id(const RunRecord& r) {
  Impl& h = *impl_;
  if (h.empty) return std::nullopt;
  // The (label, start) index finds the few candidates.
  Stmt s(h.db,
         "SELECT id FROM runs WHERE label = ?1 AND start_unix_ns = ?2 AND host = ?3 AND end_unix_ns = ?4 "
         "AND duration_ns = ?5 ORDER BY id LIMIT 1",
         "find run");
  s.bind(1, r.label);
  s.bind(2, r.start_unix_ns);
  s.bind(3, r.host);
  s.bind(4, r.end_unix_ns);
  s.bind(5, r.duration_ns);
  if (!s.step()) return std::nullopt;
  return s.i64(0);
}

std::optional<RunRecord> History::run(std::int64_t id) {
  if (impl_->empty) return std::nullopt;
  const std::string sql =
      "SELECT " + run_columns(impl_->version) + ", stdout_tail, stderr_tail FROM runs WHERE id = ?";
  auto v = impl_->query_runs(
      sql, [&](Stmt& s) { s.bind(1, id); }, true, true);
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

std::vector<RunRecord> History::baseline(const std::string& label, std::int64_t before_id,
                                         std::size_t limit) {
  if (impl_->empty) return {};
  const std::string sql = "SELECT " + run_columns(impl_->version) +
                          " FROM runs WHERE label = ?1 AND id < ?2 AND exit_code = 0 AND kill_reason IS NULL "
                          "AND error IS NULL ORDER BY start_unix_ns DESC, id DESC LIMIT ?3";
  return impl_->query_runs(
      sql,
      [&](Stmt& s) {
        s.bind(1, label);
        s.bind(2, before_id);
        s.bind(3, static_cast<std::int64_t>(limit));
      },
      false);
}

std::optional<PinnedBaseline> History::pin_baseline(std::int64_t run_id) {
  Impl& h = *impl_;
  h.check_writable();
  h.require_version(4, "pinned baselines");
  Impl::Tx tx(h);
  const auto r = run(run_id);
  if (!r) return std::nullopt;
  PinnedBaseline p{r->label, run_id,
                   std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()};
  Stmt s(h.db,
         "INSERT INTO baselines(label, run_id, pinned_unix_ns) VALUES (?, ?, ?) ON CONFLICT(label) DO UPDATE "
         "SET run_id = excluded.run_id, pinned_unix_ns = excluded.pinned_unix_ns",
         "pin baseline");
  s.bind(1, p.label);
  s.bind(2, p.run_id);
  s.bind(3, p.pinned_unix_ns);
  s.run();
  tx.commit();
  return p;
}

bool History::unpin_baseline(const std::string& label) {
  Impl& h = *impl_;
  h.check_writable();
  if (h.version < 4) return false;
  Impl::Tx tx(h);
  Stmt s(h.db, "DELETE FROM baselines WHERE label = ?", "unpin baseline");
  s.bind(1, label);
  s.run();
  const bool removed = s.changes() > 0;
  tx.commit();
  return removed;
}

std::vector<PinnedBaseline> History::pinned_baselines(const std::string& label) {
  Impl& h = *impl_;
  if (h.empty || h.version < 4) return {};
  Stmt s(h.db,
         label.empty() ? "SELECT label, run_id, pinned_unix_ns FROM baselines ORDER BY label"
                       : "SELECT label, run_id, pinned_unix_ns FROM baselines WHERE label = ?",
         "query baselines");
  if (!label.empty()) s.bind(1, label);
  std::vector<PinnedBaseline> out;
  while (s.step()) out.push_back({s.text(0), s.i64(1), s.i64(2)});
  return out;
}

std::vector<Sample> History::samples(std::int64_t run_id) {
  Impl& h = *impl_;
  if (h.empty) return {};
  Stmt s(
      h.db,
      "SELECT t_ns, processes, threads, fds, cpu_user_ns, cpu_sys_ns, cpu_user_pct, cpu_sys_pct, rss_bytes, "
      "vms_bytes, pss_bytes, uss_bytes, read_bytes, write_bytes, rchar, wchar, vol_ctx, invol_ctx, minflt, "
      "majflt FROM samples WHERE run_id = ? ORDER BY t_ns",
      "query samples");
  s.bind(1, run_id);
  std::vector<Sample> out;
  while (s.step()) {
    Sample x;
    int c = 0;
    x.t_ns = s.u64(c++);
    x.processes = static_cast<std::uint32_t>(s.u64(c++));
    x.threads = static_cast<std::uint32_t>(s.u64(c++));
    x.fds = static_cast<std::uint32_t>(s.u64(c++));
    x.cpu_user_ns = s.u64(c++);
    x.cpu_sys_ns = s.u64(c++);
    x.cpu_user_pct = s.f64(c++);
    x.cpu_sys_pct = s.f64(c++);
    x.rss_bytes = s.u64(c++);
    x.vms_bytes = s.u64(c++);
    x.pss_bytes = s.u64(c++);
    x.uss_bytes = s.u64(c++);
    x.read_bytes = s.u64(c++);
    x.write_bytes = s.u64(c++);
    x.rchar = s.u64(c++);
    x.wchar = s.u64(c++);
    x.vol_ctx = s.u64(c++);
    x.invol_ctx = s.u64(c++);
    x.minflt = s.u64(c++);
    x.majflt = s.u64(c++);
    out.push_back(x);
  }
  return out;
}

std::vector<LabelSummary> History::labels() {
  Impl& h = *impl_;
  if (h.empty) return {};
  Stmt s(h.db, "SELECT label, COUNT(*), MAX(start_unix_ns) FROM runs GROUP BY label ORDER BY 3 DESC, label",
         "query labels");
  std::vector<LabelSummary> out;
  while (s.step()) out.push_back({s.text(0), s.u64(1), s.i64(2)});
  return out;
}

RetentionResult History::apply_retention(const RetentionPolicy& p) {
  Impl& h = *impl_;
  h.check_writable();
  RetentionResult res;
  if (!p.keep_last_per_label && !p.max_age_days) return res;
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  // rank: 1 = newest of its label. A run is dropped past the limits and thinned past half
  // (ceil(keep / 2), spelt so that it cannot overflow on PostgreSQL).
  // Thinning keeps the first sample, every k-th after it and the last, with
  // k = ceil((n - 1) / (thin_to - 1)), which keeps at most thin_to samples.
  // -1: no such rule. Values beyond what int64 holds keep everything; a NaN or negative
  // age is no rule.
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  const std::int64_t keep = p.keep_last_per_label
                                ? static_cast<std::int64_t>(std::min<std::size_t>(
                                      *p.keep_last_per_label, static_cast<std::size_t>(kMax)))
                                : -1;
  std::int64_t max_age = -1;
  if (p.max_age_days && *p.max_age_days >= 0) {
    const double ns = *p.max_age_days * 86400e9;
    max_age = ns < 9223372036854775808.0 ? static_cast<std::int64_t>(ns) : kMax;
  }
  const char* ranked =
      "WITH ranked AS (SELECT id, start_unix_ns, row_number() OVER (PARTITION BY label ORDER BY "
      "start_unix_ns "
      "DESC, id DESC) AS rk FROM runs) ";
  Impl::Tx tx(h);
  h.serialize(Impl::kRetentionLock);
  {
    const std::string thin =
        std::string(ranked) +
        ", old AS (SELECT id FROM ranked WHERE (?1 >= 0 AND rk > ?1 / 2 + ?1 % 2) OR "
        "(?2 >= 0 AND start_unix_ns < ?3 - ?2 / 2)) "
        "DELETE FROM samples WHERE (run_id, t_ns) IN (SELECT run_id, t_ns FROM (SELECT "
        "run_id, t_ns, row_number() OVER (PARTITION BY run_id ORDER BY t_ns) AS rn, count(*) "
        "OVER (PARTITION BY run_id) AS n FROM samples WHERE run_id IN (SELECT id FROM old)) AS numbered "
        "WHERE n > ?4 AND rn != n AND (rn - 1) % ((n + ?4 - 3) / (?4 - 1)) != 0)";
    Stmt s(h.db, thin.c_str(), "thin samples");
    s.bind(1, keep);
    s.bind(2, max_age);
    s.bind(3, static_cast<std::int64_t>(now));
    s.bind(4, static_cast<std::int64_t>(std::max<std::size_t>(p.thin_to, 2)));
    s.run();
    res.samples_deleted += static_cast<std::uint64_t>(s.changes());
  }
  {
    const std::int64_t before = h.scalar("SELECT count(*) FROM samples", "count samples");
    const std::string drop =
        std::string(ranked) +
        "DELETE FROM runs WHERE id IN (SELECT id FROM ranked WHERE (?1 >= 0 AND rk > ?1) OR "
        "(?2 >= 0 AND start_unix_ns < ?3 - ?2))" +
        std::string(h.version >= 4 ? " AND id NOT IN (SELECT run_id FROM baselines)" : "");
    Stmt s(h.db, drop.c_str(), "drop runs");
    s.bind(1, keep);
    s.bind(2, max_age);
    s.bind(3, static_cast<std::int64_t>(now));
    s.run();
    res.runs_deleted = static_cast<std::uint64_t>(s.changes());
    const std::int64_t after = h.scalar("SELECT count(*) FROM samples", "count samples");
    res.samples_deleted += static_cast<std::uint64_t>(before - after);
  }
  tx.commit();
  return res;
}

std::int64_t History::insert_alert(AlertRecord& a) {
  Impl& h = *impl_;
  h.check_writable();
  h.require_version(7, "alert deliveries");
  Impl::Tx tx(h);
  {
    Stmt s(h.db,
           "INSERT INTO alerts(run_id, label, created_unix_ns, kind, metric, severity, value, baseline, "
           "message, rule) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
           "insert alert");
    // No run: NULL, bound explicitly (an unbound parameter is text to PostgreSQL).
    if (a.run_id != 0) {
      s.bind(1, a.run_id);
    } else {
      s.bind_null(1);
    }
    s.bind(2, a.label);
    s.bind(3, a.created_unix_ns);
    s.bind(4, a.kind);
    s.bind_null_if_empty(5, a.metric);
    s.bind(6, a.severity);
    // No value or baseline (NaN) is NULL on every backend: PostgreSQL would keep a NaN.
    s.bind_null_if_nan(7, a.value);
    s.bind_null_if_nan(8, a.baseline);
    s.bind(9, a.message);
    s.bind(10, a.rule);
    if (s.step()) a.id = s.i64(0);
  }
  Stmt s(h.db,
         "INSERT INTO alert_deliveries(alert_id, channel, attempt, unix_ns, outcome, detail) VALUES "
         "(?,?,?,?,?,?)",
         "insert alert deliveries");
  for (const auto& d : a.deliveries) {
    s.reset();
    s.bind(1, a.id);
    s.bind(2, d.channel);
    s.bind(3, d.attempt);
    s.bind(4, d.unix_ns);
    s.bind(5, d.outcome);
    s.bind_null_if_empty(6, d.detail);
    s.run();
  }
  tx.commit();
  return a.id;
}

std::vector<AlertRecord> History::alerts(const AlertQuery& q) {
  Impl& h = *impl_;
  if (h.empty || h.version < 7) return {};
  // Columns 11 and 12 tell a NULL value or baseline (read as NaN) from a 0.
  Stmt s(h.db,
         "SELECT id, run_id, label, rule, created_unix_ns, kind, metric, severity, value, baseline, message, "
         "CASE WHEN value IS NULL THEN 1 ELSE 0 END, CASE WHEN baseline IS NULL THEN 1 ELSE 0 END "
         "FROM alerts WHERE (?1 = '' OR label = ?1) AND created_unix_ns >= ?2 "
         "ORDER BY created_unix_ns DESC, id DESC LIMIT ?3",
         "query alerts");
  s.bind(1, q.label);
  s.bind(2, q.since_unix_ns.value_or(std::numeric_limits<std::int64_t>::min()));
  s.bind(3, static_cast<std::int64_t>(std::min<std::size_t>(
                q.limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
  std::vector<AlertRecord> out;
  const auto real = [&](int c, int is_null) {
    return s.i64(is_null) != 0 ? std::numeric_limits<double>::quiet_NaN() : s.f64(c);
  };
  while (s.step()) {
    AlertRecord a;
    a.id = s.i64(0);
    a.run_id = s.i64(1);
    a.label = s.text(2);
    a.rule = s.text(3);
    a.created_unix_ns = s.i64(4);
    a.kind = s.text(5);
    a.metric = s.text(6);
    a.severity = s.text(7);
    a.value = real(8, 11);
    a.baseline = real(9, 12);
    a.message = s.text(10);
    out.push_back(std::move(a));
  }
  Stmt d(h.db,
         "SELECT channel, attempt, unix_ns, outcome, detail FROM alert_deliveries WHERE alert_id = ? "
         "ORDER BY channel, attempt",
         "query alert deliveries");
  for (auto& a : out) {
    d.reset();
    d.bind(1, a.id);
    while (d.step()) {
      a.deliveries.push_back({d.text(0), static_cast<int>(d.i64(1)), d.i64(2), d.text(3), d.text(4)});
    }
  }
  return out;
}

std::optional<std::int64_t> History::last_alert_unix_ns(const std::string& label, const std::string& rule) {
  Impl& h = *impl_;
  if (h.empty || h.version < 7) return std::nullopt;
  Stmt s(h.db, "SELECT count(*), max(created_unix_ns) FROM alerts WHERE label = ? AND rule = ?",
         "query alerts");
  s.bind(1, label);
  s.bind(2, rule);
  if (!s.step() || s.i64(0) == 0) return std::nullopt;
  return s.i64(1);
}

}  // namespace SPYGLASS_NAMESPACE::monitor
