#pragma once
/// SQLite adapter: one call instruments a connection, and each statement it runs is
/// recorded as a db event (`db.system` "sqlite") nested under the caller's current span.
///
/// Recording uses sqlite3_trace_v2 (statement start, rows, end), so statements run by
/// any code on the connection are seen, sqlite3_exec() included. What each event holds:
/// - name: the statement's SQL, redacted (literals become `?`, see redact.hpp) unless
///   redaction was turned off for this connection;
/// - duration: from the statement's first sqlite3_step() to the step that ended it
///   (time the application spends between steps of a query counts, as in SQLite's own
///   profile);
/// - rows: rows returned by a read-only statement; rows changed (sqlite3_total_changes,
///   triggers included) by any other statement;
/// - status: SQLite reports a statement's outcome only to the caller of sqlite3_step(),
///   after the trace has seen the statement end. Statements run through step() and
///   exec() below are recorded with their outcome (an error marks the event); statements
///   stepped directly by other code are recorded as ok. exec() also records SQL that
///   fails to compile, which never reaches the trace.

#include <string_view>

#include "spyglass/config.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace SPYGLASS_NAMESPACE::sqlite {

/// How a connection is instrumented.
struct Options {
  /// Replace literals in the recorded SQL by `?`. Turn off only for connections whose
  /// statements carry no sensitive values and few distinct texts: the text then reaches
  /// every exporter as is, and each distinct one takes an entry of the name table
  /// (InternLimits::max_names; beyond it, statements share the overflow name).
  bool redact = true;
};

/// Starts recording the statements of `db`. Instrumenting a connection again replaces
/// its options. Takes the connection's sqlite3_trace_v2 slot: a trace callback installed
/// before is replaced. Returns false (and logs why) when `db` is null or SQLite refuses.
/// Thread-safe; the connection's state is freed by stop() or when the connection closes.
SPYGLASS_API bool instrument(sqlite3* db, Options options = {}) noexcept;

/// Stops recording the statements of `db` and removes the trace callback. A connection
/// that is not instrumented is left alone. Thread-safe.
SPYGLASS_API void stop(sqlite3* db) noexcept;

/// Whether `db` is instrumented now. Thread-safe.
SPYGLASS_API bool instrumented(sqlite3* db) noexcept;

/// sqlite3_step(), with the statement's outcome recorded: when this step ends the
/// statement with an error, its event is marked as an error. Returns sqlite3_step()'s code.
SPYGLASS_API int step(sqlite3_stmt* stmt) noexcept;

/// sqlite3_exec(), with each statement's outcome recorded, and SQL that fails to
/// compile recorded as a failed statement (its text redacted as above). Same arguments
/// and result as sqlite3_exec().
SPYGLASS_API int exec(sqlite3* db, const char* sql, int (*callback)(void*, int, char**, char**) = nullptr,
                      void* arg = nullptr, char** errmsg = nullptr) noexcept;

}  // namespace SPYGLASS_NAMESPACE::sqlite
