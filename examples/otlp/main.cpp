// An instrumented program that exports its spans and metrics over OTLP/HTTP.
//
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=shop ./otlp_example
//
// Everything else comes from the standard OTEL_* variables too (protocol, compression,
// headers, sampler). See README.md for pointing it at a Collector, Jaeger or Tempo.

#include <cstdio>
#include <thread>
#include <vector>

#include "spyglass/exporters/otlp.hpp"
#include "spyglass/spyglass.hpp"

namespace {

int lookup_price(int item) {
  SPYGLASS_FUNCTION();
  SPYGLASS_QUERY(q, "SELECT price FROM items WHERE id = " + std::to_string(item));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  q.rows(1);
  return 100 + item;
}

void handle_order(int id) {
  spyglass::RequestScope req("/orders/{id}", {}, "POST");
  int total = 0;
  {
    SPYGLASS_SCOPE("validate");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Continue the trace on a worker thread.
  const auto ctx = spyglass::Context::current();
  std::thread worker([ctx, id, &total] {
    spyglass::ContextGuard guard(ctx);
    total = lookup_price(id) + lookup_price(id + 1);
  });
  worker.join();
  req.status(id % 10 == 9 ? 500 : 200);
}

}  // namespace

int main() {
  namespace otlp = spyglass::otlp;
  std::vector<std::string> warnings;
  otlp::OtlpOptions options = otlp::from_env({}, &warnings);
  if (options.service_name.empty()) options.service_name = "spyglass-otlp-example";
  options.metrics_interval = std::chrono::seconds(5);
  auto exporter = std::make_shared<otlp::OtlpExporter>(options);

  spyglass::SessionOptions session_options;
  session_options.sample_ratio = options.sampler.root_ratio();  // OTEL_TRACES_SAMPLER(_ARG)
  session_options.parent_based = options.sampler.parent_based();
  {
    spyglass::Session session(session_options, {exporter});
    for (int i = 0; i < 20; ++i) handle_order(i);
  }  // drains the collector, then the exporter sends what is left

  const auto c = exporter->counters();
  std::printf("traces -> %s\nspans: produced %llu, sent %llu, dropped %llu, failed %llu\n",
              options.traces_endpoint.c_str(), static_cast<unsigned long long>(c.produced),
              static_cast<unsigned long long>(c.sent), static_cast<unsigned long long>(c.dropped),
              static_cast<unsigned long long>(c.failed));
  return c.failed == 0 ? 0 : 1;
}
