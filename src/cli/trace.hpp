#pragma once
// `spyglass trace`: JSONL spans (as the JSONL exporter writes them) to the Chrome Trace
// Event Format and to folded stacks, streaming, in memory bounded by an index window.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "series.hpp"  // InputError
#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::cli {

/// One span of a JSONL line. The views point into the reader that produced it and stay
/// valid until that reader's next read.
struct SpanRecord {
  std::string_view kind, name, status, trace_id, method, db_system;
  std::string_view span_hex, parent_hex;  ///< the ids as written (checked: 16 hex digits)
  std::uint64_t start_ns = 0;             ///< Unix ns, from `ts`
  std::uint64_t dur_ns = 0;               ///< `dur_ns`
  std::uint64_t span_id = 0;              ///< `span_id`, never 0
  std::uint64_t parent_span_id = 0;       ///< 0 for a root
  std::uint64_t thread = 0;               ///< `thread`
  std::uint64_t http_status = 0, bytes_in = 0, bytes_out = 0, rows = 0;
  bool has_http = false;  ///< http_status/bytes_in/bytes_out were present (request)
  bool has_rows = false;  ///< rows was present (db)
  /// Where the span ended: what the JSONL files are (roughly) ordered by.
  [[nodiscard]] std::uint64_t end_ns() const { return start_ns + dur_ns; }
};

/// Unix nanoseconds of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, exactly;
/// false when `s` is not one.
bool parse_rfc3339_ns(std::string_view s, std::uint64_t& ns);

/// Reads the spans of one JSONL file (or of standard input, for "-") line by line with
/// simdjson, holding one line at a time.
class JsonlSpanReader {
 public:
  /// Opens `path`; throws InputError when it cannot be read.
  explicit JsonlSpanReader(std::string path);
  ~JsonlSpanReader();
  JsonlSpanReader(const JsonlSpanReader&) = delete;
  JsonlSpanReader& operator=(const JsonlSpanReader&) = delete;

  /// The next span into `out`; false at the end. A line that is not a span throws
  /// InputError "PATH:LINE: reason"; the reader has then moved past it, so calling next()
  /// again goes on with the following line. Empty lines are skipped.
  bool next(SpanRecord& out);

  /// The file as given.
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  bool next_line(std::string_view& line);
  void parse(std::string_view line, SpanRecord& out);
  bool parse_time(std::string_view s, std::uint64_t& ns);

  std::string path_;
  int fd_ = -1;
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
  std::size_t line_no_ = 0;
  bool eof_ = false;
  bool discarding_ = false;    // skipping the rest of a line too long to hold
  char minute_text_[17] = {};  // the last time's "YYYY-MM-DDTHH:MM:" and its Unix ns
  std::uint64_t minute_ns_ = 0;
  struct Parser;
  std::unique_ptr<Parser> parser_;
};

/// What a conversion saw.
struct TraceStats {
  std::uint64_t spans = 0;           ///< spans read
  std::uint64_t bad_lines = 0;       ///< lines skipped (with skip_bad)
  std::uint64_t flows = 0;           ///< parent-to-child arrows across threads or processes
  std::uint64_t without_parent = 0;  ///< spans whose parent was not found within the window
  std::uint64_t threads = 0;         ///< distinct (file, thread) pairs
};

/// How `convert_spans` reads.
struct TraceOptions {
  /// Skip lines that are not spans, counting them, instead of stopping at the first.
  bool skip_bad = false;
  /// Spans the parent index remembers (and children waiting for their parent): the bound
  /// on memory. A child whose parent is further away than that gets no flow arrow and,
  /// in folded stacks, becomes a root.
  std::size_t window = 262144;
  /// Called with the message of each skipped line.
  std::function<void(const std::string&)> on_bad;
};

/// Where and when a span ran: what a flow arrow joins.
struct SpanPlace {
  std::uint32_t pid = 0;  ///< 1-based index of the input file
  std::uint64_t thread = 0;
  std::uint64_t start_ns = 0, end_ns = 0;
};

/// Receives the spans in the order convert_spans() merges them; `pid` is the 1-based
/// index of the input file the span came from.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  /// Before any span: the inputs, in pid order.
  virtual void begin(const std::vector<std::string>& inputs) = 0;
  /// One span.
  virtual void span(std::uint32_t pid, const SpanRecord& s) = 0;
  /// A child that ran on another thread or process than its parent.
  virtual void flow(const SpanPlace& parent, const SpanPlace& child) = 0;
  /// After the last span.
  virtual void end(const TraceStats& stats) = 0;
};

/// Reads `inputs` together, merged by span end time (the order the files are written in,
/// so a parent comes after its children whatever file or thread they are in), and feeds
/// `sinks`. Throws InputError for an unreadable input and, without skip_bad, for the first
/// bad line.
TraceStats convert_spans(const std::vector<std::string>& inputs, const TraceOptions& options,
                         const std::vector<SpanSink*>& sinks);

/// Writes the Chrome Trace Event Format (JSON object form) to a stdio stream as the spans
/// come: one complete event (`"ph":"X"`) per span, process and thread names (`"ph":"M"`),
/// and flow events (`"ph":"s"`/`"f"`) from a parent to its children on other threads.
/// `ts` is in microseconds (three decimals: exact ns) since 00:00 UTC of the first span's
/// day, which `otherData.ts_origin` names, so that doubles keep every nanosecond.
class ChromeTraceSink : public SpanSink {
 public:
  /// Writes to `out`, which the caller owns. Throws std::runtime_error on a write error.
  explicit ChromeTraceSink(std::FILE* out);
  void begin(const std::vector<std::string>& inputs) override;
  void span(std::uint32_t pid, const SpanRecord& s) override;
  void flow(const SpanPlace& parent, const SpanPlace& child) override;
  void end(const TraceStats& stats) override;

 private:
  void event_head(const char* ph, std::uint32_t pid, std::uint64_t tid);
  void us(std::uint64_t ns, std::uint64_t from);
  void drain(bool force);

  std::FILE* out_;
  std::string buf_;
  bool first_ = true;
  bool have_origin_ = false;
  std::uint64_t origin_ns_ = 0;
  std::uint64_t next_flow_id_ = 1;
  std::unordered_map<std::uint64_t, bool> named_threads_;  // (pid << 32 | tid) seen
};

/// Folded stacks from span nesting: for each distinct stack `root;child;...` the sum of
/// its spans' self time, i.e. duration minus the durations of its children on the same
/// thread (children on other threads run beside it, not inside it). Frame names have `;`
/// replaced by `:` and control characters by spaces, as the format needs.
class FoldedSink : public SpanSink {
 public:
  /// Forgets at most `window` finished spans (see TraceOptions::window).
  explicit FoldedSink(std::size_t window = TraceOptions{}.window);
  ~FoldedSink() override;
  void begin(const std::vector<std::string>& inputs) override;
  void span(std::uint32_t pid, const SpanRecord& s) override;
  void flow(const SpanPlace&, const SpanPlace&) override {}
  void end(const TraceStats& stats) override;

  /// Stack to self nanoseconds, after end(); stacks whose self time is 0 are left out.
  [[nodiscard]] const std::map<std::string, std::uint64_t>& stacks() const { return stacks_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::map<std::string, std::uint64_t> stacks_;
};

/// `stacks` as folded-stack text: `stack value\n`, sorted by stack.
std::string folded_text(const std::map<std::string, std::uint64_t>& stacks);

}  // namespace SPYGLASS_NAMESPACE::cli
