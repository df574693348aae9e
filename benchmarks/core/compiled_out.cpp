// Built with SPYGLASS_ENABLED=0: the scope macro expands to nothing.
#include <benchmark/benchmark.h>

#include "spyglass/scope.hpp"

static_assert(SPYGLASS_ENABLED == 0);

void bench_scope_compiled_out(benchmark::State& state) {
  for (auto _ : state) {
    SPYGLASS_SCOPE("bench.scope");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(bench_scope_compiled_out);
