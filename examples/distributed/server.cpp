// The server half of the distributed example: a cpp-httplib server whose route
// GET /users/{id} reads the user from SQLite and the user's orders from PostgreSQL.
//
//   distributed_server --postgres "host=127.0.0.1 port=5432 dbname=shop" \
//       [--listen 127.0.0.1:8080 (port 0: any)] [--sqlite FILE (:memory:)] \
//       [--out DIR (./spyglass-out)] [--otlp http://localhost:4318]
//
// Each request is a request span named by the route pattern, joining the caller's trace
// when it sends a `traceparent`; the two queries are db spans under it. It prints
// "listening on http://HOST:PORT" once it accepts connections and serves until SIGINT or
// SIGTERM, then writes out what it recorded and exits.

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <spyglass/adapters/httplib.hpp>
#include <spyglass/adapters/postgres.hpp>
#include <spyglass/adapters/sqlite.hpp>
#include <spyglass/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.hpp"

namespace {

[[noreturn]] void usage(const char* message, const std::string& arg = {}) {
  std::fprintf(stderr, "distributed_server: %s%s\n", message, arg.c_str());
  std::fprintf(stderr,
               "usage: distributed_server --postgres CONNINFO [--listen HOST:PORT] [--sqlite FILE] "
               "[--out DIR] [--otlp URL]\n");
  std::exit(2);
}

struct Args {
  std::string postgres, listen = "127.0.0.1:8080", sqlite = ":memory:", out = "./spyglass-out", otlp;
};

Args parse(int argc, char** argv) {
  Args a;
  const std::string error = example::parse_flags(argc, argv,
                                                 {{"--postgres", &a.postgres},
                                                  {"--listen", &a.listen},
                                                  {"--sqlite", &a.sqlite},
                                                  {"--out", &a.out},
                                                  {"--otlp", &a.otlp}});
  if (!error.empty()) usage(error.c_str());
  if (a.postgres.empty()) usage("--postgres is required");
  return a;
}

// The two databases, set up before they are instrumented so that the setup is not
// recorded. Handlers share the connections, one request at a time.
struct Databases {
  sqlite3* lite = nullptr;
  PGconn* pg = nullptr;
  std::mutex mutex;

  Databases(const std::string& sqlite_path, const std::string& conninfo) {
    if (sqlite3_open(sqlite_path.c_str(), &lite) != SQLITE_OK)
      throw std::runtime_error("SQLite " + sqlite_path + ": " + sqlite3_errmsg(lite));
    char* error = nullptr;
    if (sqlite3_exec(lite,
                     "CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                     "INSERT OR REPLACE INTO users VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');",
                     nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error != nullptr ? error : "unknown error";
      sqlite3_free(error);
      throw std::runtime_error("SQLite setup: " + message);
    }
    pg = PQconnectdb(conninfo.c_str());
    if (PQstatus(pg) != CONNECTION_OK)
      throw std::runtime_error(std::string("PostgreSQL: ") + PQerrorMessage(pg));
    // A temporary table: gone with the connection, nothing left in the user's database.
    PGresult* r = PQexec(pg,
                         "CREATE TEMPORARY TABLE orders(user_id int NOT NULL, total numeric NOT NULL);"
                         "INSERT INTO orders VALUES (1, 9.99), (1, 25.00), (2, 4.50)");
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) throw std::runtime_error(std::string("PostgreSQL setup: ") + PQerrorMessage(pg));
    if (!spyglass::sqlite::instrument(lite)) throw std::runtime_error("could not instrument SQLite");
  }
  ~Databases() {
    spyglass::postgres::forget(pg);
    PQfinish(pg);
    sqlite3_close(lite);
  }
  Databases(const Databases&) = delete;
  Databases& operator=(const Databases&) = delete;

  // The user's name, or "" when there is none (false on a database error).
  bool user_name(const std::string& id, std::string& name) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(lite, "SELECT name FROM users WHERE id = ?1", -1, &stmt, nullptr) != SQLITE_OK)
      return false;
    sqlite3_bind_text(stmt, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = spyglass::sqlite::step(stmt);  // recorded with its outcome
    if (rc == SQLITE_ROW) name = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
  }

  // The user's order count and total (false on a database error).
  bool orders(const std::string& id, std::string& count, std::string& total) {
    const char* values[] = {id.c_str()};
    PGresult* r = spyglass::postgres::exec_params(
        pg, "SELECT count(*), coalesce(sum(total), 0) FROM orders WHERE user_id = $1", 1, nullptr, values,
        nullptr, nullptr, 0);
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) {
      count = PQgetvalue(r, 0, 0);
      total = PQgetvalue(r, 0, 1);
    }
    PQclear(r);
    return ok;
  }
};

// GET /users/{id}: the user as JSON, with the caller's tracestate to show it arrived.
void get_user(Databases& db, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1].str();
  std::string name, count, total;
  bool ok;
  {
    std::lock_guard lock(db.mutex);
    ok = db.user_name(id, name) && (name.empty() || db.orders(id, count, total));
  }
  if (!ok) {
    res.status = 500;
    return;
  }
  if (name.empty()) {
    res.status = 404;
    return;
  }
  std::string body;
  spyglass::JsonWriter w(body);
  w.begin_object();
  w.key("id");
  w.value(std::stoll(id));
  w.key("name");
  w.value(name);
  w.key("orders");
  w.value(std::stoll(count));
  w.key("total");
  w.value(total);
  w.key("tracestate");
  w.value(spyglass::httplib::tracestate());
  w.end_object();
  res.set_content(body, "application/json");
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const auto colon = args.listen.rfind(':');
  if (colon == std::string::npos) usage("--listen wants HOST:PORT, not ", args.listen);
  const std::string host = args.listen.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(args.listen.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) usage("--listen wants HOST:PORT, not ", args.listen);

  // SIGINT and SIGTERM are taken by a thread of their own (sigwait), which stops the
  // server: every other thread, cpp-httplib's included, inherits this mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    example::Telemetry telemetry("distributed-server", args.out, args.otlp);
    Databases db(args.sqlite, args.postgres);

    httplib::Server server;
    spyglass::httplib::Middleware routes(server, {.exclude = {"/health"}});
    routes.Get("/health",
               [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    routes.Get(R"(/users/(\d+))",
               [&db](const httplib::Request& req, httplib::Response& res) { get_user(db, req, res); });

    const int bound =
        port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
    if (bound <= 0) {
      std::fprintf(stderr, "distributed_server: cannot listen on %s\n", args.listen.c_str());
      return 1;
    }
    std::atomic<bool> listen_returned{false};
    std::thread stopper([&server, &stop_signals, &listen_returned] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      // cpp-httplib's stop() does nothing before listen_after_bind() runs: a signal that
      // comes that early waits for it.
      while (!server.is_running() && !listen_returned.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      server.stop();
    });
    std::printf("listening on http://%s:%d\n", host.c_str(), bound);
    std::fflush(stdout);
    // listen_after_bind() returns true after the stopper's stop(), false when accepting
    // failed: then the stopper still waits, and this process sends it the signal.
    const bool served = server.listen_after_bind();
    listen_returned = true;
    if (!served) kill(getpid(), SIGTERM);
    stopper.join();
    return telemetry.finish("distributed_server") && served ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_server: %s\n", e.what());
    return 1;
  }
}
