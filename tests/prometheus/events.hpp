#pragma once
// Building events as the collector hands them to exporters (times already in ns).

#include <cstdint>

#include "spyglass/event.hpp"

namespace spyglass::test {

inline Event make_event(EventKind kind, const char* name, std::uint64_t duration_ns,
                        Status status = Status::ok) {
  Event e;
  e.kind = kind;
  e.name = name;
  e.duration = duration_ns;
  e.start = 1'700'000'000'000'000'000ULL;
  e.status = status;
  return e;
}

constexpr std::uint64_t kMs = 1'000'000;

}  // namespace spyglass::test
