#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;

namespace {
std::vector<sg::Event> run_session(sg::SessionOptions opts, const std::function<void()>& body) {
  auto sink = std::make_shared<CollectingExporter>();
  {
    sg::Session session(std::move(opts), {sink});
    body();
    EXPECT_TRUE(session.collector().flush());
  }
  return sink->events();
}
std::map<std::string, std::vector<sg::Event>> by_name(const std::vector<sg::Event>& v) {
  std::map<std::string, std::vector<sg::Event>> m;
  for (const auto& e : v) m[e.name].push_back(e);
  return m;
}

int add(int a, int b) {
  SPYGLASS_FUNCTION();
  return a + b;
}
}  // namespace

TEST(Macros, AllKindsSeveralInOneScope) {
  const auto events = by_name(run_session({}, [] {
    SPYGLASS_SCOPE("handler");
    SPYGLASS_SCOPE("handler.second");
    SPYGLASS_QUERY(q, "SELECT * FROM users WHERE id = 42 AND name = 'bob'");
    q.rows(3);
    SPYGLASS_QUERY(q2, "UPDATE t1 SET col2 = 7");
    q2.error();
    SPYGLASS_REQUEST(r, "/api/users");
    r.status(503);
    r.bytes_out(99);
    EXPECT_EQ(add(2, 3), 5);
  }));
  ASSERT_EQ(events.count("handler"), 1u);
  ASSERT_EQ(events.count("handler.second"), 1u);
  const auto& h1 = events.at("handler")[0];
  const auto& h2 = events.at("handler.second")[0];
  EXPECT_EQ(h2.parent_span_id, h1.span_id);
  ASSERT_EQ(events.count("SELECT * FROM users WHERE id = ? AND name = ?"), 1u);
  const auto& q = events.at("SELECT * FROM users WHERE id = ? AND name = ?")[0];
  EXPECT_EQ(q.kind, sg::EventKind::db);
  EXPECT_EQ(q.rows, 3u);
  EXPECT_EQ(q.status, sg::Status::ok);
  ASSERT_EQ(events.count("UPDATE t1 SET col2 = ?"), 1u);
  EXPECT_EQ(events.at("UPDATE t1 SET col2 = ?")[0].status, sg::Status::error);
  const auto& r = events.at("/api/users")[0];
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.status, sg::Status::error);
  EXPECT_EQ(r.bytes_out, 99u);
  bool found_add = false;
  for (const auto& [name, v] : events)
    if (name.find("add") != std::string::npos && v[0].kind == sg::EventKind::function) found_add = true;
  EXPECT_TRUE(found_add);
}

// Scopes write their event in place, field by field of raw storage: every field must
// come out set, or zero when the scope was given no value for it.
TEST(Macros, EveryFieldOfEachScopeKind) {
  sg::Context request_ctx, query_ctx, fn_ctx;
  const auto events = by_name(run_session({}, [&] {
    sg::RequestScope r("/orders/{id}", {}, "POST");
    request_ctx = r.context();
    {
      sg::QueryScope q("SELECT 1", "sqlite");
      query_ctx = q.context();
    }
    {
      SPYGLASS_SCOPE("plain");
      fn_ctx = sg::Context::current();
    }
  }));
  const auto tid = static_cast<std::uint32_t>(gettid());
  ASSERT_EQ(events.count("/orders/{id}"), 1u);
  const auto& r = events.at("/orders/{id}")[0];
  EXPECT_EQ(r.kind, sg::EventKind::request);
  EXPECT_STREQ(r.detail, "POST");
  EXPECT_EQ(r.trace_id, request_ctx.trace_id);
  EXPECT_EQ(r.span_id, request_ctx.span_id);
  EXPECT_EQ(r.parent_span_id, 0u);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_EQ(r.bytes_in, 0u);
  EXPECT_EQ(r.bytes_out, 0u);

  ASSERT_EQ(events.count("SELECT ?"), 1u);
  const auto& q = events.at("SELECT ?")[0];
  EXPECT_EQ(q.kind, sg::EventKind::db);
  EXPECT_STREQ(q.detail, "sqlite");
  EXPECT_EQ(q.span_id, query_ctx.span_id);
  EXPECT_EQ(q.parent_span_id, request_ctx.span_id);
  EXPECT_EQ(q.rows, 0u);

  ASSERT_EQ(events.count("plain"), 1u);
  const auto& f = events.at("plain")[0];
  EXPECT_EQ(f.kind, sg::EventKind::function);
  EXPECT_STREQ(f.detail, "");
  EXPECT_EQ(f.span_id, fn_ctx.span_id);
  EXPECT_EQ(f.parent_span_id, request_ctx.span_id);

  for (const auto* e : {&r, &q, &f}) {
    SCOPED_TRACE(e->name);
    EXPECT_EQ(e->trace_id, request_ctx.trace_id);
    EXPECT_NE(e->span_id, 0u);
    EXPECT_EQ(e->thread_id, tid);
    EXPECT_EQ(e->status, sg::Status::ok);
    EXPECT_EQ(e->flags, 0);  // sampled, times converted to ns
    EXPECT_TRUE(e->sampled());
  }
}

TEST(Macros, TracedRecordsEachCallAndRethrows) {
  const auto events = by_name(run_session({}, [] {
    auto square = sg::traced("square", [](int x) { return x * x; });
    EXPECT_EQ(square(3), 9);
    EXPECT_EQ(square(4), 16);
    auto failing = sg::traced("failing", [](int) -> int { throw std::invalid_argument("bad"); });
    EXPECT_THROW(failing(1), std::invalid_argument);
  }));
  ASSERT_EQ(events.count("square"), 1u);
  EXPECT_EQ(events.at("square").size(), 2u);
  ASSERT_EQ(events.at("failing").size(), 1u);
  EXPECT_EQ(events.at("failing")[0].status, sg::Status::error);
}

TEST(Macros, NoOpsWithoutSession) {
  // Before any Session: nothing to record into, nothing crashes, no context leaks.
  {
    SPYGLASS_SCOPE("nowhere");
    SPYGLASS_QUERY(q, "SELECT 1");
    q.rows(1);
    SPYGLASS_REQUEST(r, "/x");
    r.status(200);
    EXPECT_FALSE(sg::Context::current().valid());
  }
  auto sink = std::make_shared<CollectingExporter>();
  { sg::Session s({}, {sink}); }
  // After it ended: still a no-op.
  { SPYGLASS_SCOPE("after"); }
  EXPECT_EQ(sink->count(), 0u);
  EXPECT_EQ(sg::Session::current(), nullptr);
}

TEST(Macros, SecondSessionIsRejected) {
  sg::Session first;
  EXPECT_THROW(sg::Session second, std::logic_error);
}

TEST(Emitter, EmitFunctionsUseCurrentContext) {
  const auto events = by_name(run_session({}, [] {
    SPYGLASS_SCOPE("parent");
    const auto t0 = sg::clock::now();
    const auto t1 = sg::clock::now();
    sg::emit_fn(std::string("dynamic.") + "name", t0, t1);
    sg::emit_db("SELECT * FROM t WHERE a IN (1, 2, 3)", t0, t1, 5, sg::Status::ok, "postgresql");
    sg::emit_req("/health", t0, t1, 200, 1, 2, "GET");
  }));
  const auto parent = events.at("parent")[0];
  ASSERT_EQ(events.count("dynamic.name"), 1u);
  EXPECT_EQ(events.at("dynamic.name")[0].parent_span_id, parent.span_id);
  ASSERT_EQ(events.count("SELECT * FROM t WHERE a IN (?)"), 1u);
  EXPECT_STREQ(events.at("SELECT * FROM t WHERE a IN (?)")[0].detail, "postgresql");
  EXPECT_EQ(events.at("SELECT * FROM t WHERE a IN (?)")[0].rows, 5u);
  EXPECT_EQ(events.at("/health")[0].http_status, 200);
}

TEST(Emitter, TimesAreConvertedToUnixNanoseconds) {
  const std::uint64_t before = sg::clock::realtime_ns();
  const auto events = run_session({}, [] {
    SPYGLASS_SCOPE("sleepy");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  const std::uint64_t after = sg::clock::realtime_ns();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GE(events[0].start + 2'000'000, before);  // 2 ms slack for calibration error
  EXPECT_LE(events[0].start, after);
  EXPECT_GE(events[0].duration, 19'000'000u);
  EXPECT_LT(events[0].duration, 2'000'000'000u);
  EXPECT_EQ(events[0].flags & sg::Event::kFlagTicks, 0);
}

TEST(Sampling, RatioDecidedAtRootAndInherited) {
  sg::SessionOptions opts;
  opts.sample_ratio = 0.25;
  const auto events = run_session(opts, [] {
    for (int i = 0; i < 4000; ++i) {
      SPYGLASS_SCOPE("root");
      SPYGLASS_SCOPE("child");
    }
  });
  const auto m = by_name(events);
  const std::size_t roots = m.count("root") ? m.at("root").size() : 0;
  const std::size_t children = m.count("child") ? m.at("child").size() : 0;
  EXPECT_EQ(roots, children);  // a child is recorded exactly when its root is
  // Binomial(4000, 0.25): mean 1000, sd ~27; 6 sd either side.
  EXPECT_GT(roots, 840u);
  EXPECT_LT(roots, 1160u);
}

TEST(Sampling, ZeroRecordsNothingOneRecordsAll) {
  sg::SessionOptions none;
  none.sample_ratio = 0.0;
  EXPECT_TRUE(run_session(none, [] {
                for (int i = 0; i < 100; ++i) SPYGLASS_SCOPE("x");
              }).empty());
  EXPECT_EQ(run_session({},
                        [] {
                          for (int i = 0; i < 100; ++i) SPYGLASS_SCOPE("x");
                        })
                .size(),
            100u);
}

TEST(Sampling, RemoteParentDecidesUnlessSamplingIsNotParentBased) {
  // Caller flags: sampled (-01) and not sampled (-00). Trace ids whose low half is small
  // pass a 0.5 ratio; ones whose low half is large do not.
  const std::string low = "00-4bf92f3577b34da60000000000000001-00f067aa0ba902b7-";
  const std::string high = "00-4bf92f3577b34da6ffffffffffffff00-00f067aa0ba902b7-";
  const auto requests = [&] {
    for (const std::string& tp : {low + "01", low + "00", high + "01", high + "00"}) {
      SPYGLASS_REQUEST_FROM(r, "/in", tp);
      SPYGLASS_SCOPE("child");
    }
  };
  const auto traces = [](const std::vector<sg::Event>& events) {
    std::multiset<std::string> ids;
    for (const auto& e : events)
      if (std::string_view(e.name) == "/in") ids.insert(sg::to_hex(e.trace_id).substr(16));
    return ids;
  };
  sg::SessionOptions opts;
  opts.sample_ratio = 0.5;
  // Parent-based (default): exactly the caller's sampled requests, whatever the ratio.
  auto events = run_session(opts, requests);
  EXPECT_EQ(traces(events), (std::multiset<std::string>{"0000000000000001", "ffffffffffffff00"}));
  EXPECT_EQ(by_name(events).at("child").size(), 2u);
  // Not parent-based: the ratio decides from the trace id, the caller's flag is ignored.
  opts.parent_based = false;
  events = run_session(opts, requests);
  EXPECT_EQ(traces(events), (std::multiset<std::string>{"0000000000000001", "0000000000000001"}));
  EXPECT_EQ(by_name(events).at("child").size(), 2u);
}

TEST(Sampling, RatioZeroRecordsNoTraceAndOneRecordsEveryTrace) {
  // The extreme low halves of a trace id: all zeros and all ones.
  const std::string zero = "00-4bf92f3577b34da60000000000000000-00f067aa0ba902b7-01";
  const std::string ones = "00-4bf92f3577b34da6ffffffffffffffff-00f067aa0ba902b7-00";
  const auto requests = [&] {
    for (const std::string& tp : {zero, ones}) {
      SPYGLASS_REQUEST_FROM(r, "/in", tp);
    }
  };
  sg::SessionOptions opts;
  opts.parent_based = false;
  opts.sample_ratio = 0.0;
  EXPECT_TRUE(run_session(opts, requests).empty());
  opts.sample_ratio = 1.0;
  EXPECT_EQ(run_session(opts, requests).size(), 2u);
}

TEST(Sampling, RouteExclusionExactAndPrefix) {
  sg::SessionOptions opts;
  opts.exclude_routes = {"/health"};
  opts.exclude_route_prefixes = {"/static/"};
  const auto m = by_name(run_session(opts, [] {
    for (const char* route : {"/health", "/healthz", "/static/app.js", "/api", "/static"}) {
      SPYGLASS_REQUEST(r, route);
      SPYGLASS_SCOPE("inside");
      r.status(200);
    }
  }));
  EXPECT_EQ(m.count("/health"), 0u);
  EXPECT_EQ(m.count("/static/app.js"), 0u);
  EXPECT_EQ(m.count("/healthz"), 1u);
  EXPECT_EQ(m.count("/api"), 1u);
  EXPECT_EQ(m.count("/static"), 1u);
  EXPECT_EQ(m.at("inside").size(), 3u);  // children of excluded requests are not recorded
}

TEST(Intern, SameTextSamePointerAndBoundedTable) {
  const std::string a = "route/" + std::to_string(7);
  const char* p1 = sg::intern(a);
  const char* p2 = sg::intern(std::string("route/7"));
  EXPECT_EQ(p1, p2);
  EXPECT_STREQ(p1, "route/7");
  const auto before = sg::intern_stats();
  sg::set_intern_limits({.max_names = before.names + 10});
  for (int i = 0; i < 100; ++i) sg::intern("overflow-test-" + std::to_string(i));
  const auto after = sg::intern_stats();
  EXPECT_EQ(after.names, before.names + 10);
  EXPECT_EQ(after.overflowed - before.overflowed, 90u);
  EXPECT_STREQ(sg::intern("overflow-test-99"), sg::kOverflowName);
  EXPECT_STREQ(sg::intern("overflow-test-0"), "overflow-test-0");  // existing names still resolve
  sg::set_intern_limits({});
}
