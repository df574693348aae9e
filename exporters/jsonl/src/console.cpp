#include "spyglass/exporters/console.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "spyglass/exporters/jsonl.hpp"
#include "spyglass/json.hpp"
#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE {

namespace {

constexpr std::string_view kReset = "\x1b[0m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kCyan = "\x1b[36m";

/// Appends `text` wrapped in `color` when colouring.
void painted(std::string& out, bool color, std::string_view code, std::string_view text) {
  if (color) out.append(code);
  out.append(text);
  if (color) out.append(kReset);
}

void append_printf(std::string& out, const char* fmt, double v) {
  char b[32];
  const int n = std::snprintf(b, sizeof b, fmt, v);
  if (n > 0)
    out.append(b, static_cast<std::size_t>(n) < sizeof b ? static_cast<std::size_t>(n) : sizeof b - 1);
}

/// 850ns, 12.35us, 12.35ms, 1.234s.
std::string human_duration(std::uint64_t ns) {
  std::string s;
  if (ns < 1000) {
    s = std::to_string(ns) + "ns";
  } else if (ns < 1000000) {
    append_printf(s, "%.2fus", static_cast<double>(ns) / 1e3);
  } else if (ns < 1000000000) {
    append_printf(s, "%.2fms", static_cast<double>(ns) / 1e6);
  } else {
    append_printf(s, "%.3fs", static_cast<double>(ns) / 1e9);
  }
  return s;
}

/// 512B, 3.4kB, 12.0MB.
std::string human_bytes(std::uint64_t b) {
  std::string s;
  if (b < 1000) {
    s = std::to_string(b) + "B";
  } else if (b < 1000000) {
    append_printf(s, "%.1fkB", static_cast<double>(b) / 1e3);
  } else if (b < 1000000000) {
    append_printf(s, "%.1fMB", static_cast<double>(b) / 1e6);
  } else {
    append_printf(s, "%.1fGB", static_cast<double>(b) / 1e9);
  }
  return s;
}

/// The first 8 hex digits of an id, "-" for 0.
std::string_view short_id(std::uint64_t id, char* buf) {
  if (id == 0) return "-";
  to_hex(id, buf);
  return {buf, 8};
}

}  // namespace

ConsoleExporter::ConsoleExporter(ConsoleOptions options) : stream_(options.stream) {
  switch (options.color) {
    case ColorMode::always: color_ = true; break;
    case ColorMode::never: color_ = false; break;
    case ColorMode::automatic: {
      const char* no_color = std::getenv("NO_COLOR");
      color_ = stream_ != nullptr && ::isatty(::fileno(stream_)) == 1 &&
               (no_color == nullptr || no_color[0] == '\0');
      break;
    }
  }
}

void ConsoleExporter::format(const Event& e, bool color, std::string& out) {
  // Microseconds are plenty for reading; the JSONL exporter keeps nanoseconds.
  char ts[jsonl::kTimestampSize];
  jsonl::format_rfc3339(e.start, ts);
  out.append(ts, 26).push_back('Z');
  out.push_back(' ');

  const std::string_view kind = to_string(e.kind);
  painted(out, color, kCyan, kind);
  out.append(kind.size() < 9 ? 9 - kind.size() : 1, ' ');

  if (color) out.append(kBold);
  if (e.detail != nullptr && e.detail[0] != '\0' &&
      (e.kind == EventKind::request || e.kind == EventKind::db || e.kind == EventKind::client)) {
    json_escape(e.detail, out);
    out.push_back(' ');
  }
  json_escape(e.name != nullptr ? std::string_view(e.name) : std::string_view(), out);
  if (color) out.append(kReset);
  out.push_back(' ');

  painted(out, color, kYellow, human_duration(e.duration));
  out.push_back(' ');
  painted(out, color, e.status == Status::ok ? kGreen : kRed, to_string(e.status));

  if (e.kind == EventKind::client && e.peer != nullptr && e.peer[0] != '\0') {
    out.append(" server=");
    json_escape(e.peer, out);
  }
  if (e.kind == EventKind::request || e.kind == EventKind::client) {
    out.append(" http=").append(std::to_string(e.http_status));
    out.append(" in=").append(human_bytes(e.bytes_in));
    out.append(" out=").append(human_bytes(e.bytes_out));
  } else if (e.kind == EventKind::db) {
    out.append(" rows=").append(std::to_string(e.rows));
  }

  char b[16];
  if (color) out.append(kDim);
  out.append(" trace=").append(short_id(e.trace_id.hi, b));
  out.append(" span=").append(short_id(e.span_id, b));
  out.append(" parent=").append(short_id(e.parent_span_id, b));
  if (color) out.append(kReset);
  out.push_back('\n');
}

bool ConsoleExporter::export_batch(std::span<const Event> events) {
  if (stream_ == nullptr) {
    log(LogLevel::warning, "console", "no stream to write to; events are counted as failed");
    return false;
  }
  buf_.clear();
  for (const Event& e : events) format(e, color_, buf_);
  errno = 0;
  const std::size_t n = std::fwrite(buf_.data(), 1, buf_.size(), stream_);
  const bool ok = n == buf_.size() && std::fflush(stream_) == 0;
  if (!ok) {
    const int err = errno;
    std::clearerr(stream_);  // so that the next batch is tried afresh
    log(LogLevel::warning, "console",
        "cannot write " + std::to_string(events.size()) + " event(s)" +
            (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
  }
  return ok;
}

void ConsoleExporter::flush() {
  if (stream_ != nullptr) std::fflush(stream_);
}

}  // namespace SPYGLASS_NAMESPACE
