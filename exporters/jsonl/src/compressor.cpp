#include "compressor.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <utility>

namespace SPYGLASS_NAMESPACE::jsonl::detail {

namespace {

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
    // Renaming under the lock: remove() either cancelled this file before, or finds the
    // finished .gz and deletes it.
    if (ok && !cancelled_ && std::rename(tmp.c_str(), gz.c_str()) == 0) {
      ::unlink(src.c_str());
    } else {
      ::unlink(tmp.c_str());
      if (!cancelled_) errors_.fetch_add(1, std::memory_order_relaxed);
    }
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

}  // namespace SPYGLASS_NAMESPACE::jsonl::detail
