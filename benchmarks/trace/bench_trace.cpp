// Trace conversion: JSONL spans (written by the real JSONL exporter) to the Chrome Trace
// Event Format and to folded stacks, in spans per second, beside the peer: reading the same
// file and parsing every line with simdjson, doing nothing else.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "spyglass/exporters/jsonl.hpp"
#include "trace.hpp"

namespace cli = spyglass::cli;

namespace {

constexpr std::size_t kRequests = 50000;  // 6 spans each: 300,000 spans, ~90 MB of JSONL

// A file of requests on 8 threads, each with a function, two queries and a render below
// it and one child on a worker thread, as the exporter writes them (children first).
struct Input {
  std::string dir, path;
  std::uint64_t spans = 0, bytes = 0;
  Input() {
    char tmpl[] = "/tmp/spyglass-bench-trace-XXXXXX";
    dir = ::mkdtemp(tmpl);
    spyglass::JsonlOptions o;
    o.directory = dir;
    o.max_file_bytes = 0;
    spyglass::JsonlExporter exporter(o);
    std::vector<spyglass::Event> batch;
    std::uint64_t id = 1, t = 1795000000000000000ULL;
    for (std::size_t r = 0; r < kRequests; ++r) {
      spyglass::Event req;
      req.kind = spyglass::EventKind::request;
      req.name = r % 4 == 0 ? "/orders/{id}" : "/users/{id}";
      req.detail = "GET";
      req.trace_id = {0x4bf92f3577b34da6ULL, r + 1};
      req.span_id = id++;
      req.thread_id = static_cast<std::uint32_t>(1000 + r % 8);
      req.start = t;
      req.duration = 100000;
      req.http_status = 200;
      auto child = [&](spyglass::EventKind kind, const char* name, std::uint64_t parent, std::uint64_t start,
                       std::uint64_t dur, std::uint32_t thread) {
        spyglass::Event e = req;
        e.kind = kind;
        e.name = name;
        e.detail = kind == spyglass::EventKind::db ? "postgresql" : "";
        e.span_id = id++;
        e.parent_span_id = parent;
        e.start = start;
        e.duration = dur;
        e.thread_id = thread;
        e.rows = 1;
        return e;
      };
      const spyglass::Event fn =
          child(spyglass::EventKind::function, "load_user", req.span_id, t + 1000, 50000, req.thread_id);
      batch.push_back(child(spyglass::EventKind::db, "SELECT name FROM users WHERE id = ?", fn.span_id,
                            t + 2000, 20000, req.thread_id));
      batch.push_back(child(spyglass::EventKind::db, "SELECT * FROM orders WHERE user_id = ?", fn.span_id,
                            t + 23000, 20000, req.thread_id));
      batch.push_back(fn);
      batch.push_back(
          child(spyglass::EventKind::function, "render", req.span_id, t + 60000, 30000, req.thread_id));
      batch.push_back(
          child(spyglass::EventKind::custom, "fanout", req.span_id, t + 51000, 8000, req.thread_id + 100));
      batch.push_back(req);
      t += 20000;
      if (batch.size() >= 6000) {
        exporter.export_batch(batch);
        spans += batch.size();
        batch.clear();
      }
    }
    exporter.export_batch(batch);
    spans += batch.size();
    exporter.shutdown();
    for (const auto& e : std::filesystem::directory_iterator(dir)) path = e.path().string();
    bytes = std::filesystem::file_size(path);
  }
  ~Input() { std::filesystem::remove_all(dir); }
};

const Input& input() {
  static const Input in;
  return in;
}

void report(benchmark::State& state, std::uint64_t spans) {
  state.SetItemsProcessed(static_cast<std::int64_t>(spans));
  state.SetBytesProcessed(static_cast<std::int64_t>(input().bytes) * state.iterations());
}

// Reading, parsing and linking parents to children, with no output: what every output shares.
void BM_TraceReadAndLink(benchmark::State& state) {
  const Input& in = input();
  std::uint64_t spans = 0;
  for (auto _ : state) spans += cli::convert_spans({in.path}, {}, {}).spans;
  report(state, spans);
}
BENCHMARK(BM_TraceReadAndLink)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TraceToChrome(benchmark::State& state) {
  const Input& in = input();
  std::FILE* null = std::fopen("/dev/null", "wb");
  std::uint64_t spans = 0;
  for (auto _ : state) {
    cli::ChromeTraceSink sink(null);
    spans += cli::convert_spans({in.path}, {}, {&sink}).spans;
  }
  std::fclose(null);
  report(state, spans);
}
BENCHMARK(BM_TraceToChrome)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TraceToFolded(benchmark::State& state) {
  const Input& in = input();
  std::uint64_t spans = 0;
  for (auto _ : state) {
    cli::FoldedSink sink;
    spans += cli::convert_spans({in.path}, {}, {&sink}).spans;
    benchmark::DoNotOptimize(sink.stacks().size());
  }
  report(state, spans);
}
BENCHMARK(BM_TraceToFolded)->Unit(benchmark::kMillisecond)->UseRealTime();

// The peer: read the file in 1 MiB chunks and parse each line with simdjson's DOM parser,
// visiting every member; no conversion.
void BM_PeerSimdjsonReadParse(benchmark::State& state) {
  const Input& in = input();
  std::uint64_t lines = 0;
  const std::size_t cap = std::size_t{1} << 20;
  std::vector<char> buf(cap + simdjson::SIMDJSON_PADDING);
  simdjson::dom::parser parser;
  for (auto _ : state) {
    const int fd = ::open(in.path.c_str(), O_RDONLY | O_CLOEXEC);
    std::size_t have = 0;
    std::uint64_t members = 0;
    while (true) {
      const ssize_t n = ::read(fd, buf.data() + have, cap - have);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
      std::size_t at = 0;
      while (const void* nl = std::memchr(buf.data() + at, '\n', have - at)) {
        const auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
        simdjson::dom::object obj;
        if (parser.parse(buf.data() + at, end - at, false).get(obj) == simdjson::SUCCESS) {
          for (const auto field : obj) members += field.key.size();
        }
        ++lines;
        at = end + 1;
      }
      std::memmove(buf.data(), buf.data() + at, have - at);
      have -= at;
    }
    ::close(fd);
    benchmark::DoNotOptimize(members);
  }
  report(state, lines);
}
BENCHMARK(BM_PeerSimdjsonReadParse)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
