// The collector: producers try_enqueue into a lock-free moodycamel queue (the transit)
// and never dequeue, evict or spin. One collector thread drains it in bulk every
// drain_interval, converts clock ticks to ns, feeds the StatsStore, cuts batches, and
// hands each batch to one worker thread per exporter. Each exporter has a bounded buffer
// of queue_size events where drop-oldest happens when that exporter falls behind.
#include "spyglass/collector.hpp"

#include <pthread.h>

#include <concurrentqueue/concurrentqueue.h>
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

#include "spyglass/clock.hpp"
#include "spyglass/emitter.hpp"
#include "spyglass/stats.hpp"

namespace spyglass::inline v0 {
namespace detail {
namespace {

// Explicit producers keep their blocks, and try_enqueue never allocates: a producer can
// hold at most EXPLICIT_INITIAL_INDEX_SIZE blocks, taken from the pool preallocated at
// construction. BLOCK_SIZE * index size bounds one thread's events in flight (4096).
struct TransitTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 64;
  static constexpr std::size_t EXPLICIT_INITIAL_INDEX_SIZE = 64;
};
using Transit = moodycamel::ConcurrentQueue<Event, TransitTraits>;

// Single-writer counter: only the owning thread writes, others read. No RMW needed.
inline void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::atomic<std::uint64_t> g_next_generation{1};

// Polls try_lock() rather than using a timed mutex: sanitizers do not intercept
// pthread_mutex_clocklock, and fork() is rare enough for polling.
bool try_lock_for(std::mutex& m, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!m.try_lock()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace

// A producer thread's handle on one collector's transit.
struct ThreadSlot {
  explicit ThreadSlot(Transit& q) : token(q) {}
  moodycamel::ProducerToken token;
  std::atomic<std::uint64_t> enqueued{0};
  std::atomic<std::uint64_t> rejected{0};
};

// One exporter and its worker thread. Self-contained (no pointer back to the collector),
// so a worker abandoned at shutdown can keep running safely after the collector is gone.
struct Stage {
  std::shared_ptr<Exporter> exporter;
  std::string name;
  std::size_t capacity = 0;
  bool drop_oldest = true;

  std::mutex m;
  std::condition_variable cv;
  std::deque<std::vector<Event>> pending;
  std::vector<std::vector<Event>> spare;  // recycled batch buffers
  std::size_t pending_events = 0;
  std::size_t in_flight = 0;
  std::uint64_t flush_req = 0;
  std::uint64_t flush_done = 0;
  bool stop = false;
  bool exited = false;
  bool abandoned = false;
  bool fork_locked = false;

  std::mutex export_mutex;  // held while the exporter runs; fork() waits on it
  std::thread thread;

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> exported{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> dropped{0};

  // Collector thread: queue a copy of the batch. When the exporter has fallen `capacity`
  // events behind, drops its oldest pending batches (or this one, without drop_oldest).
  void offer(const Event* a, std::size_t n) {
    std::lock_guard<std::mutex> lock(m);
    received.fetch_add(n, std::memory_order_relaxed);
    if (exited || abandoned) {
      dropped.fetch_add(n, std::memory_order_relaxed);
      return;
    }
    if (!drop_oldest && !pending.empty() && pending_events + n > capacity) {
      dropped.fetch_add(n, std::memory_order_relaxed);
      return;
    }
    while (!pending.empty() && pending_events + n > capacity) {
      dropped.fetch_add(pending.front().size(), std::memory_order_relaxed);
      pending_events -= pending.front().size();
      spare.push_back(std::move(pending.front()));
      pending.pop_front();
    }
    std::vector<Event> batch;
    if (!spare.empty()) {
      batch = std::move(spare.back());
      spare.pop_back();
    }
    batch.assign(a, a + n);
    pending.push_back(std::move(batch));
    pending_events += n;
    cv.notify_one();
  }

  template <typename Fn>
  bool call_exporter(Fn&& fn) noexcept {
    std::lock_guard<std::mutex> lock(export_mutex);
    try {
      return fn();
    } catch (...) {
      return false;
    }
  }

  void run() {
    for (;;) {
      std::vector<Event> batch;
      std::uint64_t flush_seq = 0;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return stop || !pending.empty() || flush_req > flush_done; });
        if (!pending.empty()) {
          batch = std::move(pending.front());
          pending.pop_front();
          pending_events -= batch.size();
          in_flight = batch.size();
        } else if (flush_req > flush_done) {
          flush_seq = flush_req;
        } else {
          break;  // stop requested and nothing pending
        }
      }
      if (!batch.empty()) {
        const bool ok = call_exporter([&] { return exporter->export_batch(batch); });
        (ok ? exported : failed).fetch_add(batch.size(), std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(m);
        in_flight = 0;
        if (spare.size() < 4) spare.push_back(std::move(batch));
      } else {
        call_exporter([&] {
          exporter->flush();
          return true;
        });
        std::lock_guard<std::mutex> lock(m);
        flush_done = std::max(flush_done, flush_seq);
      }
    }
    call_exporter([&] {
      exporter->flush();
      exporter->shutdown();
      return true;
    });
    std::lock_guard<std::mutex> lock(m);
    exited = true;
  }

  std::uint64_t pending_now() {
    std::lock_guard<std::mutex> lock(m);
    return pending_events + in_flight;
  }
};

// Every live collector and every producer thread, for thread exit, teardown and fork.
struct Registry {
  std::mutex m;
  std::vector<ThreadState*> threads;
  std::vector<CollectorImpl*> collectors;
};
Registry& registry() noexcept;

struct CollectorImpl {
  explicit CollectorImpl(const CollectorOptions& o)
      : options(o),
        transit(std::max<std::size_t>(o.transit_size, TransitTraits::BLOCK_SIZE)),
        stats(StatsOptions{.window = o.stats_window}) {
    if (options.batch_max == 0) options.batch_max = 1;
    options.queue_size = std::max(options.queue_size, options.batch_max);
    if (options.drain_interval < std::chrono::milliseconds(1))
      options.drain_interval = std::chrono::milliseconds(1);
    batch.reserve(options.batch_max);
  }

  CollectorOptions options;
  const std::uint64_t generation = g_next_generation.fetch_add(1);

  Transit transit;  // declared before the slots: tokens must die before their queue

  std::mutex slots_mutex;
  std::unordered_map<ThreadState*, std::unique_ptr<ThreadSlot>> slots;
  std::uint64_t retired_enqueued = 0;  // from slots of threads that exited
  std::uint64_t retired_rejected = 0;

  // Owned by the collector thread; cycle_mutex is held while it drains and dispatches.
  std::mutex cycle_mutex;
  std::vector<Event> batch;  // the batch being filled, at most batch_max
  std::chrono::steady_clock::time_point batch_started;
  std::vector<std::shared_ptr<Stage>> stages;
  std::atomic<std::size_t> batch_size_seen{0};
  std::atomic<std::uint64_t> exported{0};

  StatsStore stats;

  std::mutex wake_mutex;
  std::condition_variable wake_cv;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> flush_req{0};
  std::atomic<std::uint64_t> flush_done{0};
  std::thread thread;
  bool running = false;

  std::mutex shutdown_mutex;
  bool shut = false;
  bool shutdown_result = true;

  bool attach_thread(ThreadState& ts) noexcept {
    if (!ts.registered) register_thread();  // before slots_mutex: lock order registry -> slots
    try {
      std::lock_guard<std::mutex> lock(slots_mutex);
      auto& slot = slots[&ts];
      if (!slot) slot = std::make_unique<ThreadSlot>(transit);
      ts.slot = slot.get();
      ts.collector_gen = generation;
      return true;
    } catch (...) {
      return false;
    }
  }

  void detach_thread(ThreadState* ts) noexcept {
    std::lock_guard<std::mutex> lock(slots_mutex);
    auto it = slots.find(ts);
    if (it == slots.end()) return;
    retired_enqueued += it->second->enqueued.load(std::memory_order_relaxed);
    retired_rejected += it->second->rejected.load(std::memory_order_relaxed);
    slots.erase(it);
  }

  // Hands the batch being filled to every exporter.
  void dispatch() {
    for (auto& st : stages) st->offer(batch.data(), batch.size());
    exported.fetch_add(batch.size(), std::memory_order_release);
    batch.clear();
  }

  // One pass: drain the transit, then dispatch full batches (and partial ones when due).
  // Returns the number of events drained.
  std::size_t cycle(moodycamel::ConsumerToken& ctok, std::vector<Event>& buf, bool draining,
                    std::uint64_t flush_seq) {
    std::lock_guard<std::mutex> lock(cycle_mutex);
    std::size_t total = 0;
    for (;;) {
      const std::size_t n = transit.try_dequeue_bulk(ctok, buf.data(), buf.size());
      if (n == 0) break;
      for (std::size_t i = 0; i < n; ++i) {
        Event& e = buf[i];
        if (e.flags & Event::kFlagTicks) {
          e.start = clock::tick_to_unix_ns(e.start);
          e.duration = clock::ticks_to_ns(e.duration);
          e.flags = static_cast<std::uint8_t>(e.flags & ~Event::kFlagTicks);
        }
      }
      stats.record(std::span<const Event>(buf.data(), n));
      for (std::size_t i = 0; i < n; ++i) {
        if (batch.empty()) batch_started = std::chrono::steady_clock::now();
        batch.push_back(buf[i]);
        if (batch.size() >= options.batch_max) dispatch();
      }
      total += n;
      // Bound one pass so a flood cannot starve the partial-batch timer or shutdown.
      if (total >= options.transit_size && !draining) break;
    }
    const bool due =
        !batch.empty() && (draining || flush_seq > flush_done.load(std::memory_order_relaxed) ||
                           std::chrono::steady_clock::now() - batch_started >= options.flush_interval);
    if (due) dispatch();
    batch_size_seen.store(batch.size(), std::memory_order_relaxed);
    if (flush_seq > flush_done.load(std::memory_order_relaxed)) {
      for (auto& s : stages) {
        std::lock_guard<std::mutex> sl(s->m);
        s->flush_req = std::max(s->flush_req, flush_seq);
        s->cv.notify_one();
      }
      flush_done.store(flush_seq, std::memory_order_release);
    }
    return total;
  }

  void run() {
    moodycamel::ConsumerToken ctok(transit);
    std::vector<Event> buf(1024);
    auto last_calibration = std::chrono::steady_clock::now();
    for (;;) {
      const bool stopping = stop.load(std::memory_order_acquire);
      const std::uint64_t flush_seq = flush_req.load(std::memory_order_acquire);
      std::size_t drained = cycle(ctok, buf, stopping || flush_seq > flush_done.load(), flush_seq);
      if (stopping) {
        // Final drain: keep going while producers still deliver, but not forever.
        for (int pass = 0; drained > 0 && pass < 64; ++pass) drained = cycle(ctok, buf, true, flush_seq);
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_calibration > std::chrono::seconds(1)) {
        clock::recalibrate();
        last_calibration = now;
      }
      // Sleep a full interval after every pass, also a busy one: draining while producers
      // write the same blocks would bounce their cache lines and multiply their cost.
      // A flush or stop request cuts the wait.
      std::unique_lock<std::mutex> lock(wake_mutex);
      wake_cv.wait_for(lock, options.drain_interval, [&] {
        return stop.load(std::memory_order_relaxed) ||
               flush_req.load(std::memory_order_relaxed) > flush_done.load(std::memory_order_relaxed);
      });
    }
  }

  void wake() {
    std::lock_guard<std::mutex> lock(wake_mutex);
    wake_cv.notify_all();
  }

  void start() {
    running = true;
    thread = std::thread([this] { run(); });
  }

  // fork(): the prepare handler takes every lock the threads use, so the child starts
  // from a consistent state; the child then restarts the threads it lost.
  void fork_prepare() {
    cycle_mutex.lock();
    slots_mutex.lock();
    for (auto& s : stages) {
      s->fork_locked = try_lock_for(s->export_mutex, std::chrono::milliseconds(200));
      s->m.lock();
    }
    wake_mutex.lock();
  }

  void fork_parent() {
    wake_mutex.unlock();
    for (auto& s : stages) {
      s->m.unlock();
      if (s->fork_locked) s->export_mutex.unlock();
    }
    slots_mutex.unlock();
    cycle_mutex.unlock();
  }

  void fork_child(ThreadState* self) {
    wake_mutex.unlock();
    for (auto& s : stages) {
      s->m.unlock();
      if (s->fork_locked) s->export_mutex.unlock();
    }
    // Producer slots of threads that do not exist in the child are retired.
    for (auto it = slots.begin(); it != slots.end();) {
      if (it->first != self) {
        retired_enqueued += it->second->enqueued.load(std::memory_order_relaxed);
        retired_rejected += it->second->rejected.load(std::memory_order_relaxed);
        it = slots.erase(it);
      } else {
        ++it;
      }
    }
    slots_mutex.unlock();
    cycle_mutex.unlock();
    // Thread handles and condition variables refer to the parent's threads: start afresh.
    new (&wake_cv) std::condition_variable();
    new (&thread) std::thread();
    for (auto& s : stages) {
      new (&s->cv) std::condition_variable();
      new (&s->thread) std::thread();
      try {
        s->exporter->after_fork_child();
      } catch (...) {
      }
      if (s->fork_locked && !s->exited && !s->abandoned) {
        s->in_flight = 0;
        s->thread = std::thread([raw = s.get(), keep = s] { raw->run(); });
      } else if (!s->exited) {
        s->abandoned = true;  // it was stuck inside the exporter when the parent forked
      }
    }
    if (running && !stop.load()) thread = std::thread([this] { run(); });
  }
};

Registry& registry() noexcept {
  static Registry* r = [] {
    auto* reg = new Registry;  // never freed: threads may exit after static destruction
    pthread_atfork(
        [] {
          Registry& g = registry();
          g.m.lock();
          for (auto* c : g.collectors) c->fork_prepare();
        },
        [] {
          Registry& g = registry();
          for (auto* c : g.collectors) c->fork_parent();
          g.m.unlock();
        },
        [] {
          Registry& g = registry();
          ThreadState* self = &tl_state;
          for (auto* c : g.collectors) c->fork_child(self);
          const bool had_self = std::find(g.threads.begin(), g.threads.end(), self) != g.threads.end();
          g.threads.clear();
          if (had_self) g.threads.push_back(self);
          g.m.unlock();
        });
    return reg;
  }();
  return *r;
}

namespace {
// Runs at thread exit: unlists the thread and retires its producer slots.
struct ThreadReaper {
  ~ThreadReaper() {
    Registry& g = registry();
    std::lock_guard<std::mutex> lock(g.m);
    ThreadState* self = &tl_state;
    std::erase(g.threads, self);
    for (auto* c : g.collectors) c->detach_thread(self);
    self->registered = false;
    self->collector_gen = 0;
    self->slot = nullptr;
  }
};
}  // namespace

void register_thread() noexcept {
  thread_local ThreadReaper reaper;
  (void)reaper;
  ThreadState& ts = tl_state;
  if (ts.registered) return;
  Registry& g = registry();
  std::lock_guard<std::mutex> lock(g.m);
  try {
    g.threads.push_back(&ts);
    ts.registered = true;
  } catch (...) {
  }
}

bool collector_enqueue(Collector* c, const Event& e) noexcept { return c->enqueue(e); }

// Waits until no registered thread other than the caller is inside submit(). Called
// after the default collector pointer was cleared, so no new one can enter it.
void wait_for_quiescent_threads() noexcept {
  Registry& g = registry();
  std::lock_guard<std::mutex> lock(g.m);
  for (ThreadState* t : g.threads) {
    if (t == &tl_state) continue;
    while (t->busy.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }
}

}  // namespace detail

Collector::Collector(CollectorOptions options) : impl_(std::make_unique<detail::CollectorImpl>(options)) {
  clock::ticks_per_second();  // calibrate now, not on the first event
  {
    detail::Registry& g = detail::registry();
    std::lock_guard<std::mutex> lock(g.m);
    g.collectors.push_back(impl_.get());
  }
  impl_->start();
}

Collector::~Collector() {
  shutdown();
  detail::Registry& g = detail::registry();
  std::lock_guard<std::mutex> lock(g.m);
  std::erase(g.collectors, impl_.get());
}

void Collector::add_exporter(std::shared_ptr<Exporter> exporter) {
  if (!exporter) return;
  auto stage = std::make_shared<detail::Stage>();
  stage->name = std::string(exporter->name());
  stage->exporter = std::move(exporter);
  stage->capacity = impl_->options.queue_size;
  stage->drop_oldest = impl_->options.drop_oldest;
  std::lock_guard<std::mutex> lock(impl_->cycle_mutex);
  if (impl_->stop.load()) return;
  detail::Stage* raw = stage.get();
  // The worker owns a reference, so an abandoned worker never outlives its Stage.
  stage->thread = std::thread([raw, keep = stage] { raw->run(); });
  impl_->stages.push_back(std::move(stage));
}

bool Collector::enqueue(const Event& event) noexcept {
  detail::ThreadState& ts = detail::tl_state;
  detail::CollectorImpl* impl = impl_.get();
  if (SPYGLASS_UNLIKELY(ts.collector_gen != impl->generation) && !impl->attach_thread(ts)) return false;
  auto* slot = static_cast<detail::ThreadSlot*>(ts.slot);
  if (SPYGLASS_LIKELY(impl->transit.try_enqueue(slot->token, event))) {
    detail::bump(slot->enqueued);
    return true;
  }
  detail::bump(slot->rejected);
  return false;
}

bool Collector::flush(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::uint64_t seq = impl_->flush_req.fetch_add(1) + 1;
  impl_->wake();
  const auto wait_until = [&](auto&& done) {
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return true;
  };
  if (!wait_until(
          [&] { return impl_->flush_done.load(std::memory_order_acquire) >= seq || impl_->stop.load(); }))
    return false;
  std::vector<std::shared_ptr<detail::Stage>> stages;
  {
    std::lock_guard<std::mutex> lock(impl_->cycle_mutex);
    stages = impl_->stages;
  }
  for (auto& s : stages) {
    const bool ok = wait_until([&] {
      std::lock_guard<std::mutex> lock(s->m);
      return s->flush_done >= seq || s->exited || s->abandoned;
    });
    if (!ok) return false;
  }
  return true;
}

bool Collector::shutdown(std::chrono::milliseconds timeout) {
  detail::CollectorImpl& impl = *impl_;
  std::lock_guard<std::mutex> guard(impl.shutdown_mutex);
  if (impl.shut) return impl.shutdown_result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  impl.stop.store(true, std::memory_order_release);
  impl.wake();
  if (impl.thread.joinable()) impl.thread.join();
  std::vector<std::shared_ptr<detail::Stage>> stages;
  {
    std::lock_guard<std::mutex> lock(impl.cycle_mutex);
    stages = impl.stages;
  }
  for (auto& s : stages) {
    std::lock_guard<std::mutex> lock(s->m);
    s->stop = true;
    s->cv.notify_all();
  }
  bool ok = true;
  for (auto& s : stages) {
    bool exited = false;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(s->m);
        exited = s->exited;
      }
      if (exited || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (exited) {
      if (s->thread.joinable()) s->thread.join();
    } else {
      // Stuck in the exporter: leave the worker behind; what it still holds is lost.
      std::lock_guard<std::mutex> lock(s->m);
      s->abandoned = true;
      s->dropped.fetch_add(s->pending_events, std::memory_order_relaxed);
      s->pending_events = 0;
      s->pending.clear();
      if (s->thread.joinable()) s->thread.detach();
      ok = false;
    }
  }
  impl.shut = true;
  impl.shutdown_result = ok;
  return ok;
}

CollectorCounters Collector::counters() const {
  const detail::CollectorImpl& impl = *impl_;
  CollectorCounters c;
  // Read what has left before what came in, so a snapshot taken under load never shows
  // more exported than enqueued.
  c.exported = impl.exported.load(std::memory_order_acquire);
  {
    std::lock_guard<std::mutex> lock(impl_->slots_mutex);
    c.enqueued = impl.retired_enqueued + impl.retired_rejected;
    c.dropped = impl.retired_rejected;
    for (const auto& [ts, slot] : impl.slots) {
      const std::uint64_t rejected = slot->rejected.load(std::memory_order_relaxed);
      c.enqueued += slot->enqueued.load(std::memory_order_relaxed) + rejected;
      c.dropped += rejected;
    }
  }
  c.queued = impl_->transit.size_approx() + impl.batch_size_seen.load(std::memory_order_relaxed);
  for (const auto& s : exporter_counters()) c.export_errors += s.failed + s.dropped;
  return c;
}

std::vector<ExporterCounters> Collector::exporter_counters() const {
  std::vector<std::shared_ptr<detail::Stage>> stages;
  {
    std::lock_guard<std::mutex> lock(impl_->cycle_mutex);
    stages = impl_->stages;
  }
  std::vector<ExporterCounters> out;
  out.reserve(stages.size());
  for (auto& s : stages) {
    ExporterCounters e;
    e.name = s->name;
    e.received = s->received.load(std::memory_order_relaxed);
    e.exported = s->exported.load(std::memory_order_relaxed);
    e.failed = s->failed.load(std::memory_order_relaxed);
    e.dropped = s->dropped.load(std::memory_order_relaxed);
    e.pending = s->pending_now();
    out.push_back(std::move(e));
  }
  return out;
}

StatsStore& Collector::stats() noexcept { return impl_->stats; }

const CollectorOptions& Collector::options() const noexcept { return impl_->options; }

}  // namespace spyglass::inline v0
