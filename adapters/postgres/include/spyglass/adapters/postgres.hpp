#pragma once
/// PostgreSQL adapter: wrappers of libpq's query calls, each recording the query as a db
/// event (`db.system` "postgresql") nested under the caller's current span. They take and
/// return what the libpq call they wrap does (`pg_conn` is libpq's `PGconn`, `pg_result`
/// its `PGresult`, parameter types are `Oid`s).
///
/// What each event holds:
/// - name: the query's SQL, redacted (literals become `?`, see redact.hpp) unless
///   redaction was turned off for the connection with configure(); exec_prepared() and
///   send_query_prepared() use the SQL given to prepare() or send_prepare() on the same
///   connection, or `EXECUTE <name>` for a statement prepared some other way;
/// - duration: the libpq call, or for the asynchronous calls from the send to the
///   get_result() that returned null (the query's end);
/// - rows: rows returned (PQntuples) or affected (PQcmdTuples), summed over the query's
///   results;
/// - status: an error when libpq returned no result, or a result whose status is
///   PGRES_BAD_RESPONSE or PGRES_FATAL_ERROR, or whose SQLSTATE is not of class 00, 01 or
///   02 (success, warning, no data).
///
/// A string of several statements given to exec() is one event (libpq returns only the
/// last statement's result: its rows are the rows counted).

#include "spyglass/config.hpp"

struct pg_conn;
struct pg_result;

namespace SPYGLASS_NAMESPACE::postgres {

/// How a connection's queries are recorded.
struct Options {
  /// Replace literals in the recorded SQL by `?`. Turn off only for connections whose
  /// queries carry no sensitive values and few distinct texts: the text then reaches every
  /// exporter as is, and each distinct one takes an entry of the name table.
  bool redact = true;
};

/// Sets how the queries of `conn` are recorded; a connection never configured records
/// with Options{}. Thread-safe.
SPYGLASS_API void configure(pg_conn* conn, Options options) noexcept;

/// Forgets what the adapter keeps for `conn` (options, prepared statements' SQL, queries
/// sent and not finished): call it before PQfinish(), or a later connection at the same
/// address inherits them. Thread-safe.
SPYGLASS_API void forget(pg_conn* conn) noexcept;

/// PQexec(), recorded.
SPYGLASS_API pg_result* exec(pg_conn* conn, const char* sql) noexcept;

/// PQexecParams(), recorded under `command` (its `$n` placeholders stay).
SPYGLASS_API pg_result* exec_params(pg_conn* conn, const char* command, int n_params,
                                    const unsigned* param_types, const char* const* param_values,
                                    const int* param_lengths, const int* param_formats,
                                    int result_format) noexcept;

/// PQprepare(), recorded (a round trip); remembers `query` as the SQL of `name` on `conn`.
SPYGLASS_API pg_result* prepare(pg_conn* conn, const char* name, const char* query, int n_params,
                                const unsigned* param_types) noexcept;

/// PQexecPrepared(), recorded under the prepared statement's SQL.
SPYGLASS_API pg_result* exec_prepared(pg_conn* conn, const char* name, int n_params,
                                      const char* const* param_values, const int* param_lengths,
                                      const int* param_formats, int result_format) noexcept;

/// PQsendQuery(): the query is recorded when get_result() returns its end. Returns what
/// PQsendQuery() does; a query that could not be sent (0) is recorded as failed at once.
SPYGLASS_API int send_query(pg_conn* conn, const char* sql) noexcept;

/// PQsendQueryParams(), as send_query().
SPYGLASS_API int send_query_params(pg_conn* conn, const char* command, int n_params,
                                   const unsigned* param_types, const char* const* param_values,
                                   const int* param_lengths, const int* param_formats,
                                   int result_format) noexcept;

/// PQsendPrepare(), as send_query(); once get_result() has read its end without an
/// error, `query` is the SQL of `name` on `conn`, as after prepare().
SPYGLASS_API int send_prepare(pg_conn* conn, const char* name, const char* query, int n_params,
                              const unsigned* param_types) noexcept;

/// PQsendQueryPrepared(), as send_query(), under the prepared statement's SQL.
SPYGLASS_API int send_query_prepared(pg_conn* conn, const char* name, int n_params,
                                     const char* const* param_values, const int* param_lengths,
                                     const int* param_formats, int result_format) noexcept;

/// PQgetResult(). Counts the rows and errors of the oldest query sent and not finished;
/// when it returns null (that query's last result was read) records the query, nested
/// under the span current on the calling thread.
SPYGLASS_API pg_result* get_result(pg_conn* conn) noexcept;

}  // namespace SPYGLASS_NAMESPACE::postgres
