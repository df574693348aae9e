// fork() while threads record: the child starts from zero, never repeats or re-exports the
// parent's spans, drops the spans opened before the fork, and never touches an exporter
// that was busy when the process forked. Each child reports what it saw through a pipe.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;
using sg::test::eventually;
using namespace std::chrono_literals;

namespace {

// What one side of a fork saw, once its collector was shut down.
struct Report {
  bool shutdown_ok = false;
  sg::CollectorCounters collector;
  std::vector<sg::ExporterCounters> exporters;
  std::vector<int> calls, flushes, shutdowns, forks;      // per exporter, as the exporter counted
  std::vector<std::pair<sg::SpanId, std::string>> spans;  // what the first exporter received
};

// Shuts `session`'s collector down and describes what it and `sinks` saw. In a child, an
// exporter that was busy at the fork may hold its own lock forever: its events are read
// only if it was handed over (after_fork_child() called).
Report report_of(sg::Session& session, const std::vector<std::shared_ptr<CollectingExporter>>& sinks,
                 bool in_child) {
  Report r;
  r.shutdown_ok = session.collector().shutdown();
  r.collector = session.collector().counters();
  r.exporters = session.collector().exporter_counters();
  for (const auto& s : sinks) {
    r.calls.push_back(s->calls());
    r.flushes.push_back(s->flushes());
    r.shutdowns.push_back(s->shutdowns());
    r.forks.push_back(s->forks());
  }
  if (!in_child || sinks.at(0)->forks() == 1)
    for (const auto& e : sinks.at(0)->events()) r.spans.emplace_back(e.span_id, e.name);
  return r;
}

// One line per fact: "R ok", "C offered rejected dispatched pre_fork in_transit",
// "E name produced sent failed dropped pending calls flushes shutdowns forks", "S span name".
std::string serialize(const Report& r) {
  std::ostringstream out;
  out << "R " << r.shutdown_ok << '\n';
  out << "C " << r.collector.offered << ' ' << r.collector.rejected << ' ' << r.collector.dispatched << ' '
      << r.collector.pre_fork << ' ' << r.collector.in_transit << '\n';
  for (std::size_t i = 0; i < r.exporters.size(); ++i) {
    const auto& e = r.exporters[i];
    out << "E " << e.name << ' ' << e.produced << ' ' << e.sent << ' ' << e.failed << ' ' << e.dropped << ' '
        << e.pending << ' ' << r.calls.at(i) << ' ' << r.flushes.at(i) << ' ' << r.shutdowns.at(i) << ' '
        << r.forks.at(i) << '\n';
  }
  for (const auto& [span, name] : r.spans) out << "S " << span << ' ' << name << '\n';
  return out.str();
}

Report parse(const std::string& text) {
  Report r;
  std::istringstream in(text);
  std::string tag;
  while (in >> tag) {
    if (tag == "R") {
      in >> r.shutdown_ok;
    } else if (tag == "C") {
      in >> r.collector.offered >> r.collector.rejected >> r.collector.dispatched >> r.collector.pre_fork >>
          r.collector.in_transit;
    } else if (tag == "E") {
      sg::ExporterCounters e;
      int calls = 0, flushes = 0, shutdowns = 0, forks = 0;
      in >> e.name >> e.produced >> e.sent >> e.failed >> e.dropped >> e.pending >> calls >> flushes >>
          shutdowns >> forks;
      r.exporters.push_back(e);
      r.calls.push_back(calls);
      r.flushes.push_back(flushes);
      r.shutdowns.push_back(shutdowns);
      r.forks.push_back(forks);
    } else if (tag == "S") {
      sg::SpanId span = 0;
      std::string name;
      in >> span >> name;
      r.spans.emplace_back(span, name);
    } else {
      ADD_FAILURE() << "unexpected line tag '" << tag << "' in a child's report";
      break;
    }
  }
  return r;
}

// In the child: writes the report to `fd` and leaves without running any destructor.
[[noreturn]] void send_and_exit(int fd, const Report& r) {
  const std::string text = serialize(r);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(2);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  _exit(0);
}

// In the parent: reads the child's report to EOF and reaps the child.
std::optional<Report> receive(int fd, pid_t pid) {
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return std::nullopt;
  return parse(text);
}

void expect_exporter_balanced(const sg::ExporterCounters& e) {
  EXPECT_EQ(e.produced, e.sent + e.failed + e.dropped + e.pending)
      << e.name << ": produced=" << e.produced << " sent=" << e.sent << " failed=" << e.failed
      << " dropped=" << e.dropped << " pending=" << e.pending;
}

void expect_collector_balanced(const sg::CollectorCounters& c) {
  EXPECT_EQ(c.in_transit, 0u);
  EXPECT_EQ(c.offered, c.rejected + c.dispatched + c.pre_fork + c.in_transit)
      << "offered=" << c.offered << " rejected=" << c.rejected << " dispatched=" << c.dispatched
      << " pre_fork=" << c.pre_fork << " in_transit=" << c.in_transit;
}

}  // namespace

TEST(Fork, ChildAndParentNeverShareASpanWhileThreadsRecord) {
  constexpr int kThreads = 4;
  constexpr int kForks = 5;
  constexpr std::uint64_t kChildSpans = 50;
  // The workers never run more than this far ahead of the exporter, so the parent's
  // buffers never overflow and every span it records can be checked for.
  constexpr std::uint64_t kMaxBacklog = 8192;
  auto sink = std::make_shared<CollectingExporter>("sink");
  // fork() waits up to fork_wait for the exporter to be between two calls; one still
  // inside a call then is not used in the child. Both outcomes are checked below.
  sg::SessionOptions opts;
  opts.collector.fork_wait = 500ms;
  sg::Session session(opts, {sink});
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> recorded{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        {
          SPYGLASS_SCOPE("worker.outer");
          SPYGLASS_SCOPE("worker.inner");
        }
        if (recorded.fetch_add(2) % 256 == 0) {
          while (!stop.load() && recorded.load() > sink->count() + kMaxBacklog) std::this_thread::yield();
        }
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return sink->count() >= 1000; }));

  std::vector<Report> children;
  std::vector<sg::SpanId> across_spans;
  for (int k = 0; k < kForks; ++k) {
    const std::uint64_t seen = sink->count();
    ASSERT_TRUE(eventually([&] { return sink->count() >= seen + 100; }));  // recording now
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    std::optional<sg::Scope> across;
    across.emplace(std::string_view("across." + std::to_string(k)));  // open across fork()
    across_spans.push_back(across->context().span_id);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      for (std::uint64_t i = 0; i < kChildSpans; ++i) SPYGLASS_SCOPE("child.span");
      across.reset();  // ends in the child too: a span of the parent's, not recorded here
      send_and_exit(fds[1], report_of(session, {sink}, true));
    }
    ::close(fds[1]);
    across.reset();
    auto child = receive(fds[0], pid);
    ASSERT_TRUE(child.has_value()) << "child of fork " << k << " failed";
    children.push_back(std::move(*child));
  }
  stop = true;
  for (auto& w : workers) w.join();
  const Report parent = report_of(session, {sink}, false);

  // The parent: every span recorded, each once, including every span open across a fork.
  EXPECT_TRUE(parent.shutdown_ok);
  expect_collector_balanced(parent.collector);
  EXPECT_EQ(parent.collector.offered, recorded.load() + kForks);
  EXPECT_EQ(parent.collector.rejected, 0u);
  EXPECT_EQ(parent.collector.pre_fork, 0u);
  ASSERT_EQ(parent.exporters.size(), 1u);
  expect_exporter_balanced(parent.exporters[0]);
  EXPECT_EQ(parent.exporters[0].sent, parent.collector.offered);
  EXPECT_EQ(parent.exporters[0].dropped, 0u);
  EXPECT_EQ(parent.forks[0], 0);
  EXPECT_EQ(parent.spans.size(), parent.collector.offered);
  std::map<sg::SpanId, std::string> parent_spans;
  std::map<std::string, int> parent_names;
  for (const auto& [span, name] : parent.spans) {
    EXPECT_TRUE(parent_spans.emplace(span, name).second) << "span " << span << " exported twice";
    ++parent_names[name];
  }
  EXPECT_EQ(parent_names.count("child.span"), 0u);
  for (int k = 0; k < kForks; ++k) {
    EXPECT_EQ(parent_names["across." + std::to_string(k)], 1) << k;
    ASSERT_TRUE(parent_spans.count(across_spans[static_cast<std::size_t>(k)]));
    EXPECT_EQ(parent_spans.at(across_spans[static_cast<std::size_t>(k)]), "across." + std::to_string(k));
  }

  // Each child: counters from zero, only its own spans, the open span counted as pre_fork.
  std::set<sg::SpanId> child_spans;
  int busy_at_fork = 0;
  for (int k = 0; k < kForks; ++k) {
    SCOPED_TRACE("child of fork " + std::to_string(k));
    const Report& c = children[static_cast<std::size_t>(k)];
    EXPECT_TRUE(c.shutdown_ok);
    expect_collector_balanced(c.collector);
    EXPECT_EQ(c.collector.offered, kChildSpans + 1);  // its spans and the one open across fork()
    EXPECT_EQ(c.collector.pre_fork, 1u);
    EXPECT_EQ(c.collector.dispatched, kChildSpans);
    EXPECT_EQ(c.collector.rejected, 0u);
    ASSERT_EQ(c.exporters.size(), 1u);
    expect_exporter_balanced(c.exporters[0]);
    EXPECT_EQ(c.exporters[0].produced, kChildSpans);
    if (c.forks[0] == 1) {  // idle at the fork: handed over, forgot the parent's spans
      EXPECT_EQ(c.exporters[0].sent, kChildSpans);
      EXPECT_EQ(c.shutdowns[0], 1);
      EXPECT_EQ(c.spans.size(), kChildSpans);
    } else {  // inside a call at the fork: never called in the child
      ++busy_at_fork;
      EXPECT_EQ(c.exporters[0].dropped, kChildSpans);
      EXPECT_EQ(c.shutdowns[0], 0);
      EXPECT_TRUE(c.spans.empty());
    }
    for (const auto& [span, name] : c.spans) {
      EXPECT_EQ(name, "child.span");
      EXPECT_EQ(parent_spans.count(span), 0u) << "span " << span << " in both parent and child";
      EXPECT_TRUE(child_spans.insert(span).second) << "span " << span << " in two children";
    }
  }
  RecordProperty("exporter_busy_at_fork", busy_at_fork);
  std::printf("exporter busy at %d of %d forks\n", busy_at_fork, kForks);
}

TEST(Fork, BusyExporterDoesNotDelayForkAndIsNotUsedInTheChild) {
  auto stalled = std::make_shared<CollectingExporter>("stalled", CollectingExporter::Mode::stall);
  auto good = std::make_shared<CollectingExporter>("good");
  sg::SessionOptions opts;
  opts.collector.flush_interval = 1ms;
  sg::Session session(opts, {stalled, good});
  { SPYGLASS_SCOPE("before.fork"); }
  ASSERT_TRUE(eventually([&] { return stalled->stalled() && good->count() == 1; }));
  ASSERT_EQ(session.collector().options().fork_wait, 20ms);

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    for (int i = 0; i < 10; ++i) SPYGLASS_SCOPE("child.span");
    send_and_exit(fds[1], report_of(session, {good, stalled}, true));
  }
  const auto fork_took = std::chrono::steady_clock::now() - t0;
  ASSERT_GE(pid, 0);
  ::close(fds[1]);
  EXPECT_LT(fork_took, 2s);  // fork_wait is 20 ms; the stalled exporter is not waited for
  const auto child = receive(fds[0], pid);
  ASSERT_TRUE(child.has_value());

  // The child: the busy exporter is never called there (not even flush or shutdown); its
  // events are counted as dropped. The idle one works.
  EXPECT_TRUE(child->shutdown_ok);
  ASSERT_EQ(child->exporters.size(), 2u);
  const auto& child_stalled = child->exporters[0];
  EXPECT_EQ(child_stalled.name, "stalled");
  EXPECT_EQ(child_stalled.produced, 10u);
  EXPECT_EQ(child_stalled.dropped, 10u);
  EXPECT_EQ(child_stalled.sent + child_stalled.failed + child_stalled.pending, 0u);
  EXPECT_EQ(child->calls[1], 1);  // still only the parent's call it was stuck in
  EXPECT_EQ(child->flushes[1], 0);
  EXPECT_EQ(child->shutdowns[1], 0);
  EXPECT_EQ(child->forks[1], 0);  // after_fork_child() not called for it either
  const auto& child_good = child->exporters[1];
  EXPECT_EQ(child_good.produced, 10u);
  EXPECT_EQ(child_good.sent, 10u);
  EXPECT_EQ(child->forks[0], 1);
  EXPECT_EQ(child->shutdowns[0], 1);
  ASSERT_EQ(child->spans.size(), 10u);  // the child's own spans only
  for (const auto& [span, name] : child->spans) EXPECT_EQ(name, "child.span");
  expect_collector_balanced(child->collector);
  EXPECT_EQ(child->collector.offered, 10u);

  // The parent still uses the stalled exporter once it moves again.
  for (int i = 0; i < 5; ++i) SPYGLASS_SCOPE("after.fork");
  stalled->release();
  ASSERT_TRUE(session.collector().flush());
  const Report parent = report_of(session, {stalled, good}, false);
  EXPECT_TRUE(parent.shutdown_ok);
  EXPECT_EQ(parent.exporters[0].sent, 6u);
  EXPECT_EQ(parent.exporters[0].dropped, 0u);
  EXPECT_EQ(parent.forks[0], 0);
  EXPECT_EQ(parent.shutdowns[0], 1);
  EXPECT_EQ(stalled->count(), 6u);
  EXPECT_EQ(good->count(), 6u);
  expect_collector_balanced(parent.collector);
  EXPECT_EQ(parent.collector.offered, 6u);
}
