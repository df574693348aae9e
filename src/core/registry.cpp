// The one per-thread state, the process-wide thread registry, thread exit, and the one
// pthread_atfork handler, which visits every lock holder in a fixed order.
#include <pthread.h>

#include <algorithm>
#include <thread>

#include "internal.hpp"
#include "spyglass/emitter.hpp"

namespace SPYGLASS_NAMESPACE::detail {

constinit thread_local ThreadState tl_state [[gnu::tls_model("initial-exec")]];

namespace {

std::vector<std::shared_ptr<void>>& graveyard() {
  static auto* v = new std::vector<std::shared_ptr<void>>;  // never freed, on purpose
  return *v;
}

// Order: registry, then each collector (its engine, stages, stats), then the
// diagnostics, then the clock. The parent and the child release in reverse.
void fork_prepare() noexcept {
  Registry& g = registry();
  g.m.lock();
  std::chrono::milliseconds wait{0};
  for (auto* c : g.collectors) wait = std::max(wait, collector_fork_wait(*c));
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (auto* c : g.collectors) collector_fork_prepare(*c, deadline);
  log_lock_for_fork();
  clock_lock_for_fork();
}

void fork_parent() noexcept {
  Registry& g = registry();
  clock_unlock_after_fork();
  log_unlock_after_fork();
  for (auto it = g.collectors.rbegin(); it != g.collectors.rend(); ++it) collector_fork_parent(**it);
  g.m.unlock();
}

void fork_child() noexcept {
  Registry& g = registry();
  clock_unlock_after_fork();
  log_unlock_after_fork();
  // The forking thread keeps its thread-locals: new ids (so parent and child never
  // repeat each other's) and a new thread id.
  ThreadState& self = tl_state;
  self.random_seeded = false;
  self.tid = 0;
  for (auto it = g.collectors.rbegin(); it != g.collectors.rend(); ++it) collector_fork_child(**it);
  const bool had_self = std::find(g.threads.begin(), g.threads.end(), &self) != g.threads.end();
  g.threads.clear();
  if (had_self) g.threads.push_back(&self);
  g.m.unlock();
}

// Runs at thread exit: unlists the thread and retires its producer slots.
struct ThreadReaper {
  ~ThreadReaper() {
    Registry& g = registry();
    std::lock_guard<std::mutex> lock(g.m);
    ThreadState* self = &tl_state;
    std::erase(g.threads, self);
    for (auto* c : g.collectors) collector_detach_thread(*c, self);
    self->registered = false;
    self->collector_gen = 0;
    self->slot = nullptr;
  }
};

}  // namespace

Registry& registry() noexcept {
  static Registry* r = [] {
    auto* reg = new Registry;  // never freed: threads may exit after static destruction
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    return reg;
  }();
  return *r;
}

void keep_forever(std::shared_ptr<void> object) noexcept {
  try {
    graveyard().push_back(std::move(object));
  } catch (...) {
    new std::shared_ptr<void>(std::move(object));  // NOLINT: leaked on purpose
  }
}

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

void wait_for_quiescent_threads() noexcept {
  Registry& g = registry();
  std::lock_guard<std::mutex> lock(g.m);
  for (ThreadState* t : g.threads) {
    if (t == &tl_state) continue;
    while (t->busy.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }
}

}  // namespace SPYGLASS_NAMESPACE::detail
