// parse_traceparent never crashes or over-reads; whatever it accepts formats and parses
// back to the same ids and sampled flag.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "spyglass/traceparent.hpp"

namespace sg = spyglass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size copy, so that AddressSanitizer sees a read one past the end.
  auto buf = std::make_unique<char[]>(size == 0 ? 1 : size);
  if (size != 0) std::memcpy(buf.get(), data, size);
  const std::string_view in(buf.get(), size);
  const auto tp = sg::parse_traceparent(in);
  if (!tp) return 0;
  if (!tp->trace_id.valid() || tp->parent_id == 0) std::abort();

  char out[sg::kTraceParentSize];
  sg::format_traceparent(tp->trace_id, tp->parent_id, tp->sampled(), out);
  const auto again = sg::parse_traceparent(std::string_view(out, sizeof out));
  if (!again || again->trace_id != tp->trace_id || again->parent_id != tp->parent_id ||
      again->sampled() != tp->sampled() || again->flags != (tp->sampled() ? 1 : 0)) {
    std::abort();
  }
  // A version-00 header with flags 00/01 is exactly what format writes, once trimmed.
  std::string_view trimmed = in;
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) trimmed.remove_prefix(1);
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) trimmed.remove_suffix(1);
  if (trimmed.substr(0, 2) == "00" && tp->flags <= 1 && trimmed != std::string_view(out, sizeof out)) {
    std::abort();
  }
  return 0;
}
