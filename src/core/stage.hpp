// One exporter's stage: its one bounded drop-oldest buffer (a ring of events), its
// counters, and the stage thread that calls the exporter. Private to src/core.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/collector.hpp"
#include "spyglass/exporter.hpp"

namespace SPYGLASS_NAMESPACE::detail {

class Stage {
 public:
  using Clock = std::chrono::steady_clock;

  /// `usable` false: the exporter must never be called (it was busy when the process
  /// forked); everything offered is counted as dropped.
  Stage(std::shared_ptr<Exporter> exporter, const CollectorOptions& options, bool usable);
  ~Stage();
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  /// Starts the stage thread. The thread holds a reference to the stage, so an
  /// abandoned thread never outlives it.
  static void start(const std::shared_ptr<Stage>& stage);

  /// Collector thread: appends `n` events, evicting the oldest (or refusing the newest)
  /// past the capacity. Wakes the stage thread when a batch is ready.
  void offer(const Event* events, std::size_t n);

  /// Collector thread: the free room at the buffer's tail, contiguous and at most `want`
  /// events, for the collector to fill in place and hand over with commit(); empty when
  /// the buffer is full or closed. Nothing but the collector thread appends, so the room
  /// stays free until then.
  [[nodiscard]] std::span<Event> reserve(std::size_t want);
  /// Collector thread: appends the events written at the start of the room reserve()
  /// returned (`events` lies at its start). Counted as offered; dropped if the stage closed
  /// meanwhile.
  void commit(std::span<const Event> events);

  /// Asks the stage thread to deliver everything offered so far and call flush().
  void request_flush(std::uint64_t seq);
  /// True once a flush with sequence >= seq completed (or the stage stopped).
  [[nodiscard]] bool flushed(std::uint64_t seq);

  /// Asks the stage thread to deliver its buffer, flush and shut the exporter down by
  /// `deadline`, and tells the exporter so.
  void request_stop(Clock::time_point deadline);
  /// Waits for the stage thread until `deadline`. If it is still busy then, abandons it:
  /// the batch in flight counts as failed, the rest of the buffer as dropped, and the
  /// counters are final. Returns true if the thread finished in time.
  bool finish_by(Clock::time_point deadline);

  [[nodiscard]] ExporterCounters counters();
  [[nodiscard]] bool accepts_unsampled() const noexcept { return accepts_unsampled_; }
  [[nodiscard]] const std::shared_ptr<Exporter>& exporter() const noexcept { return exporter_; }
  [[nodiscard]] bool usable() const noexcept { return usable_; }

  /// fork(): tries to take the exporter's call lock until `deadline`; true when the
  /// exporter is not in the middle of a call (then it may be used in the child).
  bool lock_for_fork(Clock::time_point deadline) noexcept;
  /// fork(): whether lock_for_fork() found the exporter idle.
  [[nodiscard]] bool locked_for_fork() const noexcept { return fork_locked_; }
  /// fork(), in the parent: releases what lock_for_fork() took.
  void unlock_after_fork() noexcept;

 private:
  void run();
  // After count_ grew by appended events (m_ held): starts the age of the oldest event and
  // wakes the stage thread when the buffer was empty or a batch is ready.
  void appended(bool was_empty);
  // Whether offered events must be dropped at once (m_ held).
  [[nodiscard]] bool closed() const noexcept { return !usable_ || exited_ || abandoned_ || stop_; }
  template <typename Fn>
  bool call_guarded(Fn&& fn, const char* what) noexcept;

  std::shared_ptr<Exporter> exporter_;
  std::string name_;
  const bool usable_;
  const bool accepts_unsampled_;
  const std::size_t capacity_;
  const std::size_t batch_max_;
  const bool drop_oldest_;
  const Clock::duration flush_interval_;

  std::mutex m_;                       // guards everything below down to the counters
  std::condition_variable cv_;         // wakes the stage thread
  std::condition_variable exited_cv_;  // the stage thread finished
  // Raw storage: pages are touched (and resident) only once events reach them.
  struct FreeRing {
    void operator()(Event* p) const noexcept { ::operator delete(p); }
  };
  std::unique_ptr<Event, FreeRing> ring_;
  std::size_t head_ = 0;       // index of the oldest event
  std::size_t count_ = 0;      // events in the ring
  std::size_t in_flight_ = 0;  // events taken by the stage thread, being exported
  Clock::time_point oldest_since_{};
  bool waiting_ = false;  // the stage thread sleeps on cv_
  std::uint64_t flush_req_ = 0;
  std::uint64_t flush_done_ = 0;
  // Events at the head of the buffer that the pending flush must deliver first: what the
  // buffer held when it was requested. Later events do not hold a flush back.
  std::size_t flush_owed_ = 0;
  bool stop_ = false;
  bool exited_ = false;
  bool abandoned_ = false;

  // Written under m_, read without it.
  std::atomic<std::uint64_t> produced_{0};
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> dropped_{0};

  std::mutex call_mutex_;  // held while the exporter runs; fork() tries it
  bool fork_locked_ = false;
  // Set while fork() waits for call_mutex_: the stage thread starts no new call then, so
  // a busy exporter is found idle right after its current call.
  std::atomic<bool> fork_pending_{false};
  // Calls started so far, and the call a fork() last gave up waiting on: a later fork()
  // that finds the exporter still in that same call does not wait for it again.
  std::atomic<std::uint64_t> calls_started_{0};
  std::uint64_t fork_gave_up_on_ = ~std::uint64_t{0};
  std::thread thread_;
  std::vector<Event> batch_;  // stage thread only
};

}  // namespace SPYGLASS_NAMESPACE::detail
