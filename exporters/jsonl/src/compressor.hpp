#pragma once
// Internal: background gzip of rotated JSONL files.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::jsonl::detail {

/// Gzips rotated files on a thread of its own, so that compression (tens of MB/s) does not
/// hold up the exporter thread (about 1 GB/s of JSONL). `<path>` becomes `<path>.gz` through
/// `<path>.gz.tmp`, so a .gz file is always complete, and `<path>` is deleted. Retention
/// may cancel a file that is queued or being compressed.
///
/// All members are called by the exporter thread; the compression thread only runs run().
/// A failed compression keeps the uncompressed file, increments `errors` and is reported
/// through spyglass::log. Once the steady clock passes `deadline` (steady_clock ticks,
/// set by any thread), queued and running compressions are given up: their files stay
/// uncompressed and complete.
class Compressor {
 public:
  Compressor(std::atomic<std::uint64_t>& errors, const std::atomic<std::int64_t>& deadline)
      : errors_(errors), deadline_(deadline) {}
  /// Compresses whatever is still queued, then stops the thread.
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  /// Queues a closed file; starts the thread on first use.
  void submit(std::string path);
  /// Deletes `path` and `path.gz`, also when the file is queued or being compressed.
  void remove(const std::string& path);
  /// Waits until every queued file is done.
  void drain();

 private:
  void run();

  std::atomic<std::uint64_t>& errors_;
  std::mutex mu_;
  std::condition_variable cv_;       // work queued or stop requested
  std::condition_variable idle_cv_;  // queue empty and nothing in flight
  std::deque<std::string> queue_;
  std::string in_flight_;
  bool busy_ = false;
  bool cancelled_ = false;  // in_flight_ was removed while being compressed
  bool stop_ = false;
  std::thread thread_;
  const std::atomic<std::int64_t>& deadline_;
};

}  // namespace SPYGLASS_NAMESPACE::jsonl::detail
