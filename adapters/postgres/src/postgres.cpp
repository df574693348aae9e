#include "spyglass/adapters/postgres.hpp"

#include <libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "spyglass/clock.hpp"
#include "spyglass/emitter.hpp"

static_assert(std::is_same_v<Oid, unsigned>, "the header passes parameter types as unsigned");

namespace SPYGLASS_NAMESPACE::postgres {
namespace {

constexpr std::string_view kSystem = "postgresql";

// A query sent with one of the send_* calls, whose results get_result() reads.
struct Pending {
  std::string sql;
  std::uint64_t start = 0;
  std::uint64_t rows = 0;
  bool failed = false;
  bool prepare = false;  // send_prepare(): on success, `sql` becomes the SQL of `name`
  std::string name;
};

// What the adapter keeps per connection.
struct Connection {
  Options options;
  std::unordered_map<std::string, std::string> prepared;  // statement name -> SQL
  std::deque<Pending> pending;                            // oldest first
};

std::mutex g_mutex;
std::unordered_map<const pg_conn*, Connection>& connections() {
  static auto* c = new std::unordered_map<const pg_conn*, Connection>();  // outlives static dtors
  return *c;
}

Options options_of(const pg_conn* conn) noexcept {
  std::lock_guard lock(g_mutex);
  const auto it = connections().find(conn);
  return it == connections().end() ? Options{} : it->second.options;
}

// The SQL a prepared statement was recorded under.
std::string prepared_sql(const pg_conn* conn, const char* name) {
  const std::string key = name == nullptr ? "" : name;
  {
    std::lock_guard lock(g_mutex);
    const auto c = connections().find(conn);
    if (c != connections().end()) {
      const auto it = c->second.prepared.find(key);
      if (it != c->second.prepared.end()) return it->second;
    }
  }
  return key.empty() ? "EXECUTE" : "EXECUTE " + key;
}

// Rows a result returned or affected.
std::uint64_t rows_of(const PGresult* r) noexcept {
  if (r == nullptr) return 0;
  if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_SINGLE_TUPLE)
    return static_cast<std::uint64_t>(PQntuples(r));
  const char* n = PQcmdTuples(const_cast<PGresult*>(r));
  return n == nullptr || *n == '\0' ? 0 : std::strtoull(n, nullptr, 10);
}

// Whether a result means the query failed: no result, a failed status, or an SQLSTATE
// outside the classes of success (00), warning (01) and no data (02).
bool failed(const PGresult* r) noexcept {
  if (r == nullptr) return true;
  const ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_BAD_RESPONSE || s == PGRES_FATAL_ERROR) return true;
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (state == nullptr || std::string_view(state).size() < 2) return false;
  const std::string_view cls(state, 2);
  return cls != "00" && cls != "01" && cls != "02";
}

void record(const pg_conn* conn, std::string_view sql, std::uint64_t start, std::uint64_t rows,
            bool error) noexcept {
  emit_db(sql, start, clock::now(), rows, error ? Status::error : Status::ok, kSystem,
          options_of(conn).redact);
}

// Runs a blocking libpq call and records it under `sql`.
template <typename Call>
PGresult* recorded(const pg_conn* conn, std::string_view sql, Call call) noexcept {
  const std::uint64_t start = clock::now();
  PGresult* r = call();
  record(conn, sql, start, rows_of(r), failed(r));
  return r;
}

// Remembers `sql` as the SQL of the statement `name` prepared on `conn`.
void remember_prepared(const pg_conn* conn, const char* name, std::string_view sql) noexcept {
  if (conn == nullptr) return;
  try {
    std::lock_guard lock(g_mutex);
    connections()[conn].prepared[name == nullptr ? "" : name] = std::string(sql);
  } catch (...) {
  }
}

// Notes a query just sent (or, when sending failed, records it at once as failed).
// `prepared_name`: the statement's name when the query is a send_prepare().
int sent(pg_conn* conn, std::string sql, std::uint64_t start, int ok,
         const char* prepared_name = nullptr) noexcept {
  if (ok == 0) {
    record(conn, sql, start, 0, true);
    return ok;
  }
  try {
    Pending p{std::move(sql), start, 0, false, prepared_name != nullptr, {}};
    if (prepared_name != nullptr) p.name = prepared_name;
    std::lock_guard lock(g_mutex);
    connections()[conn].pending.push_back(std::move(p));
  } catch (...) {
  }
  return ok;
}

}  // namespace

void configure(pg_conn* conn, Options options) noexcept {
  if (conn == nullptr) return;
  try {
    std::lock_guard lock(g_mutex);
    connections()[conn].options = options;
  } catch (...) {
  }
}

void forget(pg_conn* conn) noexcept {
  std::lock_guard lock(g_mutex);
  connections().erase(conn);
}

pg_result* exec(pg_conn* conn, const char* sql) noexcept {
  return recorded(conn, sql == nullptr ? "" : sql, [&] { return PQexec(conn, sql); });
}

pg_result* exec_params(pg_conn* conn, const char* command, int n_params, const unsigned* param_types,
                       const char* const* param_values, const int* param_lengths, const int* param_formats,
                       int result_format) noexcept {
  return recorded(conn, command == nullptr ? "" : command, [&] {
    return PQexecParams(conn, command, n_params, param_types, param_values, param_lengths, param_formats,
                        result_format);
  });
}

pg_result* prepare(pg_conn* conn, const char* name, const char* query, int n_params,
                   const unsigned* param_types) noexcept {
  const std::string_view sql = query == nullptr ? "" : query;
  PGresult* r = recorded(conn, sql, [&] { return PQprepare(conn, name, query, n_params, param_types); });
  if (!failed(r)) remember_prepared(conn, name, sql);
  return r;
}

pg_result* exec_prepared(pg_conn* conn, const char* name, int n_params, const char* const* param_values,
                         const int* param_lengths, const int* param_formats, int result_format) noexcept {
  std::string sql;
  try {
    sql = prepared_sql(conn, name);
  } catch (...) {
  }
  return recorded(conn, sql, [&] {
    return PQexecPrepared(conn, name, n_params, param_values, param_lengths, param_formats, result_format);
  });
}

int send_query(pg_conn* conn, const char* sql) noexcept {
  const std::uint64_t start = clock::now();
  const int ok = PQsendQuery(conn, sql);
  try {
    return sent(conn, sql == nullptr ? "" : sql, start, ok);
  } catch (...) {
    return ok;
  }
}

int send_query_params(pg_conn* conn, const char* command, int n_params, const unsigned* param_types,
                      const char* const* param_values, const int* param_lengths, const int* param_formats,
                      int result_format) noexcept {
  const std::uint64_t start = clock::now();
  const int ok = PQsendQueryParams(conn, command, n_params, param_types, param_values, param_lengths,
                                   param_formats, result_format);
  try {
    return sent(conn, command == nullptr ? "" : command, start, ok);
  } catch (...) {
    return ok;
  }
}

int send_prepare(pg_conn* conn, const char* name, const char* query, int n_params,
                 const unsigned* param_types) noexcept {
  const std::uint64_t start = clock::now();
  const int ok = PQsendPrepare(conn, name, query, n_params, param_types);
  try {
    return sent(conn, query == nullptr ? "" : query, start, ok, name == nullptr ? "" : name);
  } catch (...) {
    return ok;
  }
}

int send_query_prepared(pg_conn* conn, const char* name, int n_params, const char* const* param_values,
                        const int* param_lengths, const int* param_formats, int result_format) noexcept {
  const std::uint64_t start = clock::now();
  const int ok =
      PQsendQueryPrepared(conn, name, n_params, param_values, param_lengths, param_formats, result_format);
  try {
    return sent(conn, prepared_sql(conn, name), start, ok);
  } catch (...) {
    return ok;
  }
}

pg_result* get_result(pg_conn* conn) noexcept {
  PGresult* r = PQgetResult(conn);
  Pending done;
  {
    std::lock_guard lock(g_mutex);
    const auto c = connections().find(conn);
    if (c == connections().end() || c->second.pending.empty()) return r;  // not sent through the adapter
    Pending& p = c->second.pending.front();
    if (r != nullptr) {
      p.rows += rows_of(r);
      p.failed = p.failed || failed(r);
      return r;
    }
    done = std::move(p);
    c->second.pending.pop_front();
  }
  if (done.prepare && !done.failed) remember_prepared(conn, done.name.c_str(), done.sql);
  record(conn, done.sql, done.start, done.rows, done.failed);
  return r;
}

}  // namespace SPYGLASS_NAMESPACE::postgres
