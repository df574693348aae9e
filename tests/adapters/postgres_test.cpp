// spyglass::postgres against a real PostgreSQL server started by the test: each event is
// compared with what the server itself answered.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../support/postgres_server.hpp"
#include "spyglass/adapters/postgres.hpp"
#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace sg = spyglass;
namespace pg = spyglass::postgres;

namespace {

// A connection to the test's server, forgotten by the adapter and closed at the end.
struct Conn {
  PGconn* c = nullptr;
  explicit Conn(const std::string& info) : c(PQconnectdb(info.c_str())) {
    EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  }
  ~Conn() {
    pg::forget(c);
    PQfinish(c);
  }
  // A query run directly through libpq (not recorded), which must succeed.
  void raw(const char* sql) const {
    PGresult* r = PQexec(c, sql);
    EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  }
};

std::vector<sg::Event> db_events(const std::function<void()>& body) {
  return sg::test::of_kind(sg::test::record({}, body), sg::EventKind::db);
}

// The result's status, and the result freed.
ExecStatusType status_of(PGresult* r) {
  const ExecStatusType s = PQresultStatus(r);
  PQclear(r);
  return s;
}

class Postgres : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<sg::test::PostgresServer>(); }
  static void TearDownTestSuite() { server_.reset(); }
  static std::unique_ptr<sg::test::PostgresServer> server_;
};
std::unique_ptr<sg::test::PostgresServer> Postgres::server_;

}  // namespace

TEST_F(Postgres, QueriesNestUnderTheCallersSpanWithTheServersRowCounts) {
  Conn db(server_->conninfo());
  db.raw("CREATE TABLE users(id int PRIMARY KEY, name text NOT NULL)");
  int selected = -1, updated = -1;
  sg::Context handler;
  const auto events = db_events([&] {
    sg::Scope scope(std::string_view("handler"));
    handler = scope.context();
    EXPECT_EQ(status_of(pg::exec(db.c, "INSERT INTO users VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')")),
              PGRES_COMMAND_OK);
    const char* values[] = {"1"};
    PGresult* r = pg::exec_params(db.c, "UPDATE users SET name = 'x' WHERE id > $1", 1, nullptr, values,
                                  nullptr, nullptr, 0);
    updated = std::atoi(PQcmdTuples(r));
    PQclear(r);
    EXPECT_EQ(status_of(pg::prepare(db.c, "by_id", "SELECT name FROM users WHERE id >= $1", 1, nullptr)),
              PGRES_COMMAND_OK);
    r = pg::exec_prepared(db.c, "by_id", 1, values, nullptr, nullptr, 0);
    selected = PQntuples(r);
    PQclear(r);
  });
  // The server's own answers are the reference.
  ASSERT_EQ(updated, 2);
  ASSERT_EQ(selected, 3);
  ASSERT_EQ(events.size(), 4u);
  for (const auto& e : events) {
    EXPECT_STREQ(e.detail, "postgresql");
    EXPECT_EQ(e.trace_id, handler.trace_id);
    EXPECT_EQ(e.parent_span_id, handler.span_id);
    EXPECT_EQ(e.status, sg::Status::ok) << e.name;
    EXPECT_GT(e.duration, 0u);  // a round trip to the server takes time; its length is not knowable
  }
  EXPECT_STREQ(events[0].name, "INSERT INTO users VALUES (?)");
  EXPECT_EQ(events[0].rows, 3u);
  EXPECT_STREQ(events[1].name, "UPDATE users SET name = ? WHERE id > $1");
  EXPECT_EQ(events[1].rows, 2u);
  EXPECT_STREQ(events[2].name, "SELECT name FROM users WHERE id >= $1");  // the prepare
  EXPECT_EQ(events[2].rows, 0u);
  EXPECT_STREQ(events[3].name, "SELECT name FROM users WHERE id >= $1");  // its execution
  EXPECT_EQ(events[3].rows, 3u);
}

TEST_F(Postgres, FailedQueriesAreErrorsAndEverythingElseIsKept) {
  Conn db(server_->conninfo());
  db.raw("CREATE TABLE t(id int PRIMARY KEY)");
  std::string sqlstate_dup, sqlstate_syntax;
  const auto events = db_events([&] {
    EXPECT_EQ(status_of(pg::exec(db.c, "INSERT INTO t VALUES (1)")), PGRES_COMMAND_OK);
    PGresult* r = pg::exec(db.c, "INSERT INTO t VALUES (1)");  // unique_violation
    sqlstate_dup = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    PQclear(r);
    r = pg::exec(db.c, "SELEC 1");  // syntax_error
    sqlstate_syntax = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    PQclear(r);
    EXPECT_EQ(status_of(pg::exec_prepared(db.c, "never_prepared", 0, nullptr, nullptr, nullptr, 0)),
              PGRES_FATAL_ERROR);
    EXPECT_EQ(status_of(pg::exec(db.c, "SELECT count(*) FROM t")), PGRES_TUPLES_OK);
  });
  EXPECT_EQ(sqlstate_dup, "23505");
  EXPECT_EQ(sqlstate_syntax, "42601");
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].status, sg::Status::ok);
  EXPECT_EQ(events[1].status, sg::Status::error);
  EXPECT_EQ(events[1].rows, 0u);
  EXPECT_EQ(events[2].status, sg::Status::error);
  EXPECT_STREQ(events[2].name, "SELEC ?");
  EXPECT_EQ(events[3].status, sg::Status::error);
  EXPECT_STREQ(events[3].name, "EXECUTE never_prepared");
  EXPECT_EQ(events[4].status, sg::Status::ok);
  EXPECT_EQ(events[4].rows, 1u);

  // A connection that never reached a server: the query fails, and is recorded so.
  PGconn* dead =
      PQconnectdb(("host=127.0.0.1 connect_timeout=5 port=" + std::to_string(server_->port() ^ 1)).c_str());
  const auto lost = db_events([&] { PQclear(pg::exec(dead, "SELECT 1")); });
  pg::forget(dead);
  PQfinish(dead);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].status, sg::Status::error);
}

TEST_F(Postgres, AsynchronousQueriesEndWhenTheirLastResultIsRead) {
  Conn db(server_->conninfo());
  db.raw("CREATE TABLE n(v int)");
  db.raw("INSERT INTO n SELECT generate_series(1, 10)");
  pg::configure(db.c, {.redact = false});
  std::vector<int> rows_read;
  const auto events = db_events([&] {
    // Two statements in one query string: two results, then the end.
    ASSERT_EQ(pg::send_query(db.c, "SELECT v FROM n WHERE v <= 4; SELECT v FROM n WHERE v > 7"), 1);
    while (PGresult* r = pg::get_result(db.c)) {
      rows_read.push_back(PQntuples(r));
      PQclear(r);
    }
    // Row by row (single-row mode): each row a result of its own.
    const char* values[] = {"5"};
    ASSERT_EQ(
        pg::send_query_params(db.c, "SELECT v FROM n WHERE v > $1", 1, nullptr, values, nullptr, nullptr, 0),
        1);
    ASSERT_EQ(PQsetSingleRowMode(db.c), 1);
    while (PGresult* r = pg::get_result(db.c)) PQclear(r);
    // A failing one.
    ASSERT_EQ(pg::send_query(db.c, "SELECT v FROM missing_table"), 1);
    while (PGresult* r = pg::get_result(db.c)) PQclear(r);
  });
  ASSERT_EQ(rows_read, (std::vector<int>{4, 3}));
  ASSERT_EQ(events.size(), 3u);
  // Redaction was turned off for this connection: the text is as sent.
  EXPECT_STREQ(events[0].name, "SELECT v FROM n WHERE v <= 4; SELECT v FROM n WHERE v > 7");
  EXPECT_EQ(events[0].rows, 7u);
  EXPECT_EQ(events[0].status, sg::Status::ok);
  EXPECT_STREQ(events[1].name, "SELECT v FROM n WHERE v > $1");
  EXPECT_EQ(events[1].rows, 5u);
  EXPECT_EQ(events[2].status, sg::Status::error);
  // A query sent directly through libpq is the caller's business: nothing recorded.
  const auto direct = db_events([&] {
    ASSERT_EQ(PQsendQuery(db.c, "SELECT 1"), 1);
    while (PGresult* r = pg::get_result(db.c)) PQclear(r);
  });
  EXPECT_TRUE(direct.empty());
}

TEST_F(Postgres, AsynchronousPrepareNamesTheStatementsLaterExecutions) {
  Conn db(server_->conninfo());
  db.raw("CREATE TABLE p(v int)");
  db.raw("INSERT INTO p SELECT generate_series(1, 6)");
  int rows_read = -1;
  std::vector<ExecStatusType> prepared;
  const auto events = db_events([&] {
    ASSERT_EQ(pg::send_prepare(db.c, "above", "SELECT v FROM p WHERE v > $1", 1, nullptr), 1);
    while (PGresult* r = pg::get_result(db.c)) prepared.push_back(status_of(r));
    const char* values[] = {"2"};
    ASSERT_EQ(pg::send_query_prepared(db.c, "above", 1, values, nullptr, nullptr, 0), 1);
    while (PGresult* r = pg::get_result(db.c)) {
      rows_read = PQntuples(r);
      PQclear(r);
    }
    // A statement the server refuses to prepare: an error, and its name stays unknown.
    ASSERT_EQ(pg::send_prepare(db.c, "broken", "SELECT v FROM missing WHERE v > $1", 1, nullptr), 1);
    while (PGresult* r = pg::get_result(db.c)) prepared.push_back(status_of(r));
    ASSERT_EQ(pg::send_query_prepared(db.c, "broken", 0, nullptr, nullptr, nullptr, 0), 1);
    while (PGresult* r = pg::get_result(db.c)) PQclear(r);
  });
  // The server's answers are the reference.
  ASSERT_EQ(prepared, (std::vector<ExecStatusType>{PGRES_COMMAND_OK, PGRES_FATAL_ERROR}));
  ASSERT_EQ(rows_read, 4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_STREQ(events[0].name, "SELECT v FROM p WHERE v > $1");  // the prepare
  EXPECT_EQ(events[0].status, sg::Status::ok);
  EXPECT_STREQ(events[1].name, "SELECT v FROM p WHERE v > $1");  // its execution
  EXPECT_EQ(events[1].rows, 4u);
  EXPECT_EQ(events[1].status, sg::Status::ok);
  EXPECT_STREQ(events[2].name, "SELECT v FROM missing WHERE v > $1");
  EXPECT_EQ(events[2].status, sg::Status::error);
  EXPECT_STREQ(events[3].name, "EXECUTE broken");
  EXPECT_EQ(events[3].status, sg::Status::error);
}
