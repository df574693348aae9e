// json_escape output always parses as a JSON string (simdjson, which also validates
// UTF-8); valid UTF-8 input round-trips exactly. JsonWriter output always parses too.
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "spyglass/json.hpp"

namespace sg = spyglass;

namespace {

simdjson::dom::parser& parser() {
  static simdjson::dom::parser p;
  return p;
}

void check_escape(std::string_view in) {
  std::string json = "\"";
  sg::json_escape(in, json);
  json.push_back('"');
  simdjson::dom::element el;
  if (parser().parse(json).get(el) != simdjson::SUCCESS) std::abort();
  std::string_view decoded;
  if (el.get_string().get(decoded) != simdjson::SUCCESS) std::abort();
  const bool valid = simdjson::validate_utf8(in.data(), in.size());
  if (valid && decoded != in) std::abort();
  if (!valid && decoded.size() > in.size() * 3) std::abort();  // one U+FFFD per byte at most
}

void check_writer(std::string_view in) {
  double d = 0;
  std::int64_t i = 0;
  if (in.size() >= sizeof d) std::memcpy(&d, in.data(), sizeof d);
  if (in.size() >= sizeof d + sizeof i) std::memcpy(&i, in.data() + sizeof d, sizeof i);
  std::string out;
  sg::JsonWriter w(out);
  w.begin_object();
  w.key("o");  // the input as a key lives in a nested object, so it cannot shadow "d" or "i"
  w.begin_object();
  w.key(in);
  w.value(in);
  w.end_object();
  w.key("d");
  w.value(d);
  w.key("i");
  w.value(i);
  w.key("a");
  w.begin_array();
  w.value(static_cast<std::uint64_t>(i));
  w.null();
  w.value(in.size() % 2 == 0);
  w.end_array();
  w.end_object();
  simdjson::dom::element el;
  if (parser().parse(out).get(el) != simdjson::SUCCESS) std::abort();
  double got_d = 0;
  if (std::isfinite(d)) {
    if (el["d"].get_double().get(got_d) != simdjson::SUCCESS || got_d != d) std::abort();
  } else if (!el["d"].is_null()) {
    std::abort();
  }
  std::int64_t got_i = 0;
  if (el["i"].get_int64().get(got_i) != simdjson::SUCCESS || got_i != i) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_escape(in);
  check_writer(in);
  return 0;
}
