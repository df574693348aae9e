#pragma once
// What the OTLP exporter tests share: events, log capture and waiting on conditions.

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../fuzz/otlp/protoc_decode.hpp"
#include "../support/log_capture.hpp"
#include "../support/otlp_receiver.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/log.hpp"

namespace otlp_test {

/// `n` function events of one trace, span ids from `first_span` on.
inline std::vector<spyglass::Event> make_events(std::size_t n, std::uint64_t first_span = 1) {
  std::vector<spyglass::Event> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i].trace_id = {7, 8};
    v[i].span_id = first_span + i;
    v[i].kind = spyglass::EventKind::function;
    v[i].name = "work";
    v[i].start = 1'000'000 + i;
    v[i].duration = 1000;
  }
  return v;
}

using spyglass::test::LogCapture;

/// Skips the calling test's log checks when the log lost messages to its rate limit.
#define SPYGLASS_REQUIRE_COMPLETE_LOG(logs)                                                        \
  do {                                                                                             \
    if (!(logs).complete())                                                                        \
      GTEST_SKIP() << "spyglass::log's rate limit dropped messages in this process: run the test " \
                      "alone (as ctest does) to check them";                                       \
  } while (false)

/// Polls until `pred` holds or the (generous) timeout passes.
template <typename P>
bool eventually(P pred, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

/// Spans in one recorded traces request, decoded by protoc (0 when it cannot decode).
inline std::size_t spans_in(const spyglass_test::Request& req) {
  const auto d = spyglass_test::decode_traces(req.payload());
  EXPECT_EQ(d.exit_code, 0) << d.errors;
  if (d.exit_code != 0) return 0;
  return d.tree.at("resource_spans").at("scope_spans").all("spans").size();
}

inline void expect_balanced(const spyglass::otlp::OtlpCounters& c) {
  EXPECT_EQ(c.produced, c.sent + c.dropped + c.failed + c.pending)
      << "produced=" << c.produced << " sent=" << c.sent << " dropped=" << c.dropped << " failed=" << c.failed
      << " pending=" << c.pending;
}

}  // namespace otlp_test
