// libFuzzer target: events with arbitrary name bytes, kinds, statuses, durations, rows and
// bytes, and an application metric with arbitrary label values, go through the
// exporter's recording and its text exposition. The output must be valid UTF-8 (checked
// by simdjson, not by the library's own rule), every line a well-formed HELP, TYPE or
// sample line of the text format (the grammar is checked here, independently of the
// serialiser), and every event's name must come back, unescaped, as the name label of
// its spyglass_events_total series, equal to the name repaired by the one UTF-8 rule.

#include <fuzzer/FuzzedDataProvider.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>

#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/utf8.hpp"

namespace sg = spyglass;

namespace {

[[noreturn]] void fail(const char* what, std::string_view line) {
  std::fprintf(stderr, "Prometheus exposition check failed: %s\n%.*s\n", what, static_cast<int>(line.size()),
               line.data());
  std::abort();
}

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

/// Reads a metric (or, without colons, label) name at `i`; false when there is none.
bool read_name(std::string_view s, std::size_t& i, bool colons, std::string* out = nullptr) {
  const std::size_t start = i;
  if (i >= s.size() || !name_start(s[i]) || (!colons && s[i] == ':')) return false;
  while (i < s.size() && name_char(s[i]) && (colons || s[i] != ':')) ++i;
  if (out != nullptr) *out = std::string(s.substr(start, i - start));
  return true;
}

/// A sample value: a float as Go's ParseFloat takes it, +Inf, -Inf or NaN.
bool valid_value(std::string_view v) {
  if (v == "+Inf" || v == "-Inf" || v == "NaN") return true;
  if (v.empty()) return false;
  const std::string copy(v);
  char* end = nullptr;
  std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size() && copy.find_first_of("xXpP") == std::string::npos;
}

/// Checks one sample line; returns its metric name and, when present, its unescaped
/// `name` label.
std::string check_sample(std::string_view line, std::string* name_label) {
  std::size_t i = 0;
  std::string metric;
  if (!read_name(line, i, true, &metric)) fail("sample line without a metric name", line);
  if (i < line.size() && line[i] == '{') {
    ++i;
    bool first = true;
    while (i < line.size() && line[i] != '}') {
      if (!first) {
        if (line[i] != ',') fail("labels not separated by ','", line);
        ++i;
      }
      first = false;
      std::string label;
      if (!read_name(line, i, false, &label)) fail("bad label name", line);
      if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') fail("label without =\"", line);
      i += 2;
      std::string value;
      for (;;) {
        if (i >= line.size()) fail("unterminated label value", line);
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) fail("escape at end of line", line);
          const char e = line[i++];
          if (e == 'n') {
            value.push_back('\n');
          } else if (e == '\\' || e == '"') {
            value.push_back(e);
          } else {
            fail("unknown escape in a label value", line);
          }
        } else {
          value.push_back(c);
        }
      }
      if (label == "name" && name_label != nullptr) *name_label = value;
    }
    if (i >= line.size()) fail("unterminated label set", line);
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') fail("no space before the value", line);
  ++i;
  const std::string_view rest = line.substr(i);
  const auto sp = rest.find(' ');
  if (!valid_value(rest.substr(0, sp))) fail("bad sample value", line);
  if (sp != std::string_view::npos) {
    const std::string_view ts = rest.substr(sp + 1);
    if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string_view::npos)
      fail("bad timestamp", line);
  }
  return metric;
}

void check_comment(std::string_view line) {
  std::size_t i;
  if (line.starts_with("# HELP ")) {
    i = 7;
    if (!read_name(line, i, true)) fail("HELP without a metric name", line);
    for (std::size_t k = i; k < line.size(); ++k) {
      if (line[k] == '\\' && (k + 1 >= line.size() || (line[k + 1] != 'n' && line[k + 1] != '\\')))
        fail("bad escape in HELP", line);
      if (line[k] == '\\') ++k;
    }
  } else if (line.starts_with("# TYPE ")) {
    i = 7;
    if (!read_name(line, i, true)) fail("TYPE without a metric name", line);
    const std::string_view type = line.substr(i);
    if (type != " counter" && type != " gauge" && type != " histogram" && type != " summary" &&
        type != " untyped")
      fail("unknown TYPE", line);
  } else {
    fail("a comment that is neither HELP nor TYPE", line);
  }
}

sg::prom::PrometheusOptions fuzz_options() {
  sg::prom::PrometheusOptions o;
  o.listen_address.clear();
  o.process_metrics = false;
  o.max_series = 1u << 30;  // every name gets its series: each must come back
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  // Names outlive the exporter (a fresh one per input), as interned names do.
  std::deque<std::string> names;
  std::vector<sg::Event> batch;
  std::set<std::string> expected;
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 8);
  for (std::size_t k = 0; k < n; ++k) {
    names.push_back(in.ConsumeRandomLengthString(64));
    sg::Event e;
    e.kind = static_cast<sg::EventKind>(in.ConsumeIntegralInRange<int>(0, 3));
    e.status = in.ConsumeBool() ? sg::Status::error : sg::Status::ok;
    e.name = names.back().c_str();  // a name with a NUL is its text up to it, as C strings go
    e.duration = in.ConsumeIntegral<std::uint64_t>();
    e.rows = in.ConsumeIntegral<std::uint64_t>();
    e.bytes_in = in.ConsumeIntegral<std::uint64_t>();
    e.bytes_out = in.ConsumeIntegral<std::uint64_t>();
    if (in.ConsumeBool()) e.flags |= sg::Event::kFlagUnsampled;
    batch.push_back(e);
    std::string label;
    sg::append_utf8_repaired(e.name, label);
    expected.insert(label);
  }
  const std::string app_label = in.ConsumeRandomLengthString(64);
  sg::prom::PrometheusExporter exp(fuzz_options());
  exp.export_batch(batch);
  if (simdjson::validate_utf8(app_label.data(), app_label.size())) {
    // prometheus-cpp takes label values as they are: the application's own metrics must be
    // valid UTF-8 already, as the text format requires.
    ::prometheus::BuildCounter()
        .Name("app_fuzz_total")
        .Help("Fuzzed labels.")
        .Register(*exp.registry())
        .Add({{"value", app_label}})
        .Increment();
  }

  const std::string text = exp.scrape();
  if (!simdjson::validate_utf8(text.data(), text.size())) fail("exposition is not valid UTF-8", "");
  std::set<std::string> seen;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) fail("empty line", line);
    if (line[0] == '#') {
      check_comment(line);
      continue;
    }
    std::string name_label;
    if (check_sample(line, &name_label) == "spyglass_events_total") seen.insert(name_label);
  }
  if (!text.empty() && text.back() != '\n') fail("exposition does not end with a newline", "");
  for (const auto& label : expected) {
    if (seen.count(label) == 0) fail("an event's name is missing from spyglass_events_total", label);
  }
  return 0;
}
