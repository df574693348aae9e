#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "spyglass/adapters/sqlite.hpp"
#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace sg = spyglass;

namespace {

// A real in-memory database, instrumented for the test's lifetime unless told otherwise.
struct Db {
  sqlite3* db = nullptr;
  explicit Db(const char* path = ":memory:") { EXPECT_EQ(sqlite3_open(path, &db), SQLITE_OK); }
  ~Db() { sqlite3_close(db); }
  void raw(const char* sql) const {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  }
};

std::vector<sg::Event> record(const std::function<void()>& body) { return sg::test::record({}, body); }

std::vector<sg::Event> db_events(const std::vector<sg::Event>& events) {
  return sg::test::of_kind(events, sg::EventKind::db);
}

const sg::Event* named(const std::vector<sg::Event>& events, std::string_view name) {
  for (const auto& e : events)
    if (name == e.name) return &e;
  return nullptr;
}

int count_rows(void* n, int, char**, char**) {
  ++*static_cast<int*>(n);
  return 0;
}

}  // namespace

TEST(Sqlite, StatementsNestUnderTheCallersSpanWithRowsAndRedactedSql) {
  Db d;
  int selected = 0;
  sg::Context handler;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    sg::Scope scope(std::string_view("handler"));
    handler = scope.context();
    d.raw("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    d.raw("INSERT INTO users VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')");
    ASSERT_EQ(
        sg::sqlite::exec(d.db, "UPDATE users SET name = 'x' WHERE id >= 2; SELECT * FROM users WHERE id > 0",
                         count_rows, &selected),
        SQLITE_OK);
  });
  // SQLite's own answers, on the same database, are the reference.
  ASSERT_EQ(selected, 3);
  const auto db = db_events(events);
  ASSERT_EQ(db.size(), 4u);
  for (const auto& e : db) {
    EXPECT_STREQ(e.detail, "sqlite");
    EXPECT_EQ(e.trace_id, handler.trace_id);
    EXPECT_EQ(e.parent_span_id, handler.span_id);
    EXPECT_NE(e.span_id, handler.span_id);
    EXPECT_EQ(e.status, sg::Status::ok) << e.name;
  }
  const auto* insert = named(db, "INSERT INTO users VALUES (?)");
  ASSERT_NE(insert, nullptr);
  EXPECT_EQ(insert->rows, 3u);
  const auto* update = named(db, "UPDATE users SET name = ? WHERE id >= ?");
  ASSERT_NE(update, nullptr);
  EXPECT_EQ(update->rows, 2u);
  const auto* select = named(db, "SELECT * FROM users WHERE id > ?");
  ASSERT_NE(select, nullptr);
  EXPECT_EQ(select->rows, static_cast<std::uint64_t>(selected));
  for (const auto& e : events)
    EXPECT_EQ(std::string(e.name).find("alice"), std::string::npos) << "a literal leaked: " << e.name;
}

TEST(Sqlite, DurationIsTheStatementsOwnTime) {
  Db d;
  std::uint64_t outer_ns = 0;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    const auto t0 = std::chrono::steady_clock::now();
    int n = 0;
    ASSERT_EQ(
        sg::sqlite::exec(d.db,
                         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
                         "SELECT count(*) FROM c",
                         count_rows, &n),
        SQLITE_OK);
    outer_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  });
  const auto db = db_events(events);
  ASSERT_EQ(db.size(), 1u);
  EXPECT_EQ(db[0].rows, 1u);
  EXPECT_GT(db[0].duration, 0u);
  EXPECT_LE(db[0].duration, outer_ns);
}

TEST(Sqlite, ErrorsFromStepAndExecMarkTheStatement) {
  Db d;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    d.raw("CREATE TABLE t(id INTEGER PRIMARY KEY)");
    d.raw("INSERT INTO t VALUES (1)");
    char* err = nullptr;
    // A constraint failure at run time, through exec(): the statement before it succeeded.
    EXPECT_EQ(
        sg::sqlite::exec(d.db, "INSERT INTO t VALUES (2); INSERT INTO t VALUES (1)", nullptr, nullptr, &err),
        SQLITE_CONSTRAINT);
    ASSERT_NE(err, nullptr);
    EXPECT_NE(std::string(err).find("UNIQUE"), std::string::npos) << err;
    sqlite3_free(err);
    // SQL that does not compile never reaches SQLite's trace; exec() records it.
    err = nullptr;
    EXPECT_EQ(sg::sqlite::exec(d.db, "SELEC 42 FROM t", nullptr, nullptr, &err), SQLITE_ERROR);
    ASSERT_NE(err, nullptr);
    EXPECT_NE(std::string(err).find("syntax error"), std::string::npos) << err;
    sqlite3_free(err);
    // A run-time error through step().
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(d.db, "SELECT abs(-9223372036854775808)", -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sg::sqlite::step(stmt), SQLITE_ERROR);
    sqlite3_finalize(stmt);
  });
  const auto db = db_events(events);
  const auto* ok_insert = named(db, "INSERT INTO t VALUES (?)");
  ASSERT_NE(ok_insert, nullptr);
  int inserts_ok = 0, inserts_failed = 0;
  for (const auto& e : db) {
    if (std::string_view(e.name) != "INSERT INTO t VALUES (?)") continue;
    (e.status == sg::Status::ok ? inserts_ok : inserts_failed)++;
  }
  EXPECT_EQ(inserts_ok, 2);  // the raw one and the first of exec()
  EXPECT_EQ(inserts_failed, 1);
  const auto* syntax = named(db, "SELEC ? FROM t");
  ASSERT_NE(syntax, nullptr);
  EXPECT_EQ(syntax->status, sg::Status::error);
  const auto* overflow = named(db, "SELECT abs(?)");
  ASSERT_NE(overflow, nullptr);
  EXPECT_EQ(overflow->status, sg::Status::error);
}

TEST(Sqlite, PreparedStatementSteppedRowByRow) {
  Db d;
  int rows = 0;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    d.raw("CREATE TABLE n(v INTEGER)");
    d.raw(
        "INSERT INTO n WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT x "
        "FROM c");
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(d.db, "SELECT v FROM n WHERE v > ?", -1, &stmt, nullptr), SQLITE_OK);
    for (int round = 0; round < 2; ++round) {
      sqlite3_bind_int(stmt, 1, 3 + round);
      while (sg::sqlite::step(stmt) == SQLITE_ROW) ++rows;
      sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
  });
  std::vector<std::uint64_t> got;
  for (const auto& e : db_events(events))
    if (std::string_view(e.name) == "SELECT v FROM n WHERE v > ?") got.push_back(e.rows);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0] + got[1], static_cast<std::uint64_t>(rows));
  EXPECT_EQ(got[0], 7u);
  EXPECT_EQ(got[1], 6u);
}

TEST(Sqlite, RedactionCanBeTurnedOffPerConnection) {
  Db redacted, verbatim;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(redacted.db));
    ASSERT_TRUE(sg::sqlite::instrument(verbatim.db, {.redact = false}));
    redacted.raw("SELECT 'secret-a', 41");
    verbatim.raw("SELECT 'secret-b', 42");
  });
  const auto db = db_events(events);
  EXPECT_NE(named(db, "SELECT ?, ?"), nullptr);
  EXPECT_NE(named(db, "SELECT 'secret-b', 42"), nullptr);
  EXPECT_EQ(named(db, "SELECT 'secret-a', 41"), nullptr);
}

// SQLite's own view of a statement's parameters: their count and names, in order.
std::vector<std::string> parameters(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  std::vector<std::string> names;
  for (int i = 1; i <= sqlite3_bind_parameter_count(stmt); ++i) {
    const char* name = sqlite3_bind_parameter_name(stmt, i);
    names.emplace_back(name == nullptr ? "(anonymous)" : name);
  }
  sqlite3_finalize(stmt);
  return names;
}

TEST(Sqlite, RedactionKeepsEveryKindOfParameter) {
  Db d;
  d.raw("CREATE TABLE t(a, b, c, e, f)");
  // Each of SQLite's parameter forms, and a literal that must go.
  const char* sql =
      "SELECT a FROM t WHERE a = ?1 AND b = ?12 AND c = :c AND e = @e AND f = $f AND a = ? AND b = 7";
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(d.db, sql, -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sg::sqlite::step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
  });
  const auto db = db_events(events);
  ASSERT_EQ(db.size(), 1u);
  const std::string recorded = db[0].name;
  EXPECT_EQ(recorded.find('7'), std::string::npos) << recorded;
  // SQLite reads the same parameters, by number and by name, in the recorded text, and
  // one more where the literal was.
  auto want = parameters(d.db, sql);
  EXPECT_EQ(want.size(), 16u);  // ?12 numbers the ones after it from 13
  want.emplace_back("(anonymous)");
  EXPECT_EQ(parameters(d.db, recorded.c_str()), want) << recorded;
}

TEST(Sqlite, StopAndCloseEndRecording) {
  Db d;
  const auto events = record([&] {
    ASSERT_TRUE(sg::sqlite::instrument(d.db));
    EXPECT_TRUE(sg::sqlite::instrumented(d.db));
    d.raw("SELECT 'recorded'");
    sg::sqlite::stop(d.db);
    EXPECT_FALSE(sg::sqlite::instrumented(d.db));
    d.raw("SELECT 'not recorded'");
    sg::sqlite::stop(d.db);  // a second stop is harmless
    // A closed connection forgets its state.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(":memory:", &other), SQLITE_OK);
    ASSERT_TRUE(sg::sqlite::instrument(other));
    sqlite3_close(other);
    EXPECT_FALSE(sg::sqlite::instrumented(other));
  });
  const auto db = db_events(events);
  ASSERT_EQ(db.size(), 1u);
  EXPECT_STREQ(db[0].name, "SELECT ?");
}

TEST(Sqlite, BadInputIsRefused) {
  EXPECT_FALSE(sg::sqlite::instrument(nullptr));
  EXPECT_FALSE(sg::sqlite::instrumented(nullptr));
  sg::sqlite::stop(nullptr);
  // Without instrumentation the wrappers are SQLite's own calls.
  Db d;
  EXPECT_EQ(sg::sqlite::exec(d.db, "CREATE TABLE x(a)"), SQLITE_OK);
  EXPECT_EQ(sg::sqlite::exec(d.db, "SELEC"), SQLITE_ERROR);
}
