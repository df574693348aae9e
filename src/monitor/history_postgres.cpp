// The PostgreSQL side of the history's database interface (libpq). Statements are
// prepared once per connection and SQL text, with the parameter types of their first
// bindings (64-bit integers stay 64-bit in arithmetic such as `(?1 + 1) / 2`).

#include <libpq-fe.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "history_db.hpp"
#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE::monitor::detail {

namespace {

// OIDs of the built-in types (pg_type.dat).
constexpr Oid kInt8 = 20, kText = 25, kFloat8 = 701, kUnknown = 0;

std::string one_line(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

class PgDb;

class PgStatement final : public DbStatement {
 public:
  PgStatement(PgDb& db, std::string sql) : db_(db), sql_(std::move(sql)) {}
  ~PgStatement() override { PQclear(res_); }
  PgStatement(const PgStatement&) = delete;
  PgStatement& operator=(const PgStatement&) = delete;

  void bind_null(int i) override { slot(i) = Param{std::nullopt, kUnknown}; }
  void bind_i64(int i, std::int64_t v) override { slot(i) = Param{std::to_string(v), kInt8}; }
  void bind_f64(int i, double v) override {
    std::string s;
    if (std::isnan(v)) {
      s = "NaN";
    } else if (std::isinf(v)) {
      s = v > 0 ? "Infinity" : "-Infinity";
    } else {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v);
      s.assign(buf, r.ptr);
    }
    slot(i) = Param{std::move(s), kFloat8};
  }
  // PostgreSQL's text holds valid UTF-8 without NUL: anything else is repaired (U+FFFD)
  // rather than failing the whole run.
  void bind_text(int i, std::string_view v) override {
    std::string s;
    s.reserve(v.size());
    append_utf8_repaired(v, s);
    for (std::size_t p; (p = s.find('\0')) != std::string::npos;) s.replace(p, 1, kReplacementCharacter);
    slot(i) = Param{std::move(s), kUnknown};
  }
  bool step() override;
  void reset() override {
    PQclear(res_);
    res_ = nullptr;
    row_ = -1;
  }
  std::int64_t i64(int c) override {
    const char* v = PQgetvalue(res_, row_, c);
    return v != nullptr ? std::strtoll(v, nullptr, 10) : 0;
  }
  double f64(int c) override {
    const char* v = PQgetvalue(res_, row_, c);
    return v != nullptr ? std::strtod(v, nullptr) : 0.0;
  }
  std::string text(int c) override {
    if (PQgetisnull(res_, row_, c)) return {};
    return std::string(PQgetvalue(res_, row_, c), static_cast<std::size_t>(PQgetlength(res_, row_, c)));
  }
  std::int64_t changes() override { return changes_; }

 private:
  // A parameter the SQL does not use (`?2` without `?1`) is never bound: typed text,
  // since the server cannot infer a type for it.
  struct Param {
    std::optional<std::string> value;
    Oid type = kText;
  };
  Param& slot(int i) {
    if (static_cast<std::size_t>(i) > params_.size()) params_.resize(static_cast<std::size_t>(i));
    return params_[static_cast<std::size_t>(i - 1)];
  }

  PgDb& db_;
  std::string sql_;
  std::vector<Param> params_;
  PGresult* res_ = nullptr;
  int row_ = -1;
  std::int64_t changes_ = 0;
};

class PgDb final : public Db {
 public:
  explicit PgDb(PGconn* conn) : conn_(conn) {}
  ~PgDb() override { PQfinish(conn_); }
  PgDb(const PgDb&) = delete;
  PgDb& operator=(const PgDb&) = delete;

  [[nodiscard]] Dialect dialect() const override { return Dialect::postgres; }
  void exec(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    check(r);
    PQclear(r);
  }
  std::unique_ptr<DbStatement> prepare(const std::string& sql) override {
    return std::make_unique<PgStatement>(*this, sql);
  }

  // Throws unless `r` is a success, PQclear()ing it then; a success stays the caller's.
  void check(PGresult* r) const {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
    std::string msg = one_line(r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
    if (msg.empty()) msg = one_line(PQerrorMessage(conn_));
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (state != nullptr) msg += std::string(" (SQLSTATE ") + state + ")";
    PQclear(r);
    const bool lost =
        PQstatus(conn_) == CONNECTION_BAD || (state != nullptr && state[0] == '0' && state[1] == '8');
    throw DbFailure(lost ? HistoryErrorKind::unavailable
                         : (state != nullptr && std::string_view(state) == "53100" ? HistoryErrorKind::full
                                                                                   : HistoryErrorKind::io),
                    msg);
  }

  // The name of `sql` prepared with `types` on this connection (prepared on first use).
  const std::string& prepared(const std::string& sql, const std::vector<Oid>& types) {
    std::string key = sql;
    key += '\0';
    for (const Oid t : types) key += std::to_string(t) + ",";
    auto it = names_.find(key);
    if (it != names_.end()) return it->second;
    std::string name = "spyglass_" + std::to_string(names_.size() + 1);
    PGresult* r = PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(types.size()), types.data());
    check(r);
    PQclear(r);
    return names_.emplace(std::move(key), std::move(name)).first->second;
  }
  [[nodiscard]] PGconn* conn() const { return conn_; }

 private:
  PGconn* conn_;
  std::map<std::string, std::string> names_;
};

bool PgStatement::step() {
  if (res_ == nullptr) {
    std::vector<Oid> types;
    std::vector<const char*> values;
    for (const Param& p : params_) {
      types.push_back(p.type);
      values.push_back(p.value ? p.value->c_str() : nullptr);
    }
    const std::string& name = db_.prepared(sql_, types);
    PGresult* r = PQexecPrepared(db_.conn(), name.c_str(), static_cast<int>(values.size()), values.data(),
                                 nullptr, nullptr, 0);
    db_.check(r);
    res_ = r;
    const char* n = PQcmdTuples(res_);
    changes_ = n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
  }
  ++row_;
  return row_ < PQntuples(res_);
}

}  // namespace

bool is_postgres_url(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string redact_url(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const std::size_t start = scheme + 3;
  const std::size_t end = url.find_first_of("/?", start);
  const std::size_t at = url.rfind('@', end == std::string_view::npos ? url.size() : end);
  if (at == std::string_view::npos || at < start) return std::string(url);
  const std::size_t colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

std::unique_ptr<Db> postgres_db(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &err);
  if (parsed == nullptr) {
    const std::string why = err != nullptr ? one_line(err) : "out of memory";
    PQfreemem(err);
    throw DbFailure(HistoryErrorKind::bad_url, "not a valid PostgreSQL URL: " + why);
  }
  PQconninfoFree(parsed);
  // Defaults first: the URL's own parameters override them.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", "spyglass", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr) throw DbFailure(HistoryErrorKind::unavailable, "out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string why = one_line(PQerrorMessage(conn));
    PQfinish(conn);
    throw DbFailure(HistoryErrorKind::unavailable, "cannot connect: " + why);
  }
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::make_unique<PgDb>(conn);
}

}  // namespace SPYGLASS_NAMESPACE::monitor::detail
