#pragma once
/// JSONL exporter: one JSON object per event, one event per line, in size- and
/// time-rotated files with retention and optional gzip of rotated files.
///
/// Line schema (full description in exporters/jsonl/SCHEMA.md):
///
///   {"ts":"2026-11-22T05:06:47.123456789Z","kind":"request","name":"/users/{id}",
///    "dur_ns":1234567,"trace_id":"<32 hex>","span_id":"<16 hex>",
///    "parent_span_id":"<16 hex>","thread":4242,"status":"ok",
///    "http_status":200,"bytes_in":12,"bytes_out":3400,"method":"GET"}
///
/// - `ts`: the event's start, RFC 3339 UTC with exactly 9 fractional digits.
/// - `kind`: "request" | "function" | "db" | "custom" | "client".
/// - `name`: the event name, JSON-escaped (invalid UTF-8 becomes U+FFFD).
/// - `dur_ns`: duration in nanoseconds (integer).
/// - `trace_id`: 32 lowercase hex digits; `span_id`: 16 lowercase hex digits.
/// - `parent_span_id`: 16 lowercase hex digits; the member is OMITTED for a root span
///   (parent span id 0), so "absent" means "root".
/// - `thread`: OS thread id (integer); `status`: "ok" | "error".
/// - request and client only: `http_status`, `bytes_in`, `bytes_out` (integers), and
///   `method` when the event's detail is non-empty; client only: `server`
///   ("scheme://host:port") when known.
/// - db only: `rows` (integer), and `db_system` when the event's detail is non-empty.
/// Members always appear in this order; nothing else is written.
///
/// Dynamic names arrive already capped by interning (intern.hpp: 1024 bytes for names,
/// 4096 for redacted SQL, ending with "…" when cut) with NUL and invalid UTF-8 replaced by
/// U+FFFD; static literal names are repaired by the same rule when escaped.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"

namespace SPYGLASS_NAMESPACE {

/// Settings of a JsonlExporter. The defaults work on one machine with no setup.
struct JsonlOptions {
  /// Directory the files are written to; created (with its parents) if missing.
  std::string directory = "./spyglass-out";
  /// File name template. `{time}` expands to the UTC time the file is opened as
  /// yyyymmddTHHMMSS, followed by "_0001", "_0002", ... for further files opened in the
  /// same second (or when the name is taken), so names sort in creation order. `{pid}` expands to the
  /// process id. A template without `{time}` gets the "_NNNN" suffix before its extension
  /// when needed. Existing files are never overwritten or appended to.
  std::string file_name = "spyglass-{time}.jsonl";
  /// Rotate when the active file would grow beyond this many bytes (a single line
  /// longer than this still goes into a file of its own). 0 disables size rotation.
  std::uint64_t max_file_bytes = 64ULL * 1024 * 1024;
  /// Rotate a non-empty active file once it has been open this long. 0 (the default)
  /// disables time rotation. Checked on every export_batch() and flush().
  std::chrono::milliseconds rotate_interval{0};
  /// Keep at most this many rotated files written by this exporter; the oldest are
  /// deleted. The active file is not counted. Files from other runs or processes are
  /// never touched. 0 keeps every file.
  std::size_t max_files = 10;
  /// Compress each rotated file to `<name>.gz` (gzip format, zlib level 1) and delete the
  /// uncompressed one. Compression runs on a background thread the exporter starts at its
  /// first rotation, so it does not slow down writing; a `.gz` file appears only once it
  /// is complete (written as `.gz.tmp`, then renamed). shutdown() waits for pending
  /// compressions. The active file is never compressed, including the last one at
  /// shutdown. A failed compression keeps the uncompressed file and counts a write error.
  bool gzip_rotated = false;
  /// Formatted lines are written with one write() call once this many bytes are buffered,
  /// and at the end of every batch. Only bounds memory; it never splits a line.
  std::size_t write_buffer_bytes = 1024 * 1024;
  /// How long Collector::shutdown() waits for this exporter (Exporter::shutdown_timeout):
  /// writing what its buffer still holds to the local file (milliseconds, even for a full
  /// default buffer of 32768 events) and finishing queued gzip compressions (about a
  /// second per 64 MiB file). Compressions not finished by then are abandoned: those
  /// rotated files stay uncompressed and complete, nothing is lost.
  std::chrono::milliseconds shutdown_timeout{5000};
};

/// Writes events as JSON Lines into rotating files.
///
/// Lines are formatted into a memory buffer and written with whole-line write() calls
/// (a batch per call), and rotation happens only between writes, so a rotated file only
/// ever holds complete lines. A failed or short write is undone (the file is truncated
/// back to its last complete line), counted in write_errors() and reported by returning
/// false; the exporter never throws out of export_batch() and writes again on the next
/// batch, so it recovers once the disk has room again.
///
/// Spans only: accepts_unsampled() is false, so spans of unsampled traces never reach the
/// file (they still count in metrics exporters and the StatsStore).
///
/// Errors (a file that cannot be opened or written, a failed compression) are reported
/// through spyglass::log (log.hpp, source "jsonl") and counted in write_errors(); nothing
/// is written to stderr directly.
///
/// Thread-safety: export_batch(), flush(), shutdown(), after_fork_child() and
/// current_path() must be called from one thread at a time (the collector's exporter
/// thread); begin_shutdown() and the counters may be called from any thread at any time.
class SPYGLASS_API JsonlExporter final : public Exporter {
 public:
  /// Creates the directory and opens the first file.
  /// Throws std::system_error whose message names the path and the reason when the
  /// directory cannot be created or a file cannot be created in it, and
  /// std::invalid_argument for an empty directory or file name, or a file name with '/'.
  explicit JsonlExporter(JsonlOptions options = {});
  /// Flushes and closes the active file (shutdown()).
  ~JsonlExporter() override;
  JsonlExporter(const JsonlExporter&) = delete;
  JsonlExporter& operator=(const JsonlExporter&) = delete;

  /// Formats and writes the batch. Returns false when some lines could not be written
  /// (they are dropped and counted in write_errors()).
  bool export_batch(std::span<const Event> events) override;
  /// Rotates by time when due. Lines are already written at the end of each batch.
  void flush() override;
  /// Writes what is buffered, closes the active file (deleted if still empty) and waits
  /// for pending compressions, up to the deadline given to begin_shutdown() if any.
  /// Later calls to export_batch() return false.
  void shutdown() override;
  /// JsonlOptions::shutdown_timeout (default 5 s).
  [[nodiscard]] std::chrono::milliseconds shutdown_timeout() const override;
  /// From now on, compressions still queued or running at `deadline` are abandoned
  /// (their files stay uncompressed). Thread-safe, does not block.
  void begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept override;
  /// False: the JSONL file holds the spans of sampled traces only.
  [[nodiscard]] bool accepts_unsampled() const override { return false; }
  /// Drops the parent's file and buffered lines without writing them (the parent writes
  /// them); the child's next write opens a new file whose name carries the child's pid
  /// (inserted before the extension when the template has no `{pid}`). Retention in the
  /// child counts only the child's files, and the counters restart from 0 in the child.
  void after_fork_child() override;
  [[nodiscard]] std::string_view name() const override { return "jsonl"; }

  /// Path of the active file, empty when none is open. Exporter thread only.
  [[nodiscard]] std::string current_path() const;

  /// Lines written to files. Any thread.
  [[nodiscard]] std::uint64_t lines_written() const noexcept {
    return lines_written_.load(std::memory_order_relaxed);
  }
  /// Bytes written to files (before compression). Any thread.
  [[nodiscard]] std::uint64_t bytes_written() const noexcept {
    return bytes_written_.load(std::memory_order_relaxed);
  }
  /// Files closed by rotation. Any thread.
  [[nodiscard]] std::uint64_t files_rotated() const noexcept {
    return files_rotated_.load(std::memory_order_relaxed);
  }
  /// Failed writes (each failed batch or buffer write), file opens and compressions. Any
  /// thread.
  [[nodiscard]] std::uint64_t write_errors() const noexcept {
    return write_errors_.load(std::memory_order_relaxed);
  }

 private:
  struct State;
  // Declared before state_ so that they outlive it (the compressor thread counts errors).
  std::atomic<std::uint64_t> lines_written_{0};
  std::atomic<std::uint64_t> bytes_written_{0};
  std::atomic<std::uint64_t> files_rotated_{0};
  std::atomic<std::uint64_t> write_errors_{0};
  /// begin_shutdown()'s deadline in steady_clock ticks; the maximum while there is none.
  std::atomic<std::int64_t> shutdown_deadline_{INT64_MAX};
  std::unique_ptr<State> state_;
};

namespace jsonl {

/// Length of an RFC 3339 timestamp written by format_rfc3339(): "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ".
inline constexpr std::size_t kTimestampSize = 30;

/// Writes `unix_ns` as RFC 3339 UTC with 9 fractional digits into `out` (exactly
/// kTimestampSize bytes, no terminator). Pure arithmetic, no locale or time zone access.
/// Thread-safe.
SPYGLASS_API void format_rfc3339(std::uint64_t unix_ns, char* out) noexcept;

/// Appends the JSON line of `event` (schema above, with the trailing '\n') to `out`.
/// Thread-safe (no shared state); the exporter uses a faster cached variant.
SPYGLASS_API void append_line(const Event& event, std::string& out);

}  // namespace jsonl

}  // namespace SPYGLASS_NAMESPACE
