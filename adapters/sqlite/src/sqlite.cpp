#include "spyglass/adapters/sqlite.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "spyglass/clock.hpp"
#include "spyglass/emitter.hpp"
#include "spyglass/intern.hpp"
#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE::sqlite {
namespace {

constexpr std::string_view kSystem = "sqlite";

// A statement between its first step and the step that ended it.
struct Running {
  sqlite3_stmt* stmt = nullptr;
  std::uint64_t start = 0;
  std::uint64_t rows = 0;    // SQLITE_TRACE_ROW events
  std::int64_t changes = 0;  // sqlite3_total_changes64 at the start
};

// A statement that ended inside step()/exec(), whose outcome the wrapper learns next.
struct Finished {
  bool set = false;
  std::string sql;
  std::uint64_t start = 0, end = 0, rows = 0;
};

// One per instrumented connection. SQLite calls the trace callback with the connection's
// mutex held (or the application serialises use of the connection), so the callbacks and
// the wrappers of one connection never run at once.
struct State {
  sqlite3* db = nullptr;
  Options options;
  std::vector<Running> running;
  int deferring = 0;  // > 0 inside step()/exec()
  Finished finished;
};

std::mutex g_mutex;
std::unordered_map<sqlite3*, std::unique_ptr<State>>& registry() {
  static auto* r = new std::unordered_map<sqlite3*, std::unique_ptr<State>>();  // outlives static dtors
  return *r;
}

// Bumped whenever a connection is instrumented, stopped or closed: a thread's cached
// lookup is used only while it is unchanged, so step() takes no lock on the common path.
std::atomic<std::uint64_t> g_generation{1};
struct CachedLookup {
  sqlite3* db = nullptr;
  State* state = nullptr;
  std::uint64_t generation = 0;
};
thread_local CachedLookup tl_lookup;

State* find(sqlite3* db) noexcept {
  CachedLookup& c = tl_lookup;
  const std::uint64_t gen = g_generation.load(std::memory_order_acquire);
  if (c.db == db && c.generation == gen) return c.state;
  std::lock_guard lock(g_mutex);
  auto it = registry().find(db);
  State* st = it == registry().end() ? nullptr : it->second.get();
  c = {db, st, g_generation.load(std::memory_order_relaxed)};
  return st;
}

void record(const State& st, std::string_view sql, std::uint64_t start, std::uint64_t end, std::uint64_t rows,
            Status status) noexcept {
  // The text of a statement from a multi-statement string ends with its ';': without it,
  // the same statement gets the same name however it was run.
  while (!sql.empty() && (sql.back() == ';' || sql.back() == ' ' || sql.back() == '\n' ||
                          sql.back() == '\t' || sql.back() == '\r'))
    sql.remove_suffix(1);
  if (!detail::active()) return;
  // emit_db() would intern the system name on every call.
  static const char* const system = intern(kSystem);
  Event e;
  e.kind = EventKind::db;
  e.name = st.options.redact ? intern_sql(sql) : intern(sql);
  e.detail = system;
  e.rows = rows;
  e.status = status;
  detail::emit_measured(e, start, end);
}

// Emits the statement held back by a wrapper, with the outcome it now knows.
void flush_finished(State& st, Status status) noexcept {
  if (!st.finished.set) return;
  st.finished.set = false;
  record(st, st.finished.sql, st.finished.start, st.finished.end, st.finished.rows, status);
}

void on_profile(State& st, sqlite3_stmt* stmt) noexcept {
  const std::uint64_t end = clock::now();
  auto it =
      std::find_if(st.running.begin(), st.running.end(), [&](const Running& r) { return r.stmt == stmt; });
  if (it == st.running.end()) return;  // started before instrument()
  const Running r = *it;
  st.running.erase(it);
  const std::uint64_t rows = sqlite3_stmt_readonly(stmt) != 0
                                 ? r.rows
                                 : static_cast<std::uint64_t>(sqlite3_total_changes64(st.db) - r.changes);
  const char* sql = sqlite3_sql(stmt);
  if (sql == nullptr) sql = "";
  if (st.deferring == 0) {
    record(st, sql, r.start, end, rows, Status::ok);
    return;
  }
  // An earlier statement of the same exec() ended without error, or exec() would have stopped.
  flush_finished(st, Status::ok);
  try {
    st.finished.sql.assign(sql);
  } catch (...) {
    return;  // out of memory: the statement goes unrecorded
  }
  st.finished.set = true;
  st.finished.start = r.start;
  st.finished.end = end;
  st.finished.rows = rows;
}

int on_trace(unsigned type, void* ctx, void* p, void* /*x*/) noexcept {
  auto& st = *static_cast<State*>(ctx);
  auto* stmt = static_cast<sqlite3_stmt*>(p);
  switch (type) {
    case SQLITE_TRACE_STMT: {
      // Also called for each trigger the statement fires: the first call starts it.
      for (const Running& r : st.running)
        if (r.stmt == stmt) return 0;
      try {
        // sqlite3_total_changes64() takes the connection's mutex: only writers need it.
        const std::int64_t changes = sqlite3_stmt_readonly(stmt) != 0 ? 0 : sqlite3_total_changes64(st.db);
        st.running.push_back(Running{stmt, clock::now(), 0, changes});
      } catch (...) {
      }
      return 0;
    }
    case SQLITE_TRACE_ROW:
      for (Running& r : st.running)
        if (r.stmt == stmt) ++r.rows;
      return 0;
    case SQLITE_TRACE_PROFILE: on_profile(st, stmt); return 0;
    case SQLITE_TRACE_CLOSE: {
      std::lock_guard lock(g_mutex);
      registry().erase(static_cast<sqlite3*>(p));  // frees `st`
      g_generation.fetch_add(1, std::memory_order_release);
      return 0;
    }
    default: return 0;
  }
}

constexpr unsigned kTraceMask =
    SQLITE_TRACE_STMT | SQLITE_TRACE_ROW | SQLITE_TRACE_PROFILE | SQLITE_TRACE_CLOSE;

}  // namespace

bool instrument(sqlite3* db, Options options) noexcept {
  if (db == nullptr) {
    log(LogLevel::error, "sqlite", "instrument() was given a null connection");
    return false;
  }
  std::lock_guard lock(g_mutex);
  g_generation.fetch_add(1, std::memory_order_release);
  try {
    auto& slot = registry()[db];
    if (slot) {
      slot->options = options;
      return true;
    }
    slot = std::make_unique<State>();
    slot->db = db;
    slot->options = options;
    const int rc = sqlite3_trace_v2(db, kTraceMask, on_trace, slot.get());
    if (rc != SQLITE_OK) {
      registry().erase(db);
      log(LogLevel::error, "sqlite", std::string("sqlite3_trace_v2 failed: ") + sqlite3_errstr(rc));
      return false;
    }
  } catch (...) {
    registry().erase(db);
    log(LogLevel::error, "sqlite", "instrument() ran out of memory");
    return false;
  }
  return true;
}

void stop(sqlite3* db) noexcept {
  if (db == nullptr) return;
  std::lock_guard lock(g_mutex);
  auto it = registry().find(db);
  if (it == registry().end()) return;
  sqlite3_trace_v2(db, 0, nullptr, nullptr);
  registry().erase(it);
  g_generation.fetch_add(1, std::memory_order_release);
}

bool instrumented(sqlite3* db) noexcept { return find(db) != nullptr; }

int step(sqlite3_stmt* stmt) noexcept {
  State* st = stmt == nullptr ? nullptr : find(sqlite3_db_handle(stmt));
  if (st == nullptr) return sqlite3_step(stmt);
  ++st->deferring;
  const int rc = sqlite3_step(stmt);
  --st->deferring;
  flush_finished(*st, rc == SQLITE_ROW || rc == SQLITE_DONE ? Status::ok : Status::error);
  return rc;
}

int exec(sqlite3* db, const char* sql, int (*callback)(void*, int, char**, char**), void* arg,
         char** errmsg) noexcept {
  State* st = db == nullptr ? nullptr : find(db);
  if (st == nullptr || sql == nullptr) return sqlite3_exec(db, sql, callback, arg, errmsg);
  if (errmsg != nullptr) *errmsg = nullptr;
  // sqlite3_exec()'s loop, so that each statement's outcome, and SQL that does not compile,
  // is known here.
  int rc = SQLITE_OK;
  const char* tail = sql;
  std::vector<char*> cells;
  while (rc == SQLITE_OK && *tail != '\0') {
    sqlite3_stmt* stmt = nullptr;
    const char* next = tail;
    const std::uint64_t start = clock::now();
    rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &next);
    if (rc != SQLITE_OK) {
      record(*st, tail, start, clock::now(), 0, Status::error);
      break;
    }
    tail = next;
    if (stmt == nullptr) continue;  // only whitespace or a comment
    const int columns = sqlite3_column_count(stmt);
    for (;;) {
      const int s = step(stmt);
      if (s == SQLITE_ROW) {
        if (callback == nullptr) continue;
        try {
          cells.assign(static_cast<std::size_t>(2 * columns), nullptr);
        } catch (...) {
          rc = SQLITE_NOMEM;
          break;
        }
        for (int i = 0; i < columns; ++i) {
          cells[static_cast<std::size_t>(i)] =
              const_cast<char*>(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)));
          cells[static_cast<std::size_t>(columns + i)] = const_cast<char*>(sqlite3_column_name(stmt, i));
        }
        if (callback(arg, columns, cells.data(), cells.data() + columns) != 0) {
          rc = SQLITE_ABORT;
          break;
        }
        continue;
      }
      if (s != SQLITE_DONE) rc = s;
      break;
    }
    const int frc = sqlite3_finalize(stmt);
    if (rc == SQLITE_OK) rc = frc;
  }
  if (rc != SQLITE_OK && errmsg != nullptr)
    *errmsg = sqlite3_mprintf("%s", rc == SQLITE_ABORT ? sqlite3_errstr(rc) : sqlite3_errmsg(db));
  return rc;
}

}  // namespace SPYGLASS_NAMESPACE::sqlite
