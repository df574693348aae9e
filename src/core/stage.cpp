#include "stage.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "spyglass/log.hpp"

namespace SPYGLASS_NAMESPACE::detail {

Stage::Stage(std::shared_ptr<Exporter> exporter, const CollectorOptions& options, bool usable)
    : exporter_(std::move(exporter)),
      name_(exporter_->name()),
      usable_(usable),
      accepts_unsampled_(usable && exporter_->accepts_unsampled()),
      capacity_(std::max(options.buffer_capacity, options.batch_max)),
      batch_max_(options.batch_max),
      drop_oldest_(options.drop_oldest),
      flush_interval_(options.flush_interval),
      ring_(usable ? static_cast<Event*>(::operator new(capacity_ * sizeof(Event))) : nullptr) {
  if (usable_) batch_.reserve(batch_max_);
}

Stage::~Stage() {
  if (thread_.joinable()) thread_.detach();  // only reached for an abandoned thread's last owner
}

void Stage::start(const std::shared_ptr<Stage>& stage) {
  if (!stage->usable_) return;
  Stage* raw = stage.get();
  stage->thread_ = std::thread([raw, keep = stage] {
    // "sg-" and the exporter's name, cut to the 15 bytes a thread name may hold.
    const std::string thread_name = ("sg-" + raw->name_).substr(0, 15);
    pthread_setname_np(pthread_self(), thread_name.c_str());
    raw->run();
  });
}

void Stage::offer(const Event* a, std::size_t n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(m_);
  produced_.fetch_add(n, std::memory_order_relaxed);
  if (closed()) {
    dropped_.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  const bool was_empty = count_ == 0;
  if (count_ + n > capacity_) {
    if (drop_oldest_) {
      if (n >= capacity_) {  // only the newest `capacity_` of the incoming survive
        dropped_.fetch_add(count_ + (n - capacity_), std::memory_order_relaxed);
        a += n - capacity_;
        n = capacity_;
        head_ = 0;
        count_ = 0;
      } else {
        const std::size_t evict = count_ + n - capacity_;
        head_ = (head_ + evict) % capacity_;
        count_ -= evict;
        dropped_.fetch_add(evict, std::memory_order_relaxed);
      }
    } else {
      const std::size_t room = capacity_ - count_;
      dropped_.fetch_add(n - room, std::memory_order_relaxed);
      n = room;
    }
  }
  const std::size_t tail = (head_ + count_) % capacity_;
  const std::size_t first = std::min(n, capacity_ - tail);
  std::memcpy(static_cast<void*>(&ring_.get()[tail]), a, first * sizeof(Event));
  if (n > first) std::memcpy(static_cast<void*>(&ring_.get()[0]), a + first, (n - first) * sizeof(Event));
  count_ += n;
  appended(was_empty);
}

std::span<Event> Stage::reserve(std::size_t want) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed()) return {};
  const std::size_t tail = (head_ + count_) % capacity_;
  return {ring_.get() + tail, std::min({want, capacity_ - count_, capacity_ - tail})};
}

void Stage::commit(std::span<const Event> events) {
  const std::size_t n = events.size();
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(m_);
  produced_.fetch_add(n, std::memory_order_relaxed);
  // An abandoned stage emptied its buffer after reserve(): the room is no longer the tail.
  if (closed() || events.data() != ring_.get() + (head_ + count_) % capacity_) {
    dropped_.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  const bool was_empty = count_ == 0;
  count_ += n;
  appended(was_empty);
}

void Stage::appended(bool was_empty) {
  if (was_empty) oldest_since_ = Clock::now();
  if (waiting_ && (was_empty || count_ >= batch_max_)) cv_.notify_one();
}

void Stage::request_flush(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(m_);
  flush_req_ = std::max(flush_req_, seq);
  flush_owed_ = count_;  // the buffer is FIFO: this covers earlier requests too
  cv_.notify_one();
}

bool Stage::flushed(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(m_);
  return !usable_ || flush_done_ >= seq || exited_ || abandoned_;
}

void Stage::request_stop(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
    cv_.notify_one();
  }
  if (usable_) exporter_->begin_shutdown(deadline);
}

bool Stage::finish_by(Clock::time_point deadline) {
  if (!usable_) return true;
  std::unique_lock<std::mutex> lock(m_);
  exited_cv_.wait_until(lock, deadline, [&] { return exited_; });
  if (exited_) {
    lock.unlock();
    if (thread_.joinable()) thread_.join();
    return true;
  }
  abandoned_ = true;
  failed_.fetch_add(in_flight_, std::memory_order_relaxed);
  dropped_.fetch_add(count_, std::memory_order_relaxed);
  in_flight_ = 0;
  count_ = 0;
  lock.unlock();
  log(LogLevel::warning, "collector",
      "exporter '" + name_ +
          "' did not finish within its shutdown timeout; what it still held is counted as lost");
  if (thread_.joinable()) thread_.detach();
  return false;
}

ExporterCounters Stage::counters() {
  ExporterCounters c;
  c.name = name_;
  std::lock_guard<std::mutex> lock(m_);
  c.produced = produced_.load(std::memory_order_relaxed);
  c.sent = sent_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.pending = count_ + in_flight_;
  return c;
}

bool Stage::lock_for_fork(Clock::time_point deadline) noexcept {
  fork_locked_ = false;
  if (!usable_) return false;
  if (calls_started_.load(std::memory_order_acquire) == fork_gave_up_on_) deadline = Clock::now();
  fork_pending_.store(true, std::memory_order_seq_cst);
  while (!(fork_locked_ = call_mutex_.try_lock())) {
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  fork_pending_.store(false, std::memory_order_release);
  if (!fork_locked_) fork_gave_up_on_ = calls_started_.load(std::memory_order_acquire);
  return fork_locked_;
}

void Stage::unlock_after_fork() noexcept {
  if (fork_locked_) call_mutex_.unlock();
  fork_locked_ = false;
}

template <typename Fn>
bool Stage::call_guarded(Fn&& fn, const char* what) noexcept {
  while (fork_pending_.load(std::memory_order_acquire)) std::this_thread::yield();
  std::lock_guard<std::mutex> lock(call_mutex_);
  calls_started_.fetch_add(1, std::memory_order_release);
  try {
    return fn();
  } catch (const std::exception& e) {
    log(LogLevel::warning, "collector", "exporter '" + name_ + "' threw from " + what + ": " + e.what());
  } catch (...) {
    log(LogLevel::warning, "collector", "exporter '" + name_ + "' threw from " + what);
  }
  return false;
}

void Stage::run() {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    // Decide what to do: deliver a batch, flush, stop, or sleep until one of them.
    const bool flush_due = flush_req_ > flush_done_;
    if (flush_due) flush_owed_ = std::min(flush_owed_, count_);  // shed events are owed no more
    const bool flush_now = flush_due && flush_owed_ == 0;
    bool take = !flush_now && (count_ >= batch_max_ || (count_ > 0 && (stop_ || flush_due)));
    if (!take && !flush_now && count_ > 0 && Clock::now() - oldest_since_ >= flush_interval_) take = true;
    if (take) {
      const std::size_t k = std::min(count_, batch_max_);
      const std::size_t first = std::min(k, capacity_ - head_);
      Event* ring = ring_.get();
      batch_.assign(ring + head_, ring + head_ + first);
      if (k > first) batch_.insert(batch_.end(), ring, ring + (k - first));
      head_ = (head_ + k) % capacity_;
      count_ -= k;
      flush_owed_ -= std::min(flush_owed_, k);
      in_flight_ = k;
      if (count_ > 0) oldest_since_ = Clock::now();
      lock.unlock();
      const bool ok = call_guarded([&] { return exporter_->export_batch(batch_); }, "export_batch");
      lock.lock();
      if (abandoned_) return;  // counted when it was abandoned
      (ok ? sent_ : failed_).fetch_add(k, std::memory_order_relaxed);
      in_flight_ = 0;
      continue;
    }
    if (flush_now) {
      const std::uint64_t seq = flush_req_;
      lock.unlock();
      call_guarded(
          [&] {
            exporter_->flush();
            return true;
          },
          "flush");
      lock.lock();
      if (abandoned_) return;
      flush_done_ = std::max(flush_done_, seq);
      continue;
    }
    if (stop_) break;  // stop requested and the buffer is empty
    waiting_ = true;
    if (count_ > 0) {
      cv_.wait_until(lock, oldest_since_ + flush_interval_);
    } else {
      cv_.wait(lock);
    }
    waiting_ = false;
  }
  lock.unlock();
  call_guarded(
      [&] {
        exporter_->flush();
        exporter_->shutdown();
        return true;
      },
      "shutdown");
  lock.lock();
  exited_ = true;
  exited_cv_.notify_all();
}

}  // namespace SPYGLASS_NAMESPACE::detail
