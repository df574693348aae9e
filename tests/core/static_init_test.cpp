// Static-initialisation safety: this file's namespace-scope initialiser records a scope,
// reads the clock and reads the uncaught-exception count while an exception unwinds,
// all before main() and before any Session. That must be a harmless no-op, and the tick
// source decided then must be the one used for good. A binary of its own, so that
// nothing else reads the clock first.
#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;

namespace {

struct BeforeMain {
  int tick_source_before = -1;  // what the clock had decided before this initialiser
  bool context_inside_scope = true;
  bool context_after_scope = true;
  std::uint64_t tick = 0;
  std::uint64_t realtime_ns = 0;
  int tick_source = -1;
  int uncaught_while_unwinding = -1;
  int uncaught_after = -1;
};

// Reads the scope fast path's uncaught count while an exception unwinds past it.
struct ReadsUncaughtWhileUnwinding {
  int* out;
  ~ReadsUncaughtWhileUnwinding() {
    *out = sg::detail::uncaught_exceptions();
    SPYGLASS_SCOPE("static.unwinding");  // no Session yet: a no-op
  }
};

BeforeMain record_before_main() {
  BeforeMain r;
  r.tick_source_before = sg::clock::detail::tick_source.load();
  {
    SPYGLASS_SCOPE("static.init");
    r.context_inside_scope = sg::Context::current().valid();
  }
  r.context_after_scope = sg::Context::current().valid();
  r.tick = sg::clock::now();
  r.realtime_ns = sg::clock::realtime_ns();
  r.tick_source = sg::clock::detail::tick_source.load();
  try {
    ReadsUncaughtWhileUnwinding reader{&r.uncaught_while_unwinding};
    throw std::runtime_error("before main");
  } catch (const std::runtime_error&) {
  }
  r.uncaught_after = sg::detail::uncaught_exceptions();
  return r;
}

const BeforeMain g_before_main = record_before_main();

// Opens scopes in its destructor, during unwinding, once a Session exists.
struct OpensScopeWhileUnwinding {
  ~OpensScopeWhileUnwinding() {
    SPYGLASS_SCOPE("cleanup");  // ends normally: not an error
    try {
      SPYGLASS_SCOPE("cleanup-thrower");  // an exception leaves it: an error
      throw std::logic_error("inner");
    } catch (const std::logic_error&) {
    }
  }
};

}  // namespace

TEST(StaticInit, ScopeBeforeMainIsANoOp) {
  EXPECT_FALSE(g_before_main.context_inside_scope);
  EXPECT_FALSE(g_before_main.context_after_scope);
  EXPECT_FALSE(sg::Context::current().valid());
  EXPECT_EQ(sg::Session::current(), nullptr);
}

TEST(StaticInit, TickSourceIsDecidedOnceAndTicksConvertAcrossIt) {
  EXPECT_EQ(g_before_main.tick_source_before, 0);  // this initialiser read the clock first
  ASSERT_TRUE(g_before_main.tick_source == 1 || g_before_main.tick_source == 2) << g_before_main.tick_source;
  EXPECT_EQ(sg::clock::detail::tick_source.load(), g_before_main.tick_source);
  // A tick read before main converts to the wall clock read next to it: the conversion
  // uses the same source as the read (TSC cycles taken for ns, or the reverse, would be
  // off by years). 1 s covers the calibration error of so short an interval.
  const auto at = static_cast<std::int64_t>(sg::clock::tick_to_unix_ns(g_before_main.tick));
  const auto expected = static_cast<std::int64_t>(g_before_main.realtime_ns);
  EXPECT_LT(std::llabs(at - expected), 1'000'000'000LL) << "converted=" << at << " wall=" << expected;
  // A span recorded now starts after it.
  auto sink = std::make_shared<CollectingExporter>();
  {
    sg::Session session({}, {sink});
    { SPYGLASS_SCOPE("in.main"); }
    ASSERT_TRUE(session.collector().flush());
  }
  ASSERT_EQ(sink->count(), 1u);
  EXPECT_GT(sink->events()[0].start, g_before_main.realtime_ns);
  EXPECT_EQ(sg::clock::detail::tick_source.load(), g_before_main.tick_source);
}

TEST(StaticInit, UncaughtCountReadBeforeMainAndInScopesOpenedWhileUnwinding) {
  EXPECT_EQ(g_before_main.uncaught_while_unwinding, 1);
  EXPECT_EQ(g_before_main.uncaught_after, 0);
  auto sink = std::make_shared<CollectingExporter>();
  {
    sg::Session session({}, {sink});
    try {
      OpensScopeWhileUnwinding cleanup;
      throw std::runtime_error("outer");
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(sg::detail::uncaught_exceptions(), 0);
    ASSERT_TRUE(session.collector().flush());
  }
  const auto events = sink->events();
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    const std::string_view name = e.name;
    if (name == "cleanup") {
      EXPECT_EQ(e.status, sg::Status::ok);  // the outer exception is not its own
    } else {
      EXPECT_EQ(name, "cleanup-thrower");
      EXPECT_EQ(e.status, sg::Status::error);
    }
  }
}

TEST(StaticInit, ScopesUseTheOneLoadFastPathForTheUncaughtCount) {
  // The first read of the count happened while an exception was in flight (before
  // main); the runtime's layout check must not have been fooled by that into turning the
  // fast path off for the whole process.
  auto sink = std::make_shared<CollectingExporter>();
  sg::Session session({}, {sink});
  { SPYGLASS_SCOPE("fast.path"); }
  EXPECT_NE(sg::detail::tl_state.eh, nullptr);
}
