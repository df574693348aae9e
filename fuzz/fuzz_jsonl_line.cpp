// Whole JSONL lines as the exporter formats them, for events with arbitrary names,
// details, kinds and numbers: every line is one '\n'-terminated JSON object that simdjson
// parses (which also validates UTF-8), with the schema's members in order, the name and
// detail read back as the input with the one UTF-8 repair rule applied, and the numbers
// exact. Both the exporter's formatter (with its per-second date cache, kept across inputs)
// and jsonl::append_line must give the same line.
#include <fuzzer/FuzzedDataProvider.h>
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "format.hpp"
#include "spyglass/exporters/jsonl.hpp"
#include "spyglass/utf8.hpp"

namespace sg = spyglass;

namespace {

simdjson::dom::parser& parser() {
  static simdjson::dom::parser p;
  return p;
}

void require(bool ok) {
  if (!ok) std::abort();
}

std::string repaired(std::string_view s) {
  std::string out;
  sg::append_utf8_repaired(s, out);
  return out;
}

void check_string(const simdjson::dom::object& obj, const char* key, const std::string& want) {
  std::string_view got;
  require(obj[key].get_string().get(got) == simdjson::SUCCESS);
  require(got == want);
}

void check_uint(const simdjson::dom::object& obj, const char* key, std::uint64_t want) {
  std::uint64_t got = 0;
  require(obj[key].get_uint64().get(got) == simdjson::SUCCESS);
  require(got == want);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  sg::Event e;
  e.kind = static_cast<sg::EventKind>(in.ConsumeIntegralInRange<int>(0, 4));
  e.status = in.ConsumeBool() ? sg::Status::error : sg::Status::ok;
  e.start = in.ConsumeIntegral<std::uint64_t>();
  e.duration = in.ConsumeIntegral<std::uint64_t>();
  e.trace_id = {in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint64_t>()};
  e.span_id = in.ConsumeIntegral<std::uint64_t>();
  e.parent_span_id = in.ConsumeBool() ? 0 : in.ConsumeIntegral<std::uint64_t>();
  e.thread_id = in.ConsumeIntegral<std::uint32_t>();
  e.http_status = in.ConsumeIntegral<std::uint16_t>();
  e.bytes_in = in.ConsumeIntegral<std::uint64_t>();
  e.bytes_out = in.ConsumeIntegral<std::uint64_t>();
  e.rows = in.ConsumeIntegral<std::uint64_t>();
  // Events carry NUL-terminated strings: what the writer sees ends at the first NUL.
  const std::string detail = in.ConsumeRandomLengthString(64);
  const std::string peer = in.ConsumeRandomLengthString(64);
  const std::string name = in.ConsumeRemainingBytesAsString();
  e.name = name.c_str();
  e.detail = detail.c_str();
  e.peer = peer.c_str();
  const std::string_view name_seen(e.name);
  const std::string_view detail_seen(e.detail);
  const std::string_view peer_seen(e.peer);

  static sg::jsonl::detail::LineFormatter cached;  // keeps its date cache across inputs
  std::string line;
  cached.append(e, line);
  std::string fresh;
  sg::jsonl::append_line(e, fresh);
  require(line == fresh);

  require(line.size() >= 2 && line.back() == '\n');
  require(line.find('\n') == line.size() - 1);  // one line, whatever the name holds
  require(sg::is_valid_utf8(line));
  simdjson::dom::element doc;
  require(parser().parse(line.data(), line.size() - 1).get(doc) == simdjson::SUCCESS);
  simdjson::dom::object obj;
  require(doc.get_object().get(obj) == simdjson::SUCCESS);

  char ts[sg::jsonl::kTimestampSize];
  sg::jsonl::format_rfc3339(e.start, ts);
  check_string(obj, "ts", std::string(ts, sizeof ts));
  check_string(obj, "kind", std::string(sg::to_string(e.kind)));
  check_string(obj, "name", repaired(name_seen));
  check_uint(obj, "dur_ns", e.duration);
  check_uint(obj, "thread", e.thread_id);
  check_string(obj, "status", std::string(sg::to_string(e.status)));
  require(obj["parent_span_id"].error() ==
          (e.parent_span_id == 0 ? simdjson::NO_SUCH_FIELD : simdjson::SUCCESS));
  std::size_t members = 8 + (e.parent_span_id != 0 ? 1 : 0);
  const bool has_detail = !detail_seen.empty();
  if (e.kind == sg::EventKind::request || e.kind == sg::EventKind::client) {
    check_uint(obj, "http_status", e.http_status);
    check_uint(obj, "bytes_in", e.bytes_in);
    check_uint(obj, "bytes_out", e.bytes_out);
    if (has_detail) check_string(obj, "method", repaired(detail_seen));
    members += 3 + (has_detail ? 1 : 0);
    if (e.kind == sg::EventKind::client && !peer_seen.empty()) {
      check_string(obj, "server", repaired(peer_seen));
      ++members;
    }
  } else if (e.kind == sg::EventKind::db) {
    check_uint(obj, "rows", e.rows);
    if (has_detail) check_string(obj, "db_system", repaired(detail_seen));
    members += 1 + (has_detail ? 1 : 0);
  }
  require(obj.size() == members);
  return 0;
}
