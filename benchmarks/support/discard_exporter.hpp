#pragma once
// An exporter that drops what it gets: the benchmarks measure the application's side and
// the collector's own work, not an exporter's.

#include <benchmark/benchmark.h>

#include <span>
#include <string_view>

#include "spyglass/exporter.hpp"

namespace spyglass::bench {

class DiscardExporter : public Exporter {
 public:
  bool export_batch(std::span<const Event> events) override {
    benchmark::DoNotOptimize(events.data());
    return true;
  }
  std::string_view name() const override { return "discard"; }
};

}  // namespace spyglass::bench
