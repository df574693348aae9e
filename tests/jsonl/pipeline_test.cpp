// The JSONL exporter behind the real collector: a burst of spans lands in the file exactly
// as counted, fork() while threads record splits the output between the processes with
// balanced counters in each, unsampled spans stay out of the file, and shutdown is
// bounded by the exporter's deadline. Files are read with simdjson and jq.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../support/collecting_exporter.hpp"
#include "spyglass/exporters/jsonl.hpp"
#include "spyglass/spyglass.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
namespace sg = spyglass;
using namespace std::chrono_literals;

namespace {

/// The lines of every file in `dir` (each file must end with '\n'), parsed with simdjson.
std::vector<sgtest::Parsed> read_all(const fs::path& dir, std::size_t* files = nullptr) {
  std::vector<sgtest::Parsed> out;
  const auto list = sgtest::list_files(dir);
  if (files != nullptr) *files = list.size();
  for (const auto& f : list) {
    const std::string text = sgtest::read_file(f);
    EXPECT_TRUE(text.empty() || text.ends_with('\n')) << f;
    for (const auto& line : sgtest::split_lines(text)) {
      sgtest::Parsed p;
      if (sgtest::parse_line(line, p)) out.push_back(p);
    }
  }
  return out;
}

/// Lines jq reads from `file` with `jq -c .` (each must be an object with the schema's
/// always-present members).
std::size_t jq_count(const fs::path& file) {
  int status = -1;
  const std::string out =
      sgtest::run(std::string(SPYGLASS_JQ) +
                      " -c 'select(type == \"object\" and has(\"ts\") and has(\"kind\") and "
                      "has(\"name\") and has(\"span_id\") and has(\"trace_id\"))' '" +
                      file.string() + "'",
                  &status);
  EXPECT_EQ(status, 0) << "jq failed on " << file;
  return sgtest::split_lines(out).size();
}

void expect_balanced(const sg::ExporterCounters& c) {
  EXPECT_EQ(c.produced, c.sent + c.failed + c.dropped + c.pending) << c.name;
}

const sg::ExporterCounters& counters_of(const std::vector<sg::ExporterCounters>& all, std::string_view name) {
  for (const auto& c : all) {
    if (c.name == name) return c;
  }
  static const sg::ExporterCounters none;
  ADD_FAILURE() << "no exporter named " << name;
  return none;
}

/// Spans recorded by the macros: `n` function scopes named `name`.
void record(std::size_t n, std::string_view name) {
  for (std::size_t i = 0; i < n; ++i) sg::Scope scope(name);
}

/// An in-memory exporter that asks for unsampled spans, as a metrics exporter does.
class UnsampledCollecting final : public sg::test::CollectingExporter {
 public:
  UnsampledCollecting() : CollectingExporter("metrics-like") {}
  [[nodiscard]] bool accepts_unsampled() const override { return true; }
};

}  // namespace

TEST(JsonlPipeline, BurstOf4000SpansIsWrittenExactlyAsCounted) {
  sgtest::TempDir tmp;
  auto jsonl = std::make_shared<sg::JsonlExporter>(sg::JsonlOptions{.directory = tmp.str()});
  const std::string path = jsonl->current_path();
  std::vector<sg::ExporterCounters> counters;
  {
    sg::Session session({}, {jsonl});  // default options
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([t] { record(1000, "burst-" + std::to_string(t)); });
    for (auto& th : threads) th.join();
    ASSERT_TRUE(session.collector().shutdown());
    counters = session.collector().exporter_counters();
  }
  const auto& c = counters_of(counters, "jsonl");
  expect_balanced(c);
  // Default options hold a burst of 4000 whole: every span is produced and sent.
  EXPECT_EQ(c.produced, 4000u);
  EXPECT_EQ(c.sent, 4000u);
  EXPECT_EQ(c.dropped, 0u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(jsonl->lines_written(), c.sent);
  EXPECT_EQ(jsonl->write_errors(), 0u);

  std::size_t files = 0;
  const auto lines = read_all(tmp.path(), &files);
  ASSERT_EQ(files, 1u);
  EXPECT_EQ(lines.size(), c.sent);
  EXPECT_EQ(jq_count(path), c.sent);
  std::set<std::string> span_ids;
  std::map<std::string, std::size_t> per_name;
  for (const auto& p : lines) {
    span_ids.insert(p.span_id);
    ++per_name[p.name];
    EXPECT_EQ(p.kind, "function");
    EXPECT_EQ(p.status, "ok");
    EXPECT_FALSE(p.has_parent);
  }
  EXPECT_EQ(span_ids.size(), lines.size());  // no line written twice
  EXPECT_EQ(per_name, (std::map<std::string, std::size_t>{
                          {"burst-0", 1000}, {"burst-1", 1000}, {"burst-2", 1000}, {"burst-3", 1000}}));
}

TEST(JsonlPipeline, ForkWhileThreadsRecordSplitsTheOutputWithBalancedCounters) {
  sgtest::TempDir tmp;
  auto jsonl = std::make_shared<sg::JsonlExporter>(sg::JsonlOptions{.directory = tmp.str()});
  const std::string parent_file = jsonl->current_path();
  const fs::path child_report = tmp.path() / "child-report.txt";
  std::vector<sg::ExporterCounters> counters;
  pid_t pid = -1;
  {
    sg::SessionOptions options;
    // fork() waits this long at most for the exporter to finish a call in progress, so
    // that the child may use it. Generous: the cores may all be busy, and with threads
    // recording flat out fork() took 17-25 ms to find the exporter between two calls,
    // around the 20 ms default.
    options.collector.fork_wait = 5s;
    sg::Session session(options, {jsonl});
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> recorded{0};
    std::vector<std::thread> threads;
    // Stops and joins the recording threads however the block is left.
    struct Joiner {
      std::atomic<bool>& stop;
      std::vector<std::thread>& threads;
      ~Joiner() {
        stop = true;
        for (auto& th : threads) {
          if (th.joinable()) th.join();
        }
      }
    } joiner{stop, threads};
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&] {
        while (!stop.load(std::memory_order_relaxed)) {
          record(1, "parent-span");
          recorded.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    // Fork once the parent's spans are flowing into its file.
    ASSERT_TRUE(sgtest::wait_for([&] { return jsonl->lines_written() >= 1000; }));
    pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The child: only this thread exists. Record spans of its own, shut down, and report
      // what the child's collector counted to the parent through a file.
      record(300, "child-span");
      session.collector().shutdown();
      const auto cc = session.collector().exporter_counters();
      std::ofstream out(child_report);
      for (const auto& c : cc) {
        out << c.name << ' ' << c.produced << ' ' << c.sent << ' ' << c.failed << ' ' << c.dropped << ' '
            << c.pending << ' ' << (c.name == "jsonl" ? jsonl->lines_written() : 0) << '\n';
      }
      out.close();
      ::_exit(out ? 0 : 1);
    }
    const std::uint64_t at_fork = recorded.load();
    // The parent goes on recording after the fork for a while, then stops.
    ASSERT_TRUE(sgtest::wait_for([&] { return recorded.load() >= at_fork + 1000; }));
    stop = true;
    for (auto& th : threads) th.join();
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_TRUE(session.collector().shutdown());
    counters = session.collector().exporter_counters();
  }

  // The child's counters: its own 300 spans, all sent, balanced.
  std::ifstream report(child_report);
  std::string name;
  std::uint64_t produced = 0, sent = 0, failed = 0, dropped = 0, pending = 0, child_lines = 0;
  ASSERT_TRUE(report >> name >> produced >> sent >> failed >> dropped >> pending >> child_lines);
  EXPECT_EQ(name, "jsonl");
  EXPECT_EQ(produced, sent + failed + dropped + pending);
  EXPECT_EQ(produced, 300u);
  EXPECT_EQ(sent, 300u);
  EXPECT_EQ(child_lines, 300u);
  fs::remove(child_report);

  // The parent's counters balance, and its file holds exactly what it sent.
  const auto& c = counters_of(counters, "jsonl");
  expect_balanced(c);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(jsonl->lines_written(), c.sent);

  const auto files = sgtest::list_files(tmp.path());
  ASSERT_EQ(files.size(), 2u);
  const fs::path child_file = files[0].string() == parent_file ? files[1] : files[0];
  EXPECT_NE(child_file.filename().string().find("-" + std::to_string(pid) + ".jsonl"), std::string::npos)
      << child_file;
  auto lines_of = [](const fs::path& f) {
    std::vector<sgtest::Parsed> v;
    const std::string text = sgtest::read_file(f);
    EXPECT_TRUE(text.ends_with('\n')) << f;
    for (const auto& line : sgtest::split_lines(text)) {
      sgtest::Parsed p;
      if (sgtest::parse_line(line, p)) v.push_back(p);
    }
    return v;
  };
  const auto parent_lines = lines_of(parent_file);
  const auto child_lines_read = lines_of(child_file);
  EXPECT_EQ(parent_lines.size(), c.sent);
  EXPECT_EQ(jq_count(parent_file), c.sent);
  EXPECT_EQ(child_lines_read.size(), 300u);
  EXPECT_EQ(jq_count(child_file), 300u);
  // The child wrote none of the parent's lines (the parent wrote them) and vice versa.
  std::set<std::string> parent_ids;
  for (const auto& p : parent_lines) {
    EXPECT_EQ(p.name, "parent-span");
    parent_ids.insert(p.span_id);
  }
  EXPECT_EQ(parent_ids.size(), parent_lines.size());
  std::size_t shared = 0;
  for (const auto& p : child_lines_read) {
    EXPECT_EQ(p.name, "child-span");
    shared += parent_ids.count(p.span_id);
  }
  EXPECT_EQ(shared, 0u) << "span ids in both files";
}

TEST(JsonlPipeline, UnsampledSpansStayOutOfTheFile) {
  sgtest::TempDir tmp;
  auto jsonl = std::make_shared<sg::JsonlExporter>(sg::JsonlOptions{.directory = tmp.str()});
  auto metrics = std::make_shared<UnsampledCollecting>();
  EXPECT_FALSE(jsonl->accepts_unsampled());
  std::vector<sg::ExporterCounters> counters;
  {
    sg::SessionOptions options;
    options.sample_ratio = 0.0;
    options.record_unsampled = true;
    sg::Session session(options, {jsonl, metrics});
    record(250, "unsampled-span");
    ASSERT_TRUE(session.collector().shutdown());
    counters = session.collector().exporter_counters();
  }
  const auto& j = counters_of(counters, "jsonl");
  const auto& m = counters_of(counters, "metrics-like");
  expect_balanced(j);
  expect_balanced(m);
  EXPECT_EQ(j.produced, 0u);
  EXPECT_EQ(jsonl->lines_written(), 0u);
  EXPECT_EQ(m.produced, 250u);
  EXPECT_EQ(m.sent, 250u);
  const auto seen = metrics->events();
  ASSERT_EQ(seen.size(), 250u);
  for (const auto& e : seen) EXPECT_FALSE(e.sampled());
  EXPECT_TRUE(sgtest::list_files(tmp.path()).empty());  // the empty file is removed at shutdown
}

TEST(JsonlPipeline, ShutdownTimeoutIsTheConfiguredOne) {
  sgtest::TempDir tmp;
  EXPECT_EQ(sg::JsonlExporter(sg::JsonlOptions{.directory = tmp.str()}).shutdown_timeout(), 5000ms);
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.shutdown_timeout = 750ms;
  EXPECT_EQ(sg::JsonlExporter(o).shutdown_timeout(), 750ms);
}

TEST(JsonlPipeline, CompressionsPastTheShutdownDeadlineAreAbandonedWithoutLoss) {
  sgtest::TempDir tmp;
  sg::JsonlOptions o;
  o.directory = tmp.str();
  o.max_file_bytes = 4096;
  o.max_files = 0;
  o.gzip_rotated = true;
  sg::JsonlExporter ex(o);
  sgtest::LogCapture log;
  // The deadline has passed before the first rotation: no compression may start.
  ex.begin_shutdown(std::chrono::steady_clock::now() - 1s);
  std::vector<sg::Event> ev;
  for (std::uint64_t i = 0; i < 600; ++i) ev.push_back(sgtest::make_event(i));
  for (std::size_t i = 0; i < ev.size(); i += 50) ASSERT_TRUE(ex.export_batch({ev.data() + i, 50}));
  ex.shutdown();
  EXPECT_EQ(ex.write_errors(), 0u);  // abandoning is not a write error
  EXPECT_GE(log.warnings(), 1u);     // but it is reported
  std::size_t files = 0;
  const auto lines = read_all(tmp.path(), &files);
  EXPECT_EQ(files, ex.files_rotated() + 1);
  for (const auto& f : sgtest::list_files(tmp.path())) {
    EXPECT_TRUE(f.filename().string().ends_with(".jsonl")) << "not left uncompressed: " << f;
  }
  ASSERT_EQ(lines.size(), ev.size());
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(std::stoull(lines[i].span_id, nullptr, 16), i + 1);
}
