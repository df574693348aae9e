// An instrumented service that serves its metrics on /metrics for Prometheus to scrape.
// Worker threads handle simulated requests (with nested functions and queries); the
// Prometheus exporter turns the events into counters and latency histograms on the
// collector's thread. The application also registers a metric of its own.
//
//   prometheus_example [--listen 127.0.0.1:9464] [--seconds 60 (0: until killed)]
//                      [--push http://127.0.0.1:9091]
//   curl -s http://127.0.0.1:9464/metrics
#include <prometheus/counter.h>
#include <spyglass/exporters/prometheus.hpp>
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

void load_user(std::mt19937& rng) {
  SPYGLASS_FUNCTION();
  // Redacted SQL is the name, so the number of series stays bounded.
  SPYGLASS_QUERY(q, "SELECT id, name FROM users WHERE id = ?");
  busy_for(std::chrono::microseconds(50 + rng() % 300));
  q.rows(1);
}

void handle(int request, std::mt19937& rng) {
  const bool order = request % 5 == 0;
  SPYGLASS_REQUEST(r, order ? "/orders/{id}" : "/users/{id}");
  r.bytes_in(200 + rng() % 100);
  load_user(rng);
  if (order) {
    SPYGLASS_QUERY(q, "INSERT INTO orders (user_id, total) VALUES (?, ?)");
    busy_for(std::chrono::microseconds(200 + rng() % 2000));
    q.rows(1);
  }
  {
    SPYGLASS_SCOPE("render");
    busy_for(std::chrono::microseconds(20 + rng() % 100));
  }
  const bool failed = rng() % 50 == 0;
  if (failed) r.error();
  r.status(failed ? 500 : 200);
  r.bytes_out(failed ? 0 : 512 + rng() % 1024);
}

}  // namespace

/// "--seconds" value: a whole number >= 0.
bool parse_seconds(const char* text, int& out) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || v < 0 || v > 1'000'000'000) return false;
  out = static_cast<int>(v);
  return true;
}

int usage(const char* message, const char* arg) {
  std::fprintf(stderr, "prometheus_example: %s%s\n", message, arg);
  std::fprintf(stderr,
               "usage: prometheus_example [--listen host:port] [--seconds N (0: until killed)]"
               " [--push http://host:port]\n");
  return 2;
}

int main(int argc, char** argv) {
  spyglass::prom::PrometheusOptions options;
  int seconds = 60;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag != "--listen" && flag != "--seconds" && flag != "--push")
      return usage("unknown option ", argv[i]);
    if (i + 1 >= argc) return usage("missing value for ", argv[i]);
    const char* value = argv[++i];
    if (flag == "--listen") {
      options.listen_address = value;
    } else if (flag == "--seconds") {
      if (!parse_seconds(value, seconds)) return usage("--seconds needs a whole number >= 0, not ", value);
    } else {
      options.push_url = value;
    }
  }

  spyglass::Session session;
  options.collector = &session.collector();
  std::shared_ptr<spyglass::prom::PrometheusExporter> exporter;
  try {
    exporter = std::make_shared<spyglass::prom::PrometheusExporter>(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  session.collector().add_exporter(exporter);

  // The application's own metric, served on the same /metrics.
  auto& jobs = prometheus::BuildCounter()
                   .Name("example_jobs_total")
                   .Help("Background jobs the example ran.")
                   .Register(*exporter->registry())
                   .Add({});

  if (options.listen_address.empty()) {
    std::printf("pushing only, for %d s\n", seconds);
  } else {
    // With port 0 the system picks the port: print the one in use.
    const std::string host = options.listen_address.substr(0, options.listen_address.rfind(':'));
    std::printf("serving http://%s:%u/metrics for %d s\n", host.c_str(),
                static_cast<unsigned>(exporter->port()), seconds);
  }
  std::fflush(stdout);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([t, &stop] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; !stop; ++i) {
        handle(i, rng);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  while (seconds <= 0 || std::chrono::steady_clock::now() < until) {  // 0: until killed
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    jobs.Increment();
  }
  stop = true;
  for (auto& w : workers) w.join();
  return 0;
}
