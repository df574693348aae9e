// A small service that handles simulated requests on a few threads. Each request runs
// nested function scopes and database queries; everything is exported to JSONL under
// ./spyglass-out/, and at exit a latency table is printed from the rolling statistics.
#include <spyglass/exporters/jsonl.hpp>
#include <spyglass/spyglass.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

void busy_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

int load_user(int id, std::mt19937& rng) {
  SPYGLASS_FUNCTION();
  SPYGLASS_QUERY(q, "SELECT id, name FROM users WHERE id = " + std::to_string(id));
  busy_for(std::chrono::microseconds(50 + rng() % 200));
  q.rows(1);
  return id;
}

void render(std::mt19937& rng) {
  SPYGLASS_SCOPE("render");
  busy_for(std::chrono::microseconds(20 + rng() % 80));
}

void handle(int request, std::mt19937& rng) {
  const std::string route = request % 5 == 0 ? "/orders/{id}" : "/users/{id}";
  SPYGLASS_REQUEST(r, route);
  load_user(request, rng);
  if (route == "/orders/{id}") {
    SPYGLASS_QUERY(q, "INSERT INTO orders (user_id, total) VALUES (" + std::to_string(request) + ", 9.99)");
    busy_for(std::chrono::microseconds(100 + rng() % 400));
    q.rows(1);
    if (rng() % 20 == 0) q.error();
  }
  render(rng);
  const bool failed = rng() % 50 == 0;
  r.status(failed ? 500 : 200);
  r.bytes_out(failed ? 0 : 512 + rng() % 1024);
}

std::string ms(double ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ns / 1e6);
  return buf;
}

}  // namespace

int main() {
  auto jsonl = std::make_shared<spyglass::JsonlExporter>(spyglass::JsonlOptions{});
  spyglass::Session session({}, {jsonl});

  constexpr int kThreads = 4;
  constexpr int kRequestsPerThread = 500;
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; i < kRequestsPerThread; ++i) handle(t * kRequestsPerThread + i, rng);
    });
  }
  for (auto& w : workers) w.join();
  session.collector().flush();

  std::printf("%-8s %-62s %7s %6s %9s %9s\n", "kind", "name", "count", "errors", "p50 ms", "p99 ms");
  for (const auto& e : session.collector().stats().snapshot().entries) {
    std::string name = e.name.size() > 62 ? e.name.substr(0, 59) + "..." : e.name;
    std::printf("%-8s %-62s %7llu %6llu %9s %9s\n", std::string(spyglass::to_string(e.kind)).c_str(),
                name.c_str(), static_cast<unsigned long long>(e.count),
                static_cast<unsigned long long>(e.errors), ms(e.p50_ns).c_str(), ms(e.p99_ns).c_str());
  }
  const auto c = session.collector().counters();
  std::printf("\ncollector: offered=%llu rejected=%llu dispatched=%llu in_transit=%llu\n",
              static_cast<unsigned long long>(c.offered), static_cast<unsigned long long>(c.rejected),
              static_cast<unsigned long long>(c.dispatched), static_cast<unsigned long long>(c.in_transit));
  std::printf("events written as JSON lines under ./spyglass-out/\n");
  return 0;
}
