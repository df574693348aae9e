// History on SQLite: validation before any write, WAL, forward migrations keyed by
// user_version, one IMMEDIATE transaction per write.

#include "spyglass/monitor/history.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>

#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::monitor {

namespace {

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
};
static_assert(std::size(kMigrations) == History::kSchemaVersion);

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
                         "write_bytes, peak_processes, NULL");
}

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }
  [[nodiscard]] bool ok() const { return s_ != nullptr; }
  sqlite3_stmt* get() { return s_; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, std::uint64_t v) { sqlite3_bind_int64(s_, i, static_cast<sqlite3_int64>(v)); }
  void bind(int i, int v) { sqlite3_bind_int(s_, i, v); }
  void bind(int i, std::uint32_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  void bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_null_if_empty(int i, const std::string& v) {
    if (v.empty()) {
      sqlite3_bind_null(s_, i);
    } else {
      bind(i, v);
    }
  }
  std::int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::uint64_t u64(int c) { return static_cast<std::uint64_t>(sqlite3_column_int64(s_, c)); }
  double f64(int c) { return sqlite3_column_double(s_, c); }
  std::string text(int c) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

HistoryErrorKind kind_of(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB: return HistoryErrorKind::not_a_database;
    case SQLITE_CORRUPT: return HistoryErrorKind::corrupt;
    case SQLITE_FULL: return HistoryErrorKind::full;
    default: return HistoryErrorKind::io;
  }
}

// args are stored as a JSON array so the sqlite3 CLI (json_each) can read them.
std::string args_json(const std::vector<std::string>& args) {
  std::string out;
  JsonWriter w(out);
  w.begin_array();
  for (const auto& a : args) w.value(a);
  w.end_array();
  return out;
}

// Reads back what args_json wrote, using SQLite's own JSON parser.
std::vector<std::string> parse_args(sqlite3* db, const std::string& json) {
  std::vector<std::string> out;
  Stmt s(db, "SELECT value FROM json_each(?)");
  if (!s.ok()) return out;
  s.bind(1, json);
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(s.text(0));
  return out;
}

}  // namespace

struct History::Impl {
  sqlite3* db = nullptr;
  std::string path;
  int version = 0;
  bool empty = false;  // read-only and nothing recorded yet: every query finds nothing
  bool read_only = false;

  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  [[noreturn]] void fail(int rc, const std::string& what) const {
    const HistoryErrorKind k = kind_of(rc);
    std::string msg = "history database " + path + ": " + what + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    if (k == HistoryErrorKind::corrupt || k == HistoryErrorKind::not_a_database) {
      msg += " (the file was left untouched)";
    }
    throw HistoryError(k, msg);
  }

  void check_writable() const {
    if (read_only)
      throw HistoryError(HistoryErrorKind::io, "history database " + path + ": opened read-only");
  }

  void exec(const char* sql, const char* what) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, what);
  }

  std::int64_t scalar(const char* sql, const char* what) {
    Stmt s(db, sql);
    if (!s.ok()) fail(sqlite3_errcode(db), what);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return s.i64(0);
    if (rc != SQLITE_DONE) fail(rc, what);
    return 0;
  }

  // Begins an IMMEDIATE transaction (the write lock now, waiting on busy_timeout), so that
  // concurrent writers queue instead of failing on lock upgrade.
  struct Tx {
    Impl& h;
    bool done = false;
    explicit Tx(Impl& impl) : h(impl) { h.exec("BEGIN IMMEDIATE", "begin transaction"); }
    void commit() {
      h.exec("COMMIT", "commit");
      done = true;
    }
    ~Tx() {
      if (!done) sqlite3_exec(h.db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  };

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
      if (db != nullptr) sqlite3_close_v2(db);
      db = nullptr;
      const int rc =
          sqlite3_open_v2((uri + extra).c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
      if (rc != SQLITE_OK) fail(rc, "cannot open");
      sqlite3_extended_result_codes(db, 1);
      const int probe = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      struct stat wal {};
      const bool wal_has_data = ::stat((p + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
      if ((probe != SQLITE_READONLY_CANTINIT && probe != SQLITE_READONLY_DIRECTORY) || wal_has_data) break;
    }
  }

  // Reads application_id, the table count and user_version in one read transaction (so
  // that a concurrent creator's commit cannot fall between the reads and make a half-seen
  // fresh file look foreign) and refuses a file that is not a spyglass history this build
  // can use. Returns whether the database is still empty.
  bool validate(const std::string& p, bool reading_only) {
    exec("BEGIN", "begin read");
    const std::int64_t app_id = scalar("PRAGMA application_id", "read application_id");
    const std::int64_t tables = scalar("SELECT count(*) FROM sqlite_master", "read schema");
    version = static_cast<int>(scalar("PRAGMA user_version", "read user_version"));
    exec("COMMIT", "end read");
    const bool fresh = app_id == 0 && tables == 0 && version == 0;
    if (app_id != kApplicationId && !fresh) {
      throw HistoryError(
          HistoryErrorKind::foreign,
          "history database " + p +
              ": an SQLite database that is not a spyglass history (the file was left untouched)");
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

  void open(const std::string& p, const Options& o) {
    path = p;
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
      sqlite3_busy_timeout(db, o.busy_timeout_ms);
      try {
        empty = validate(p, o.read_only);
      } catch (const HistoryError&) {
        if (sqlite3_extended_errcode(db) != SQLITE_READONLY_ROLLBACK) throw;
        throw HistoryError(HistoryErrorKind::io,
                           "history database " + p + ": a process died in the middle of a write (" + p +
                               "-journal is a hot journal) and only a writer can roll it back; open it "
                               "with sqlite3 once if it is yours (the file was left untouched)");
      }
      if (o.read_only) return;
      sqlite3_close_v2(db);
      db = nullptr;
    }
    int rc =
        sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READWRITE | (o.create ? SQLITE_OPEN_CREATE : 0), nullptr);
    if (rc != SQLITE_OK) fail(rc, "cannot open");
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, o.busy_timeout_ms);
    validate(p, false);  // again: another process may have created the file meanwhile
    {
      // Two processes switching a new file to WAL at once: SQLite answers one of them
      // SQLITE_BUSY at once, without the busy handler (it would deadlock), so the switch
      // is retried here until the busy timeout.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.busy_timeout_ms);
      for (;;) {
        Stmt s(db, "PRAGMA journal_mode=WAL");
        rc = s.ok() ? sqlite3_step(s.get()) : sqlite3_errcode(db);
        if (rc == SQLITE_ROW) break;
        const int primary = rc & 0xff;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) ||
            std::chrono::steady_clock::now() >= deadline) {
          fail(rc, "enable WAL");
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

  // Returns the number of columns read.
  int read_run(Stmt& s, RunRecord& r) {
    int c = 0;
    r.id = s.i64(c++);
    r.label = s.text(c++);
    r.command = s.text(c++);
    r.args = parse_args(db, s.text(c++));
    r.cwd = s.text(c++);
    r.host = s.text(c++);
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
    return c;
  }

  // The detections of run `id`, in time order (none before schema 6).
  std::vector<RunDetection> read_detections(std::int64_t id) {
    std::vector<RunDetection> out;
    if (version < 6) return out;
    Stmt s(db,
           "SELECT offset_ns, metric, kind, value, score, detector FROM detections WHERE run_id = ? "
           "ORDER BY offset_ns, rowid");
    if (!s.ok()) fail(sqlite3_errcode(db), "query detections");
    s.bind(1, id);
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back({s.i64(0), s.text(1), s.text(2), s.f64(3), s.f64(4), s.text(5)});
    }
    if (rc != SQLITE_DONE) fail(rc, "query detections");
    return out;
  }

  std::vector<RunRecord> query_runs(const std::string& sql, const std::function<void(Stmt&)>& bind,
                                    bool tails, bool detections = false) {
    Stmt s(db, sql.c_str());
    if (!s.ok()) fail(sqlite3_errcode(db), "query runs");
    bind(s);
    std::vector<RunRecord> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      RunRecord r;
      const int c = read_run(s, r);
      if (tails) {
        r.stdout_tail = s.text(c);
        r.stderr_tail = s.text(c + 1);
      }
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) fail(rc, "query runs");
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

std::int64_t History::insert(RunRecord& r, std::span<const Sample> samples, std::uint64_t t0_ns) {
  Impl& h = *impl_;
  h.check_writable();
  Impl::Tx tx(h);
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
    std::string marks = "?";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == ',') marks += ",?";
    }
    const std::string sql = "INSERT INTO runs(" + columns + ") VALUES (" + marks + ")";
    Stmt s(h.db, sql.c_str());
    if (!s.ok()) h.fail(sqlite3_errcode(h.db), "insert run");
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
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) h.fail(rc, "insert run");
  }
  const std::int64_t id = sqlite3_last_insert_rowid(h.db);
  if (h.version >= 6 && !r.detections.empty()) {
    Stmt s(h.db,
           "INSERT INTO detections(run_id, offset_ns, metric, kind, value, score, detector) "
           "VALUES (?,?,?,?,?,?,?)");
    if (!s.ok()) h.fail(sqlite3_errcode(h.db), "insert detections");
    for (const RunDetection& d : r.detections) {
      sqlite3_reset(s.get());
      s.bind(1, id);
      s.bind(2, d.offset_ns);
      s.bind(3, d.metric);
      s.bind(4, d.kind);
      s.bind(5, d.value);
      s.bind(6, d.score);
      s.bind(7, d.detector);
      const int rc = sqlite3_step(s.get());
      if (rc != SQLITE_DONE) h.fail(rc, "insert detections");
    }
  }
  {
    Stmt s(h.db,
           "INSERT OR REPLACE INTO samples(run_id, t_ns, processes, threads, fds, cpu_user_ns, cpu_sys_ns, "
           "cpu_user_pct, cpu_sys_pct, rss_bytes, vms_bytes, pss_bytes, uss_bytes, read_bytes, write_bytes, "
           "rchar, wchar, vol_ctx, invol_ctx, minflt, majflt) VALUES "
           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!s.ok()) h.fail(sqlite3_errcode(h.db), "insert samples");
    for (const Sample& x : samples) {
      sqlite3_reset(s.get());
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
      const int rc = sqlite3_step(s.get());
      if (rc != SQLITE_DONE) h.fail(rc, "insert samples");
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
      q.with_tails, q.with_detections);
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
  if (h.version < 4) {
    throw HistoryError(HistoryErrorKind::io, "history database " + h.path + ": schema version " +
                                                 std::to_string(h.version) + " has no pinned baselines");
  }
  Impl::Tx tx(h);
  const auto r = run(run_id);
  if (!r) return std::nullopt;
  PinnedBaseline p{r->label, run_id,
                   std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count()};
  Stmt s(h.db, "INSERT OR REPLACE INTO baselines(label, run_id, pinned_unix_ns) VALUES (?, ?, ?)");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "pin baseline");
  s.bind(1, p.label);
  s.bind(2, p.run_id);
  s.bind(3, p.pinned_unix_ns);
  const int rc = sqlite3_step(s.get());
  if (rc != SQLITE_DONE) h.fail(rc, "pin baseline");
  tx.commit();
  return p;
}

bool History::unpin_baseline(const std::string& label) {
  Impl& h = *impl_;
  h.check_writable();
  if (h.version < 4) return false;
  Impl::Tx tx(h);
  Stmt s(h.db, "DELETE FROM baselines WHERE label = ?");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "unpin baseline");
  s.bind(1, label);
  const int rc = sqlite3_step(s.get());
  if (rc != SQLITE_DONE) h.fail(rc, "unpin baseline");
  const bool removed = sqlite3_changes(h.db) > 0;
  tx.commit();
  return removed;
}

std::vector<PinnedBaseline> History::pinned_baselines(const std::string& label) {
  Impl& h = *impl_;
  if (h.empty || h.version < 4) return {};
  Stmt s(h.db, label.empty() ? "SELECT label, run_id, pinned_unix_ns FROM baselines ORDER BY label"
                             : "SELECT label, run_id, pinned_unix_ns FROM baselines WHERE label = ?");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "query baselines");
  if (!label.empty()) s.bind(1, label);
  std::vector<PinnedBaseline> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.text(0), s.i64(1), s.i64(2)});
  if (rc != SQLITE_DONE) h.fail(rc, "query baselines");
  return out;
}

std::vector<Sample> History::samples(std::int64_t run_id) {
  Impl& h = *impl_;
  if (h.empty) return {};
  Stmt s(
      h.db,
      "SELECT t_ns, processes, threads, fds, cpu_user_ns, cpu_sys_ns, cpu_user_pct, cpu_sys_pct, rss_bytes, "
      "vms_bytes, pss_bytes, uss_bytes, read_bytes, write_bytes, rchar, wchar, vol_ctx, invol_ctx, minflt, "
      "majflt FROM samples WHERE run_id = ? ORDER BY t_ns");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "query samples");
  s.bind(1, run_id);
  std::vector<Sample> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
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
  if (rc != SQLITE_DONE) h.fail(rc, "query samples");
  return out;
}

std::vector<LabelSummary> History::labels() {
  Impl& h = *impl_;
  if (h.empty) return {};
  Stmt s(h.db, "SELECT label, COUNT(*), MAX(start_unix_ns) FROM runs GROUP BY label ORDER BY 3 DESC, label");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "query labels");
  std::vector<LabelSummary> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.text(0), s.u64(1), s.i64(2)});
  if (rc != SQLITE_DONE) h.fail(rc, "query labels");
  return out;
}

std::vector<AlertRecord> History::alerts(const std::string& label, std::size_t limit) {
  Impl& h = *impl_;
  if (h.empty || h.version < 2) return {};
  Stmt s(h.db, label.empty()
                   ? "SELECT id, run_id, label, created_unix_ns, kind, metric, severity, value, baseline, "
                     "message FROM alerts ORDER BY created_unix_ns DESC, id DESC LIMIT ?2"
                   : "SELECT id, run_id, label, created_unix_ns, kind, metric, severity, value, baseline, "
                     "message FROM alerts WHERE label = ?1 ORDER BY created_unix_ns DESC, id DESC LIMIT ?2");
  if (!s.ok()) h.fail(sqlite3_errcode(h.db), "query alerts");
  if (!label.empty()) s.bind(1, label);
  s.bind(2, static_cast<std::int64_t>(limit));
  const auto number = [&](int c) -> std::optional<double> {
    if (sqlite3_column_type(s.get(), c) == SQLITE_NULL) return std::nullopt;
    return s.f64(c);
  };
  std::vector<AlertRecord> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    out.push_back({s.i64(0), s.i64(1), s.text(2), s.i64(3), s.text(4), s.text(5), s.text(6), number(7),
                   number(8), s.text(9)});
  }
  if (rc != SQLITE_DONE) h.fail(rc, "query alerts");
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
  // rank: 1 = newest of its label. A run is dropped past the limits and thinned past half.
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
  {
    const std::string thin =
        std::string(ranked) +
        ", old AS (SELECT id FROM ranked WHERE (?1 >= 0 AND rk > (?1 + 1) / 2) OR "
        "(?2 >= 0 AND start_unix_ns < ?3 - ?2 / 2)) "
        "DELETE FROM samples WHERE (run_id, t_ns) IN (SELECT run_id, t_ns FROM (SELECT "
        "run_id, t_ns, row_number() OVER (PARTITION BY run_id ORDER BY t_ns) AS rn, count(*) "
        "OVER (PARTITION BY run_id) AS n FROM samples WHERE run_id IN (SELECT id FROM old)) "
        "WHERE n > ?4 AND rn != n AND (rn - 1) % ((n + ?4 - 3) / (?4 - 1)) != 0)";
    Stmt s(h.db, thin.c_str());
    if (!s.ok()) h.fail(sqlite3_errcode(h.db), "thin samples");
    s.bind(1, keep);
    s.bind(2, max_age);
    s.bind(3, static_cast<std::int64_t>(now));
    s.bind(4, static_cast<std::int64_t>(std::max<std::size_t>(p.thin_to, 2)));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) h.fail(rc, "thin samples");
    res.samples_deleted += static_cast<std::uint64_t>(sqlite3_changes(h.db));
  }
  {
    const std::int64_t before = h.scalar("SELECT count(*) FROM samples", "count samples");
    const std::string drop =
        std::string(ranked) +
        "DELETE FROM runs WHERE id IN (SELECT id FROM ranked WHERE (?1 >= 0 AND rk > ?1) OR "
        "(?2 >= 0 AND start_unix_ns < ?3 - ?2))" +
        std::string(h.version >= 4 ? " AND id NOT IN (SELECT run_id FROM baselines)" : "");
    Stmt s(h.db, drop.c_str());
    if (!s.ok()) h.fail(sqlite3_errcode(h.db), "drop runs");
    s.bind(1, keep);
    s.bind(2, max_age);
    s.bind(3, static_cast<std::int64_t>(now));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) h.fail(rc, "drop runs");
    res.runs_deleted = static_cast<std::uint64_t>(sqlite3_changes(h.db));
    const std::int64_t after = h.scalar("SELECT count(*) FROM samples", "count samples");
    res.samples_deleted += static_cast<std::uint64_t>(before - after);
  }
  tx.commit();
  return res;
}

}  // namespace SPYGLASS_NAMESPACE::monitor
