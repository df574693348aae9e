#pragma once
// A real in-memory exporter for tests: keeps every event it receives, and can be told to
// fail, throw or stall, to exercise the collector's isolation of exporters. In a forked
// child it forgets what the parent received, as the Exporter contract asks, so the child's
// events() are the child's own.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/exporter.hpp"

namespace spyglass::test {

class CollectingExporter : public Exporter {
 public:
  enum class Mode { ok, fail, throw_error, stall };

  explicit CollectingExporter(std::string name = "collecting", Mode mode = Mode::ok)
      : name_(std::move(name)), mode_(mode) {}

  bool export_batch(std::span<const Event> events) override {
    calls_.fetch_add(1);
    if (mode_ == Mode::stall) {
      std::unique_lock<std::mutex> lock(m_);
      stalled_.store(true);
      cv_.wait(lock, [&] { return released_; });
    }
    if (mode_ == Mode::fail) return false;
    if (mode_ == Mode::throw_error) throw std::runtime_error("exporter failure requested by the test");
    std::lock_guard<std::mutex> lock(m_);
    events_.insert(events_.end(), events.begin(), events.end());
    count_.store(events_.size());
    ++batches_;
    max_batch_ = std::max(max_batch_, events.size());
    return true;
  }
  void flush() override { flushes_.fetch_add(1); }
  void shutdown() override { shutdowns_.fetch_add(1); }
  void after_fork_child() override {
    std::lock_guard<std::mutex> lock(m_);
    events_.clear();
    count_.store(0);
    batches_ = 0;
    max_batch_ = 0;
    calls_.store(0);
    flushes_.store(0);
    shutdowns_.store(0);
    forks_.fetch_add(1);
  }
  std::string_view name() const override { return name_; }
  bool accepts_unsampled() const override { return accepts_unsampled_; }

  /// Makes the exporter ask for the spans of unsampled traces too, as a metrics exporter
  /// does. Set before adding it to a collector.
  void set_accepts_unsampled(bool accepts) { accepts_unsampled_ = accepts; }

  /// Lets a stalled exporter continue.
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    released_ = true;
    cv_.notify_all();
  }
  bool stalled() const { return stalled_.load(); }

  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(m_);
    return events_;
  }
  /// Events received so far. Lock-free, so threads that may be caught by fork() can read it.
  std::size_t count() const { return count_.load(); }
  std::size_t batches() const {
    std::lock_guard<std::mutex> lock(m_);
    return batches_;
  }
  std::size_t max_batch() const {
    std::lock_guard<std::mutex> lock(m_);
    return max_batch_;
  }
  /// export_batch() calls, including the ones that failed, threw or are stalled.
  int calls() const { return calls_.load(); }
  int flushes() const { return flushes_.load(); }
  int shutdowns() const { return shutdowns_.load(); }
  int forks() const { return forks_.load(); }

 private:
  std::string name_;
  Mode mode_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  bool released_ = false;
  std::atomic<bool> stalled_{false};
  std::vector<Event> events_;
  std::atomic<std::size_t> count_{0};
  std::size_t batches_ = 0;
  std::size_t max_batch_ = 0;
  bool accepts_unsampled_ = false;
  std::atomic<int> calls_{0}, flushes_{0}, shutdowns_{0}, forks_{0};
};

/// Polls `pred` until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace spyglass::test
