// An instrumented program for the trace tests: requests on several threads, each with
// nested function scopes and queries, and fan-out to a worker pool whose spans are the
// request's children on other threads. Writes JSONL into the directory argv[1].
//   traced_program DIR [REQUESTS_PER_THREAD]

#include <spyglass/exporters/jsonl.hpp>
#include <spyglass/spyglass.hpp>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

// Work that takes a little time without sleeping (the spans must have durations).
std::uint64_t spin(unsigned n) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned i = 0; i < n * 200; ++i) h = (h ^ i) * 1099511628211ULL;
  return h;
}
std::atomic<std::uint64_t> sink{0};

void query(int id) {
  SPYGLASS_QUERY(q, "SELECT name FROM users WHERE id = " + std::to_string(id));
  sink += spin(3);
  q.rows(static_cast<std::uint64_t>(id % 3));
}

void load(int id) {
  SPYGLASS_FUNCTION();
  query(id);
  sink += spin(2);
  query(id + 1);
}

void render() {
  SPYGLASS_SCOPE("render;page");  // a ';' that folded stacks must not split on
  sink += spin(4);
}

void handle(int id) {
  SPYGLASS_REQUEST(r, id % 4 == 0 ? "/orders/{id}" : "/users/{id}");
  load(id);
  if (id % 3 == 0) {
    // Fan-out: two workers carry the request's context and record children there.
    const auto ctx = spyglass::Context::current();
    std::vector<std::thread> pool;
    for (int w = 0; w < 2; ++w) {
      pool.emplace_back([ctx, id, w] {
        spyglass::ContextGuard g(ctx);
        SPYGLASS_SCOPE("fanout");
        sink += spin(5);
        query(id * 10 + w);
      });
    }
    for (auto& t : pool) t.join();
  }
  render();
  r.status(id % 7 == 0 ? 500 : 200);
  r.bytes_out(100 + static_cast<std::uint64_t>(id));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const int per_thread = argc > 2 ? std::atoi(argv[2]) : 50;
  spyglass::JsonlOptions o;
  o.directory = argv[1];
  auto jsonl = std::make_shared<spyglass::JsonlExporter>(o);
  spyglass::Session session({}, {jsonl});
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t, per_thread] {
      for (int i = 0; i < per_thread; ++i) handle(t * per_thread + i);
    });
  }
  for (auto& t : threads) t.join();
  return 0;
}
