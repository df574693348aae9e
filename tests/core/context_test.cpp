#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;

namespace {
struct SessionFixture : ::testing::Test {
  std::shared_ptr<CollectingExporter> sink = std::make_shared<CollectingExporter>();
  std::unique_ptr<sg::Session> session;
  void SetUp() override {
    session =
        std::make_unique<sg::Session>(sg::SessionOptions{}, std::vector<std::shared_ptr<sg::Exporter>>{sink});
  }
  std::vector<sg::Event> drain() {
    EXPECT_TRUE(session->collector().flush());
    return sink->events();
  }
  const sg::Event* find(const std::vector<sg::Event>& v, std::string_view name) {
    for (const auto& e : v)
      if (name == e.name) return &e;
    return nullptr;
  }
};
}  // namespace

using Context = SessionFixture;

TEST_F(Context, ScopeMakesChildSpanAndRestoresParent) {
  EXPECT_FALSE(sg::Context::current().valid());
  sg::SpanId outer_span = 0;
  {
    SPYGLASS_SCOPE("outer");
    const sg::Context outer = sg::Context::current();
    ASSERT_TRUE(outer.valid());
    outer_span = outer.span_id;
    {
      SPYGLASS_SCOPE("inner");
      const sg::Context inner = sg::Context::current();
      EXPECT_EQ(inner.trace_id, outer.trace_id);
      EXPECT_NE(inner.span_id, outer.span_id);
    }
    EXPECT_EQ(sg::Context::current().span_id, outer_span);
  }
  EXPECT_FALSE(sg::Context::current().valid());
  const auto events = drain();
  const auto* outer = find(events, "outer");
  const auto* inner = find(events, "inner");
  ASSERT_TRUE(outer && inner);
  EXPECT_EQ(inner->parent_span_id, outer->span_id);
  EXPECT_EQ(inner->trace_id, outer->trace_id);
  EXPECT_EQ(outer->parent_span_id, 0u);
  EXPECT_EQ(outer->span_id, outer_span);
  EXPECT_GE(outer->duration, inner->duration);
  EXPECT_LE(outer->start, inner->start);
}

TEST_F(Context, ExceptionRestoresParentAndMarksError) {
  {
    SPYGLASS_SCOPE("parent");
    const sg::Context before = sg::Context::current();
    try {
      SPYGLASS_SCOPE("thrower");
      throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(sg::Context::current().span_id, before.span_id);
  }
  const auto events = drain();
  ASSERT_TRUE(find(events, "thrower"));
  EXPECT_EQ(find(events, "thrower")->status, sg::Status::error);
  EXPECT_EQ(find(events, "parent")->status, sg::Status::ok);
}

namespace {
// Opens a scope in its destructor, which runs while an exception unwinds the stack, and
// records what the runtime and the scope's fast path report there.
struct OpensScopeWhileUnwinding {
  int* runtime_count;
  int* fast_count;
  ~OpensScopeWhileUnwinding() {
    *runtime_count = std::uncaught_exceptions();
    *fast_count = sg::detail::uncaught_exceptions();
    SPYGLASS_SCOPE("cleanup");  // ends normally: not an error
    try {
      SPYGLASS_SCOPE("cleanup-thrower");  // an exception leaves it: an error
      throw std::logic_error("inner");
    } catch (const std::logic_error&) {
    }
  }
};
}  // namespace

TEST_F(Context, ScopesInsideUnwindingJudgeOnlyTheirOwnException) {
  int runtime_count = -1, fast_count = -1;
  try {
    OpensScopeWhileUnwinding cleanup{&runtime_count, &fast_count};
    throw std::runtime_error("outer");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(runtime_count, 1);
  EXPECT_EQ(fast_count, 1);
  EXPECT_EQ(sg::detail::uncaught_exceptions(), 0);
  std::thread([] { EXPECT_EQ(sg::detail::uncaught_exceptions(), 0); }).join();
  const auto events = drain();
  ASSERT_TRUE(find(events, "cleanup"));
  ASSERT_TRUE(find(events, "cleanup-thrower"));
  EXPECT_EQ(find(events, "cleanup")->status, sg::Status::ok);
  EXPECT_EQ(find(events, "cleanup-thrower")->status, sg::Status::error);
}

TEST_F(Context, GuardCarriesContextToAnotherThread) {
  sg::Context handed;
  {
    SPYGLASS_SCOPE("request");
    handed = sg::Context::current();
    std::thread worker([handed] {
      EXPECT_FALSE(sg::Context::current().valid());
      {
        sg::ContextGuard guard(handed);
        SPYGLASS_SCOPE("pool-work");
      }
      EXPECT_FALSE(sg::Context::current().valid());
    });
    worker.join();
  }
  const auto events = drain();
  const auto* work = find(events, "pool-work");
  ASSERT_TRUE(work);
  EXPECT_EQ(work->trace_id, handed.trace_id);
  EXPECT_EQ(work->parent_span_id, handed.span_id);
  EXPECT_NE(work->thread_id, find(events, "request")->thread_id);
}

TEST_F(Context, RequestContinuesIncomingTraceparent) {
  std::string outgoing;
  {
    sg::RequestScope r("/orders/{id}", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "GET");
    r.status(201);
    r.bytes_in(10);
    r.bytes_out(20);
    outgoing = r.traceparent();
  }
  const auto events = drain();
  const auto* req = find(events, "/orders/{id}");
  ASSERT_TRUE(req);
  EXPECT_EQ(sg::to_hex(req->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(req->parent_span_id, 0x00f067aa0ba902b7ULL);
  EXPECT_EQ(req->http_status, 201);
  EXPECT_EQ(req->bytes_in, 10u);
  EXPECT_EQ(req->bytes_out, 20u);
  EXPECT_STREQ(req->detail, "GET");
  EXPECT_EQ(req->kind, sg::EventKind::request);
  EXPECT_EQ(outgoing, "00-4bf92f3577b34da6a3ce929d0e0e4736-" + sg::span_to_hex(req->span_id) + "-01");
  EXPECT_FALSE(sg::Context::current().valid());
}

TEST_F(Context, MalformedTraceparentStartsNewTrace) {
  for (const char* bad : {"", "garbage", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}) {
    sg::RequestScope r("/bad", bad);
    EXPECT_TRUE(sg::Context::current().valid()) << bad;
    EXPECT_NE(sg::to_hex(sg::Context::current().trace_id), "4bf92f3577b34da6a3ce929d0e0e4736") << bad;
  }
  const auto events = drain();
  int n = 0;
  for (const auto& e : events)
    if (std::string_view(e.name) == "/bad") {
      ++n;
      EXPECT_EQ(e.parent_span_id, 0u);
    }
  EXPECT_EQ(n, 6);
}
