// Links the adapter components (and spyglass::http) the package provides and calls each once.
#if SPYGLASS_HAS_SQLITE
#include <sqlite3.h>

#include <spyglass/adapters/sqlite.hpp>
#endif
#if SPYGLASS_HAS_POSTGRES
#include <libpq-fe.h>

#include <spyglass/adapters/postgres.hpp>
#endif
#if SPYGLASS_HAS_HTTPLIB
#include <spyglass/adapters/httplib.hpp>
#endif
#if SPYGLASS_HAS_CURL
#include <spyglass/adapters/curl.hpp>
#endif
#if SPYGLASS_HAS_HTTP
#include <spyglass/http.hpp>
#endif
#include <cstdio>
#include <spyglass/spyglass.hpp>

int main() {
  spyglass::Session session;
#if SPYGLASS_HAS_SQLITE
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK || !spyglass::sqlite::instrument(db)) return 1;
  if (spyglass::sqlite::exec(db, "SELECT 1") != SQLITE_OK) return 1;
  sqlite3_close(db);
#endif
#if SPYGLASS_HAS_POSTGRES
  // No server: the connection fails, and the query on it is recorded as failed.
  PGconn* pg = PQconnectdb("host=/nonexistent-socket-dir connect_timeout=1");
  PGresult* r = spyglass::postgres::exec(pg, "SELECT 1");
  if (PQresultStatus(r) == PGRES_TUPLES_OK) return 1;
  PQclear(r);
  spyglass::postgres::forget(pg);
  PQfinish(pg);
#endif
#if SPYGLASS_HAS_HTTPLIB
  httplib::Server server;
  spyglass::httplib::Middleware(server).Get("/", [](const httplib::Request&, httplib::Response&) {});
#endif
#if SPYGLASS_HAS_CURL
  if (spyglass::curl::perform(nullptr, "none") != CURLE_BAD_FUNCTION_ARGUMENT) return 1;
#endif
#if SPYGLASS_HAS_HTTP
  {
    const spyglass::http::Server page(session.collector(), {.address = "127.0.0.1:0"});
    if (page.port() == 0) return 1;
  }
#endif
  std::puts("adapters consumer ok");
  return 0;
}
