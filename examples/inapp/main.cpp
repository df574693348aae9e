// An instrumented service that shows its own live page: worker threads handle simulated
// requests (with nested functions and queries, some slow, some failing) and
// spyglass::http serves the statistics on / and /metrics.json.
//
//   inapp_example [--listen 127.0.0.1:9465] [--token T] [--seconds 60 (0: until killed)]
//                 [--requests N (per worker, then idle; 0: no end)]
//   open http://127.0.0.1:9465/   (with a token: http://127.0.0.1:9465/#token=T)
#include <spyglass/http.hpp>
#include <spyglass/spyglass.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
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

void load_user(std::mt19937& rng, int id) {
  SPYGLASS_FUNCTION();
  // The literal is redacted: every id lands in one series, "... WHERE id = ?".
  const std::string sql = "SELECT id, name FROM users WHERE id = " + std::to_string(id);
  SPYGLASS_QUERY(q, sql);
  busy_for(std::chrono::microseconds(50 + rng() % 300));
  q.rows(1);
}

void handle(int request, std::mt19937& rng) {
  const bool order = request % 5 == 0;
  const bool report = request % 23 == 0;
  SPYGLASS_REQUEST(r, report ? "/reports/daily" : order ? "/orders/{id}" : "/users/{id}");
  load_user(rng, request);
  if (order) {
    SPYGLASS_QUERY(q, "INSERT INTO orders (user_id, total) VALUES (7, 19.99)");
    busy_for(std::chrono::microseconds(200 + rng() % 1000));
    q.rows(1);
  }
  if (report) {
    SPYGLASS_QUERY(q, "SELECT day, sum(total) FROM orders WHERE day > '2026-01-01' GROUP BY day");
    busy_for(std::chrono::microseconds(2000 + rng() % 3000));
    q.rows(30);
  }
  {
    SPYGLASS_SCOPE("render");
    busy_for(std::chrono::microseconds(20 + rng() % 100));
  }
  const bool failed = rng() % (order ? 10 : 50) == 0;
  if (failed) r.error();
  r.status(failed ? 500 : 200);
}

bool parse_count(const char* text, int& out) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || v < 0 || v > 1'000'000'000) return false;
  out = static_cast<int>(v);
  return true;
}

int usage(const char* message, const char* arg) {
  std::fprintf(stderr, "inapp_example: %s%s\n", message, arg);
  std::fprintf(stderr,
               "usage: inapp_example [--listen host:port] [--token T] [--seconds N (0: until killed)]"
               " [--requests N (per worker; 0: no end)]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  spyglass::http::HttpOptions options;
  int seconds = 60;
  int requests = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag != "--listen" && flag != "--token" && flag != "--seconds" && flag != "--requests")
      return usage("unknown option ", argv[i]);
    if (i + 1 >= argc) return usage("missing value for ", argv[i]);
    const char* value = argv[++i];
    if (flag == "--listen") {
      options.address = value;
    } else if (flag == "--token") {
      options.token = value;
    } else if (!parse_count(value, flag == "--seconds" ? seconds : requests)) {
      return usage("needs a whole number >= 0: ", flag.c_str());
    }
  }

  spyglass::Session session;
  std::unique_ptr<spyglass::http::Server> server;
  try {
    server = std::make_unique<spyglass::http::Server>(session.collector(), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // With port 0 the system picks the port: print the one in use.
  const std::string host = options.address.substr(0, options.address.rfind(':'));
  std::printf("serving http://%s:%u/ for %d s\n", host.c_str(), static_cast<unsigned>(server->port()),
              seconds);
  std::fflush(stdout);

  constexpr int kWorkers = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kWorkers; ++t) {
    workers.emplace_back([t, requests, &stop, &finished] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; !stop && (requests == 0 || i < requests); ++i) {
        handle(i, rng);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (++finished == kWorkers && requests > 0) {
        std::printf("load done: %d requests\n", kWorkers * requests);
        std::fflush(stdout);
      }
    });
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (seconds <= 0 || std::chrono::steady_clock::now() < until) {  // 0: until killed
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  for (auto& w : workers) w.join();
  return 0;
}
