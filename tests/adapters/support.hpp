#pragma once
// Shared by the adapter tests: a Session around a body, and what it recorded.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../support/collecting_exporter.hpp"
#include "spyglass/spyglass.hpp"

namespace spyglass::test {

/// Runs `body` inside a Session and returns every event it recorded.
inline std::vector<Event> record(SessionOptions options, const std::function<void()>& body) {
  auto sink = std::make_shared<CollectingExporter>();
  {
    Session session(std::move(options), {sink});
    body();
    EXPECT_TRUE(session.collector().flush());
  }
  return sink->events();
}

/// The events of one kind, in the order recorded.
inline std::vector<Event> of_kind(const std::vector<Event>& events, EventKind kind) {
  std::vector<Event> out;
  for (const auto& e : events)
    if (e.kind == kind) out.push_back(e);
  return out;
}

}  // namespace spyglass::test
