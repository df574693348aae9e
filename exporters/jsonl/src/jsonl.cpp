#include "spyglass/exporters/jsonl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "spyglass/clock.hpp"
#include "spyglass/json.hpp"

namespace spyglass::inline v0 {

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kNsPerSec = 1000000000ULL;

/// "00".."ff" for every byte: ids are written two digits per step.
constexpr auto kHexPairs = [] {
  struct Table {
    char v[512] = {};
  } t;
  constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    t.v[2 * i] = kDigits[i >> 4];
    t.v[2 * i + 1] = kDigits[i & 15];
  }
  return t;
}();

/// 16 lowercase hex digits of `v`, like to_hex() in ids.hpp, a byte at a time.
inline void put_hex64(std::uint64_t v, char* out) noexcept {
  for (int i = 7; i >= 0; --i) {
    std::memcpy(out + 2 * i, &kHexPairs.v[(v & 0xff) * 2], 2);
    v >>= 8;
  }
}

/// "00".."99": decimal digits two per step.
constexpr auto kDecPairs = [] {
  struct Table {
    char v[200] = {};
  } t;
  for (int i = 0; i < 100; ++i) {
    t.v[2 * i] = static_cast<char>('0' + i / 10);
    t.v[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

/// Two decimal digits of `v` (< 100).
inline void put2(char* p, unsigned v) noexcept {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

/// "YYYY-MM-DDTHH:MM:SS" (19 bytes) of a Unix second.
void format_date_time(std::uint64_t sec, char* out) noexcept {
  // Days since 1970-01-01 to a proleptic Gregorian date: shift the epoch to 0000-03-01 so
  // that the leap day ends the year, then split into 400-year eras (146097 days each), the
  // year of the era and the day of that March-based year.
  const std::uint64_t days = sec / 86400;
  const auto sod = static_cast<unsigned>(sec % 86400);
  const std::uint64_t z = days + 719468;  // days from 0000-03-01 to 1970-01-01
  const std::uint64_t era = z / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);                    // [0, 146096]
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const unsigned mp = (5 * doy + 2) / 153;                                     // March = 0
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const std::uint64_t year = era * 400 + yoe + (month <= 2 ? 1 : 0);

  const auto y = static_cast<unsigned>(year % 10000);
  put2(out, y / 100);
  put2(out + 2, y % 100);
  out[4] = '-';
  put2(out + 5, month);
  out[7] = '-';
  put2(out + 8, day);
  out[10] = 'T';
  put2(out + 11, sod / 3600);
  out[13] = ':';
  put2(out + 14, sod / 60 % 60);
  out[16] = ':';
  put2(out + 17, sod % 60);
}

/// Appends the decimal form of `v`.
inline char* put_u64(char* p, std::uint64_t v) noexcept { return std::to_chars(p, p + 20, v).ptr; }

inline char* put_lit(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

/// Formats lines; caches the "YYYY-MM-DDTHH:MM:SS." part of the last second seen, which
/// almost every event of a batch shares.
class LineFormatter {
 public:
  void timestamp(std::uint64_t unix_ns, char* out) noexcept {
    const std::uint64_t sec = unix_ns / kNsPerSec;
    if (sec != cached_sec_) {
      format_date_time(sec, cached_);
      cached_[19] = '.';
      cached_sec_ = sec;
    }
    std::memcpy(out, cached_, 20);
    auto frac = static_cast<unsigned>(unix_ns % kNsPerSec);
    for (int i = 27; i >= 21; i -= 2) {
      std::memcpy(out + i, &kDecPairs.v[(frac % 100) * 2], 2);
      frac /= 100;
    }
    out[20] = static_cast<char>('0' + frac);
    out[29] = 'Z';
  }

  void append(const Event& e, std::string& out) {
    // Fixed-size parts are assembled on the stack and appended in one go; the strings
    // (name, detail) go through json_escape.
    char buf[320];
    char* p = put_lit(buf, R"({"ts":")");
    timestamp(e.start, p);
    p += jsonl::kTimestampSize;
    p = put_lit(p, R"(","kind":")");
    p = put_lit(p, to_string(e.kind));
    p = put_lit(p, R"(","name":")");
    out.append(buf, static_cast<std::size_t>(p - buf));
    json_escape(e.name != nullptr ? std::string_view(e.name) : std::string_view(), out);

    p = put_lit(buf, R"(","dur_ns":)");
    p = put_u64(p, e.duration);
    p = put_lit(p, R"(,"trace_id":")");
    put_hex64(e.trace_id.hi, p);
    put_hex64(e.trace_id.lo, p + 16);
    p = put_lit(p + 32, R"(","span_id":")");
    put_hex64(e.span_id, p);
    p += 16;
    if (e.parent_span_id != 0) {
      p = put_lit(p, R"(","parent_span_id":")");
      put_hex64(e.parent_span_id, p);
      p += 16;
    }
    p = put_lit(p, R"(","thread":)");
    p = put_u64(p, e.thread_id);
    p = put_lit(p, R"(,"status":")");
    p = put_lit(p, to_string(e.status));
    *p++ = '"';

    const char* detail_key = nullptr;
    if (e.kind == EventKind::request) {
      p = put_lit(p, R"(,"http_status":)");
      p = put_u64(p, e.http_status);
      p = put_lit(p, R"(,"bytes_in":)");
      p = put_u64(p, e.bytes_in);
      p = put_lit(p, R"(,"bytes_out":)");
      p = put_u64(p, e.bytes_out);
      detail_key = R"(,"method":")";
    } else if (e.kind == EventKind::db) {
      p = put_lit(p, R"(,"rows":)");
      p = put_u64(p, e.rows);
      detail_key = R"(,"db_system":")";
    }
    if (detail_key != nullptr && e.detail != nullptr && e.detail[0] != '\0') {
      p = put_lit(p, detail_key);
      out.append(buf, static_cast<std::size_t>(p - buf));
      json_escape(e.detail, out);
      out.append("\"}\n", 3);
      return;
    }
    p = put_lit(p, "}\n");
    out.append(buf, static_cast<std::size_t>(p - buf));
  }

 private:
  std::uint64_t cached_sec_ = ~std::uint64_t{0};
  char cached_[20] = {};
};

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

/// Compresses `src` into `tmp` (gzip format, level 1: fast enough to keep up with a busy
/// exporter most of the time, and JSONL still shrinks several-fold).
bool gzip_to(const std::string& src, const std::string& tmp) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  gzFile out = gzopen(tmp.c_str(), "wb1e");
  bool ok = out != nullptr;
  if (ok) {
    static constexpr std::size_t kChunk = 256 * 1024;
    std::unique_ptr<char[]> chunk(new char[kChunk]);
    for (;;) {
      const ssize_t n = ::read(in, chunk.get(), kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = n == 0;
        break;
      }
      if (gzwrite(out, chunk.get(), static_cast<unsigned>(n)) != static_cast<int>(n)) {
        ok = false;
        break;
      }
    }
    if (gzclose(out) != Z_OK) ok = false;
  }
  ::close(in);
  return ok;
}

/// Gzips rotated files on a thread of its own, so that compression (tens of MB/s) does not
/// hold up the exporter thread (about 1 GB/s of JSONL). `<path>` becomes `<path>.gz` through
/// `<path>.gz.tmp`, so a .gz file is always complete. Retention may cancel a file that is
/// queued or being compressed. All members but the thread body are called by the exporter
/// thread.
class Compressor {
 public:
  explicit Compressor(std::atomic<std::uint64_t>& errors) : errors_(errors) {}
  ~Compressor() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  void submit(std::string path) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(path));
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    cv_.notify_all();
  }

  /// Deletes `path` and its compressed form, also if it is queued or being compressed.
  void remove(const std::string& path) {
    std::lock_guard lock(mu_);
    if (auto it = std::find(queue_.begin(), queue_.end(), path); it != queue_.end()) queue_.erase(it);
    if (busy_ && in_flight_ == path) cancelled_ = true;
    ::unlink(path.c_str());
    ::unlink((path + ".gz").c_str());
  }

  /// Waits until every queued file is compressed.
  void drain() {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every queued file is done
      in_flight_ = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      cancelled_ = false;
      const std::string src = in_flight_;
      const std::string gz = src + ".gz";
      const std::string tmp = gz + ".tmp";
      lock.unlock();
      const bool ok = gzip_to(src, tmp);
      lock.lock();
      if (ok && !cancelled_ && std::rename(tmp.c_str(), gz.c_str()) == 0) {
        ::unlink(src.c_str());
      } else {
        ::unlink(tmp.c_str());
        // A failure keeps the uncompressed file; a cancelled file is already gone.
        if (!cancelled_) errors_.fetch_add(1, std::memory_order_relaxed);
      }
      busy_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
    }
  }

  std::atomic<std::uint64_t>& errors_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;
  std::string in_flight_;
  bool busy_ = false;
  bool cancelled_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

namespace jsonl {

void format_rfc3339(std::uint64_t unix_ns, char* out) noexcept { LineFormatter{}.timestamp(unix_ns, out); }

void append_line(const Event& event, std::string& out) { LineFormatter{}.append(event, out); }

}  // namespace jsonl

namespace {

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

  void error() { owner->write_errors_.fetch_add(1, std::memory_order_relaxed); }

  bool ensure_open() {
    if (fd >= 0) return true;
    if (open_new_file(opt, child, name_seq, fd, path) != 0) {
      fd = -1;
      error();
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
      while (done < buf.size()) {
        const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
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
        error();
        if (done != 0) {
          // Undo the torn tail; if even that fails the next successful write still starts
          // at the right offset, leaving at most a hole of NUL bytes, never a split line.
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
      if (!compressor) compressor = std::make_unique<Compressor>(owner->write_errors_);
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
    write_errors_.fetch_add(1, std::memory_order_relaxed);
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
  s.compressor.reset();  // finishes the queued compressions
  s.closed = true;
}

void JsonlExporter::after_fork_child() {
  State& s = *state_;
  // The descriptor is shared with the parent: close the child's copy without writing.
  if (s.fd >= 0) ::close(s.fd);
  s.fd = -1;
  s.path.clear();
  s.file_bytes = 0;
  s.buf.clear();
  s.buf_lines = 0;
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
}

}  // namespace spyglass::inline v0
