#pragma once
// Shared helpers of the JSONL exporter tests: temporary directories, file reading,
// decompression, running external tools, and events built by hand.

#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "../support/log_capture.hpp"
#include "spyglass/event.hpp"
#include "spyglass/log.hpp"

namespace sgtest {

/// A fresh directory under /tmp, removed with everything in it on destruction. Before
/// removing it, every JSONL file in it (plain or gzip) is checked: each complete line
/// must parse with simdjson and with jq (see check_jsonl_files).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

/// Fails the current test unless every complete line of every `*.jsonl` and
/// `*.jsonl.gz` file under `dir` parses with simdjson and with `jq -R fromjson`.
void check_jsonl_files(const std::filesystem::path& dir);

/// Whole file contents (binary).
std::string read_file(const std::filesystem::path& p);

/// Decompressed contents of a gzip file, read with zlib.
std::string gunzip_file(const std::filesystem::path& p);

/// Regular files in `dir`, sorted by name.
std::vector<std::filesystem::path> list_files(const std::filesystem::path& dir);

/// Splits text into lines; every line must be terminated by '\n' (checked by the caller
/// with ends_with). The terminators are not included.
std::vector<std::string> split_lines(const std::string& text);

/// Runs `cmd` with /bin/sh and returns its standard output; `status` gets the exit code.
std::string run(const std::string& cmd, int* status = nullptr);

/// A request/function/db/custom event (by i % 4) with distinct, i-derived field values
/// and span id i + 1.
spyglass::Event make_event(std::uint64_t i);

/// The fields a JSONL line carries, read back with simdjson.
struct Parsed {
  std::string ts, kind, name, trace_id, span_id, parent_span_id, status, method, db_system, server;
  bool has_parent = false, has_method = false, has_db_system = false, has_server = false;
  std::uint64_t dur_ns = 0, thread = 0, http_status = 0, bytes_in = 0, bytes_out = 0, rows = 0;
  bool has_http = false, has_rows = false;
  std::size_t members = 0;
};

/// Parses one line with simdjson; fails the current test (and returns false) on any error.
bool parse_line(const std::string& line, Parsed& out);

using spyglass::test::LogCapture;

/// Calls `condition` until it returns true or `timeout` passes (a generous bound that only
/// turns a hang into a failure); returns its last result.
bool wait_for(const std::function<bool()>& condition,
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace sgtest
