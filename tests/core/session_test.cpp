// The Session behind the macros: a burst with the default options, unsampled traces for
// metrics exporters, excluded routes, the environment switches, and the one per-thread
// state the scopes and Context::current() share.
#include <gtest/gtest.h>

#include <dirent.h>

#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;
using sg::test::eventually;
using namespace std::chrono_literals;

namespace {

// Takes its time over every batch, as an exporter talking to a slow server does.
class SlowExporter : public CollectingExporter {
 public:
  explicit SlowExporter(std::chrono::milliseconds per_batch)
      : CollectingExporter("slow"), per_batch_(per_batch) {}
  bool export_batch(std::span<const sg::Event> events) override {
    std::this_thread::sleep_for(per_batch_);
    return CollectingExporter::export_batch(events);
  }

 private:
  const std::chrono::milliseconds per_batch_;
};

const sg::StatsEntry* find_entry(const sg::StatsSnapshot& snap, std::string_view name) {
  for (const auto& e : snap.entries)
    if (e.name == name) return &e;
  return nullptr;
}

// Threads of this process, from /proc/self/task.
int thread_count() {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* ent = ::readdir(d))
    if (ent->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

}  // namespace

TEST(SessionBurst, DefaultOptionsKeepABurstWholeForASlowExporter) {
  constexpr std::uint64_t kSpans = 4000;
  auto slow = std::make_shared<SlowExporter>(20ms);
  auto fast = std::make_shared<CollectingExporter>("fast");
  sg::Session session({}, {slow, fast});
  for (std::uint64_t i = 0; i < kSpans; ++i) SPYGLASS_SCOPE("burst");
  ASSERT_TRUE(session.collector().shutdown(60s));
  const auto c = session.collector().counters();
  EXPECT_EQ(c.offered, kSpans);
  EXPECT_EQ(c.rejected, 0u);  // 4000 < transit_capacity (65536)
  EXPECT_EQ(c.dispatched, kSpans);
  EXPECT_EQ(c.in_transit, 0u);
  for (const auto& e : session.collector().exporter_counters()) {
    SCOPED_TRACE(e.name);
    EXPECT_EQ(e.produced, e.sent + e.dropped + e.failed);
    EXPECT_EQ(e.pending, 0u);
    EXPECT_EQ(e.produced, kSpans);
    EXPECT_EQ(e.sent, kSpans);  // 4000 < buffer_capacity (32768): nothing shed
  }
  EXPECT_EQ(slow->count(), kSpans);
  EXPECT_EQ(fast->count(), kSpans);
}

TEST(SessionBurst, BufferSmallerThanTheBurstShedsTheOldestAndCountsThem) {
  constexpr std::uint64_t kSpans = 4000;
  auto slow = std::make_shared<SlowExporter>(20ms);
  sg::SessionOptions opts;
  opts.collector.buffer_capacity = 1024;
  sg::Session session(opts, {slow});
  for (std::uint64_t i = 0; i < kSpans; ++i) SPYGLASS_SCOPE("burst");
  ASSERT_TRUE(session.collector().shutdown(60s));
  const auto c = session.collector().counters();
  EXPECT_EQ(c.offered, kSpans);
  EXPECT_EQ(c.dispatched + c.rejected, kSpans);
  const auto e = session.collector().exporter_counters().at(0);
  EXPECT_EQ(e.produced, c.dispatched);
  EXPECT_EQ(e.produced, e.sent + e.dropped + e.failed);
  EXPECT_EQ(e.pending, 0u);
  EXPECT_EQ(e.failed, 0u);
  EXPECT_EQ(slow->count(), e.sent);
  EXPECT_GE(e.sent, 1024u);  // at least one full buffer got through
}

TEST(Unsampled, MetricsExportersGetEveryEventFlaggedSpanExportersNone) {
  auto metrics = std::make_shared<CollectingExporter>("metrics");
  metrics->set_accepts_unsampled(true);
  auto spans = std::make_shared<CollectingExporter>("spans");
  sg::SessionOptions opts;
  opts.sample_ratio = 0.0;
  opts.record_unsampled = true;
  sg::Session session(opts, {metrics, spans});
  for (int i = 0; i < 100; ++i) {
    SPYGLASS_SCOPE("unsampled.root");
    EXPECT_FALSE(sg::Context::current().sampled);
    SPYGLASS_SCOPE("unsampled.child");
  }
  ASSERT_TRUE(session.collector().flush());
  const auto got = metrics->events();
  ASSERT_EQ(got.size(), 200u);
  for (const auto& e : got) {
    EXPECT_FALSE(e.sampled());
    EXPECT_EQ(e.flags, sg::Event::kFlagUnsampled);  // converted from ticks, still flagged
  }
  EXPECT_EQ(spans->count(), 0u);
  EXPECT_EQ(session.collector().counters().offered, 200u);
  const auto per = session.collector().exporter_counters();
  EXPECT_EQ(per[0].produced, 200u);
  EXPECT_EQ(per[1].produced, 0u);
  const auto snap = session.collector().stats().snapshot();
  const auto* root = find_entry(snap, "unsampled.root");
  const auto* child = find_entry(snap, "unsampled.child");
  ASSERT_TRUE(root && child);
  EXPECT_EQ(root->count, 100u);
  EXPECT_EQ(child->count, 100u);
}

TEST(Unsampled, SampledAndUnsampledMixReachTheRightExporters) {
  auto metrics = std::make_shared<CollectingExporter>("metrics");
  metrics->set_accepts_unsampled(true);
  auto spans = std::make_shared<CollectingExporter>("spans");
  sg::Session session({}, {metrics, spans});
  // The caller's flag decides (parent-based): one sampled request, one not.
  for (const char* tp : {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}) {
    SPYGLASS_REQUEST_FROM(r, "/mixed", tp);
    SPYGLASS_SCOPE("mixed.child");
  }
  ASSERT_TRUE(session.collector().flush());
  EXPECT_EQ(metrics->count(), 4u);
  const auto exported = spans->events();
  ASSERT_EQ(exported.size(), 2u);
  for (const auto& e : exported) {
    EXPECT_TRUE(e.sampled());
    EXPECT_EQ(sg::to_hex(e.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  int unsampled = 0;
  for (const auto& e : metrics->events()) unsampled += e.sampled() ? 0 : 1;
  EXPECT_EQ(unsampled, 2);
}

TEST(Unsampled, NotRecordedAtAllWhenSwitchedOff) {
  auto metrics = std::make_shared<CollectingExporter>("metrics");
  metrics->set_accepts_unsampled(true);
  auto spans = std::make_shared<CollectingExporter>("spans");
  sg::SessionOptions opts;
  opts.sample_ratio = 0.0;
  opts.record_unsampled = false;
  sg::Session session(opts, {metrics, spans});
  for (int i = 0; i < 100; ++i) {
    SPYGLASS_SCOPE("off.root");
    SPYGLASS_SCOPE("off.child");
  }
  ASSERT_TRUE(session.collector().flush());
  const auto c = session.collector().counters();
  EXPECT_EQ(c.offered, 0u);  // nothing reached the collector
  EXPECT_EQ(metrics->count(), 0u);
  EXPECT_EQ(spans->count(), 0u);
  EXPECT_EQ(find_entry(session.collector().stats().snapshot(), "off.root"), nullptr);
}

TEST(Unsampled, ExcludedRoutesAndTheirChildrenReachNobody) {
  for (const double ratio : {1.0, 0.0}) {
    SCOPED_TRACE("sample_ratio " + std::to_string(ratio));
    auto metrics = std::make_shared<CollectingExporter>("metrics");
    metrics->set_accepts_unsampled(true);
    auto spans = std::make_shared<CollectingExporter>("spans");
    sg::SessionOptions opts;
    opts.sample_ratio = ratio;
    opts.exclude_routes = {"/health"};
    opts.exclude_route_prefixes = {"/static/"};
    sg::Session session(opts, {metrics, spans});
    for (int i = 0; i < 10; ++i) {
      {
        SPYGLASS_REQUEST(r, "/health");
        SPYGLASS_SCOPE("health.child");
        SPYGLASS_QUERY(q, "SELECT 1");
      }
      {
        SPYGLASS_REQUEST_FROM(r, "/static/app.js", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        SPYGLASS_SCOPE("static.child");
      }
    }
    { SPYGLASS_REQUEST(r, "/api"); }
    ASSERT_TRUE(session.collector().flush());
    EXPECT_EQ(session.collector().counters().offered, 1u);  // only /api
    ASSERT_EQ(metrics->count(), 1u);
    EXPECT_STREQ(metrics->events()[0].name, "/api");
    EXPECT_EQ(spans->count(), ratio == 1.0 ? 1u : 0u);
    const auto snap = session.collector().stats().snapshot();
    EXPECT_EQ(find_entry(snap, "/health"), nullptr);
    EXPECT_EQ(find_entry(snap, "health.child"), nullptr);
    EXPECT_EQ(find_entry(snap, "static.child"), nullptr);
    ASSERT_NE(find_entry(snap, "/api"), nullptr);
  }
}

TEST(SessionDisabled, OtelSdkDisabledRecordsNothingAndStartsNoThread) {
  for (const auto& [name, value] : std::vector<std::pair<const char*, const char*>>{
           {"OTEL_SDK_DISABLED", "true"}, {"OTEL_SDK_DISABLED", "TRUE"}, {"SPYGLASS_DISABLED", "1"}}) {
    SCOPED_TRACE(std::string(name) + "=" + value);
    auto sink = std::make_shared<CollectingExporter>();
    sink->set_accepts_unsampled(true);
    const int threads_before = thread_count();
    ASSERT_GT(threads_before, 0);
    {
      ScopedEnv env(name, value);
      sg::Session session({}, {sink});
      EXPECT_FALSE(session.enabled());
      EXPECT_EQ(sg::Session::current(), nullptr);
      {
        SPYGLASS_REQUEST(r, "/x");
        SPYGLASS_SCOPE("disabled.scope");
        EXPECT_FALSE(sg::Context::current().valid());
        EXPECT_TRUE(r.traceparent().empty());
        sg::emit_fn("disabled.fn", sg::clock::now(), sg::clock::now());
      }
      EXPECT_TRUE(session.collector().flush());
      EXPECT_EQ(thread_count(), threads_before);  // no collector or stage thread
      EXPECT_EQ(session.collector().counters().offered, 0u);
      EXPECT_TRUE(session.collector().exporter_counters().empty());
    }
    EXPECT_EQ(thread_count(), threads_before);
    EXPECT_EQ(sink->calls(), 0);  // never called, not even flush or shutdown
    EXPECT_EQ(sink->flushes(), 0);
    EXPECT_EQ(sink->shutdowns(), 0);
  }
  // Other values do not disable it.
  ScopedEnv env("OTEL_SDK_DISABLED", "false");
  auto sink = std::make_shared<CollectingExporter>();
  {
    sg::Session session({}, {sink});
    EXPECT_TRUE(session.enabled());
    { SPYGLASS_SCOPE("enabled.scope"); }
  }
  EXPECT_EQ(sink->count(), 1u);
  EXPECT_EQ(sink->shutdowns(), 1);
}

TEST(SharedState, RequestScopeIsTheCurrentContextAndScopesContinueItsTrace) {
  auto sink = std::make_shared<CollectingExporter>();
  sg::Session session({}, {sink});
  sg::Context request_ctx;
  {
    SPYGLASS_REQUEST(r, "/shared");
    request_ctx = r.context();
    const sg::Context current = sg::Context::current();
    ASSERT_TRUE(current.valid());
    EXPECT_EQ(current.trace_id, request_ctx.trace_id);
    EXPECT_EQ(current.span_id, request_ctx.span_id);
    EXPECT_TRUE(current.sampled);
    EXPECT_EQ(r.traceparent(),
              "00-" + sg::to_hex(current.trace_id) + "-" + sg::span_to_hex(current.span_id) + "-01");
    SPYGLASS_SCOPE("shared.inner");
    EXPECT_EQ(sg::Context::current().trace_id, request_ctx.trace_id);
  }
  EXPECT_FALSE(sg::Context::current().valid());
  ASSERT_TRUE(session.collector().flush());
  std::map<std::string, sg::Event> by_name;
  for (const auto& e : sink->events()) by_name[e.name] = e;
  ASSERT_EQ(by_name.size(), 2u);
  EXPECT_EQ(by_name.at("/shared").span_id, request_ctx.span_id);
  EXPECT_EQ(by_name.at("shared.inner").trace_id, request_ctx.trace_id);
  EXPECT_EQ(by_name.at("shared.inner").parent_span_id, request_ctx.span_id);
}
