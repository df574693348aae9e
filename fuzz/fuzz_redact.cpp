// redact_sql never crashes, never grows its input, is idempotent, and leaves no single
// quote behind (a quote can survive only inside a quoted identifier).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "spyglass/redact.hpp"

namespace sg = spyglass;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto buf = std::make_unique<char[]>(size == 0 ? 1 : size);
  if (size != 0) std::memcpy(buf.get(), data, size);
  const std::string_view in(buf.get(), size);

  const std::string once = sg::redact_sql(in);
  if (once.size() > in.size()) std::abort();
  if (sg::redact_sql(once) != once) std::abort();
  if (!once.empty() && (once.front() == ' ' || once.back() == ' ')) std::abort();
  if (in.find_first_of("\"`") == std::string_view::npos && once.find('\'') != std::string::npos) std::abort();

  // The appending overload writes the same text after whatever is already there.
  std::string appended = "(prefix";
  sg::redact_sql(in, appended);
  if (appended.compare(0, 7, "(prefix") != 0 || appended.compare(7, std::string::npos, once) != 0)
    std::abort();
  return 0;
}
