// Private to src/core: the pieces the collector, the thread registry, the stages and
// the Session share. Not installed.
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include "spyglass/collector.hpp"
#include "spyglass/context.hpp"

namespace SPYGLASS_NAMESPACE::detail {

struct CollectorImpl;

/// Every producer thread and every live collector, for thread exit, teardown and fork.
/// Lock order everywhere: Registry::m, then a collector's engine_mutex, then the rest.
struct Registry {
  std::mutex m;
  std::vector<ThreadState*> threads;
  std::vector<CollectorImpl*> collectors;
};

/// The process-wide registry; installs the one pthread_atfork handler on first use.
Registry& registry() noexcept;

/// Waits until no registered thread other than the caller is inside submit(). Called
/// after the default collector pointer was cleared, so no new one can enter it.
void wait_for_quiescent_threads() noexcept;

/// fork() handling of one collector, called by the registry's atfork handler in a fixed
/// order while it holds Registry::m. `deadline` bounds waiting for busy exporters.
void collector_fork_prepare(CollectorImpl& c, std::chrono::steady_clock::time_point deadline) noexcept;
void collector_fork_parent(CollectorImpl& c) noexcept;
void collector_fork_child(CollectorImpl& c) noexcept;
/// How long fork() may wait for this collector's busy exporters (CollectorOptions::fork_wait).
std::chrono::milliseconds collector_fork_wait(const CollectorImpl& c) noexcept;

/// A thread leaving: forget its producer slot in this collector.
void collector_detach_thread(CollectorImpl& c, ThreadState* ts) noexcept;

/// The diagnostics' and the clock's own locks, held across fork() (log.cpp, clock.cpp).
void log_lock_for_fork() noexcept;
void log_unlock_after_fork() noexcept;
void clock_lock_for_fork() noexcept;
void clock_unlock_after_fork() noexcept;

/// Keeps objects of the parent that a forked child must never touch or destroy (their
/// mutexes may be held by threads that do not exist in the child). Never freed, and
/// reachable, so leak checkers stay quiet.
void keep_forever(std::shared_ptr<void> object) noexcept;

}  // namespace SPYGLASS_NAMESPACE::detail
