// An instrumented program that exports its spans and metrics over OTLP/HTTP.
//
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=shop ./otlp_example
//
// Everything else comes from the standard OTEL_* variables too (protocol, compression,
// headers, sampler). See README.md for pointing it at a Collector, Jaeger or Tempo.

#include <cstdio>
#include <string>
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
  spyglass::Session session(session_options, {exporter});
  if (!session.enabled()) {
    std::printf("spyglass is disabled (OTEL_SDK_DISABLED / SPYGLASS_DISABLED): nothing recorded or sent\n");
    return 0;
  }
  for (int i = 0; i < 20; ++i) handle_order(i);

  // Delivers what the collector holds, within the exporter's shutdown_timeout (5 s, or
  // OTEL_BSP_EXPORT_TIMEOUT): when it returns, every counter is final.
  session.collector().shutdown();
  const auto all = session.collector().exporter_counters();
  const spyglass::ExporterCounters& c = all.at(0);
  const otlp::OtlpCounters oc = exporter->counters();
  std::printf("traces -> %s\n", options.traces_endpoint.c_str());
  std::printf("spans: produced %llu, sent %llu, failed %llu, dropped %llu (requests %llu, retries %llu)\n",
              static_cast<unsigned long long>(c.produced), static_cast<unsigned long long>(c.sent),
              static_cast<unsigned long long>(c.failed), static_cast<unsigned long long>(c.dropped),
              static_cast<unsigned long long>(oc.requests), static_cast<unsigned long long>(oc.retries));
  std::printf("metrics -> %s: %llu export(s) accepted, %llu failed\n", options.metrics_endpoint.c_str(),
              static_cast<unsigned long long>(oc.metric_exports),
              static_cast<unsigned long long>(oc.metric_failures));
  if (c.sent == 0) {
    std::fprintf(stderr, "otlp_example: no span was delivered to %s (see the warnings above)\n",
                 options.traces_endpoint.c_str());
    return 1;
  }
  if (c.failed != 0 || c.dropped != 0 || oc.rejected != 0) {
    std::fprintf(stderr,
                 "otlp_example: %llu span(s) were not delivered (failed %llu, dropped %llu, rejected %llu)\n",
                 static_cast<unsigned long long>(c.failed + c.dropped + oc.rejected),
                 static_cast<unsigned long long>(c.failed), static_cast<unsigned long long>(c.dropped),
                 static_cast<unsigned long long>(oc.rejected));
    return 1;
  }
  return 0;
}
