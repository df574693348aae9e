// Compiled with SPYGLASS_ENABLED=0: the macros expand to nothing, user code still builds,
// and nothing is recorded even while a Session runs.
#include <gtest/gtest.h>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

static_assert(SPYGLASS_ENABLED == 0, "this test must be built with SPYGLASS_ENABLED=0");

namespace sg = spyglass;

TEST(Disabled, MacrosRecordNothing) {
  auto sink = std::make_shared<sg::test::CollectingExporter>();
  sg::Session session({}, {sink});
  {
    SPYGLASS_SCOPE("a");
    SPYGLASS_FUNCTION();
    SPYGLASS_QUERY(q, "SELECT 1");
    q.rows(2);
    q.error();
    SPYGLASS_REQUEST(r, "/x");
    r.status(200);
    r.bytes_in(1);
    EXPECT_TRUE(r.traceparent().empty());
    EXPECT_FALSE(sg::Context::current().valid());
  }
  auto fn = sg::traced("f", [](int x) { return x * 2; });
  EXPECT_EQ(fn(21), 42);
  ASSERT_TRUE(session.collector().flush());
  EXPECT_EQ(sink->count(), 0u);
}
