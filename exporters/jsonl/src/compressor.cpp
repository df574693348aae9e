#include "compressor.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE::jsonl::detail {

namespace {

using SteadyClock = std::chrono::steady_clock;
static_assert(std::is_same_v<SteadyClock::rep, std::int64_t>);

enum class GzipResult { ok, failed, abandoned };

/// Compresses `src` into `tmp` (gzip format, level 1: fast enough to keep up with a busy
/// exporter most of the time, and JSONL still shrinks several-fold). Gives up between two
/// chunks once the steady clock passes `deadline`.
/// On failure `err` is the errno value of the failing call (0 when zlib gave none).
GzipResult gzip_to(const std::string& src, const std::string& tmp, const std::atomic<std::int64_t>& deadline,
                   int& err) {
  err = 0;
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    err = errno;
    return GzipResult::failed;
  }
  errno = 0;
  gzFile out = gzopen(tmp.c_str(), "wb1e");
  bool ok = out != nullptr;
  if (!ok) err = errno;
  bool abandoned = false;
  if (ok) {
    static constexpr std::size_t kChunk = 256 * 1024;
    std::unique_ptr<char[]> chunk(new char[kChunk]);
    for (;;) {
      if (SteadyClock::now().time_since_epoch().count() >= deadline.load(std::memory_order_relaxed)) {
        abandoned = true;
        break;
      }
      const ssize_t n = ::read(in, chunk.get(), kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = n == 0;
        if (!ok) err = errno;
        break;
      }
      errno = 0;
      if (gzwrite(out, chunk.get(), static_cast<unsigned>(n)) != static_cast<int>(n)) {
        err = errno;
        ok = false;
        break;
      }
    }
    errno = 0;
    if (gzclose(out) != Z_OK) {
      if (ok) err = errno;
      ok = false;
    }
  }
  ::close(in);
  if (abandoned) return GzipResult::abandoned;
  return ok ? GzipResult::ok : GzipResult::failed;
}

}  // namespace

Compressor::~Compressor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Compressor::submit(std::string path) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(path));
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
}

void Compressor::remove(const std::string& path) {
  std::lock_guard lock(mu_);
  if (auto it = std::find(queue_.begin(), queue_.end(), path); it != queue_.end()) queue_.erase(it);
  if (busy_ && in_flight_ == path) cancelled_ = true;
  ::unlink(path.c_str());
  ::unlink((path + ".gz").c_str());
  if (queue_.empty() && !busy_) idle_cv_.notify_all();
}

void Compressor::drain() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Compressor::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and every queued file is done
    if (SteadyClock::now().time_since_epoch().count() >= deadline_.load(std::memory_order_relaxed)) {
      log(LogLevel::warning, "jsonl",
          "shutdown deadline reached: " + std::to_string(queue_.size()) +
              " rotated file(s) left uncompressed, the first is " + queue_.front());
      queue_.clear();
      idle_cv_.notify_all();
      continue;
    }
    in_flight_ = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    cancelled_ = false;
    const std::string src = in_flight_;
    const std::string gz = src + ".gz";
    const std::string tmp = gz + ".tmp";
    lock.unlock();
    int err = 0;
    const GzipResult result = gzip_to(src, tmp, deadline_, err);
    lock.lock();
    // Renaming under the lock: remove() either cancelled this file before, or finds the
    // finished .gz and deletes it.
    if (result == GzipResult::ok && !cancelled_ && std::rename(tmp.c_str(), gz.c_str()) == 0) {
      ::unlink(src.c_str());
    } else {
      if (result == GzipResult::ok) err = errno;  // rename() failed
      ::unlink(tmp.c_str());
      if (cancelled_) {
        // Retention deleted the file meanwhile: nothing to report.
      } else if (result == GzipResult::abandoned) {
        log(LogLevel::warning, "jsonl", "shutdown deadline reached: " + src + " left uncompressed");
      } else {
        errors_.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warning, "jsonl",
            "cannot compress " + src +
                (err != 0 ? std::string(" (") + std::strerror(err) + ")" : std::string()) +
                "; it is kept uncompressed");
      }
    }
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

}  // namespace SPYGLASS_NAMESPACE::jsonl::detail
