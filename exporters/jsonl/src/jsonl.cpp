#include "spyglass/exporters/jsonl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "compressor.hpp"
#include "format.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE {

namespace {

namespace fs = std::filesystem;
using jsonl::detail::Compressor;
using jsonl::detail::format_date_time;
using jsonl::detail::kNsPerSec;
using jsonl::detail::LineFormatter;

/// UTC "yyyymmddTHHMMSS" of now.
std::string compact_utc_now() {
  char full[19];
  format_date_time(clock::realtime_ns() / kNsPerSec, full);
  std::string s;
  s.reserve(15);
  s.append(full, 4).append(full + 5, 2).append(full + 8, 2).push_back('T');
  s.append(full + 11, 2).append(full + 14, 2).append(full + 17, 2);
  return s;
}

/// Position to insert a suffix "before the extension": the last '.' that is not the
/// first character, else the end.
std::size_t extension_pos(const std::string& name) {
  const std::size_t dot = name.rfind('.');
  return dot == std::string::npos || dot == 0 ? name.size() : dot;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

/// The file name for `tmpl` with sequence number `seq` (0: none).
std::string expand_name(const std::string& tmpl, const std::string& time, bool force_pid, unsigned seq) {
  std::string name = tmpl;
  const std::string pid = std::to_string(::getpid());
  if (force_pid && name.find("{pid}") == std::string::npos) name.insert(extension_pos(name), "-{pid}");
  replace_all(name, "{pid}", pid);
  std::string seq_text;
  if (seq != 0) {
    char b[16];
    std::snprintf(b, sizeof b, "_%04u", seq);
    seq_text = b;
  }
  if (name.find("{time}") != std::string::npos) {
    replace_all(name, "{time}", time + seq_text);
  } else if (!seq_text.empty()) {
    name.insert(extension_pos(name), seq_text);
  }
  return name;
}

/// The sequence number last used with a {time} value: names opened within one second
/// count up from it, so a name freed by retention is never reused out of order.
struct NameSeq {
  std::string time;
  unsigned seq = 0;
};

/// Opens a new, previously nonexistent file in the directory (created if it has vanished).
/// Returns 0 or an errno value; `path` is the name tried last.
int open_new_file(const JsonlOptions& opt, bool child, NameSeq& seq_state, int& fd, std::string& path) {
  std::error_code ec;
  fs::create_directories(opt.directory, ec);
  if (ec) {
    path = opt.directory;
    return ec.value();
  }
  const std::string time = compact_utc_now();
  const unsigned first = time == seq_state.time ? seq_state.seq + 1 : 0;
  for (unsigned seq = first; seq < first + 100000; ++seq) {
    path = (fs::path(opt.directory) / expand_name(opt.file_name, time, child, seq)).string();
    if (opt.gzip_rotated && ::access((path + ".gz").c_str(), F_OK) == 0) continue;
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      seq_state = {time, seq};
      return 0;
    }
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

}  // namespace

struct JsonlExporter::State {
  JsonlExporter* owner = nullptr;
  JsonlOptions opt;
  LineFormatter fmt;
  std::string buf;  // complete lines not yet written
  std::uint64_t buf_lines = 0;
  std::string carry;  // a line moved to the next file at rotation
  int fd = -1;
  std::string path;  // active file
  std::uint64_t file_bytes = 0;
  std::uint64_t opened_at = 0;             // monotonic ns
  std::deque<std::string> rotated;         // oldest first, names before compression
  std::unique_ptr<Compressor> compressor;  // started by the first rotation with gzip
  bool child = false;                      // after fork: names carry the pid
  NameSeq name_seq;
  bool closed = false;

  /// Counts a write error and reports it (rate-limited by the log).
  void error(std::string_view what, const std::string& where, int err) noexcept {
    owner->write_errors_.fetch_add(1, std::memory_order_relaxed);
    try {
      log(LogLevel::warning, "jsonl", std::string(what) + " " + where + ": " + std::strerror(err));
    } catch (...) {
      // No memory for the message: the error is counted all the same.
    }
  }

  bool ensure_open() {
    if (fd >= 0) return true;
    if (const int err = open_new_file(opt, child, name_seq, fd, path); err != 0) {
      fd = -1;
      error("cannot create file", path, err);
      return false;
    }
    file_bytes = 0;
    opened_at = clock::monotonic_ns();
    return true;
  }

  /// Writes the buffer with as few write() calls as the kernel allows. On failure the file
  /// is cut back to its last complete line and the buffered lines are dropped.
  bool write_buffer() {
    if (buf.empty()) return true;
    bool ok = ensure_open();
    if (ok) {
      std::size_t done = 0;
      int err = 0;
      while (done < buf.size()) {
        const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          err = n < 0 ? errno : ENOSPC;
          ok = false;
          break;
        }
        done += static_cast<std::size_t>(n);
      }
      if (ok) {
        file_bytes += buf.size();
        owner->bytes_written_.fetch_add(buf.size(), std::memory_order_relaxed);
        owner->lines_written_.fetch_add(buf_lines, std::memory_order_relaxed);
      } else {
        error("cannot write " + std::to_string(buf_lines) + " line(s) to", path, err);
        if (done != 0) {
          // Cut off the torn tail so the file ends with a complete line. Even where
          // ftruncate() fails, the next write starts right after the last complete line.
          const auto good = static_cast<off_t>(file_bytes);
          if (::ftruncate(fd, good) != 0) {
            // Nothing more can be done here; the error is already counted.
          }
          ::lseek(fd, good, SEEK_SET);
        }
      }
    }
    buf.clear();
    buf_lines = 0;
    return ok;
  }

  /// Closes a non-empty active file, compresses it if asked and applies retention. The
  /// next file is opened by the next write.
  void rotate() {
    if (fd < 0 || file_bytes == 0) return;
    ::close(fd);
    fd = -1;
    file_bytes = 0;
    owner->files_rotated_.fetch_add(1, std::memory_order_relaxed);
    if (opt.gzip_rotated) {
      if (!compressor)
        compressor = std::make_unique<Compressor>(owner->write_errors_, owner->shutdown_deadline_);
      compressor->submit(path);
    }
    rotated.push_back(path);
    while (opt.max_files != 0 && rotated.size() > opt.max_files) {
      if (compressor) {
        compressor->remove(rotated.front());
      } else {
        ::unlink(rotated.front().c_str());
      }
      rotated.pop_front();
    }
  }

  void rotate_if_due() {
    const auto interval = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opt.rotate_interval).count());
    if (opt.rotate_interval.count() <= 0 || fd < 0 || file_bytes == 0) return;
    if (clock::monotonic_ns() - opened_at >= interval) rotate();
  }
};

JsonlExporter::JsonlExporter(JsonlOptions options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.owner = this;
  s.opt = std::move(options);
  if (s.opt.directory.empty()) throw std::invalid_argument("spyglass jsonl: the directory option is empty");
  if (s.opt.file_name.empty() || s.opt.file_name.find('/') != std::string::npos) {
    throw std::invalid_argument("spyglass jsonl: file name template '" + s.opt.file_name +
                                "' must be a non-empty name without '/'");
  }
  std::error_code ec;
  fs::create_directories(s.opt.directory, ec);
  if (ec) throw std::system_error(ec, "spyglass jsonl: cannot create directory '" + s.opt.directory + "'");
  if (!fs::is_directory(s.opt.directory, ec)) {
    throw std::system_error(std::make_error_code(std::errc::not_a_directory),
                            "spyglass jsonl: '" + s.opt.directory + "' is not a directory");
  }
  if (const int err = open_new_file(s.opt, false, s.name_seq, s.fd, s.path); err != 0) {
    throw std::system_error(err, std::generic_category(),
                            "spyglass jsonl: cannot create file '" + s.path + "'");
  }
  s.opened_at = clock::monotonic_ns();
  s.buf.reserve(s.opt.write_buffer_bytes + 4096);
}

JsonlExporter::~JsonlExporter() { shutdown(); }

std::string JsonlExporter::current_path() const { return state_->fd >= 0 ? state_->path : std::string(); }

bool JsonlExporter::export_batch(std::span<const Event> events) {
  State& s = *state_;
  if (s.closed) return false;
  bool ok = true;
  try {
    s.rotate_if_due();
    const std::uint64_t max = s.opt.max_file_bytes;
    for (const Event& e : events) {
      const std::size_t before = s.buf.size();
      s.fmt.append(e, s.buf);
      ++s.buf_lines;
      if (max != 0 && s.file_bytes + s.buf.size() > max && s.file_bytes + before > 0) {
        // This line would overflow the file: finish the file with the lines before it and
        // start the next file with it.
        s.carry.assign(s.buf, before);
        s.buf.resize(before);
        --s.buf_lines;
        ok = s.write_buffer() && ok;
        s.rotate();
        s.buf.swap(s.carry);
        s.buf_lines = 1;
      }
      if (s.buf.size() >= s.opt.write_buffer_bytes) ok = s.write_buffer() && ok;
    }
    ok = s.write_buffer() && ok;
  } catch (const std::exception&) {
    // Only allocation can throw here; drop the batch rather than let it reach the app.
    s.buf.clear();
    s.buf_lines = 0;
    s.error("out of memory formatting a batch for", s.path, ENOMEM);
    ok = false;
  }
  return ok;
}

void JsonlExporter::flush() {
  State& s = *state_;
  if (s.closed) return;
  s.write_buffer();
  s.rotate_if_due();
}

void JsonlExporter::shutdown() {
  State& s = *state_;
  if (s.closed) return;
  s.write_buffer();
  if (s.fd >= 0) {
    ::close(s.fd);
    s.fd = -1;
    if (s.file_bytes == 0) ::unlink(s.path.c_str());
  }
  s.compressor.reset();  // finishes the queued compressions, or abandons them at the deadline
  s.closed = true;
}

std::chrono::milliseconds JsonlExporter::shutdown_timeout() const { return state_->opt.shutdown_timeout; }

void JsonlExporter::begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept {
  // The compressor thread reads it between chunks; nothing else waits past the deadline
  // (writes go to a local file and are not retried).
  shutdown_deadline_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
}

void JsonlExporter::after_fork_child() {
  State& s = *state_;
  // The descriptor is shared with the parent: close the child's copy without writing.
  if (s.fd >= 0) ::close(s.fd);
  s.fd = -1;
  s.path.clear();
  s.file_bytes = 0;
  s.buf.clear();  // the parent writes these lines
  s.buf_lines = 0;
  s.carry.clear();
  s.rotated.clear();  // the parent's files are the parent's to retire
  // The compressor thread exists only in the parent and its mutex may have been held at
  // fork time: abandon the object (a small leak per fork) instead of touching it.
  Compressor* abandoned = s.compressor.release();
  static_cast<void>(abandoned);
  s.child = true;
  lines_written_.store(0, std::memory_order_relaxed);
  bytes_written_.store(0, std::memory_order_relaxed);
  files_rotated_.store(0, std::memory_order_relaxed);
  write_errors_.store(0, std::memory_order_relaxed);
  shutdown_deadline_.store(INT64_MAX, std::memory_order_relaxed);
}

}  // namespace SPYGLASS_NAMESPACE