// Overhead of the adapters per operation, each beside the same operation uninstrumented in
// the same run:
// - a trivial SQLite statement (a prepared `SELECT 1`, stepped to completion and reset) on
//   a plain in-memory connection, on an instrumented one stepped directly, and through
//   spyglass::sqlite::step();
// - an HTTP handler called as cpp-httplib calls it (request parsed, no socket), bare and
//   wrapped by the middleware, without and with an incoming traceparent.
// A Session with a discarding exporter is up throughout, as in an application.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <memory>
#include <span>
#include <string>

#include "../support/discard_exporter.hpp"
#include "spyglass/adapters/httplib.hpp"
#include "spyglass/adapters/sqlite.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;

namespace {

using spyglass::bench::DiscardExporter;

void session() {
  static sg::Session* s = [] {
    sg::SessionOptions options;
    options.collector.transit_capacity = 65536;
    return new sg::Session(options, {std::make_shared<DiscardExporter>()});
  }();
  benchmark::DoNotOptimize(s);
}

enum class Mode { bare, traced, traced_step };

void bench_sqlite_select1(benchmark::State& state, Mode mode) {
  session();
  sqlite3* db = nullptr;
  sqlite3_open(":memory:", &db);
  if (mode != Mode::bare) sg::sqlite::instrument(db);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1", -1, &stmt, nullptr);
  for (auto _ : state) {
    int rc;
    if (mode == Mode::traced_step) {
      while ((rc = sg::sqlite::step(stmt)) == SQLITE_ROW) benchmark::DoNotOptimize(rc);
    } else {
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) benchmark::DoNotOptimize(rc);
    }
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}
BENCHMARK_CAPTURE(bench_sqlite_select1, bare, Mode::bare);
BENCHMARK_CAPTURE(bench_sqlite_select1, instrumented, Mode::traced);
BENCHMARK_CAPTURE(bench_sqlite_select1, instrumented_step, Mode::traced_step);

void handler(const httplib::Request& req, httplib::Response& res) {
  res.status = 200;
  res.body.assign(req.path);
}

void bench_http_handler(benchmark::State& state, bool wrapped, bool traceparent) {
  session();
  httplib::Server server;
  sg::httplib::Middleware mw(server);
  const httplib::Server::Handler h = wrapped ? mw.wrap(R"(/users/(\d+))", handler) : handler;
  httplib::Request req;
  req.method = "GET";
  req.path = "/users/42";
  if (traceparent)
    req.headers.emplace("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  httplib::Response res;
  for (auto _ : state) {
    h(req, res);
    benchmark::DoNotOptimize(res.body.data());
  }
}
BENCHMARK_CAPTURE(bench_http_handler, bare, false, false);
BENCHMARK_CAPTURE(bench_http_handler, wrapped, true, false);
BENCHMARK_CAPTURE(bench_http_handler, wrapped_traceparent, true, true);

}  // namespace

BENCHMARK_MAIN();
