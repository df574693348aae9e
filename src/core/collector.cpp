// The collector: producers try_enqueue into a lock-free moodycamel queue (the transit)
// and never dequeue, evict or spin. One collector thread drains it in bulk every
// drain_interval, converts clock ticks to ns, feeds the StatsStore and appends the
// events to each exporter's one bounded buffer (its Stage), whose thread calls the
// exporter.
//
// Everything the threads touch lives in an Engine. A forked child never touches its
// parent's Engine (its locks may be held by threads that do not exist there): it keeps
// it out of the way forever and builds a fresh one, with zero counters, on first use.
#include "spyglass/collector.hpp"

#include <pthread.h>

#include <concurrentqueue/concurrentqueue.h>
#include <algorithm>
#include <condition_variable>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>

#include "internal.hpp"
#include "spyglass/clock.hpp"
#include "spyglass/emitter.hpp"
#include "spyglass/log.hpp"
#include "spyglass/stats.hpp"
#include "stage.hpp"

namespace SPYGLASS_NAMESPACE {
namespace detail {
namespace {

// Explicit producers keep their blocks, and try_enqueue never allocates: a producer can
// hold at most EXPLICIT_INITIAL_INDEX_SIZE blocks, taken from the pool preallocated at
// construction. BLOCK_SIZE * index size bounds one thread's events in flight.
struct TransitTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 256;
  static constexpr std::size_t EXPLICIT_INITIAL_INDEX_SIZE = 1024;
};
using Transit = moodycamel::ConcurrentQueue<Event, TransitTraits>;
constexpr std::size_t kMaxTransit = TransitTraits::BLOCK_SIZE * TransitTraits::EXPLICIT_INITIAL_INDEX_SIZE;

// Single-writer counter: only the owning thread writes, others read. No RMW needed.
inline void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::atomic<std::uint64_t> g_next_generation{1};

CollectorOptions sanitized(CollectorOptions o) {
  o.batch_max = std::max<std::size_t>(o.batch_max, 1);
  o.buffer_capacity = std::max(o.buffer_capacity, o.batch_max);
  o.transit_capacity = std::clamp<std::size_t>(o.transit_capacity, TransitTraits::BLOCK_SIZE, kMaxTransit);
  o.drain_interval = std::max<std::chrono::microseconds>(o.drain_interval, std::chrono::microseconds(100));
  o.fork_wait = std::max<std::chrono::milliseconds>(o.fork_wait, std::chrono::milliseconds(0));
  return o;
}

}  // namespace

// A producer thread's handle on one engine's transit.
struct ThreadSlot {
  explicit ThreadSlot(Transit& q) : transit(&q), token(q) {}
  Transit* transit;
  moodycamel::ProducerToken token;
  // Counted before the event becomes visible to the collector, so a snapshot never shows
  // more dispatched than offered.
  std::atomic<std::uint64_t> offered{0};
  std::atomic<std::uint64_t> rejected{0};
};

// The transit, the collector thread and the stages of one process.
struct Engine {
  Engine(const CollectorOptions& o, StatsStore& s, std::uint64_t fork_tick)
      : options(o), transit(o.transit_capacity), stats(s), pre_fork_tick(fork_tick) {}

  const CollectorOptions options;
  const std::uint64_t generation = g_next_generation.fetch_add(1);
  Transit transit;  // declared before the slots: tokens must die before their queue
  StatsStore& stats;
  // Events opened before this tick (in ticks) were opened in the parent before fork().
  const std::uint64_t pre_fork_tick;

  std::mutex slots_mutex;
  std::unordered_map<ThreadState*, std::unique_ptr<ThreadSlot>> slots;
  std::uint64_t retired_offered = 0;  // from slots of threads that exited
  std::uint64_t retired_rejected = 0;

  std::mutex stages_mutex;  // guards the list; the collector thread reads it under it
  std::vector<std::shared_ptr<Stage>> stages;

  std::atomic<std::uint64_t> dispatched{0};
  std::atomic<std::uint64_t> pre_fork{0};

  std::mutex wake_mutex;
  std::condition_variable wake_cv;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> flush_req{0};
  std::atomic<std::uint64_t> flush_done{0};
  std::thread thread;

  ThreadSlot* attach(ThreadState& ts) {
    std::lock_guard<std::mutex> lock(slots_mutex);
    auto& slot = slots[&ts];
    if (!slot) slot = std::make_unique<ThreadSlot>(transit);
    return slot.get();
  }

  void detach(ThreadState* ts) noexcept {
    std::lock_guard<std::mutex> lock(slots_mutex);
    auto it = slots.find(ts);
    if (it == slots.end()) return;
    retired_offered += it->second->offered.load(std::memory_order_relaxed);
    retired_rejected += it->second->rejected.load(std::memory_order_relaxed);
    slots.erase(it);
  }

  // Drops the events a forked child's parent opened, converts ticks to ns and feeds the
  // StatsStore. Returns how many of the `n` events are kept, compacted at the front.
  std::size_t prepare(Event* buf, std::size_t n) {
    if (pre_fork_tick != 0) {
      std::size_t kept = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const Event& e = buf[i];
        if ((e.flags & Event::kFlagTicks) && e.start < pre_fork_tick) continue;
        buf[kept++] = e;
      }
      pre_fork.fetch_add(n - kept, std::memory_order_relaxed);
      n = kept;
    }
    const clock::TickConverter conv = clock::tick_converter();
    for (std::size_t i = 0; i < n; ++i) {
      Event& e = buf[i];
      if (e.flags & Event::kFlagTicks) {
        e.start = conv.to_unix_ns(e.start);
        e.duration = conv.to_ns(e.duration);
        e.flags = static_cast<std::uint8_t>(e.flags & ~Event::kFlagTicks);
      }
    }
    stats.record(std::span<const Event>(buf, n));
    return n;
  }

  // Prepares `n` drained events and appends them to every exporter's buffer (the sampled
  // ones only, for exporters that take no others).
  void dispatch(Event* buf, std::size_t n, std::vector<Event>& sampled) {
    n = prepare(buf, n);
    const std::span<const Event> all(buf, n);
    std::span<const Event> only_sampled = all;
    if (std::any_of(all.begin(), all.end(), [](const Event& e) { return !e.sampled(); })) {
      sampled.clear();
      std::copy_if(all.begin(), all.end(), std::back_inserter(sampled),
                   [](const Event& e) { return e.sampled(); });
      only_sampled = sampled;
    }
    {
      std::lock_guard<std::mutex> lock(stages_mutex);
      for (auto& st : stages) {
        const std::span<const Event> events = st->accepts_unsampled() ? all : only_sampled;
        st->offer(events.data(), events.size());
      }
    }
    dispatched.fetch_add(n, std::memory_order_release);
  }

  // With one exporter whose buffer has room, dequeues straight into that buffer and
  // prepares the events there: one copy of each event fewer than dispatch(), the largest
  // part of the collector's cost per event. Returns the count dequeued, or nothing when
  // this path does not apply (several exporters, or a full buffer, whose drop-oldest
  // eviction offer() does).
  std::optional<std::size_t> drain_into_only_stage(moodycamel::ConsumerToken& ctok, std::size_t want) {
    std::lock_guard<std::mutex> lock(stages_mutex);
    if (stages.size() != 1) return std::nullopt;
    Stage& st = *stages.front();
    const std::span<Event> room = st.reserve(want);
    if (room.empty()) return std::nullopt;
    const std::size_t n = transit.try_dequeue_bulk(ctok, room.data(), room.size());
    const std::size_t kept = prepare(room.data(), n);
    std::size_t delivered = kept;
    if (!st.accepts_unsampled())
      delivered = static_cast<std::size_t>(
          std::remove_if(room.data(), room.data() + kept, [](const Event& e) { return !e.sampled(); }) -
          room.data());
    st.commit(room.first(delivered));
    dispatched.fetch_add(kept, std::memory_order_release);
    return n;
  }

  // Dequeues and dispatches up to `limit` events, fewer when the transit runs empty.
  // Returns the count.
  std::size_t drain(moodycamel::ConsumerToken& ctok, std::vector<Event>& buf, std::vector<Event>& sampled,
                    std::size_t limit) {
    std::size_t total = 0;
    while (total < limit) {
      const std::size_t want = std::min(buf.size(), limit - total);
      std::size_t n = 0;
      if (const auto direct = drain_into_only_stage(ctok, want)) {
        n = *direct;
      } else {
        n = transit.try_dequeue_bulk(ctok, buf.data(), want);
        if (n > 0) dispatch(buf.data(), n, sampled);
      }
      if (n == 0) break;
      total += n;
    }
    return total;
  }

  // How many events a flush dequeues (unless the transit runs empty first) to have taken
  // every event enqueued before it, while producers keep enqueueing: "until empty" would
  // never end when they outpace the collector. Those events are at most the `held` the
  // transit holds now. The consumer serves the producers in turns of up to one bulk each,
  // so a producer's oldest event may wait behind other producers' newer ones; after
  // P * (held + bulk) events every producer has had enough turns. P counts the attached
  // threads and one more for producers of threads that exited with events in transit.
  std::size_t flush_limit(std::size_t bulk) {
    std::size_t producers = 1;
    {
      std::lock_guard<std::mutex> lock(slots_mutex);
      producers += slots.size();
    }
    return producers * (transit.size_approx() + bulk);
  }

  std::vector<std::shared_ptr<Stage>> stage_list() {
    std::lock_guard<std::mutex> lock(stages_mutex);
    return stages;
  }

  void run() {
    moodycamel::ConsumerToken ctok(transit);
    std::vector<Event> buf(4096);
    std::vector<Event> sampled;
    sampled.reserve(buf.size());
    auto last_calibration = std::chrono::steady_clock::now();
    for (;;) {
      const bool stopping = stop.load(std::memory_order_acquire);
      const std::uint64_t flush_seq = flush_req.load(std::memory_order_acquire);
      const bool flushing = flush_seq > flush_done.load(std::memory_order_relaxed);
      const std::size_t limit = stopping   ? std::numeric_limits<std::size_t>::max()
                                : flushing ? flush_limit(buf.size())
                                           : options.transit_capacity;
      std::size_t drained = drain(ctok, buf, sampled, limit);
      if (flushing) {
        for (auto& s : stage_list()) s->request_flush(flush_seq);
        flush_done.store(flush_seq, std::memory_order_release);
      }
      if (stopping) {
        // Final drain: keep going while producers still deliver, but not forever.
        for (int pass = 0; drained > 0 && pass < 64; ++pass)
          drained = drain(ctok, buf, sampled, std::numeric_limits<std::size_t>::max());
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_calibration > std::chrono::seconds(1)) {
        clock::recalibrate();
        last_calibration = now;
      }
      // Sleep a full interval after every pass, also a busy one: draining while producers
      // write the same blocks would bounce their cache lines and multiply their cost. The
      // transit is sized to hold what arrives meanwhile. A flush or stop cuts the wait.
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
    for (auto& s : stages) Stage::start(s);
    thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "sg-collector");  // visible in top, perf and /proc
      run();
    });
  }
};

struct CollectorImpl {
  explicit CollectorImpl(const CollectorOptions& o)
      : options(sanitized(o)), stats(StatsOptions{.window = o.stats_window}) {}

  const CollectorOptions options;
  StatsStore stats;

  // Guards engine, exporters and the state flags. Taken on a thread's first enqueue, by
  // the control calls, and across fork(); never on the hot path.
  mutable std::mutex engine_mutex;
  std::unique_ptr<Engine> engine;
  // Compared with ThreadState::collector_gen on the hot path; a fresh value whenever the
  // engine a thread must attach to changes (first start, after fork).
  std::atomic<std::uint64_t> generation{g_next_generation.fetch_add(1)};
  std::vector<std::shared_ptr<Exporter>> exporters;
  std::vector<bool> exporter_usable;  // false: was busy at a fork; never called here
  std::uint64_t pre_fork_tick = 0;    // set in a forked child
  bool stopped = false;

  // fork() bookkeeping, valid between prepare and parent/child.
  Engine* fork_engine = nullptr;

  std::mutex shutdown_mutex;
  bool shut = false;
  bool shutdown_result = true;

  // Builds and starts the engine (engine_mutex held).
  Engine& ensure_engine() {
    if (!engine) {
      auto e = std::make_unique<Engine>(options, stats, pre_fork_tick);
      for (std::size_t i = 0; i < exporters.size(); ++i)
        e->stages.push_back(std::make_shared<Stage>(exporters[i], options, exporter_usable[i]));
      e->start();
      engine = std::move(e);
      generation.store(engine->generation, std::memory_order_release);
    }
    return *engine;
  }

  bool attach_thread(ThreadState& ts) noexcept {
    if (!ts.registered) register_thread();  // before engine_mutex: lock order registry -> engine
    try {
      std::lock_guard<std::mutex> lock(engine_mutex);
      if (stopped) return false;
      Engine& e = ensure_engine();
      ts.slot = e.attach(ts);
      ts.collector_gen = e.generation;
      return true;
    } catch (const std::exception& ex) {
      log(LogLevel::error, "collector", std::string("cannot start recording on this thread: ") + ex.what());
      return false;
    }
  }

  Engine* current_engine() const {
    std::lock_guard<std::mutex> lock(engine_mutex);
    return engine.get();
  }
};

// --- fork() -------------------------------------------------------------------------
// The prepare handler takes only locks that are held briefly (never across an export),
// and waits at most fork_wait for exporters in the middle of a call.

std::chrono::milliseconds collector_fork_wait(const CollectorImpl& c) noexcept { return c.options.fork_wait; }

void collector_fork_prepare(CollectorImpl& c, std::chrono::steady_clock::time_point deadline) noexcept {
  c.engine_mutex.lock();
  c.fork_engine = c.engine.get();
  if (c.fork_engine != nullptr) {
    c.fork_engine->stages_mutex.lock();
    for (auto& s : c.fork_engine->stages) s->lock_for_fork(deadline);
  }
  stats_lock_for_fork(c.stats);
}

void collector_fork_parent(CollectorImpl& c) noexcept {
  stats_unlock_after_fork(c.stats, false);
  if (c.fork_engine != nullptr) {
    for (auto& s : c.fork_engine->stages) s->unlock_after_fork();
    c.fork_engine->stages_mutex.unlock();
  }
  c.fork_engine = nullptr;
  c.engine_mutex.unlock();
}

void collector_fork_child(CollectorImpl& c) noexcept {
  stats_unlock_after_fork(c.stats, true);
  if (Engine* old = c.fork_engine) {
    // Exporters that were idle at the fork are the child's to use; the others are never
    // called or destroyed here.
    for (std::size_t i = 0; i < c.exporters.size() && i < old->stages.size(); ++i) {
      Stage& s = *old->stages[i];
      const bool idle = s.usable() && s.locked_for_fork();
      if (!idle && c.exporter_usable[i]) {
        c.exporter_usable[i] = false;
        keep_forever(c.exporters[i]);
      }
    }
    keep_forever(std::shared_ptr<void>(c.engine.release(), [](void*) {}));
  }
  c.fork_engine = nullptr;
  for (std::size_t i = 0; i < c.exporters.size(); ++i) {
    if (!c.exporter_usable[i]) continue;
    try {
      c.exporters[i]->after_fork_child();
    } catch (...) {
      c.exporter_usable[i] = false;
      keep_forever(c.exporters[i]);
    }
  }
  c.pre_fork_tick = clock::now();
  // Threads attach (and the engine starts) on their next event.
  c.generation.store(g_next_generation.fetch_add(1), std::memory_order_release);
  c.engine_mutex.unlock();
}

void collector_detach_thread(CollectorImpl& c, ThreadState* ts) noexcept {
  std::lock_guard<std::mutex> lock(c.engine_mutex);
  if (c.engine) c.engine->detach(ts);
}

bool collector_enqueue(Collector* c, const Event& e) noexcept { return c->enqueue(e); }

}  // namespace detail

Collector::Collector(CollectorOptions options) : impl_(std::make_unique<detail::CollectorImpl>(options)) {
  clock::ticks_per_second();  // calibrate now, not on the first event
  detail::Registry& g = detail::registry();
  std::lock_guard<std::mutex> lock(g.m);
  g.collectors.push_back(impl_.get());
}

Collector::~Collector() {
  shutdown();
  detail::Registry& g = detail::registry();
  std::lock_guard<std::mutex> lock(g.m);
  std::erase(g.collectors, impl_.get());
}

void Collector::add_exporter(std::shared_ptr<Exporter> exporter) {
  if (!exporter) return;
  std::lock_guard<std::mutex> lock(impl_->engine_mutex);
  if (impl_->stopped) return;
  impl_->exporters.push_back(exporter);
  impl_->exporter_usable.push_back(true);
  if (detail::Engine* e = impl_->engine.get()) {
    auto stage = std::make_shared<detail::Stage>(std::move(exporter), impl_->options, true);
    detail::Stage::start(stage);
    std::lock_guard<std::mutex> sl(e->stages_mutex);
    e->stages.push_back(std::move(stage));
  }
}

bool Collector::enqueue(const Event& event) noexcept {
  detail::ThreadState& ts = detail::tl_state;
  detail::CollectorImpl* impl = impl_.get();
  if (SPYGLASS_UNLIKELY(ts.collector_gen != impl->generation.load(std::memory_order_relaxed)) &&
      !impl->attach_thread(ts))
    return false;
  auto* slot = static_cast<detail::ThreadSlot*>(ts.slot);
  detail::bump(slot->offered);
  if (SPYGLASS_LIKELY(slot->transit->try_enqueue(slot->token, event))) return true;
  detail::bump(slot->rejected);
  return false;
}

bool Collector::flush(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  detail::Engine* e = impl_->current_engine();
  if (e == nullptr) return true;  // nothing was ever recorded
  const std::uint64_t seq = e->flush_req.fetch_add(1) + 1;
  e->wake();
  const auto wait_until = [&](auto&& done) {
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  };
  if (!wait_until([&] { return e->flush_done.load(std::memory_order_acquire) >= seq || e->stop.load(); }))
    return false;
  for (auto& s : e->stage_list())
    if (!wait_until([&] { return s->flushed(seq); })) return false;
  return true;
}

bool Collector::shutdown() { return shutdown(std::chrono::milliseconds::max()); }

bool Collector::shutdown(std::chrono::milliseconds timeout) {
  detail::CollectorImpl& impl = *impl_;
  std::lock_guard<std::mutex> guard(impl.shutdown_mutex);
  if (impl.shut) return impl.shutdown_result;
  detail::Engine* e = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl.engine_mutex);
    impl.stopped = true;
    // Exporters get their flush() and shutdown() (a final push, closing a file) even
    // when nothing was recorded, on their own stage threads, within their own bounds.
    if (!impl.exporters.empty()) {
      try {
        impl.ensure_engine();
      } catch (const std::exception& ex) {
        log(LogLevel::error, "collector", std::string("cannot start the exporters' shutdown: ") + ex.what());
      }
    }
    e = impl.engine.get();
  }
  bool ok = true;
  if (e != nullptr) {
    e->stop.store(true, std::memory_order_release);
    e->wake();
    if (e->thread.joinable()) e->thread.join();
    // Every stage delivers, flushes and shuts down at once, each by its own deadline.
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::pair<std::shared_ptr<detail::Stage>, std::chrono::steady_clock::time_point>> stages;
    for (auto& s : e->stage_list()) {
      const auto own = s->usable() ? s->exporter()->shutdown_timeout() : std::chrono::milliseconds(0);
      const std::chrono::milliseconds bound = std::clamp<std::chrono::milliseconds>(
          std::min(own, timeout), std::chrono::milliseconds(0), std::chrono::hours(24));
      stages.emplace_back(s, start + bound);
      s->request_stop(start + bound);
    }
    for (auto& [s, deadline] : stages) ok = s->finish_by(deadline) && ok;
  }
  impl.shut = true;
  impl.shutdown_result = ok;
  return ok;
}

CollectorCounters Collector::counters() const {
  CollectorCounters c;
  std::lock_guard<std::mutex> lock(impl_->engine_mutex);
  detail::Engine* e = impl_->engine.get();
  if (e == nullptr) return c;
  // Read what has left before what came in: a producer counts an event before making it
  // visible, so a snapshot under load never shows more dispatched than offered.
  c.dispatched = e->dispatched.load(std::memory_order_acquire);
  c.pre_fork = e->pre_fork.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> sl(e->slots_mutex);
    c.offered = e->retired_offered;
    c.rejected = e->retired_rejected;
    for (const auto& [ts, slot] : e->slots) {
      // rejected before offered: an event is offered before it can be rejected.
      c.rejected += slot->rejected.load(std::memory_order_acquire);
      c.offered += slot->offered.load(std::memory_order_acquire);
    }
  }
  const std::uint64_t accounted = c.rejected + c.dispatched + c.pre_fork;
  c.in_transit = c.offered > accounted ? c.offered - accounted : 0;
  return c;
}

std::vector<ExporterCounters> Collector::exporter_counters() const {
  std::vector<ExporterCounters> out;
  detail::Engine* e = impl_->current_engine();
  if (e == nullptr) {
    std::lock_guard<std::mutex> lock(impl_->engine_mutex);
    for (auto& x : impl_->exporters) out.push_back(ExporterCounters{.name = std::string(x->name())});
    return out;
  }
  for (auto& s : e->stage_list()) out.push_back(s->counters());
  return out;
}

Exporter::~Exporter() = default;

StatsStore& Collector::stats() noexcept { return impl_->stats; }

const CollectorOptions& Collector::options() const noexcept { return impl_->options; }

}  // namespace SPYGLASS_NAMESPACE
