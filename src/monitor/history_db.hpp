#pragma once
// The database under History: one small interface (exec, prepare, bind, step, column)
// with an SQLite and a libpq implementation. SQL is written once in SQLite's spelling
// (`?` and `?N` placeholders, `INTEGER PRIMARY KEY`, ...); translate() turns it into the
// connection's dialect, so that the differences live in one place.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "spyglass/monitor/history.hpp"

struct sqlite3;

namespace SPYGLASS_NAMESPACE::monitor::detail {

enum class Dialect { sqlite, postgres };

/// A failure of the database; the caller adds which file and which operation.
class DbFailure : public std::runtime_error {
 public:
  DbFailure(HistoryErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] HistoryErrorKind kind() const noexcept { return kind_; }

 private:
  HistoryErrorKind kind_;
};

/// One prepared statement. Parameters count from 1, columns from 0; a NULL column reads
/// as 0 or "". Every call may throw DbFailure.
class DbStatement {
 public:
  virtual ~DbStatement() = default;
  virtual void bind_null(int i) = 0;
  virtual void bind_i64(int i, std::int64_t v) = 0;
  virtual void bind_f64(int i, double v) = 0;
  virtual void bind_text(int i, std::string_view v) = 0;
  /// Runs the statement (first call) or moves to the next row; true while there is a row.
  virtual bool step() = 0;
  /// Ready to run again with new bindings (bindings are kept until replaced).
  virtual void reset() = 0;
  [[nodiscard]] virtual std::int64_t i64(int c) = 0;
  [[nodiscard]] virtual double f64(int c) = 0;
  [[nodiscard]] virtual std::string text(int c) = 0;
  /// Rows changed by the last completed INSERT, UPDATE or DELETE.
  [[nodiscard]] virtual std::int64_t changes() = 0;
};

/// One connection.
class Db {
 public:
  virtual ~Db() = default;
  [[nodiscard]] virtual Dialect dialect() const = 0;
  /// Runs one or more statements without parameters or results.
  virtual void exec(const std::string& sql) = 0;
  /// Prepares `sql` (already in this dialect).
  virtual std::unique_ptr<DbStatement> prepare(const std::string& sql) = 0;
};

/// `sql` written in SQLite's spelling, in `d`'s.
std::string translate(std::string_view sql, Dialect d);

/// Wraps an open SQLite handle (takes ownership).
std::unique_ptr<Db> sqlite_db(sqlite3* handle);
/// The SQLite handle under `db` (an sqlite_db()).
sqlite3* sqlite_handle(Db& db);

/// True for the URLs History::open sends to PostgreSQL (postgresql:// and postgres://).
bool is_postgres_url(std::string_view location);
/// `url` with its password, if any, hidden: what messages show.
std::string redact_url(std::string_view url);
/// Connects to PostgreSQL (failures: HistoryErrorKind::bad_url, unavailable).
std::unique_ptr<Db> postgres_db(const std::string& url);

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
